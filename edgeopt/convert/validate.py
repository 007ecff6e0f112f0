"""Validation of a converted model against its float reference on the same samples."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeopt.convert.litert import TfliteRunner


@dataclass
class Validation:
    """How a .tflite model's outputs compare with the reference model's.

    `accuracy` and `reference_accuracy` are fractions in [0, 1]; `accuracy_drop_points`
    is in percentage points (positive means the .tflite model is worse).
    """

    samples: int
    top1_agreement: float | None
    accuracy: float | None
    reference_accuracy: float | None
    accuracy_drop_points: float | None
    max_abs_error: float
    mean_abs_error: float

    def to_dict(self) -> dict:
        return asdict(self)


def _is_classifier(out: np.ndarray) -> bool:
    return out.ndim == 2 and out.shape[1] > 1


def compare_outputs(out: np.ndarray, reference: np.ndarray, y: np.ndarray | None = None) -> Validation:
    """Compares outputs of a converted model with the reference model's outputs."""
    out = out.reshape(reference.shape).astype(np.float32)
    reference = reference.astype(np.float32)
    error = np.abs(out - reference)
    agreement = accuracy = reference_accuracy = drop = None
    if _is_classifier(reference):
        predicted, expected = out.argmax(axis=1), reference.argmax(axis=1)
        agreement = float(np.mean(predicted == expected))
        if y is not None:
            accuracy = float(np.mean(predicted == y))
            reference_accuracy = float(np.mean(expected == y))
            drop = round((reference_accuracy - accuracy) * 100.0, 4)
    return Validation(
        samples=int(len(reference)),
        top1_agreement=agreement,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        accuracy_drop_points=drop,
        max_abs_error=float(error.max()),
        mean_abs_error=float(error.mean()),
    )


def validate_tflite(model_content: bytes, x: np.ndarray, reference: np.ndarray, y: np.ndarray | None = None) -> Validation:
    """Runs `model_content` in LiteRT on `x` and compares with `reference` outputs."""
    return compare_outputs(TfliteRunner(model_content).run(x), reference, y)
