"""Calibration and evaluation data: loading it from what users have, and checking it.

Accepted sources: an array (or an `(x, y)` pair), an `.npz` file (array `x`, optional
`y`), an `.npy` file, a directory of PNG/JPEG images (in class subdirectories for
labels), or a Python callable (`package.module:function` on the CLI) returning an
iterable of arrays (see `edgeopt.convert.data_files`). A model with several inputs
takes a tuple/list of arrays in input order or a dict by input name (`x_<name>` in an
`.npz`); labels for several outputs are a tuple/list in output order or a dict by
output name. Everything is checked against the model's inputs before any conversion
starts; labels are matched to the outputs once the float model has run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgeopt.convert import data_files
from edgeopt.convert.signature import InputInfo, safe_names
from edgeopt.errors import ConfigError

IMAGE_SUFFIXES = data_files.IMAGE_SUFFIXES


@dataclass
class Dataset:
    """Samples `x` (batch first) and optional labels `y`, with where they came from.

    `x` is one array for a one-input model, else a tuple of arrays in input order. `y`
    is None, one array, or (for several outputs) a tuple in output order or a dict by
    output name, whose entries may be None.
    """

    x: Any
    y: Any
    origin: str

    @property
    def inputs(self) -> list[np.ndarray]:
        """The samples as one array per input."""
        return list(self.x) if isinstance(self.x, tuple) else [self.x]

    def __len__(self) -> int:
        return len(self.inputs[0])

    def head(self, count: int) -> list[np.ndarray]:
        """The first `count` samples, one array per input."""
        return [a[:count] for a in self.inputs]

    def subset(self, limit: int | None, *, seed: int = 0) -> "Dataset":
        """At most `limit` samples, picked at random with a fixed seed (all if fewer)."""
        if limit is None or len(self) <= limit:
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))
        x = tuple(a[index] for a in self.x) if isinstance(self.x, tuple) else self.x[index]
        return Dataset(x, _take(self.y, index), self.origin)


def _take(y, index):
    if y is None:
        return None
    if isinstance(y, dict):
        return {k: _take(v, index) for k, v in y.items()}
    if isinstance(y, (tuple, list)):
        return tuple(_take(v, index) for v in y)
    return y[index]


def load_dataset(
    data: Any,
    inputs: InputInfo | Sequence[InputInfo],
    *,
    what: str = "calibration data",
    scale: float = 255.0,
    mean: float = 0.0,
) -> Dataset:
    """Loads `data` and checks it against the model inputs.

    Args:
        data: an array, an `(x, y)` pair, a path (`.npz`, `.npy`, image directory), a
            callable or a `package.module:function` string. For several inputs, `x` is
            a tuple/list of arrays in input order or a dict by input name.
        inputs: the model's input (or inputs), to check shapes and dtypes against.
        what: how to name the data in messages. Defaults to `"calibration data"`.
        scale: images become `(pixel - mean) / scale`. Defaults to `255.0`.
        mean: see `scale`. Defaults to `0.0`.

    Raises:
        ConfigError: the data cannot be read, or does not fit the model inputs.
    """
    infos = [inputs] if isinstance(inputs, InputInfo) else list(inputs)
    x, y, origin = _read(data, infos, what=what, scale=scale, mean=mean)
    arrays = _arrange(x, infos, what=what, origin=origin)
    several = len(infos) > 1
    arrays = [_check_x(a, info, what=f"{what} of input {info.name!r}" if several else what, origin=origin)
              for a, info in zip(arrays, infos)]
    if len({len(a) for a in arrays}) > 1:
        raise ConfigError(
            f"The inputs of the {what} have different numbers of samples. Received: "
            f"{', '.join(f'{i.name}: {len(a)}' for i, a in zip(infos, arrays))} from {origin}. "
            "Give every input the same samples, batch first."
        )
    y = _check_y(y, len(arrays[0]), what=what, origin=origin)
    return Dataset(x=tuple(arrays) if several else arrays[0], y=y, origin=origin)


def _check_y(y, count: int, *, what: str, origin: str):
    """Labels as arrays of `count` rows: one array, or a tuple / dict of them (None allowed)."""
    if y is None:
        return None
    if isinstance(y, dict):
        return {str(k): _check_y(v, count, what=what, origin=origin) for k, v in y.items()}
    if isinstance(y, (tuple, list)) and len(y) > 1 and all(v is None or isinstance(v, np.ndarray) for v in y):
        # One array per output: a tuple always (Keras's y=(y1, y2)), a list unless it is one row per sample.
        if isinstance(y, tuple) or (len(y) != count and any(v is not None and v.ndim and len(v) == count for v in y)):
            return tuple(_check_y(v, count, what=what, origin=origin) for v in y)
    try:
        y = np.asarray(y)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ConfigError(
            f"The labels of the {what} are not an array. Received: {exc} from {origin}. {_LABELS_FIX}"
        ) from None
    if y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf" and _is_one_hot(y):
        y = y.argmax(axis=1)
    y = y.reshape(len(y)) if y.ndim > 1 and y.size == len(y) else y
    if y.ndim == 0 or len(y) != count:
        raise ConfigError(
            f"The labels of the {what} do not match its samples. "
            f"Received: y with shape {y.shape} for {count} samples from {origin}. {_LABELS_FIX}"
        )
    return y


def _is_one_hot(y: np.ndarray) -> bool:
    return bool(np.isin(y, (0, 1)).all()) and bool((y.sum(axis=1) == 1).all())


_LABELS_FIX = "Give one integer class label (or one one-hot row) per sample."


def check_labels(y: np.ndarray, classes: int, *, what: str = "eval data", origin: str = "an array") -> np.ndarray:
    """`y` as int64 class indices in `[0, classes)`, for scoring a classifier's accuracy.

    Labels are only checked where they are used as class indices: a regression model's
    float targets are fine in `load_dataset`.

    Raises:
        ConfigError: `y` is not numeric, has fractional, NaN or Inf values, or an index
            outside the model's `classes` outputs.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ConfigError(
            f"The labels of the {what} must be integer class indices. Received: dtype {y.dtype} from {origin}. "
            f"{_LABELS_FIX}"
        )
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            raise ConfigError(
                f"The labels of the {what} must be integer class indices. Received: {int(bad.sum())} non-integer "
                f"value(s) such as {y[bad][0].item()!r} from {origin}. {_LABELS_FIX}"
            )
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ConfigError(
            f"The labels of the {what} must be class indices from 0 to {classes - 1} (the model has {classes} "
            f"outputs). Received: labels from {y.min().item()!r} to {y.max().item()!r} in {origin}. {_LABELS_FIX}"
        )
    return y.astype(np.int64)


def _read(data, inputs: list[InputInfo], *, what, scale, mean):
    several = len(inputs) > 1
    if isinstance(data, Dataset):
        return data.x, data.y, data.origin
    if isinstance(data, np.ndarray):
        return data, None, "an array"
    if isinstance(data, dict):
        return data, None, "a dict of arrays"
    if isinstance(data, tuple) and len(data) == 2 and (not several or isinstance(data[0], (list, tuple, dict))):
        return data[0], data[1], "an (x, y) pair"
    if several and isinstance(data, (list, tuple)) and data and all(isinstance(a, np.ndarray) for a in data):
        return list(data), None, "a list of arrays"
    if isinstance(data, (str, os.PathLike)):
        text = str(data)
        path = Path(text)
        if not path.exists() and ":" in text and not text.startswith(("/", ".")):
            fn = data_files.import_callable(text, what)
            return data_files.from_callable(fn, text, what, inputs) + (text,)
        if not path.exists():
            raise ConfigError(
                f"The {what} was not found. Received: {text!r}. "
                "Pass an .npz (array x, optional y), an .npy, an image directory, or package.module:function."
            )
        if path.is_dir():
            return data_files.from_images(path, inputs, what=what, scale=scale, mean=mean)
        if path.suffix == ".npz":
            return data_files.from_npz(path, what, inputs)
        if path.suffix == ".npy":
            return data_files.load_npy(path, what), None, repr(text)
        raise ConfigError(
            f"Unknown {what} format {path.suffix!r}. Received: {text!r}. "
            "Pass an .npz (array x, optional y), an .npy, an image directory, or package.module:function."
        )
    if callable(data):
        name = getattr(data, "__qualname__", repr(data))
        return data_files.from_callable(data, name, what, inputs) + (f"callable {name}",)
    if isinstance(data, Iterable):
        return data_files.stack(data, "an iterable", what, inputs), None, "an iterable"
    raise ConfigError(
        f"Cannot use this as {what}. Received: an object of type {type(data).__name__}. "
        "Pass an array, an (x, y) pair, a path or a callable."
    )


def _arrange(x, inputs: list[InputInfo], *, what: str, origin: str) -> list:
    """The samples as one array per input, in input order."""
    names = [i.name for i in inputs]
    if len(inputs) == 1:
        if isinstance(x, dict) and len(x) == 1:
            return list(x.values())
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            return [x[0]]
        return [x]
    if isinstance(x, dict):
        x = {**{safe_names([k], "input")[0]: v for k, v in x.items()}, **{str(k): v for k, v in x.items()}}
        missing = [n for n in names if n not in x]
        if missing:
            raise ConfigError(
                f"The {what} lacks input(s) {', '.join(map(repr, missing))}. Received: a dict with keys "
                f"{sorted(map(str, x))[:12]} from {origin}. Give one array per input, keyed {', '.join(map(repr, names))}."
            )
        return [x[n] for n in names]
    if isinstance(x, (list, tuple)) and len(x) == len(inputs):
        return list(x)
    described = "a single array" if isinstance(x, np.ndarray) else f"an object of type {type(x).__name__}"
    if isinstance(x, (list, tuple)):
        described = f"{len(x)} arrays"
    raise ConfigError(
        f"The model has {len(inputs)} inputs ({', '.join(names)}) but the {what} does not give one array each. "
        f"Received: {described} from {origin}. Pass a tuple of arrays in input order, or a dict keyed by input name."
    )


def _check_x(x: np.ndarray, input_info: InputInfo, *, what: str, origin: str) -> np.ndarray:
    try:
        x = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ConfigError(
            f"The {what} is not an array. Received: {exc} from {origin}. Pass samples of one shape, batch first."
        ) from None
    expected = input_info.describe()
    if x.size == 0 or x.ndim == 0:
        raise ConfigError(
            f"The {what} has zero samples. Received: an array of shape {x.shape} from {origin}. "
            f"Pass at least one sample of shape {expected}."
        )
    want_float = np.dtype(input_info.dtype).kind == "f" if input_info.dtype != "string" else False
    if want_float and x.dtype.kind != "f":
        raise ConfigError(
            f"The {what} has dtype {x.dtype} but the model input is {input_info.dtype}. Received: {origin}. "
            f"Convert and normalise it the way the model was trained (e.g. x.astype('float32') / 255)."
        )
    if not want_float and x.dtype.kind not in "iu":
        raise ConfigError(
            f"The {what} has dtype {x.dtype} but the model input is {input_info.dtype}. Received: {origin}. "
            f"Pass {input_info.dtype} samples."
        )
    model_shape = input_info.shape
    if x.ndim != len(model_shape) or any(m is not None and m != d for m, d in zip(model_shape[1:], x.shape[1:])):
        raise ConfigError(
            f"The {what} has the wrong shape. Received: {x.shape} from {origin}; "
            f"the model input is {expected}. Pass samples batch-first, each of shape {model_shape[1:]}."
        )
    if want_float:
        with np.errstate(over="ignore"):  # float64 beyond the input's range becomes Inf, refused below
            x = x.astype(np.dtype(input_info.dtype), copy=False)
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise ConfigError(
                f"The {what} contains {bad} NaN or Inf values (or values beyond {input_info.dtype}). "
                f"Received: {origin}. Clean or drop those samples (np.nan_to_num, or mask them out)."
            )
    return x
