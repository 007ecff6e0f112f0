"""Quantization-aware training: tfmot for tf_keras models."""

from edgeopt.qat.api import quantize_aware

__all__ = ["quantize_aware"]
