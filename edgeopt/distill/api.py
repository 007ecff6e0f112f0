"""`Distiller`: knowledge distillation as a model you `compile` and `fit`."""

from __future__ import annotations

import abc
import re
import warnings
from typing import Any, Sequence

from edgeopt import _keras
from edgeopt.distill.losses import ends_in_softmax
from edgeopt.errors import ConfigError


def _shape(tensor) -> tuple:
    shape = tensor.shape
    shape = shape.as_list() if hasattr(shape, "as_list") else shape
    return tuple(None if d is None else int(d) for d in shape)


def _symbolic(model: Any, name: str) -> list:
    try:  # a subclassed model has none (Keras 3 raises, tf_keras returns None)
        return list(getattr(model, name, None) or [])
    except (AttributeError, ValueError):
        return []


def _io_shapes(role: str, model: Any) -> tuple[tuple | None, tuple | None]:
    """`(input shape, output shape)` without the batch, or `(None, None)` for a built
    subclassed model (it has no symbolic inputs to read them from)."""
    inputs, outputs = _symbolic(model, "inputs"), _symbolic(model, "outputs")
    if inputs:
        if len(inputs) != 1 or len(outputs) != 1:
            raise ConfigError(f"The Distiller takes models with one input and one output. Received: {role} "
                              f"{getattr(model, 'name', '')!r} with {len(inputs)} inputs and {len(outputs)} outputs. "
                              "Distill a single-input, single-output model (e.g. one head of it).")
        return _shape(inputs[0])[1:], _shape(outputs[0])[1:]
    if not getattr(model, "built", False):
        raise ConfigError(f"The {role} is not built. Received: an unbuilt {type(model).__name__} "
                          f"{getattr(model, 'name', '')!r}. Call it once on a batch (`model(x)`) first.")
    return None, None


def _reason(exc: BaseException) -> str:
    """The telling line of an exception (Keras puts "Exception encountered when calling..." first)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Keras 3 highlights names with terminal escapes
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception encountered")] or lines
    return f"{type(exc).__name__}: {lines[0].rstrip('.')[:300]}" if lines else type(exc).__name__


def _probe_shapes(teacher: Any, student: Any, known: tuple | None) -> tuple:
    """Input and output shapes of both models, from one forward pass on zeros of the
    input shape a model was built with (a subclassed model keeps it as its build config)."""
    import numpy as np

    shape = known
    for model in (teacher, student):
        if shape is None:
            config = model.get_build_config() if hasattr(model, "get_build_config") else None
            built = (config or {}).get("input_shape")
            if built is not None and all(isinstance(d, int) or d is None for d in built):
                shape = tuple(built)[1:]
    if shape is None or any(d is None for d in shape):
        raise ConfigError("Cannot tell which inputs a subclassed teacher or student takes. Received: build input "
                          f"shape {shape}. Build both by calling them on a batch of one fixed shape (`model(x)`).")
    x = np.zeros((1, *shape), "float32")
    shapes = []
    for role, model in (("teacher", teacher), ("student", student)):
        try:
            out = model(x, training=False)
        except Exception as exc:  # any layer may reject it: say which model
            raise ConfigError(f"The {role} does not take inputs of shape {shape}, which the other model was built "
                              f"for. Received: {_reason(exc)}. Both must read the same samples.") from exc
        if isinstance(out, (list, tuple, dict)):
            raise ConfigError(f"The Distiller takes models with one input and one output. Received: a {role} "
                              f"returning {type(out).__name__}. Distill a single-output model.")
        shapes += [shape, _shape(out)[1:]]
    return tuple(shapes)


# Defaults measured on tiny students (1/10 of the teacher's parameters) with a short
# budget (README, "Defaults and why"; tools/benchmarks/quality.py): Hinton's T=4,
# alpha=0.1 lost to training the student from scratch in 2 of 4 runs; over 6 runs (2
# tasks x 3 seeds) T=2 with alpha 0.3 / 0.5 / 0.7 lost in 3 / 2 / 0 of them (mean gains
# +1.1 / +2.1 / +2.8 points). A small student cannot match a teacher's flattened
# (high-T) distribution and, with little weight on the labels, hardly sees them.
DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.7


def check_distill_arguments(temperature: Any, alpha: Any, features: Any) -> None:
    """`Distiller`'s checks that need no model (recipes validate steps with them).

    Raises:
        ConfigError: naming the argument and its value.
    """
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ConfigError(f"temperature must be > 0. Received: temperature={temperature!r}. Try 2 to 8.")
    if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}. "
                          f"It weighs the hard-label loss; the default is {DEFAULT_ALPHA}.")
    pairs = isinstance(features, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(n, str) for n in p) for p in features)
    if not pairs:
        raise ConfigError(f"features must be a list of (teacher_layer, student_layer) name pairs. Received: "
                          f"features={features!r}. Pass e.g. [('dense', 'dense_1')], or () for none.")


class Distiller(abc.ABC):
    """A model that trains `student` to match `teacher` (Hinton et al., 2015).

    `loss = alpha * hard_loss(y, student) + (1 - alpha) * T² * KL(softmax(teacher/T) || softmax(student/T))`.
    The teacher is frozen and always runs in inference mode. Outputs are taken to be
    logits; a model ending in a softmax is detected and its log-probabilities are used
    (with a warning). The default hard loss is sparse categorical cross-entropy; pass
    `loss=` to `compile` for another.

    Example:

    ```python
    distiller = edgeopt.Distiller(student=small, teacher=big)   # T=2, alpha=0.7
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=10, validation_data=(x_val, y_val), callbacks=[edgeopt.Pruning(...)])
    small = distiller.student   # ready for export
    ```

    Keras 3 models get a subclass of `keras.distillation.Distiller`; tf_keras models
    edgeopt's own `tf_keras.Model` subclass with the same API. Both are registered
    with this class, so `isinstance(distiller, edgeopt.Distiller)` holds for either.

    Args:
        student: the model to train (Keras 3 or tf_keras, same flavour as `teacher`):
            functional, Sequential, or a built subclassed model; one input, one output.
        teacher: a trained model with the same input shape and output width.
        temperature: softmax temperature T (> 0). Defaults to `2.0`.
        alpha: weight of the hard-label loss, in [0, 1]. Defaults to `0.7`.
        features: `(teacher_layer, student_layer)` name pairs whose outputs are matched
            too (mean squared error, Keras 3's `FeatureDistillation`). Keras 3 only; the
            two outputs must have the same shape (no learned projection yet). Defaults to `()`.
    """

    def __new__(cls, student: Any, teacher: Any, *, temperature: float = DEFAULT_TEMPERATURE,
                alpha: float = DEFAULT_ALPHA,
                features: Sequence[tuple[str, str]] = ()) -> Any:
        # Returns the flavour's distiller, a virtual subclass (see `DistillerTraining`),
        # so `type.__call__` does not run an `__init__` on it a second time.
        flavour = _keras.flavour_of(student)
        if _keras.flavour_of(teacher) is not flavour:
            raise ConfigError(f"Teacher and student must be the same Keras. Received: teacher "
                              f"{_keras.flavour_of(teacher)}, student {flavour}. Rebuild one of them.")
        check_distill_arguments(temperature, alpha, features)
        (t_in, t_out), (s_in, s_out) = _io_shapes("teacher", teacher), _io_shapes("student", student)
        subclassed = t_in is None or s_in is None
        if subclassed:  # compare what both give on one sample
            t_in, t_out, s_in, s_out = _probe_shapes(teacher, student, t_in or s_in)
        if t_in != s_in:
            raise ConfigError(f"Teacher and student take different inputs. Received: teacher {t_in}, student {s_in}. "
                              "Both must read the same samples.")
        t_width, s_width = (t_out[-1] if t_out else None), (s_out[-1] if s_out else None)
        if t_width != s_width:
            raise ConfigError(f"Teacher and student have different output widths. Received: teacher {t_width}, "
                              f"student {s_width}. Both must predict the same classes.")
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
        if features and subclassed:
            raise ConfigError("Feature distillation reads intermediate layer outputs, which only functional and Sequential "
                              f"models have. Received: features={list(features)} and a subclassed teacher or student. "
                              "Drop `features` or rebuild the models with the functional API.")
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
