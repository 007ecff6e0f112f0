"""`Distiller`: knowledge distillation as a model you `compile` and `fit`."""

from __future__ import annotations

import abc
import warnings
from typing import Any, Sequence

from edgeopt import _keras
from edgeopt.distill.losses import ends_in_softmax
from edgeopt.errors import ConfigError


def _shape(tensor) -> tuple:
    shape = tensor.shape
    shape = shape.as_list() if hasattr(shape, "as_list") else shape
    return tuple(None if d is None else int(d) for d in shape)


class Distiller(abc.ABC):
    """A model that trains `student` to match `teacher` (Hinton et al., 2015).

    `loss = alpha * hard_loss(y, student) + (1 - alpha) * T² * KL(softmax(teacher/T) || softmax(student/T))`.
    The teacher is frozen and always runs in inference mode. Outputs are taken to be
    logits; a model ending in a softmax is detected and its log-probabilities are used
    (with a warning). The default hard loss is sparse categorical cross-entropy; pass
    `loss=` to `compile` for another.

    Example:

    ```python
    distiller = edgeopt.Distiller(student=small, teacher=big, temperature=4.0, alpha=0.1)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=10, validation_data=(x_val, y_val), callbacks=[edgeopt.Pruning(...)])
    small = distiller.student   # ready for export
    ```

    Keras 3 models get a subclass of `keras.distillation.Distiller`; tf_keras models
    edgeopt's own `tf_keras.Model` subclass with the same API. Both are registered
    with this class, so `isinstance(distiller, edgeopt.Distiller)` holds for either.

    Args:
        student: the model to train (Keras 3 or tf_keras, same flavour as `teacher`).
        teacher: a trained model with the same input shape and output width.
        temperature: softmax temperature T (> 0). Defaults to `4.0`.
        alpha: weight of the hard-label loss, in [0, 1]. Defaults to `0.1`.
        features: `(teacher_layer, student_layer)` name pairs whose outputs are matched
            too (mean squared error, Keras 3's `FeatureDistillation`). Keras 3 only; the
            two outputs must have the same shape (no learned projection yet). Defaults to `()`.
    """

    def __new__(cls, student: Any, teacher: Any, *, temperature: float = 4.0, alpha: float = 0.1,
                features: Sequence[tuple[str, str]] = ()) -> Any:
        # Returns the flavour's distiller, a virtual subclass (see `DistillerTraining`),
        # so `type.__call__` does not run an `__init__` on it a second time.
        flavour = _keras.flavour_of(student)
        if _keras.flavour_of(teacher) is not flavour:
            raise ConfigError(f"Teacher and student must be the same Keras. Received: teacher "
                              f"{_keras.flavour_of(teacher)}, student {flavour}. Rebuild one of them.")
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ConfigError(f"temperature must be > 0. Received: temperature={temperature!r}. Try 2 to 8.")
        if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}. "
                              "It weighs the hard-label loss; 0.1 is common.")
        for role, model in (("teacher", teacher), ("student", student)):
            if not getattr(model, "inputs", None) or len(model.inputs) != 1 or len(model.outputs) != 1:
                raise ConfigError(f"The {role} must be a built model with one input and one output. "
                                  f"Received: {type(model).__name__} {getattr(model, 'name', '')!r}.")
        t_in, s_in = _shape(teacher.inputs[0])[1:], _shape(student.inputs[0])[1:]
        if t_in != s_in:
            raise ConfigError(f"Teacher and student take different inputs. Received: teacher {t_in}, student {s_in}. "
                              "Both must read the same samples.")
        t_out, s_out = _shape(teacher.outputs[0])[-1], _shape(student.outputs[0])[-1]
        if t_out != s_out:
            raise ConfigError(f"Teacher and student have different output widths. Received: teacher {t_out}, "
                              f"student {s_out}. Both must predict the same classes.")
        teacher_probs, student_probs = ends_in_softmax(teacher), ends_in_softmax(student)
        if teacher_probs or student_probs:
            which = " and ".join(r for r, p in (("teacher", teacher_probs), ("student", student_probs)) if p)
            warnings.warn(f"Distiller: the {which} ends in a softmax; distilling on its log-probabilities "
                          "(logits are expected).", stacklevel=2)
        if teacher.trainable:
            warnings.warn("Distiller: the teacher was trainable; it is now frozen (teacher.trainable = False).",
                          stacklevel=2)
        common = dict(temperature=float(temperature), alpha=float(alpha), teacher_probs=teacher_probs,
                      student_probs=student_probs)
        for teacher_layer, student_layer in features:
            shapes = []
            for role, model, name in (("teacher", teacher, teacher_layer), ("student", student, student_layer)):
                try:
                    shapes.append(_shape(model.get_layer(name).output)[1:])
                except ValueError:
                    raise ConfigError(f"The {role} has no layer {name!r} for feature distillation. Received: "
                                      f"features={list(features)}. Layers: {[l.name for l in model.layers]}.") from None
            if shapes[0] != shapes[1]:
                raise ConfigError(f"Feature distillation needs outputs of the same shape. Received: teacher {teacher_layer!r} "
                                  f"{shapes[0]}, student {student_layer!r} {shapes[1]}. Pick layers of equal width "
                                  "(a learned projection between different widths is not offered yet).")
        if flavour is _keras.Flavour.KERAS3:
            from edgeopt.distill.keras3 import Keras3Distiller

            return Keras3Distiller(student, teacher, features=tuple(features), **common)
        if features:
            raise ConfigError("Feature distillation is offered for Keras 3 models only. Received: a tf_keras model "
                              f"and features={list(features)}. Drop `features` or use Keras 3 models.")
        from edgeopt.distill.tf_keras import TfKerasDistiller

        return TfKerasDistiller(student, teacher, **common)


_NOT_COMPILED = ("The Distiller must be compiled before fit. Received: fit() on an uncompiled Distiller. "
                 "Call distiller.compile(optimizer='adam', metrics=['accuracy']) first.")


@Distiller.register
class DistillerTraining:
    """What both flavours' distillers share: the default hard loss and the check that
    `fit` comes after `compile`. Mixed in before the flavour's `Model` class.

    A subclass sets `_flavour_losses` (its Keras's `losses` module) and
    `_is_ready_to_fit`, and has `student_probs`.
    """

    _flavour_losses: Any = None

    def _hard_loss(self, loss: Any) -> Any:
        """`loss`, or sparse categorical cross-entropy on the student's logits (or
        probabilities, when it ends in a softmax) when it is `None`."""
        if loss is None:
            return self._flavour_losses.SparseCategoricalCrossentropy(from_logits=not self.student_probs)
        return loss

    def _is_ready_to_fit(self) -> bool:
        raise NotImplementedError

    def fit(self, *args, **kwargs):
        if not self._is_ready_to_fit():
            raise ConfigError(_NOT_COMPILED)
        return super().fit(*args, **kwargs)
