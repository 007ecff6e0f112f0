"""The pipeline's defaults for pruning and distillation: a `pruning` step distills from
the model it started from, and every distilled student gets a from-scratch row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt._callback import FitCallback
from edgeopt.models import digits_cnn
from edgeopt.pipeline import techniques
from edgeopt.pipeline.recipe import parse_recipe
from edgeopt.pipeline.run import run_recipe
from edgeopt.errors import ConfigError

TRAIN = {"epochs": 1, "batch_size": 64, "optimizer": "adam", "learning_rate": 0.001, "seed": 0,
         "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
PRUNING = {"schedule": {"constant_sparsity": {"target_sparsity": 0.5}}, "frequency": 5, "epochs": 1}


class Logs(FitCallback):
    """Keeps the logs of every epoch end."""

    def on_train_begin(self, logs=None):
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(dict(logs or {}))


@pytest.fixture(scope="module")
def data(digits):
    return techniques.Data(digits.x_train[:256], digits.y_train[:256], digits.x_val, digits.y_val, None, None)


@pytest.fixture(scope="module")
def trained(data):
    import keras

    keras.utils.set_random_seed(0)
    model = digits_cnn(width=4)
    techniques.fit(model, data, TRAIN, 2, "train", lambda line: None)
    return model


@pytest.mark.parametrize("distill", [None, True, False])
def test_pruning_step_distills_from_the_model_it_started_from(trained, data, distill, monkeypatch):
    import keras

    model = keras.models.clone_model(trained)  # the shared fixture stays as it is
    model.set_weights(trained.get_weights())
    dense = [w.copy() for w in model.get_weights()]
    teachers = []
    real = techniques.dense_teacher
    monkeypatch.setattr(techniques, "dense_teacher", lambda *a: teachers.append(real(*a)) or teachers[-1])
    settings = dict(PRUNING) if distill is None else dict(PRUNING, distill=distill)
    logs, state = Logs(), {}
    out = techniques.apply_step("pruning", settings, model, data, TRAIN, lambda line: None, state, callbacks=[logs])
    assert out is model and state["pruned"]
    (epoch,) = logs.seen
    assert epoch["sparsity"] == pytest.approx(0.5, abs=0.01)
    if distill is False:
        assert "distillation_loss" not in epoch and not teachers
        return
    # the default: the loss has the KD term, from a frozen copy of the dense model as it was
    assert epoch["distillation_loss"] > 0 and epoch["student_loss"] > 0
    (teacher,) = teachers
    assert teacher is not model and not teacher.trainable
    for before, now in zip(dense, teacher.get_weights()):
        np.testing.assert_array_equal(before, now)
    assert np.count_nonzero(model.get_layer("dense1").get_weights()[0] == 0) > 0


def test_pruning_distill_key_is_validated():
    recipe = {"model": {"builder": "edgeopt.models:digits_cnn"}, "data": {"source": "digits"}, "train": {},
              "variants": [{"name": "p", "steps": [{"pruning": dict(PRUNING, distill="yes")}]}]}
    with pytest.raises(ConfigError, match=r"distill must be true or false. Received: 'yes'"):
        parse_recipe(recipe)
    recipe["variants"][0]["steps"][0]["pruning"]["distill"] = False
    assert parse_recipe(recipe).variants[0]["steps"][0]["pruning"]["distill"] is False


def test_scratch_twins():
    distill = {"distill": {"student": {"builder": "m:f", "kwargs": {}}, "epochs": 4, "alpha": 0.3}}
    variants = [{"name": "d", "steps": [{"pruning": PRUNING}, distill, {"qat": {"epochs": 1}}], "precisions": ["int8"]},
                {"name": "d-scratch", "steps": []}, {"name": "plain", "steps": [{"pruning": PRUNING}]}]
    out = techniques.scratch_twins(variants)
    assert [v["name"] for v in out] == ["d", "d-scratch2", "d-scratch", "plain"]  # a taken name gets a number
    assert out[1] == {"name": "d-scratch2", "scratch_of": "d", "precisions": ["int8"],
                      "steps": [{"scratch": {"student": {"builder": "m:f", "kwargs": {}}, "epochs": 4}},
                                {"qat": {"epochs": 1}}]}
    assert techniques.scratch_twins(out) == out  # expanding twice adds nothing


RECIPE = """
name: twins
model: {builder: edgeopt.models:digits_cnn, kwargs: {width: 4}}
data: {source: digits}
train: {epochs: 1, batch_size: 64}
variants:
  - name: distilled
    steps:
      - distill: {student: {builder: edgeopt.models:digits_cnn, kwargs: {width: 2}}, epochs: 1}
export: {precisions: [float32], calibration_samples: 20}
"""


def test_report_has_a_scratch_row_for_every_distilled_student(tmp_path):
    path = tmp_path / "twins.yaml"
    path.write_text(RECIPE)
    result = run_recipe(path, out_dir=tmp_path / "out")
    assert result.ok, result.failed
    rows = json.loads((result.run_dir / "report.json").read_text())
    assert {(r["variant"], r["precision"]) for r in rows} == {("distilled", "float32"), ("distilled-scratch", "float32")}
    scratch = next(r for r in rows if r["variant"] == "distilled-scratch")
    distilled = next(r for r in rows if r["variant"] == "distilled")
    assert 0 < scratch["accuracy"] <= 1 and scratch["size_bytes"] == distilled["size_bytes"]  # same architecture
    report = (result.run_dir / "report.md").read_text()
    assert "| distilled-scratch | float32 |" in report
    delta = 100 * (distilled["accuracy"] - scratch["accuracy"])
    assert (f"- `distilled` float32: {100 * distilled['accuracy']:.2f}% distilled vs "
            f"{100 * scratch['accuracy']:.2f}% from scratch (`distilled-scratch`): {delta:+.2f} points") in report
