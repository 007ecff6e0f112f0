"""What the converter stage converts: a Keras 3 model, a tf_keras model or a SavedModel.

One small backend per kind, chosen from the object or file, so the exporter never
has to ask which Keras it holds (the pattern of NNCF's backends).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import _keras
from edgeopt._quiet import capture_native_output
from edgeopt.errors import ConfigError, ConversionError, InvalidModelError


@dataclass(frozen=True)
class InputInfo:
    """Name, shape (None for free dimensions, batch first) and dtype of the model's input."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def describe(self) -> str:
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        return f"({dims}) {self.dtype}"


def _as_shape(shape: Any) -> tuple[int | None, ...]:
    if hasattr(shape, "as_list"):
        shape = shape.as_list()
    return tuple(None if d is None or d == -1 else int(d) for d in shape)


class ModelSource(ABC):
    """A model the converter can read, with its input and a way to run it in float."""

    kind: str

    @property
    @abstractmethod
    def input_info(self) -> InputInfo: ...

    @abstractmethod
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Runs the float model on a batch and returns its (single) output."""

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


# Layer classes that carry learned quantization ranges (tfmot's and edgeopt's own).
QAT_LAYER_CLASSES = ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer", "FakeQuant")


class KerasSource(ModelSource):
    """A `keras.Model` (Keras 3, TensorFlow backend) or a `tf_keras.Model`."""

    def __init__(self, model: Any, name: str | None = None):
        self.flavour = _keras.flavour_of(model)
        _keras.keras_module(self.flavour)  # checks the Keras 3 backend
        self.model = model
        self.kind = str(self.flavour)
        self.name = name or getattr(model, "name", "model")
        inputs = getattr(model, "inputs", None)
        if not inputs:
            raise ConfigError(
                "The model has no defined inputs (a subclassed model that was never built). "
                f"Received: {type(model).__name__} named {self.name!r}. "
                "Build it with a functional `keras.Input`, or call it once on a batch before exporting."
            )
        if len(inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(
                "Only models with one input and one output are supported. "
                f"Received: {len(inputs)} inputs and {len(model.outputs)} outputs. "
                "Wrap the model so it takes and returns a single tensor."
            )
        tensor = inputs[0]
        dtype = tensor.dtype
        dtype = getattr(dtype, "name", dtype)
        self._input = InputInfo(name=str(getattr(tensor, "name", "input")), shape=_as_shape(tensor.shape), dtype=str(dtype))

    @property
    def input_info(self) -> InputInfo:
        return self._input

    @property
    def description(self) -> str:
        return f"{self.flavour} model {self.name!r}"

    @property
    def quantization_aware(self) -> bool:
        from edgeopt._layers import iter_layers

        return any(type(layer).__name__.startswith(QAT_LAYER_CLASSES) for layer in iter_layers(self.model))

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.model.predict(x, batch_size=64, verbose=0)
        return np.asarray(out)

    def export_saved_model(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        captured = None
        try:
            with capture_native_output() as captured:
                if self.flavour is _keras.Flavour.KERAS3:
                    self.model.export(str(directory), format="tf_saved_model", verbose=False)
                else:
                    self.model.export(str(directory))
        except Exception as exc:  # the tracer raises many types; report them as one
            raise ConversionError(
                f"Tracing the model to a SavedModel failed. Received: {self.description} "
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
        specs = list(kwargs.values()) + list(args)
        outputs = self._fn.structured_outputs
        if len(specs) != 1 or len(outputs) != 1:
            raise ConfigError(
                "Only SavedModels with one input and one output are supported. "
                f"Received: {len(specs)} inputs and {len(outputs)} outputs in {str(self.path)!r}. "
                "Export a signature that takes and returns a single tensor."
            )
        (self._input_key,) = list(kwargs) or ["input"]
        (self._output_key,) = list(outputs)
        spec = specs[0]
        self._input = InputInfo(name=self._input_key, shape=_as_shape(spec.shape), dtype=spec.dtype.name)

    @property
    def input_info(self) -> InputInfo:
        return self._input

    @property
    def description(self) -> str:
        return f"SavedModel {str(self.path)!r}"

    def predict(self, x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        outs = []
        for start in range(0, len(x), 64):
            batch = tf.constant(x[start : start + 64])
            outs.append(self._fn(**{self._input_key: batch})[self._output_key].numpy())
        return np.concatenate(outs)

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
