"""tf_keras distillation: edgeopt's own `Model` subclass with the Keras 3 API's shape.

tf_keras has no `Distiller`, so the train/test steps are written here. Feature
distillation is not offered for tf_keras models.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from edgeopt.distill.api import DistillerTraining
from edgeopt.distill.losses import soft_target_loss


class TfKerasDistiller(DistillerTraining, tf_keras.Model):
    """Trains `student` on `alpha * hard + (1 - alpha) * T² * KL(teacher || student)`."""

    _flavour_losses = tf_keras.losses

    def __init__(self, student, teacher, *, temperature, alpha, teacher_probs, student_probs, **kwargs):
        super().__init__(name="distiller", **kwargs)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = temperature
        self.alpha = alpha
        self.teacher_probs = teacher_probs
        self.student_probs = student_probs
        self.student_loss_tracker = tf_keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = tf_keras.metrics.Mean(name="distillation_loss")

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        loss = tf_keras.losses.get(self._hard_loss(loss))
        if isinstance(loss, tf_keras.losses.Loss):  # per-example values, averaged below
            loss = loss.__class__.from_config(dict(loss.get_config(), reduction="none"))
        self.hard_loss = loss

    @property
    def metrics(self):
        return [self.student_loss_tracker, self.distillation_loss_tracker] + super().metrics

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _loss_terms(self, x, y, student_out):
        # Per-example losses averaged over the global batch, so the gradients are right
        # under tf.distribute strategies too.
        teacher_out = self.teacher(x, training=False)
        hard = self.hard_loss(y, student_out)
        soft = soft_target_loss(tf, teacher_out, student_out, temperature=self.temperature,
                                teacher_probs=self.teacher_probs, student_probs=self.student_probs, per_example=True)
        total = tf.nn.compute_average_loss(self.alpha * hard + (1.0 - self.alpha) * soft)
        return total, tf.reduce_mean(hard), tf.reduce_mean(soft)

    def _reported_loss(self, hard, soft):
        return self.alpha * hard + (1.0 - self.alpha) * soft

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            student_out = self.student(x, training=True)
            total, hard, soft = self._loss_terms(x, y, student_out)
            scaled = self.optimizer.get_scaled_loss(total) if hasattr(self.optimizer, "get_scaled_loss") else total
        variables = self.student.trainable_variables
        gradients = tape.gradient(scaled, variables)
        if hasattr(self.optimizer, "get_unscaled_gradients"):
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update(y, student_out, total, hard, soft)

    def test_step(self, data):
        x, y = data[0], data[1]
        student_out = self.student(x, training=False)
        total, hard, soft = self._loss_terms(x, y, student_out)
        return self._update(y, student_out, total, hard, soft)

    def _update(self, y, student_out, total, hard, soft):
        self.student_loss_tracker.update_state(hard)
        self.distillation_loss_tracker.update_state(soft)
        self.compiled_metrics.update_state(y, student_out)
        result = {m.name: m.result() for m in self.metrics}
        result["loss"] = self._reported_loss(self.student_loss_tracker.result(),
                                             self.distillation_loss_tracker.result())
        return result

    def _is_ready_to_fit(self) -> bool:
        return self.optimizer is not None and bool(getattr(self, "_is_compiled", False))
