"""The distillation loss of Hinton et al. (2015), shared by both Keras flavours.

`loss = alpha * hard_loss(y, student) + (1 - alpha) * T² * KL(softmax(teacher/T) || softmax(student/T))`

Outputs are taken to be logits. A model that ends in a softmax gives probabilities;
their logarithm is used instead (log-probabilities are logits up to a constant, which
the softmax ignores), with a warning that says so.
"""

from __future__ import annotations

from typing import Any

from edgeopt._layers import iter_layers


def ends_in_softmax(model: Any) -> bool:
    """True when the model's last layer applies a softmax (it outputs probabilities)."""
    layers = list(iter_layers(model))
    if not layers:
        return False
    last = layers[-1]
    if type(last).__name__ == "Softmax":
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", str(activation)) == "softmax"


def as_logits(tf, outputs, probabilities: bool):
    if not probabilities:
        return outputs
    return tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))


def soft_target_loss(tf, teacher_out, student_out, *, temperature: float, teacher_probs: bool, student_probs: bool,
                     per_example: bool = False):
    """`T² · KL(softmax(t/T) || softmax(s/T))`, averaged over the batch (or per example)."""
    t = as_logits(tf, teacher_out, teacher_probs) / temperature
    s = as_logits(tf, student_out, student_probs) / temperature
    p_teacher = tf.nn.softmax(t, axis=-1)
    kl = tf.reduce_sum(p_teacher * (tf.nn.log_softmax(t, axis=-1) - tf.nn.log_softmax(s, axis=-1)), axis=-1)
    kl = kl * (temperature**2)
    return kl if per_example else tf.reduce_mean(kl)
