"""The schedule's step: counted from the first pruned batch, kept with the model, resumed.

Per-layer checks prune with scope="layer" (under the default, "global", layers differ).

Each flavour's contract starts from a model that was trained before pruning (its
optimizer is 40 iterations in, past the schedules' `end_step`s), the case where an
optimizer-iteration step silently pruned nothing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import edgeopt
from edgeopt import PolynomialDecay, Pruning, sparsity_report
from edgeopt.pruning.state import ATTRIBUTE
from tests.pruning.test_callback import fresh

STEPS_PER_EPOCH = 20  # 1259 digits / batch 64


def trained(flavour):
    """A fresh digits CNN after 2 epochs (40 optimizer steps) of ordinary training."""
    from edgeopt.datasets import load_digits_splits

    model = fresh(flavour)
    data = load_digits_splits()
    model.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2 * STEPS_PER_EPOCH
    return model


def fit(model, digits, callbacks, epochs=1):
    return model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)


def saved_step(model) -> int:
    return int(getattr(model, ATTRIBUTE).step.numpy())


class StepContract:
    flavour: str
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=60)

    def assert_at(self, model, history, steps):
        """The model is where the schedule puts it after `steps` steps (multiples of 5)."""
        expected = self.schedule.sparsity(steps)
        assert history.history["sparsity"][-1] == pytest.approx(expected, abs=0.005)
        for layer in sparsity_report(model).layers:
            assert layer.sparsity == pytest.approx(expected, abs=0.01), layer
        assert saved_step(model) == steps

    def test_a_trained_model_is_pruned_by_the_whole_schedule(self, digits):
        model = trained(self.flavour)
        history = fit(model, digits, [Pruning(PolynomialDecay(0.0, 0.8, 0, 30), frequency=5, scope="layer")], epochs=2)
        assert history.history["sparsity"][0] == pytest.approx(PolynomialDecay(0.0, 0.8, 0, 30).sparsity(20),
                                                               abs=0.005)
        for layer in sparsity_report(model).layers:
            assert layer.sparsity == pytest.approx(0.8, abs=0.01), layer
        assert len(model.get_weights()) == len(fresh(self.flavour).get_weights())

    def test_a_second_fit_continues_the_schedule(self, digits):
        model = trained(self.flavour)
        self.assert_at(model, fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer")]), 20)
        self.assert_at(model, fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer")]), 40)

    def test_a_tf_checkpoint_restored_into_a_fresh_model_continues(self, digits, tmp_path):
        import tensorflow as tf

        model = trained(self.flavour)
        self.assert_at(model, fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer")]), 20)
        path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "ckpt"))
        restored = fresh(self.flavour)
        tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(path)
        np.testing.assert_array_equal(restored.get_layer("dense1").get_weights()[0],
                                      model.get_layer("dense1").get_weights()[0])
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message="Pruning: the selected kernels")  # exact, not inferred
            history = fit(restored, digits, [Pruning(self.schedule, frequency=5, scope="layer")])
        self.assert_at(restored, history, 40)
        self.assert_at(restored, fit(restored, digits, [Pruning(self.schedule, frequency=5, scope="layer")]), 60)

    def test_a_model_file_without_the_step_resumes_from_its_sparsity(self, digits, tmp_path):
        model = trained(self.flavour)
        self.assert_at(model, fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer")]), 20)
        model.save(tmp_path / "mid.keras")
        loaded = edgeopt.load_model(tmp_path / "mid.keras")
        assert not hasattr(loaded, ATTRIBUTE)
        loaded.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        with pytest.warns(UserWarning, match="resuming at step 20, where the schedule reaches that sparsity"):
            history = fit(loaded, digits, [Pruning(self.schedule, frequency=5, scope="layer")])
        self.assert_at(loaded, history, 40)

    def test_a_different_schedule_on_a_pruned_model_starts_from_its_own_beginning(self, digits):
        model = trained(self.flavour)
        fit(model, digits, [Pruning(edgeopt.ConstantSparsity(0.5), frequency=5, scope="layer")])
        further = PolynomialDecay(0.5, 0.9, begin_step=0, end_step=40)
        history = fit(model, digits, [Pruning(further, frequency=5, scope="layer")])
        assert saved_step(model) == 20
        assert history.history["sparsity"][-1] == pytest.approx(further.sparsity(20), abs=0.005)

    def test_a_fit_of_unknown_length_that_stops_short_warns(self, digits):
        import tensorflow as tf

        model = trained(self.flavour)
        data = tf.data.Dataset.from_tensor_slices((digits.x_train, digits.y_train)).filter(lambda x, y: True)
        assert int(data.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
        with pytest.warns(UserWarning, match=r"Pruning stopped at step 20 of the schedule, before end_step=60"):
            model.fit(data.batch(64), epochs=1, verbose=0, callbacks=[Pruning(self.schedule, frequency=5, scope="layer")])


class TestKeras3Step(StepContract):
    flavour = "keras3"

    def test_a_keras_weights_file_loaded_after_set_model_continues(self, digits, tmp_path):
        model = trained(self.flavour)
        self.assert_at(model, fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer")]), 20)
        model.save_weights(tmp_path / "mid.weights.h5")
        restored = fresh(self.flavour)
        callback = Pruning(self.schedule, frequency=5, scope="layer")
        callback.set_model(restored)  # attaches the step, so load_weights fills it in
        restored.load_weights(tmp_path / "mid.weights.h5")
        assert saved_step(restored) == 20
        self.assert_at(restored, fit(restored, digits, [callback]), 40)

    def test_weights_saved_before_pruning_still_load(self, digits, tmp_path):
        fresh(self.flavour).save_weights(tmp_path / "dense.weights.h5")
        model = trained(self.flavour)
        fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer")])
        model.load_weights(tmp_path / "dense.weights.h5")  # no entry for the state: it is kept
        assert saved_step(model) == 20 and sparsity_report(model).sparsity == 0.0

    def test_backup_and_restore_resumes_the_schedule(self, digits, tmp_path):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 0:
                    raise RuntimeError("interrupted")

        model = trained(self.flavour)
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        with pytest.raises(RuntimeError, match="interrupted"):
            fit(model, digits, [Pruning(self.schedule, frequency=5, scope="layer"), backup, Stop()], epochs=3)
        restored = trained(self.flavour)  # a new process would rebuild the model like this
        history = fit(restored, digits, [Pruning(self.schedule, frequency=5, scope="layer"), backup], epochs=3)
        assert len(history.history["loss"]) == 2  # epochs 2 and 3 only
        self.assert_at(restored, history, 60)


class TestTfKerasStep(StepContract):
    flavour = "tf_keras"


def test_a_built_subclassed_keras3_model_is_pruned_and_keeps_its_step(tmp_path):
    """Keras 3 locks a built subclassed model's state tracker: the step is attached past it,
    still saved in TensorFlow checkpoints, and not listed among the model's layers."""
    import keras
    import tensorflow as tf

    class Net(keras.Model):
        def __init__(self, width, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(width, activation="relu", name="hidden")
            self.out = keras.layers.Dense(4, name="out")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    keras.utils.set_random_seed(0)
    model = Net(16)
    model(np.zeros((1, 8), "float32"))
    layers, weights = list(model.layers), len(model.weights)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((32, 8)).astype("float32")
    model.fit(x, np.zeros((32, 4), "float32"), batch_size=8, verbose=0,
              callbacks=[Pruning(PolynomialDecay(0.0, 0.5, 0, 4), frequency=1)])
    assert sparsity_report(model).sparsity == pytest.approx(0.5, abs=0.02)
    assert saved_step(model) == 4 and model.layers == layers and len(model.weights) == weights
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    assert any(ATTRIBUTE in name for name, _ in tf.train.list_variables(path))
