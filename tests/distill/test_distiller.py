"""The Distiller on both Keras flavours (template class), with real fits."""

from __future__ import annotations

import numpy as np
import pytest

import edgeopt
from edgeopt import ConfigError, ConstantSparsity, Distiller, Pruning
from edgeopt._keras import keras_module


def mlp(flavour, width, softmax=False, inputs=(8, 8, 1), classes=10, seed=0):
    k = keras_module(flavour)
    k.utils.set_random_seed(seed)
    return k.Sequential([k.Input(inputs), k.layers.Flatten(), k.layers.Dense(width, activation="relu", name="hidden"),
                         k.layers.Dense(classes, activation="softmax" if softmax else None, name="out")])


class DistillerContract:
    flavour: str

    @pytest.fixture(scope="class")
    def teacher(self, digits):
        k = keras_module(self.flavour)
        teacher = mlp(self.flavour, 128)
        teacher.compile(optimizer="adam", loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
        teacher.fit(digits.x_train, digits.y_train, epochs=10, verbose=0)
        teacher.trainable = False
        return teacher

    def test_student_moves_toward_the_teacher(self, teacher, digits):
        # alpha=0 and shuffled labels: the only useful signal is the teacher.
        student = mlp(self.flavour, 32, seed=1)
        agree = lambda: np.mean(student.predict(digits.x_test, verbose=0).argmax(1) ==  # noqa: E731
                                teacher.predict(digits.x_test, verbose=0).argmax(1))
        before = agree()
        distiller = Distiller(student=student, teacher=teacher, temperature=2.0, alpha=0.0)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        noise = np.random.default_rng(0).permutation(digits.y_train)
        distiller.fit(digits.x_train, noise, epochs=8, verbose=0)
        assert before < 0.3 and agree() > 0.85

    def test_fit_with_validation_callbacks_and_student_save(self, teacher, digits, tmp_path):
        teacher_weights = [w.copy() for w in teacher.get_weights()]
        distiller = Distiller(student=mlp(self.flavour, 32, seed=2), teacher=teacher, temperature=4.0, alpha=0.1)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        history = distiller.fit(digits.x_train, digits.y_train, epochs=6, verbose=0,
                                validation_data=(digits.x_val, digits.y_val),
                                callbacks=[Pruning(ConstantSparsity(0.5), frequency=5)])
        assert {"val_accuracy", "sparsity", "distillation_loss"} <= set(history.history)
        assert history.history["sparsity"][-1] == pytest.approx(0.5, abs=0.01)
        for a, b in zip(teacher_weights, teacher.get_weights()):
            np.testing.assert_array_equal(a, b)  # frozen and never pruned
        results = distiller.evaluate(digits.x_test, digits.y_test, verbose=0, return_dict=True)
        assert results["accuracy"] > 0.5  # chance is 0.1; 6 epochs while pruning to 50 %
        distiller.student.save(tmp_path / "student.keras")
        loaded = edgeopt.load_model(tmp_path / "student.keras")
        np.testing.assert_allclose(loaded.predict(digits.x_test[:8], verbose=0),
                                   distiller.student.predict(digits.x_test[:8], verbose=0), atol=1e-5)

    def test_probability_outputs_are_detected(self, teacher, digits):
        with pytest.warns(UserWarning, match="student ends in a softmax"):
            distiller = Distiller(student=mlp(self.flavour, 16, softmax=True), teacher=teacher)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        history = distiller.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"][-1])

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            (dict(student_inputs=(4, 4, 1)), r"different inputs. Received: teacher \(8, 8, 1\), student \(4, 4, 1\)"),
            (dict(classes=5), "different output widths. Received: teacher 10, student 5"),
            (dict(temperature=0), "temperature must be > 0"),
            (dict(alpha=1.5), r"alpha must be in \[0, 1\]"),
        ],
    )
    def test_bad_arguments(self, teacher, kwargs, message):
        kwargs = dict(kwargs)  # parametrize shares the dict between the two flavours
        student = mlp(self.flavour, 8, inputs=kwargs.pop("student_inputs", (8, 8, 1)), classes=kwargs.pop("classes", 10))
        with pytest.raises(ConfigError, match=message):
            Distiller(student=student, teacher=teacher, **kwargs)

    def test_defaults_are_the_documented_ones_and_explicit_values_are_honoured(self, teacher, digits):
        import inspect

        import tensorflow as tf

        from edgeopt.distill.losses import soft_target_loss

        signature = inspect.signature(Distiller.__new__).parameters
        assert (signature["temperature"].default, signature["alpha"].default) == (2.0, 0.7)
        assert "temperature T (> 0). Defaults to `2.0`." in Distiller.__doc__
        assert "hard-label loss, in [0, 1]. Defaults to `0.7`." in Distiller.__doc__
        student = mlp(self.flavour, 8, seed=4)
        distiller = Distiller(student=student, teacher=teacher)
        assert (distiller.temperature, distiller.alpha) == (2.0, 0.7)
        distiller.compile(optimizer="adam")
        x, y = digits.x_test[:32], digits.y_test[:32]
        result = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
        hard = float(np.mean(keras_module(self.flavour).losses.sparse_categorical_crossentropy(
            y, student(x), from_logits=True)))
        soft = float(soft_target_loss(tf, teacher(x), student(x), temperature=2.0, teacher_probs=False,
                                      student_probs=False))
        assert result["loss"] == pytest.approx(0.7 * hard + 0.3 * soft, rel=1e-4)  # the loss is what it says
        explicit = Distiller(student=mlp(self.flavour, 8), teacher=teacher, temperature=4.0, alpha=0.1)
        assert (explicit.temperature, explicit.alpha) == (4.0, 0.1)

    def test_fit_before_compile(self, teacher, digits):
        distiller = Distiller(student=mlp(self.flavour, 8), teacher=teacher)
        with pytest.raises(ConfigError, match="must be compiled before fit"):
            distiller.fit(digits.x_train, digits.y_train, epochs=1, verbose=0)

    def test_is_an_edgeopt_distiller(self, teacher):
        distiller = Distiller(student=mlp(self.flavour, 8), teacher=teacher)
        assert isinstance(distiller, edgeopt.Distiller) and issubclass(type(distiller), Distiller)
        assert isinstance(distiller, keras_module(self.flavour).Model)
        assert not isinstance(teacher, Distiller) and not isinstance(object(), Distiller)

    def test_warnings_point_at_the_caller(self, digits):
        with pytest.warns(UserWarning, match="teacher was trainable") as caught:
            Distiller(student=mlp(self.flavour, 8), teacher=mlp(self.flavour, 16))
        assert caught[0].filename == __file__

    def test_trainable_teacher_is_frozen_with_a_warning(self, digits):
        teacher = mlp(self.flavour, 16)
        with pytest.warns(UserWarning, match="teacher was trainable; it is now frozen"):
            Distiller(student=mlp(self.flavour, 8), teacher=teacher)
        assert teacher.trainable is False


class TestKeras3Distiller(DistillerContract):
    flavour = "keras3"


class TestTfKerasDistiller(DistillerContract):
    flavour = "tf_keras"


def test_mixed_flavours_are_refused():
    with pytest.raises(ConfigError, match="same Keras"):
        Distiller(student=mlp("keras3", 8), teacher=mlp("tf_keras", 8))


def test_feature_distillation_keras3(digits):
    import keras

    teacher = mlp("keras3", 32)
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
    teacher.trainable = False
    distiller = Distiller(student=mlp("keras3", 32, seed=3), teacher=teacher, features=[("hidden", "hidden")])
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    history = distiller.fit(digits.x_train, digits.y_train, epochs=2, verbose=0)
    assert history.history["distillation_loss"][-1] < history.history["distillation_loss"][0]
    with pytest.raises(ConfigError, match=r"same shape. Received: teacher 'hidden' \(32,\), student 'hidden' \(8,\)"):
        Distiller(student=mlp("keras3", 8), teacher=teacher, features=[("hidden", "hidden")])
    with pytest.raises(ConfigError, match="Keras 3 models only"):
        Distiller(student=mlp("tf_keras", 8), teacher=mlp("tf_keras", 8), features=[("hidden", "hidden")])


def subclassed_mlp(flavour, width, seed=0, inputs=(8, 8, 1), build=True):
    k = keras_module(flavour)

    class Net(k.Model):
        def __init__(self, width, **kwargs):
            super().__init__(**kwargs)
            self.flatten = k.layers.Flatten()
            self.hidden = k.layers.Dense(width, activation="relu", name="hidden")
            self.out = k.layers.Dense(10, name="out")

        def call(self, x):
            return self.out(self.hidden(self.flatten(x)))

    k.utils.set_random_seed(seed)
    model = Net(width, name="net")
    if build:
        model(np.zeros((1, *inputs), "float32"))
    return model


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_subclassed_students_and_teachers(digits, flavour):
    teacher = subclassed_mlp(flavour, 32)
    student = subclassed_mlp(flavour, 8, seed=1)
    teacher.trainable = False
    before = [w.copy() for w in student.get_weights()]
    distiller = Distiller(student=student, teacher=teacher, alpha=0.0)
    distiller.compile(optimizer="adam")
    history = distiller.fit(digits.x_train[:128], digits.y_train[:128], epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    Distiller(student=mlp(flavour, 8), teacher=teacher)  # a functional student of a subclassed teacher
    with pytest.raises(ConfigError, match=r"student does not take inputs of shape \(8, 8, 1\).*Received: ValueError: "
                                          r".*incompatible"):
        Distiller(student=subclassed_mlp(flavour, 8, inputs=(4, 4, 1)), teacher=teacher)
    with pytest.raises(ConfigError, match=r"The student is not built. Received: an unbuilt Net 'net'"):
        Distiller(student=subclassed_mlp(flavour, 8, build=False), teacher=teacher)
    if flavour == "keras3":
        with pytest.raises(ConfigError, match="Feature distillation reads intermediate layer outputs"):
            Distiller(student=student, teacher=teacher, features=[("hidden", "hidden")])


def test_several_inputs_or_outputs_are_refused_by_name():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    two_heads = keras.Model(inputs, [keras.layers.Dense(10)(x), keras.layers.Dense(1)(x)], name="two_heads")
    with pytest.raises(ConfigError, match=r"one input and one output. Received: teacher 'two_heads' with 1 inputs "
                                          r"and 2 outputs"):
        Distiller(student=mlp("keras3", 8), teacher=two_heads)
