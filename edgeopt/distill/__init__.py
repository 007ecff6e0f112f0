"""Knowledge distillation with `fit`, for Keras 3 and tf_keras models."""

from edgeopt.distill.api import Distiller

__all__ = ["Distiller"]
