"""The Pruning callback in real `fit` runs, once per Keras flavour (template class)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError, ConstantSparsity, KeepSparsity, PolynomialDecay, Pruning, sparsity_report
from edgeopt.convert.inspect import constant_tensors
from edgeopt.models import digits_cnn


def fresh(flavour, width=8):
    from edgeopt._keras import keras_module

    keras_module(flavour).utils.set_random_seed(0)
    model = digits_cnn(flavour=flavour, width=width)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class PruningContract:
    flavour: str

    def fit(self, model, digits, callbacks, epochs=2):
        return model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)

    def test_polynomial_decay_reaches_target_and_logs(self, digits):
        model = fresh(self.flavour)
        bn_before = model.get_layer("bn1").get_weights()
        history = self.fit(model, digits, [Pruning(PolynomialDecay(0.0, 0.8, 0, 30), frequency=5)], epochs=3)
        report = sparsity_report(model)
        for layer in report.layers:
            assert layer.sparsity == pytest.approx(0.8, abs=0.01), layer
        assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.005)
        assert history.history["sparsity"][0] < history.history["sparsity"][-1]
        assert np.count_nonzero(model.get_layer("dense1").get_weights()[1]) > 0  # biases never pruned
        assert not np.allclose(model.get_layer("bn1").get_weights()[0], 0)
        assert len(bn_before) == 4

    def test_zeros_survive_save_load_and_int8_export(self, digits, tmp_path):
        model = fresh(self.flavour)
        self.fit(model, digits, [Pruning(ConstantSparsity(0.75), frequency=10)])
        kernel = model.get_layer("dense1").get_weights()[0]
        model.save(tmp_path / "pruned.keras")
        loaded = edgeopt.load_model(tmp_path / "pruned.keras")
        np.testing.assert_array_equal(loaded.get_layer("dense1").get_weights()[0] == 0, kernel == 0)
        report = edgeopt.export_tflite(model, ["int8"], output_dir=tmp_path, calibration_data=digits.x_train[:50])
        tensors = constant_tensors(open(report["int8"].path, "rb").read())
        (exported,) = [t for t in tensors.values() if t.dtype == np.int8 and t.size == kernel.size and t.ndim == 2]
        assert np.count_nonzero(exported == 0) == np.count_nonzero(kernel == 0)

    def test_n_m_pattern(self, digits):
        model = fresh(self.flavour)
        with pytest.warns(UserWarning, match=r"left dense .*\['conv1'\]"):
            self.fit(model, digits, [Pruning(ConstantSparsity(0.5), granularity="2:4", frequency=5)], epochs=1)
        kernel = model.get_layer("dense1").get_weights()[0]  # (in, out)
        groups = kernel.T.reshape(kernel.shape[1], -1, 4)
        assert (np.count_nonzero(groups, axis=-1) <= 2).all()
        conv2 = model.get_layer("conv2").get_weights()[0]  # (3, 3, in, out)
        groups = np.moveaxis(conv2, 2, -1).reshape(3, 3, conv2.shape[-1], -1, 4)
        assert (np.count_nonzero(groups, axis=-1) <= 2).all()
        assert np.count_nonzero(model.get_layer("conv1").get_weights()[0] == 0) == 0

    def test_global_scope_and_selection(self, digits):
        model = fresh(self.flavour)
        self.fit(model, digits, [Pruning(ConstantSparsity(0.6), frequency=5, scope="global", exclude=["logits"])],
                 epochs=1)
        report = sparsity_report(model)
        pruned = [l for l in report.layers if l.name != "logits"]
        total = sum(l.zeros for l in pruned) / sum(l.params for l in pruned)
        assert total == pytest.approx(0.6, abs=0.01)
        assert len({round(l.sparsity, 2) for l in pruned}) > 1  # one threshold, different per-layer sparsity
        assert report["logits"].zeros == 0

    def test_keep_sparsity_holds_the_mask_and_resume_continues(self, digits):
        model = fresh(self.flavour)
        self.fit(model, digits, [Pruning(ConstantSparsity(0.7), frequency=5)], epochs=1)
        zeros = [w == 0 for w in (model.get_layer(n).get_weights()[0] for n in ("conv2", "dense1"))]
        self.fit(model, digits, [KeepSparsity()], epochs=2)
        for mask, name in zip(zeros, ("conv2", "dense1")):
            now = model.get_layer(name).get_weights()[0]
            np.testing.assert_array_equal(now == 0, mask)
        without = fresh(self.flavour)
        without.set_weights(model.get_weights())
        self.fit(without, digits, [], epochs=1)
        assert sparsity_report(without).sparsity < 0.1  # plain fit revives them: the hold did the work

    def test_resume_from_step_continues_schedule(self, digits):
        model = fresh(self.flavour)
        schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=40)
        self.fit(model, digits, [Pruning(schedule, frequency=5)], epochs=1)  # 21 steps
        mid = sparsity_report(model).sparsity
        assert 0.3 < mid < 0.8
        self.fit(model, digits, [Pruning(schedule, frequency=5)], epochs=2)
        assert sparsity_report(model).sparsity == pytest.approx(0.8, abs=0.01)

    def test_unreached_schedule_warns(self, digits):
        model = fresh(self.flavour)
        with pytest.warns(UserWarning, match="Pruning never starts in this fit"):
            self.fit(model, digits, [Pruning(ConstantSparsity(0.5, begin_step=5000), frequency=100)], epochs=1)
        with pytest.warns(UserWarning, match="reaches final_sparsity=0.8 at step 100000"):
            self.fit(fresh(self.flavour), digits, [Pruning(PolynomialDecay(0.0, 0.8, 0, 100000), frequency=5)],
                     epochs=1)

    def test_no_layer_matched_names_the_patterns(self, digits):
        model = fresh(self.flavour)
        with pytest.raises(ConfigError, match=r"Patterns that matched nothing: \['encoder\*'\]"):
            self.fit(model, digits, [Pruning(ConstantSparsity(0.5), include=["encoder*"])], epochs=1)


class TestKeras3Pruning(PruningContract):
    flavour = "keras3"


class TestTfKerasPruning(PruningContract):
    flavour = "tf_keras"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(schedule=None), "needs a schedule"),
        (dict(schedule=ConstantSparsity(0.5), frequency=0), "frequency must be a positive integer"),
        (dict(schedule=ConstantSparsity(0.5), granularity="4:2"), "0 < N < M"),
        (dict(schedule=ConstantSparsity(0.5), scope="model"), "Unknown scope"),
        (dict(schedule=0.5), "must be a PruningSchedule"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    schedule = kwargs.pop("schedule")
    with pytest.raises(ConfigError, match=message):
        Pruning(schedule, **kwargs)


def test_the_callback_does_not_wrap_or_recompile(digits):
    model = fresh("keras3")
    layers_before = [id(l) for l in model.layers]
    optimizer = model.optimizer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(digits.x_train[:128], digits.y_train[:128], epochs=1, verbose=0,
                  callbacks=[Pruning(ConstantSparsity(0.5), frequency=1)])
    assert [id(l) for l in model.layers] == layers_before and model.optimizer is optimizer
