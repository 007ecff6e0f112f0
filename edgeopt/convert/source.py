"""What the converter stage converts: a Keras 3 model, a tf_keras model or a SavedModel.

One small backend per kind, chosen from the object or file, so the exporter never
has to ask which Keras it holds (the pattern of NNCF's backends). Every backend has
inputs (name, shape with the batch size it was built with, dtype) and named outputs,
as many of each as the model has.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import _keras
from edgeopt._quiet import capture_native_output
from edgeopt.convert import signature as sig
from edgeopt.convert.signature import InputInfo, as_shape, pad_to_batch
from edgeopt.errors import ConfigError, ConversionError, InvalidModelError

__all__ = ["InputInfo", "KerasSource", "ModelSource", "SavedModelSource", "open_source"]

_PREDICT_BATCH = 64


class ModelSource(ABC):
    """A model the converter can read, with its inputs, outputs and a way to run it in float."""

    kind: str

    @property
    @abstractmethod
    def inputs(self) -> list[InputInfo]:
        """One `InputInfo` per input, in signature order."""

    @property
    def input_info(self) -> InputInfo:
        """The first (for most models the only) input."""
        return self.inputs[0]

    @property
    def batch_size(self) -> int | None:
        """The fixed batch size of the inputs, or None when the batch dimension is free."""
        sizes = {i.shape[0] for i in self.inputs if i.shape}
        return sizes.pop() if len(sizes) == 1 and None not in sizes else None

    @property
    @abstractmethod
    def output_names(self) -> list[str]:
        """The outputs' names in the signature (known after `predict_all` or `export_saved_model`)."""

    @abstractmethod
    def predict_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Runs the float model on one array per input; returns one array per output."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs a one-input model on a batch and returns its (first) output."""
        return self.predict_all([x])[0]

    @abstractmethod
    def export_saved_model(self, directory: str | os.PathLike) -> Path:
        """Traces the model once into a SavedModel the TFLite converter reads."""

    @property
    def description(self) -> str:
        return self.kind

    @property
    def quantization_aware(self) -> bool:
        """True for a QAT model: its fake-quant ranges, not calibration, set int8 scales."""
        return False


def _batches(inputs: list[np.ndarray], batch: int | None):
    """Chunks of the inputs for a model run: of the fixed batch size (the last padded), else of 64."""
    padded, count = pad_to_batch(inputs, batch)
    step = batch or _PREDICT_BATCH
    for start in range(0, len(padded[0]) if padded else 0, step):
        yield [a[start:start + step] for a in padded], min(step, count - start)


class KerasSource(ModelSource):
    """A `keras.Model` (Keras 3, TensorFlow backend) or a `tf_keras.Model`: functional,
    Sequential, or subclassed and called once."""

    def __init__(self, model: Any, name: str | None = None):
        self.flavour = _keras.flavour_of(model)
        _keras.keras_module(self.flavour)  # checks the Keras 3 backend
        self.model = model
        self.kind = str(self.flavour)
        self.name = name or getattr(model, "name", "model")
        self.signature = sig.call_signature(model, self.flavour, self.name)
        self._output_names: list[str] | None = None

    @property
    def inputs(self) -> list[InputInfo]:
        return self.signature.inputs

    @property
    def output_names(self) -> list[str]:
        if self._output_names is None:
            raise ConversionError("The model's outputs are named once it ran or was traced. Received: neither yet. "
                                  "Call predict_all() or export_saved_model() first.")
        return self._output_names

    @property
    def description(self) -> str:
        return f"{self.flavour} model {self.name!r}"

    @property
    def quantization_aware(self) -> bool:
        from edgeopt.qat.api import is_quantization_aware

        return is_quantization_aware(self.model)

    def _keras_output_names(self) -> list[str] | None:
        try:
            return list(self.model.output_names or [])
        except (AttributeError, ValueError, TypeError):
            return None

    def predict_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        parts: list[list[np.ndarray]] = []
        for chunk, real in _batches(inputs, self.batch_size):
            outputs = self.model(*self.signature.pack(chunk), training=False)
            names, values = sig.flatten_outputs(outputs, self._keras_output_names())
            self._output_names = names
            parts.append([np.asarray(v)[:real] for v in values])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]

    def export_saved_model(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        captured = None
        try:
            with capture_native_output() as captured:
                self._output_names = sig.trace(self.model, self.flavour, self.signature, directory,
                                               self._keras_output_names())
        except Exception as exc:  # the tracer raises many types; report them as one
            raise ConversionError(
                f"Tracing the model to a SavedModel failed. Received: {self.description} with inputs "
                f"{', '.join(i.describe() for i in self.inputs)} from {self.signature.origin} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                "Check that the model runs on a batch of its input shape (`model(x)`).",
                log=captured.text if captured is not None else "",
            ) from exc
        return directory


class SavedModelSource(ModelSource):
    """A SavedModel directory, read through its `serving_default` signature.

    A SavedModel is a TensorFlow program: its graph ops (`tf.io.write_file`, ...) run
    when it is loaded, traced or evaluated. So it is opened only with `unsafe=True`.

    Args:
        path: the SavedModel directory.
        unsafe: run the SavedModel's own graph; only for directories you trust.
            Defaults to `False`, which refuses every SavedModel.
    """

    kind = "saved_model"

    def __init__(self, path: str | os.PathLike, *, unsafe: bool = False):
        self.path = Path(path)
        self.name = self.path.name
        if not unsafe:
            raise InvalidModelError(
                "A SavedModel runs its own TensorFlow graph (which can read and write files) when it is loaded. "
                f"Received: the SavedModel directory {str(self.path)!r}. Pass --unsafe (unsafe=True) only if you "
                "trust it, or export the .keras/.h5 file instead."
            )
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(self.path))
            self._fn = self._loaded.signatures["serving_default"]
        except KeyError:
            raise InvalidModelError(
                f"The SavedModel has no 'serving_default' signature. Received: {str(self.path)!r}. "
                "Export it with `model.export(path)` or give `tf.saved_model.save` a signature."
            ) from None
        except Exception as exc:
            raise InvalidModelError(
                f"Cannot load the SavedModel. Received: {str(self.path)!r} ({type(exc).__name__}). "
                "Check that the directory is complete."
            ) from exc
        args, kwargs = self._fn.structured_input_signature
        if args or not kwargs:
            raise ConfigError(
                "The SavedModel's serving_default takes positional inputs, which the converter cannot name. "
                f"Received: {len(args)} positional and {len(kwargs)} named inputs in {str(self.path)!r}. "
                "Export it with `model.export(path)` or a signature of named TensorSpecs."
            )
        self._inputs = [InputInfo(name, as_shape(spec.shape), spec.dtype.name) for name, spec in sorted(kwargs.items())]
        self._outputs = sorted(self._fn.structured_outputs)

    @property
    def inputs(self) -> list[InputInfo]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    @property
    def description(self) -> str:
        return f"SavedModel {str(self.path)!r}"

    def predict_all(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        import tensorflow as tf

        parts = []
        for chunk, real in _batches(inputs, self.batch_size):
            result = self._fn(**{i.name: tf.constant(a) for i, a in zip(self._inputs, chunk)})
            parts.append([result[name].numpy()[:real] for name in self._outputs])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self._outputs))]

    def export_saved_model(self, directory: str | os.PathLike) -> Path:
        return self.path  # already traced


def open_source(model: Any, *, unsafe: bool = False) -> ModelSource:
    """Wraps a model object, or loads a model path, as a `ModelSource`.

    Args:
        model: a Keras 3 or tf_keras model, or a path to a `.keras`/`.h5` file or a
            SavedModel directory.
        unsafe: allow model files that run code as they load (Lambda layers, foreign
            modules) and SavedModel directories (their graph runs). Only for files you
            trust. Defaults to `False`.
    """
    if isinstance(model, ModelSource):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = _keras.check_model_path(model)
        if path.is_dir():
            return SavedModelSource(path, unsafe=unsafe)
        return KerasSource(_keras.load_model(path, unsafe=unsafe), name=path.stem)
    return KerasSource(model)
