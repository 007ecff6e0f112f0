"""A Keras model's real call signature, and tracing it into a SavedModel with exactly that.

Keras's own `model.export` makes the batch dimension free (`None`), which turns a
batch-1 LSTM into TensorList ops the converter cannot lower; a plain
`TFLiteConverter.from_keras_model` keeps it. So edgeopt traces the model itself, with
one `tf.TensorSpec` per input of the shape the model was built with (batch included),
through Keras's `ExportArchive`:

- functional and Sequential models: `model.input` / `model.inputs` (one tensor, a
  list or a dict of them, in that structure);
- subclassed models that have been called: the shapes Keras recorded on the first
  call (Keras 3, as its own exporter reads them; the batch is left free, since the
  first call's batch size is incidental) or `save_spec()` (tf_keras).

The traced function returns a dict, so every output has a name in the SavedModel's
`serving_default` signature and in the .tflite's.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edgeopt import _keras
from edgeopt.errors import ConfigError


@dataclass(frozen=True)
class InputInfo:
    """Name (in the signature), shape (None for free dimensions, batch first) and dtype of an input."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    def describe(self) -> str:
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        return f"({dims}) {self.dtype}"


def as_shape(shape: Any) -> tuple[int | None, ...]:
    if hasattr(shape, "as_list"):
        shape = shape.as_list()
    return tuple(None if d is None or d == -1 else int(d) for d in shape)


def safe_names(names, default: str) -> list[str]:
    """Names usable as signature keys: `[A-Za-z0-9_]`, not starting with a digit, unique."""
    result: list[str] = []
    for i, name in enumerate(names):
        text = re.sub(r"[^0-9A-Za-z_]", "_", str(name or "")).strip("_") or f"{default}_{i}"
        if text[0].isdigit():
            text = f"{default}_{text}"
        candidate, n = text, 1
        while candidate in result:
            candidate, n = f"{text}_{n}", n + 1
        result.append(candidate)
    return result


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", dtype))


@dataclass
class CallSignature:
    """How to call a Keras model from flat arrays (one per input, in `inputs` order).

    Attributes:
        inputs: one `InputInfo` per flat input.
        pack: turns a flat list of inputs into the positional arguments of `model(...)`.
        origin: where the signature came from, for messages.
    """

    inputs: list[InputInfo]
    pack: Callable[[list], list]
    origin: str


def _functional_signature(model, nest) -> CallSignature | None:
    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = getattr(model, "inputs", None)
        if isinstance(structure, (list, tuple)) and len(structure) == 1:
            structure = structure[0]
    if structure is None or (isinstance(structure, (list, tuple, dict)) and not structure):
        return None
    flat = nest.flatten(structure)
    if isinstance(structure, dict):
        keys = sorted(structure)  # nest.flatten's order for a dict
        names = safe_names(keys, "input")
    else:
        names = safe_names([getattr(t, "name", None) for t in flat], "input")
    inputs = [InputInfo(n, as_shape(t.shape), _dtype_name(t.dtype)) for n, t in zip(names, flat)]
    return CallSignature(inputs, lambda xs: [nest.pack_sequence_as(structure, list(xs))], "the model's inputs")


def _subclassed_signature(model, flavour, nest) -> CallSignature | None:
    """Per call argument, the input structure recorded on the model's first call."""
    if flavour is _keras.Flavour.TF_KERAS:
        spec = model.save_spec() if hasattr(model, "save_spec") else None
        if not spec or not spec[0]:
            return None
        arguments = list(spec[0])
        shape_of = lambda leaf: as_shape(leaf.shape)  # noqa: E731
        dtype_of = lambda leaf: _dtype_name(leaf.dtype)  # noqa: E731
        arg_names = [f"input_{i}" for i in range(len(arguments))]
        free_batch = False  # save_spec already leaves the batch free
    else:
        recorded = getattr(model, "_build_shapes_dict", None)
        if not recorded:
            return None
        arguments = [_shape_tree(value) for value in recorded.values()]
        arg_names = [str(key).removesuffix("_shape") for key in recorded]
        shape_of = lambda leaf: as_shape(leaf.dims)  # noqa: E731
        dtype_of = lambda leaf: _dtype_name(getattr(model, "input_dtype", None) or "float32")  # noqa: E731
        free_batch = True
    flats = [nest.flatten(argument) for argument in arguments]
    raw_names = [arg if len(flat) == 1 else f"{arg}_{j}"
                 for arg, flat in zip(arg_names, flats) for j in range(len(flat))]
    names = safe_names(raw_names, "input")
    leaves = [leaf for flat in flats for leaf in flat]
    inputs = []
    for name, leaf in zip(names, leaves):
        shape = shape_of(leaf)
        inputs.append(InputInfo(name, ((None,) + shape[1:]) if free_batch and shape else shape, dtype_of(leaf)))

    def pack(xs):
        args, start = [], 0
        for argument, flat in zip(arguments, flats):
            args.append(nest.pack_sequence_as(argument, list(xs[start:start + len(flat)])))
            start += len(flat)
        return args

    return CallSignature(inputs, pack, "the shapes of its first call")


class _Dims:
    """A recorded shape, kept whole as one leaf of a nested structure."""

    def __init__(self, dims):
        self.dims = tuple(dims)


def _shape_tree(value):
    if isinstance(value, (tuple, list)) and all(isinstance(d, (int, type(None))) for d in value):
        return _Dims(value)
    if isinstance(value, dict):
        return {k: _shape_tree(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_shape_tree(v) for v in value)
    return _Dims(getattr(value, "as_list", lambda: value)())


def call_signature(model, flavour: _keras.Flavour, name: str) -> CallSignature:
    """The signature to trace `model` with.

    Raises:
        ConfigError: a subclassed model that was never built or called.
    """
    import tensorflow as tf

    signature = _functional_signature(model, tf.nest)
    if signature is None:
        signature = _subclassed_signature(model, flavour, tf.nest)
    if signature is None or not signature.inputs:
        raise ConfigError(
            "The model has no input shape yet: a subclassed model takes its input shape from its first call. "
            f"Received: {type(model).__name__} named {name!r}, never called or built. "
            "Call it once on a batch (`model(x[:1])`) or `model.build(input_shape)` before exporting, "
            "or build it with a functional `keras.Input`."
        )
    return signature


def flatten_outputs(outputs, output_names=None) -> tuple[list[str], list]:
    """Names and values of a model's outputs (one value, a list or a dict of them)."""
    if isinstance(outputs, dict):
        keys = sorted(outputs)
        return safe_names(keys, "output"), [outputs[k] for k in keys]
    if isinstance(outputs, (list, tuple)):
        import tensorflow as tf

        values = tf.nest.flatten(list(outputs))
    else:
        values = [outputs]
    names = list(output_names or [])
    if len(names) != len(values):
        names = [f"output_{i}" for i in range(len(values))]
    return safe_names(names, "output"), values


def trace(model, flavour: _keras.Flavour, signature: CallSignature, directory: str | os.PathLike,
          output_names=None) -> list[str]:
    """Writes `model` as a SavedModel whose `serving_default` takes `signature.inputs`.

    Returns:
        The names of its outputs in the signature, in the model's output order.
    """
    import tensorflow as tf

    k = _keras.keras_module(flavour)
    specs = [tf.TensorSpec(i.shape, tf.as_dtype(i.dtype), name=i.name) for i in signature.inputs]
    names: list[str] = []

    def serve(*flat):
        values = model(*signature.pack(list(flat)), training=False)
        found, tensors = flatten_outputs(values, output_names)
        names[:] = found
        return dict(zip(found, tensors))

    archive = k.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=specs)
    write = archive.write_out
    if "verbose" in inspect.signature(write).parameters:
        write(str(directory), verbose=False)
    else:
        write(str(directory))
    return list(names)


def pad_to_batch(arrays: list[np.ndarray], batch: int | None) -> tuple[list[np.ndarray], int]:
    """`arrays` with their last sample repeated up to a multiple of a fixed `batch`, and the real count."""
    count = len(arrays[0]) if arrays else 0
    if not batch or count % batch == 0:
        return arrays, count
    extra = batch - count % batch
    return [np.concatenate([a, np.repeat(a[-1:], extra, axis=0)]) for a in arrays], count
