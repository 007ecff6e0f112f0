"""Validation of a converted model against its float reference, output by output.

Each output gets the metrics that fit what it is:

- `classes`: scores over classes on the last axis, one prediction per sample
  (N, C): top-1 agreement with the reference; with labels, accuracy.
- `dense_classes`: scores per position (N, H, W, C), a segmentation mask: per-pixel
  agreement; with dense labels (N, H, W), pixel accuracy and mean IoU.
- `binary`: one probability per sample or pixel (in [0, 1]) with 0/1 labels:
  agreement and accuracy at 0.5.
- `values`: anything else (regression): absolute and relative error; with targets,
  the mean absolute error to them of both models.

Every output also gets `max_abs_error`, `mean_abs_error` and `relative_error` (the mean
absolute error as a fraction of the reference output's range).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from edgeopt.convert.calibration import check_labels
from edgeopt.errors import ConfigError

# A converted model "agrees" with its reference when it does at least this well.
MIN_AGREEMENT = 0.95
MAX_RELATIVE_ERROR = 0.05


@dataclass
class Labels:
    """What the labels of one output mean: its kind and the labels in that form (or None)."""

    kind: str
    y: np.ndarray | None = None


@dataclass
class OutputValidation:
    """How one output of a .tflite model compares with the reference model's."""

    name: str
    kind: str
    top1_agreement: float | None
    accuracy: float | None
    reference_accuracy: float | None
    accuracy_drop_points: float | None
    max_abs_error: float
    mean_abs_error: float
    relative_error: float
    mean_iou: float | None = None
    reference_mean_iou: float | None = None
    target_mean_abs_error: float | None = None
    reference_target_mean_abs_error: float | None = None


@dataclass
class Validation:
    """How a .tflite model's outputs compare with the reference model's.

    `accuracy` and `reference_accuracy` are fractions in [0, 1]; `accuracy_drop_points`
    is in percentage points (positive means the .tflite model is worse). With several
    outputs the top-level figures are the worst output's (lowest agreement, largest
    drop, largest error) and `outputs` has each one.
    """

    samples: int
    top1_agreement: float | None
    accuracy: float | None
    reference_accuracy: float | None
    accuracy_drop_points: float | None
    max_abs_error: float
    mean_abs_error: float
    relative_error: float = 0.0
    outputs: list[OutputValidation] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _one_hot(y: np.ndarray) -> bool:
    return y.dtype.kind in "biuf" and bool(np.isin(y, (0, 1)).all()) and bool((y.sum(axis=-1) == 1).all())


def output_kind(reference: np.ndarray) -> str:
    """The kind of an output without labels: class scores on a last axis of > 1, else values."""
    if reference.ndim >= 2 and reference.shape[-1] > 1:
        return "classes" if reference.ndim == 2 else "dense_classes"
    return "values"


def match_labels(y, reference: np.ndarray, *, name: str = "output", origin: str = "the eval data") -> Labels:
    """Reads the labels `y` of one output (None for none) against its reference values.

    Raises:
        ConfigError: the labels fit no reading of the output's shape, or class labels
            are not indices of its classes.
    """
    kind = output_kind(reference)
    if y is None:
        return Labels(kind)
    y = np.asarray(y)
    classes = reference.shape[-1] if reference.ndim >= 2 else 1
    if kind != "values":
        if y.shape == reference.shape and _one_hot(y):
            y = y.argmax(axis=-1)
        if y.size == int(np.prod(reference.shape[:-1])) and y.shape != reference.shape:
            indices = check_labels(y.reshape(reference.shape[:-1]).reshape(-1), classes, origin=origin)
            return Labels(kind, indices.reshape(reference.shape[:-1]))
    if y.size == reference.size:
        y = y.reshape(reference.shape)
        if y.dtype.kind not in "biuf":
            raise ConfigError(f"The labels of output {name!r} must be numbers. Received: dtype {y.dtype} from "
                              f"{origin}. Give class indices or target values.")
        binary = classes == 1 and np.isin(y, (0, 1)).all() and reference.min() >= 0 and reference.max() <= 1
        return Labels("binary" if binary else "values", y.astype(np.float32))
    raise ConfigError(
        f"The labels of output {name!r} do not fit its shape. Received: labels of shape {y.shape} for an output "
        f"of shape {reference.shape} from {origin}. Give class indices of shape {reference.shape[:-1]} "
        f"(or one-hot / target values of shape {reference.shape})."
    )


def _iou(predicted: np.ndarray, expected: np.ndarray) -> float:
    scores = []
    for c in np.union1d(np.unique(predicted), np.unique(expected)):
        union = np.sum((predicted == c) | (expected == c))
        scores.append(np.sum((predicted == c) & (expected == c)) / union)
    return float(np.mean(scores)) if scores else 1.0


def compare_output(out: np.ndarray, reference: np.ndarray, labels: Labels | None = None,
                   name: str = "output") -> OutputValidation:
    """Compares one output of a converted model with the reference model's."""
    labels = labels or Labels(output_kind(reference))
    reference = np.asarray(reference, np.float32)
    out = np.asarray(out, np.float32).reshape(reference.shape)
    error = np.abs(out - reference)
    spread = float(reference.max() - reference.min()) if reference.size else 0.0
    spread = spread or float(np.abs(reference).max() if reference.size else 0.0) or 1.0
    result = OutputValidation(
        name=name, kind=labels.kind, top1_agreement=None, accuracy=None, reference_accuracy=None,
        accuracy_drop_points=None, max_abs_error=float(error.max()) if error.size else 0.0,
        mean_abs_error=float(error.mean()) if error.size else 0.0, relative_error=0.0,
    )
    result.relative_error = result.mean_abs_error / spread
    if labels.kind in ("classes", "dense_classes", "binary"):
        if labels.kind == "binary":
            predicted, expected = out > 0.5, reference > 0.5
        else:
            predicted, expected = out.argmax(axis=-1), reference.argmax(axis=-1)
        result.top1_agreement = float(np.mean(predicted == expected))
        if labels.y is not None:
            y = labels.y.astype(bool) if labels.kind == "binary" else labels.y
            result.accuracy = float(np.mean(predicted == y))
            result.reference_accuracy = float(np.mean(expected == y))
            result.accuracy_drop_points = round((result.reference_accuracy - result.accuracy) * 100.0, 4)
            if labels.kind == "dense_classes":
                result.mean_iou, result.reference_mean_iou = _iou(predicted, y), _iou(expected, y)
    elif labels.y is not None:
        result.target_mean_abs_error = float(np.mean(np.abs(out - labels.y)))
        result.reference_target_mean_abs_error = float(np.mean(np.abs(reference - labels.y)))
    return result


def compare_outputs(outputs, references, labels: Sequence[Labels | None] | np.ndarray | None = None,
                    names: Sequence[str] | None = None) -> Validation:
    """Compares every output of a converted model with the reference model's.

    Args:
        outputs: the converted model's outputs (a list, or one array).
        references: the reference outputs, in the same order.
        labels: one `Labels` (or None) per output; a plain array is read as the labels
            of a single output. Defaults to `None`.
        names: the outputs' names. Defaults to `output_0`, `output_1`, ...
    """
    single = isinstance(references, np.ndarray)
    outputs = [outputs] if single else list(outputs)
    references = [references] if single else list(references)
    if labels is None or isinstance(labels, np.ndarray):
        labels = [match_labels(labels, references[0])] + [None] * (len(references) - 1)
    names = list(names or [f"output_{i}" for i in range(len(references))])
    per_output = [compare_output(o, r, lab, n) for o, r, lab, n in zip(outputs, references, labels, names)]
    agreements = [o.top1_agreement for o in per_output if o.top1_agreement is not None]
    drops = [o for o in per_output if o.accuracy_drop_points is not None]
    worst = max(drops, key=lambda o: o.accuracy_drop_points) if drops else None
    return Validation(
        samples=int(len(references[0])),
        top1_agreement=min(agreements) if agreements else None,
        accuracy=worst.accuracy if worst else None,
        reference_accuracy=worst.reference_accuracy if worst else None,
        accuracy_drop_points=worst.accuracy_drop_points if worst else None,
        max_abs_error=max(o.max_abs_error for o in per_output),
        mean_abs_error=max(o.mean_abs_error for o in per_output),
        relative_error=max(o.relative_error for o in per_output),
        outputs=per_output,
    )


def disagreement(validation: Validation, against: str = "float32") -> str | None:
    """Why a converted model differs too much from its reference, or None when it agrees.

    Class outputs must agree on at least `MIN_AGREEMENT` of their predictions; value
    outputs must stay within `MAX_RELATIVE_ERROR` of their range. `against` names the
    reference in the message. Defaults to `"float32"`.
    """
    for output in validation.outputs:
        label = f"{output.name}: " if len(validation.outputs) > 1 else ""
        if output.top1_agreement is not None:
            if output.top1_agreement < MIN_AGREEMENT:
                return f"{label}top-1 agreement with {against} {output.top1_agreement:.2f} < {MIN_AGREEMENT}"
        elif output.relative_error > MAX_RELATIVE_ERROR:
            return (f"{label}mean error {output.mean_abs_error:.3g} from {against} is {output.relative_error:.0%} of "
                    f"the output range (over {MAX_RELATIVE_ERROR:.0%})")
    return None
