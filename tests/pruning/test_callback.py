"""The Pruning callback in real `fit` runs, once per Keras flavour (template class)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError, ConstantSparsity, KeepSparsity, PolynomialDecay, Pruning, sparsity_report
from edgeopt._keras import import_tfmot, keras_module
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
        history = self.fit(model, digits, [Pruning(PolynomialDecay(0.0, 0.8, 0, 30), frequency=5, scope="layer")],
                           epochs=3)
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

    def test_defaults_derive_the_schedule_and_protect_small_layers(self, digits):
        model = fresh(self.flavour)
        callback = Pruning(0.8)
        assert callback.scope == "global"
        history = self.fit(model, digits, [callback], epochs=3)  # 22 steps per epoch: 66 steps
        steps = 3 * int(np.ceil(len(digits.x_train) / 64))
        assert callback.schedule == PolynomialDecay(0.0, 0.8, 0, round(0.6 * steps))
        assert callback.frequency == max(1, round(0.6 * steps) // 8)
        assert history.history["sparsity"][-1] == pytest.approx(0.8, abs=0.005)
        layers = {layer.name: layer.sparsity for layer in sparsity_report(model).layers}
        assert max(layers.values()) <= 0.9 + 0.01  # the per-layer cap
        assert layers["conv1"] < layers["dense1"] and layers["logits"] < layers["dense1"]  # small layers kept denser
        assert json.loads(json.dumps(callback.get_config()))["schedule"]["class_name"] == "PolynomialDecay"
        assert Pruning.from_config(Pruning(0.5).get_config()).target_sparsity == 0.5

    def test_a_target_sparsity_needs_a_fit_of_known_length(self, digits):
        import tensorflow as tf

        model = fresh(self.flavour)
        data = tf.data.Dataset.from_tensor_slices((digits.x_train, digits.y_train)).batch(64).repeat()
        with pytest.raises(ConfigError, match="derives its schedule from the fit's length"):
            model.fit(data.take(3).filter(lambda x, y: True), epochs=1, verbose=0, callbacks=[Pruning(0.5)])
        with pytest.raises(ConfigError, match=r"target sparsity must be in \[0, 1\). Received: schedule=1.5"):
            Pruning(1.5)

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
        self.fit(model, digits, [Pruning(ConstantSparsity(0.7), frequency=5, scope="layer")], epochs=1)
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

    def test_final_sparsity_is_reached_when_end_step_is_off_the_frequency_grid(self, digits):
        model = fresh(self.flavour)  # 29 steps is not a multiple of 10: the last update is at 29 itself
        self.fit(model, digits, [Pruning(PolynomialDecay(0.0, 0.8, 0, 29), frequency=10, scope="layer")], epochs=2)
        for layer in sparsity_report(model).layers:
            assert layer.zeros == round(0.8 * layer.params), layer  # exactly 0.8, not s(20) = 0.776

    def test_a_kernel_is_never_pruned_to_all_zeros(self):
        k = keras_module(self.flavour)
        k.utils.set_random_seed(0)
        model = k.Sequential([k.Input((2,)), k.layers.Dense(1, name="out")])
        model.compile(optimizer="sgd", loss="mse")
        x = np.random.default_rng(0).standard_normal((32, 2)).astype("float32")
        for scope in ("layer", "global"):
            model.fit(x, x.sum(axis=1), epochs=1, batch_size=8, verbose=0,
                      callbacks=[Pruning(ConstantSparsity(0.8), frequency=1, scope=scope)])
            assert np.count_nonzero(model.get_layer("out").get_weights()[0]) == 1, scope  # as tfmot: one kept

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
        (dict(schedule="0.5"), "must be a PruningSchedule or a target sparsity"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    schedule = kwargs.pop("schedule")
    with pytest.raises(ConfigError, match=message):
        Pruning(schedule, **kwargs)


def test_tfmot_keeps_the_same_number_of_weights(digits):
    """tfmot as the oracle for the count kept: round(size * (1 - s)), at least one."""
    tfmot = import_tfmot()
    k = keras_module("tf_keras")
    rng = np.random.default_rng(0)
    for inputs, units, sparsity in [(2, 1, 0.8), (1, 1, 0.5), (3, 1, 0.9), (4, 2, 0.99), (5, 3, 0.5), (10, 1, 0.3)]:
        x = rng.standard_normal((16, inputs)).astype("float32")
        ours = k.Sequential([k.Input((inputs,)), k.layers.Dense(units, name="out")])
        ours.compile(optimizer="sgd", loss="mse")
        ours.fit(x, x[:, :units], epochs=1, batch_size=8, verbose=0,
                 callbacks=[Pruning(ConstantSparsity(sparsity), frequency=1)])
        schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=1)
        theirs = tfmot.sparsity.keras.prune_low_magnitude(
            k.Sequential([k.Input((inputs,)), k.layers.Dense(units, name="out")]), pruning_schedule=schedule)
        theirs.compile(optimizer="sgd", loss="mse")
        theirs.fit(x, x[:, :units], epochs=1, batch_size=8, verbose=0,
                   callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(theirs)
        expected = np.count_nonzero(stripped.layers[-1].get_weights()[0])
        assert np.count_nonzero(ours.get_layer("out").get_weights()[0]) == expected, (inputs, units, sparsity)


@pytest.mark.parametrize("callback", [
    Pruning(PolynomialDecay(0.1, 0.9, 5, 50, power=2), frequency=7, granularity="2:4", scope="global",
            layer_types=["Dense"], include=["dense*"], exclude=["logits"], min_params=10, verbose=1),
    Pruning(ConstantSparsity(0.5)),
    KeepSparsity(exclude=["conv1"]),
])
def test_config_round_trip(callback):
    config = callback.get_config()
    assert json.loads(json.dumps(config)) == config  # plain data, as recipes and Keras configs hold
    again = type(callback).from_config(config)
    assert type(again) is type(callback) and again.get_config() == config
    assert again.schedule == callback.schedule and again.frequency == callback.frequency
    assert Pruning.from_config(config).get_config() == config


def test_numpy_integers_are_integers_and_booleans_are_not():
    callback = Pruning(ConstantSparsity(np.float32(0.5)), frequency=np.int64(5), min_params=np.int32(3))
    assert callback.get_config()["frequency"] == 5 and type(callback.get_config()["frequency"]) is int
    for bad in (True, np.bool_(True), 2.0, np.float64(5)):
        with pytest.raises(ConfigError, match="frequency must be a positive integer"):
            Pruning(ConstantSparsity(0.5), frequency=bad)


def test_the_callback_does_not_wrap_or_recompile(digits):
    model = fresh("keras3")
    layers_before = [id(l) for l in model.layers]
    optimizer = model.optimizer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(digits.x_train[:128], digits.y_train[:128], epochs=1, verbose=0,
                  callbacks=[Pruning(ConstantSparsity(0.5), frequency=1)])
    assert [id(l) for l in model.layers] == layers_before and model.optimizer is optimizer
