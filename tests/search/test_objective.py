"""Poor trials stop early: in the second half of a fine-tuning step, below the floor."""

from __future__ import annotations

import optuna
import pytest

from edgeopt.search.objective import StopPoorTrial


@pytest.mark.parametrize("epochs, checked", [(1, [1]), (2, [2]), (3, [2, 3]), (8, [5, 6, 7, 8])])
def test_only_the_second_half_of_a_step_is_judged(epochs, checked):
    judged = []
    for epoch in range(epochs):
        callback = StopPoorTrial(floor=0.9, label="pruning")
        callback.set_params({"epochs": epochs})
        try:
            callback.on_epoch_end(epoch, {"val_accuracy": 0.5})
        except optuna.TrialPruned as exc:
            judged.append(epoch + 1)
            assert str(exc) == f"stopped after pruning epoch {epoch + 1}/{epochs}: validation accuracy 50.00% < 90.00%"
    assert judged == checked


def test_a_good_epoch_or_no_validation_data_goes_on():
    callback = StopPoorTrial(floor=0.9, label="distill")
    callback.set_params({"epochs": 1})
    callback.on_epoch_end(0, {"val_accuracy": 0.95})
    callback.on_epoch_end(0, {"accuracy": 0.1})  # no validation split: nothing to judge
