"""Calibration and evaluation data: loading it from what users have, and checking it.

Accepted sources: an array (or an `(x, y)` pair), an `.npz` file (array `x`, optional
`y`), an `.npy` file, a directory of PNG/JPEG images (in class subdirectories for
labels), or a Python callable (`package.module:function` on the CLI) returning an
iterable of arrays. Everything is checked against the model's input before any
conversion starts.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeopt.convert.source import InputInfo
from edgeopt.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass
class Dataset:
    """Samples `x` (batch first) and optional integer labels `y`, with where they came from."""

    x: np.ndarray
    y: np.ndarray | None
    origin: str

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, limit: int | None, *, seed: int = 0) -> "Dataset":
        """At most `limit` samples, picked at random with a fixed seed (all if fewer)."""
        if limit is None or len(self) <= limit:
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), size=limit, replace=False))
        return Dataset(self.x[index], None if self.y is None else self.y[index], self.origin)


def load_dataset(
    data: Any,
    input_info: InputInfo,
    *,
    what: str = "calibration data",
    scale: float = 255.0,
    mean: float = 0.0,
) -> Dataset:
    """Loads `data` and checks it against the model input.

    Args:
        data: an array, an `(x, y)` pair, a path (`.npz`, `.npy`, image directory), a
            callable or a `package.module:function` string.
        input_info: the model's input, to check shape and dtype against.
        what: how to name the data in messages. Defaults to `"calibration data"`.
        scale: images become `(pixel - mean) / scale`. Defaults to `255.0`.
        mean: see `scale`. Defaults to `0.0`.

    Raises:
        ConfigError: the data cannot be read, or does not fit the model input.
    """
    x, y, origin = _read(data, input_info, what=what, scale=scale, mean=mean)
    x = _check_x(x, input_info, what=what, origin=origin)
    if y is not None:
        try:
            y = np.asarray(y)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ConfigError(
                f"The labels of the {what} are not an array. Received: {exc} from {origin}. {_LABELS_FIX}"
            ) from None
        if y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":  # one-hot labels
            y = y.argmax(axis=1)
        y = y.reshape(len(y)) if y.ndim > 1 and y.size == len(y) else y
        if y.ndim != 1 or len(y) != len(x):
            raise ConfigError(
                f"The labels of the {what} do not match its samples. "
                f"Received: y with shape {y.shape} for {len(x)} samples from {origin}. {_LABELS_FIX}"
            )
    return Dataset(x=x, y=y, origin=origin)


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


def _read(data, input_info, *, what, scale, mean):
    if isinstance(data, Dataset):
        return data.x, data.y, data.origin
    if isinstance(data, np.ndarray):
        return data, None, "an array"
    if isinstance(data, tuple) and len(data) == 2:
        return np.asarray(data[0]), data[1], "an (x, y) pair"
    if isinstance(data, (str, os.PathLike)):
        text = str(data)
        path = Path(text)
        if not path.exists() and ":" in text and not text.startswith(("/", ".")):
            return _from_callable(_import_callable(text, what), text, what, len(input_info.shape)) + (text,)
        if not path.exists():
            raise ConfigError(
                f"The {what} was not found. Received: {text!r}. "
                "Pass an .npz (array x, optional y), an .npy, an image directory, or package.module:function."
            )
        if path.is_dir():
            return _from_images(path, input_info, what=what, scale=scale, mean=mean)
        if path.suffix == ".npz":
            return _from_npz(path, what)
        if path.suffix == ".npy":
            return _load_npy(path, what), None, repr(text)
        raise ConfigError(
            f"Unknown {what} format {path.suffix!r}. Received: {text!r}. "
            "Pass an .npz (array x, optional y), an .npy, an image directory, or package.module:function."
        )
    if callable(data):
        name = getattr(data, "__qualname__", repr(data))
        return _from_callable(data, name, what, len(input_info.shape)) + (f"callable {name}",)
    if isinstance(data, Iterable):
        return _stack(data, "an iterable", what, len(input_info.shape)), None, "an iterable"
    raise ConfigError(
        f"Cannot use this as {what}. Received: an object of type {type(data).__name__}. "
        "Pass an array, an (x, y) pair, a path or a callable."
    )


def _one_line(exc: BaseException, width: int = 200) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:width]}"


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy's readers raise ValueError, OSError, EOFError, ... on hostile files
        raise ConfigError(
            f"Cannot read the {what}. Received: {str(path)!r} ({_one_line(exc)}). "
            "Save it with `np.save` from a numeric array."
        ) from exc


def _from_npz(path: Path, what: str):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError, OSError on hostile files
        raise ConfigError(
            f"Cannot read the {what}. Received: {str(path)!r} ({_one_line(exc)}). "
            "Save it with `np.savez(path, x=..., y=...)`."
        ) from exc
    if "x" not in arrays:
        raise ConfigError(
            f"The {what} .npz has no array named 'x'. Received: arrays {sorted(arrays)} in {str(path)!r}. "
            "Save it with `np.savez(path, x=samples, y=labels)`."
        )
    return arrays["x"], arrays.get("y"), repr(str(path))


def _import_callable(spec: str, what: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"Cannot import module {module_name!r} for the {what}. Received: {spec!r} ({exc}). "
            "Check the module is importable (on PYTHONPATH) and spelled package.module:function."
        ) from exc
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise ConfigError(
            f"Module {module_name!r} has no attribute {attr!r}. Received: {spec!r}. "
            "Name a function defined in that module."
        ) from None
    if not callable(fn):
        raise ConfigError(f"{spec!r} is not callable. Received: {type(fn).__name__}. Name a function.")
    return fn


def _from_callable(fn: Callable, name: str, what: str, rank: int):
    result = fn()
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], np.ndarray):
        return np.asarray(result[0]), result[1]
    if isinstance(result, np.ndarray):
        return result, None
    return _stack(result, name, what, rank), None


def _stack(items: Iterable, name: str, what: str, rank: int) -> np.ndarray:
    """Joins yielded samples (rank - 1 dims) or batches (rank dims) into one batch."""
    batches = []
    for item in items:
        if isinstance(item, (list, tuple)):  # representative-dataset style [x]
            item = item[0]
        item = np.asarray(item)
        batches.append(item[None] if item.ndim == rank - 1 else item)
    if not batches:
        return np.zeros((0,), np.float32)
    try:
        return np.concatenate(batches)
    except ValueError as exc:
        raise ConfigError(
            f"The {what} from {name} yields arrays of different shapes. Received: "
            f"{sorted({b.shape for b in batches})}. Yield samples (or batches) of one shape."
        ) from exc


def _from_images(directory: Path, input_info: InputInfo, *, what, scale, mean):
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a core dependency
        raise ConfigError(f"Reading images needs pillow. Received: {exc}. Run `pip install pillow`.") from exc
    if len(input_info.shape) != 4:
        raise ConfigError(
            f"An image directory needs a model with an (N, H, W, C) input. Received: input {input_info.describe()}. "
            "Pass an .npz or .npy instead."
        )
    _, height, width, channels = input_info.shape
    if None in (height, width, channels) or channels not in (1, 3):
        raise ConfigError(
            f"Images need a fixed height, width and 1 or 3 channels. Received: input {input_info.describe()}. "
            "Pass an .npz or .npy instead."
        )
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    if classes:
        files = [(p, label) for label, name in enumerate(classes) for p in sorted((directory / name).iterdir())]
    else:
        files = [(p, None) for p in sorted(directory.iterdir())]
    files = [(p, label) for p, label in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ConfigError(
            f"The {what} directory has no images. Received: {str(directory)!r}. "
            f"Put {', '.join(IMAGE_SUFFIXES)} files in it (or in one subdirectory per class)."
        )
    samples = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
                pixels = np.asarray(image, dtype=np.float32)
        except Exception as exc:  # pillow's decoders raise OSError, SyntaxError, ValueError, struct.error...
            raise ConfigError(
                f"An image in the {what} cannot be read. Received: {str(path)!r} "
                f"({_one_line(exc, 120)}). Remove or re-save that file."
            ) from exc
        samples.append(pixels.reshape(height, width, channels))
    x = (np.stack(samples) - np.float32(mean)) / np.float32(scale)
    y = np.array([label for _, label in files]) if classes else None
    return x.astype(np.float32), y, repr(str(directory))


def _check_x(x: np.ndarray, input_info: InputInfo, *, what: str, origin: str) -> np.ndarray:
    x = np.asarray(x)
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
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise ConfigError(
                f"The {what} contains {bad} NaN or Inf values. Received: {origin}. "
                "Clean or drop those samples (np.nan_to_num, or mask them out)."
            )
        x = x.astype(np.dtype(input_info.dtype), copy=False)
    return x
