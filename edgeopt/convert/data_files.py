"""Reading calibration and evaluation data from files and callables, as users have them.

`.npy` (one array), `.npz` (`x` and optional `y`; for a model with several inputs
`x_<input name>` or `x0`, `x1`, ... and for several outputs `y_<output name>` or `y0`,
`y1`, ...), a directory of PNG/JPEG images (in one subdirectory per class for labels),
and `package.module:function` callables. Hostile files are one `ConfigError`, never a
traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgeopt._callables import resolve_callable
from edgeopt.convert.signature import InputInfo
from edgeopt.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_NPZ_FIX = "Save it with `np.savez(path, x=samples, y=labels)`"


def one_line(exc: BaseException, width: int = 200) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:width]}"


def load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy's readers raise ValueError, OSError, EOFError, ... on hostile files
        raise ConfigError(
            f"Cannot read the {what}. Received: {str(path)!r} ({one_line(exc)}). "
            "Save it with `np.save` from a numeric array."
        ) from exc


def _numbered(arrays: dict[str, np.ndarray], letter: str) -> dict[str, np.ndarray]:
    """`x0`, `x_1`, `x_name`, ... of an .npz: {"0": ..., "1": ..., "name": ...}."""
    found = {}
    for key, value in arrays.items():
        match = re.fullmatch(rf"{letter}_?(\d+)|{letter}_(.+)", key)
        if match:
            found[match.group(1) if match.group(1) is not None else match.group(2)] = value
    return found


def from_npz(path: Path, what: str, inputs: list[InputInfo]):
    """(x, y) of an .npz: x an array, a list (numbered) or a dict (by input name)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError, OSError on hostile files
        raise ConfigError(
            f"Cannot read the {what}. Received: {str(path)!r} ({one_line(exc)}). {_NPZ_FIX}."
        ) from exc
    x: Any = arrays.get("x")
    if x is None and len(inputs) > 1:
        x = _by_key(_numbered(arrays, "x"))
    if x is None:
        if len(inputs) > 1:
            names = ", ".join(f"x_{i.name}" for i in inputs)
            raise ConfigError(
                f"The {what} .npz has no arrays for the model's {len(inputs)} inputs. Received: arrays "
                f"{sorted(arrays)} in {str(path)!r}. Save one per input: np.savez(path, {names}, y=...) "
                f"(or x0, x1, ... in input order)."
            )
        raise ConfigError(
            f"The {what} .npz has no array named 'x'. Received: arrays {sorted(arrays)} in {str(path)!r}. "
            f"{_NPZ_FIX}."
        )
    y: Any = arrays.get("y")
    if y is None:
        y = _by_key(_numbered(arrays, "y"))
    return x, y, repr(str(path))


def _by_key(found: dict[str, np.ndarray]):
    """Numbered entries as a list in number order, named ones as a dict, nothing as None."""
    if not found:
        return None
    if all(k.isdigit() for k in found):
        return [found[k] for k in sorted(found, key=int)]
    return found


def import_callable(spec: str, what: str) -> Callable:
    """`package.module:function` -> the function (resolved by `edgeopt._callables`), for the `what`."""
    fn = resolve_callable(spec, f"The {what}")
    if not callable(fn):
        raise ConfigError(f"{spec!r} is not callable. Received: {type(fn).__name__}. Name a function.")
    return fn


def stack(items: Iterable, name: str, what: str, inputs: list[InputInfo]):
    """Joins yielded samples (rank - 1 dims) or batches (rank dims) into one batch per input.

    Each item is an array (one input), a representative-dataset style list `[x]` /
    `[a, b]` in input order, or a dict by input name.
    """
    names = [i.name for i in inputs]
    parts: list[list[np.ndarray]] = [[] for _ in inputs]
    for item in items:
        if isinstance(item, dict):
            item = [item.get(n) for n in names]
        elif not isinstance(item, (list, tuple)):
            item = [item]
        if len(inputs) == 1:
            item = item[:1]
        if len(item) != len(inputs) or any(v is None for v in item):
            raise ConfigError(
                f"The {what} from {name} must yield one array per model input ({', '.join(names)}). "
                f"Received: an item with {len(item)} value(s). Yield [a, b, ...] in input order or a dict by name."
            )
        for part, value, info in zip(parts, item, inputs):
            value = np.asarray(value)
            part.append(value[None] if value.ndim == len(info.shape) - 1 else value)
    if not parts[0]:
        empty = np.zeros((0,), np.float32)
        return empty if len(inputs) == 1 else [empty] * len(inputs)
    try:
        joined = [np.concatenate(part) for part in parts]
    except ValueError as exc:
        shapes = sorted({b.shape for part in parts for b in part})
        raise ConfigError(
            f"The {what} from {name} yields arrays of different shapes. Received: {shapes}. "
            "Yield samples (or batches) of one shape."
        ) from exc
    return joined[0] if len(inputs) == 1 else joined


def from_callable(fn: Callable, name: str, what: str, inputs: list[InputInfo]):
    result = fn()
    if isinstance(result, tuple) and len(result) == 2:
        first = result[0]
        if isinstance(first, np.ndarray) or (len(inputs) > 1 and isinstance(first, (list, tuple, dict))):
            return first, result[1]
    if isinstance(result, (np.ndarray, dict)):
        return result, None
    return stack(result, name, what, inputs), None


def from_images(directory: Path, inputs: list[InputInfo], *, what, scale, mean):
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a core dependency
        raise ConfigError(f"Reading images needs pillow. Received: {exc}. Run `pip install pillow`.") from exc
    input_info = inputs[0]
    if len(inputs) != 1 or len(input_info.shape) != 4:
        described = ", ".join(i.describe() for i in inputs)
        raise ConfigError(
            f"An image directory needs a model with one (N, H, W, C) input. Received: input(s) {described}. "
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
                f"({one_line(exc, 120)}). Remove or re-save that file."
            ) from exc
        samples.append(pixels.reshape(height, width, channels))
    x = (np.stack(samples) - np.float32(mean)) / np.float32(scale)
    y = np.array([label for _, label in files]) if classes else None
    return x.astype(np.float32), y, repr(str(directory))
