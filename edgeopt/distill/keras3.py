"""Keras 3 distillation: `keras.distillation.Distiller`, plus what it lacks.

Reused as is: the training loop, teacher freezing, inference-mode teacher calls,
metrics, `FeatureDistillation`. Added: probability outputs (Keras assumes logits), a
default hard loss, edgeopt's argument checks, and a clear error for `fit` before
`compile`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from edgeopt.distill.api import DistillerTraining
from edgeopt.distill.losses import soft_target_loss


class SoftTargets(keras.distillation.LogitsDistillation):
    """`LogitsDistillation` that also accepts probability outputs (see `distill.losses`)."""

    def __init__(self, temperature: float, teacher_probs: bool, student_probs: bool):
        super().__init__(temperature=temperature, loss="kl_divergence")
        self.teacher_probs = teacher_probs
        self.student_probs = student_probs

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        return soft_target_loss(tf, teacher_outputs, student_outputs, temperature=self.temperature,
                                teacher_probs=self.teacher_probs, student_probs=self.student_probs)

    def get_config(self):
        return dict(super().get_config(), teacher_probs=self.teacher_probs, student_probs=self.student_probs)


class Keras3Distiller(DistillerTraining, keras.distillation.Distiller):
    """A Keras 3 `Distiller` with edgeopt's defaults; `distiller.student` is the result."""

    _flavour_losses = keras.losses

    def __init__(self, student, teacher, *, temperature, alpha, teacher_probs, student_probs, features=(), **kwargs):
        losses = [SoftTargets(temperature, teacher_probs, student_probs)]
        losses += [keras.distillation.FeatureDistillation(teacher_layer_name=t, student_layer_name=s)
                   for t, s in features]
        super().__init__(teacher=teacher, student=student, distillation_losses=losses,
                         student_loss_weight=alpha, name="distiller", **kwargs)
        self.temperature = temperature
        self.alpha = alpha
        self.student_probs = student_probs

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        super().compile(optimizer=optimizer, loss=self._hard_loss(loss), metrics=metrics, **kwargs)

    def _is_ready_to_fit(self) -> bool:
        return bool(getattr(self, "compiled", False))
