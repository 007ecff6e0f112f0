"""The one place that tells Keras 3 from tf_keras, for a model object or a model file.

Nothing else in edgeopt decides between `keras` and `tf_keras`, and nothing in edgeopt
goes through TensorFlow's own `keras` attribute: once tensorflow-model-optimization is
imported it sets `TF_USE_LEGACY_KERAS=1`, which silently turns that attribute into
`tf_keras`. tf_keras and tfmot are imported only when a tf_keras model is involved.
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from edgeopt._compat import StrEnum
from edgeopt._model_code import refuse_code
from edgeopt.errors import ConfigError, InvalidModelError, MissingDependencyError


class Flavour(StrEnum):
    """Which Keras a model belongs to."""

    KERAS3 = "keras3"
    TF_KERAS = "tf_keras"


_MODULE = {Flavour.KERAS3: "keras", Flavour.TF_KERAS: "tf_keras"}
_PIP = {Flavour.KERAS3: "pip install keras", Flavour.TF_KERAS: "pip install 'edgeopt[qat]'"}


def keras_module(flavour: Flavour | str) -> Any:
    """Imports and returns `keras` (Keras 3) or `tf_keras` for `flavour`."""
    flavour = Flavour(flavour)
    try:
        module = importlib.import_module(_MODULE[flavour])
    except ImportError as exc:
        raise MissingDependencyError(
            f"{_MODULE[flavour]} is not installed but a {flavour} model needs it. "
            f"Received: {exc}. Install it with `{_PIP[flavour]}`."
        ) from exc
    if flavour is Flavour.KERAS3:
        backend = module.backend.backend()
        if backend != "tensorflow":
            raise ConfigError(
                "edgeopt needs Keras 3 with the TensorFlow backend (the TFLite converter "
                f"reads TensorFlow graphs). Received: KERAS_BACKEND={backend!r}. "
                "Set KERAS_BACKEND=tensorflow before importing keras."
            )
    return module


def flavour_of(model: Any) -> Flavour:
    """Returns the flavour of a model object without importing the other Keras.

    Raises:
        ConfigError: if `model` is neither a Keras 3 nor a tf_keras model.
    """
    for cls in type(model).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root == "keras" and cls.__name__ in ("Model", "Layer"):
            return Flavour.KERAS3
        if root == "tf_keras" and cls.__name__ in ("Model", "Layer"):
            return Flavour.TF_KERAS
    raise ConfigError(
        "Expected a Keras 3 (`keras`) or tf_keras model. "
        f"Received: an object of type {type(model).__module__}.{type(model).__qualname__}. "
        "Pass a `keras.Model`/`tf_keras.Model`, or a path to a saved model."
    )


def is_saved_model_dir(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / "saved_model.pb").is_file()


def file_flavour(path: str | os.PathLike) -> Flavour:
    """Reads which Keras wrote a `.keras` or `.h5` file, from its stored version."""
    path = Path(path)
    version = None
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                version = json.loads(archive.read("metadata.json")).get("keras_version")
        else:
            import h5py

            with h5py.File(path, "r") as handle:
                version = handle.attrs.get("keras_version")
                if isinstance(version, bytes):
                    version = version.decode()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise InvalidModelError(
            f"Cannot read {path.suffix} model file. Received: {str(path)!r} ({exc}). "
            "Save the model again with `model.save(...)`."
        ) from exc
    if version and str(version).startswith(("1.", "2.")):
        return Flavour.TF_KERAS
    return Flavour.KERAS3


def check_model_path(path: str | os.PathLike) -> Path:
    """Checks that `path` names a model edgeopt can load, before any loading starts."""
    path = Path(path)
    if not path.exists():
        raise InvalidModelError(
            f"Model not found. Received: {str(path)!r}. "
            "Pass a .keras or .h5 file, or a SavedModel directory."
        )
    if path.is_dir():
        if not is_saved_model_dir(path):
            raise InvalidModelError(
                f"Directory is not a SavedModel (it has no saved_model.pb). Received: {str(path)!r}. "
                "Pass a .keras/.h5 file, or the directory `model.export(...)` wrote."
            )
        return path
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise InvalidModelError(
            f"Unknown model format {path.suffix!r}. Received: {str(path)!r}. "
            "Pass a .keras or .h5 file, or a SavedModel directory."
        )
    return path


def _mentions(path: Path, needle: bytes) -> bool:
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                return needle in archive.read("config.json")
        return needle in path.read_bytes()[:1 << 20]
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def load_model(path: str | os.PathLike, *, unsafe: bool = False) -> Any:
    """Loads a `.keras` or `.h5` model with the Keras that wrote it.

    Unless `unsafe`, the model config is read first and a file that would run Python
    code as it loads (a Lambda layer in any format and either Keras, an import of a
    foreign module, ...) is refused before any deserialization: see
    `edgeopt._model_code`.

    Args:
        path: the model file.
        unsafe: allow deserializing Python code (Lambda layers). Only for files you
            trust. Defaults to `False` (`safe_mode=True`).

    Returns:
        A `keras.Model` or a `tf_keras.Model`, uncompiled.

    Raises:
        InvalidModelError: the file is missing, unreadable, or holds code (without `unsafe`).
    """
    path = check_model_path(path)
    if path.is_dir():
        raise InvalidModelError(
            f"A SavedModel directory is not a Keras model. Received: {str(path)!r}. "
            "Pass it to `export_tflite` directly, or load it with `tf.saved_model.load`."
        )
    flavour = file_flavour(path)
    if not unsafe:
        refuse_code(path)
    module = keras_module(flavour)
    from edgeopt.qat.api import QAT_LAYER_PREFIXES

    qat = any(_mentions(path, prefix.encode()) for prefix in QAT_LAYER_PREFIXES[flavour])
    try:
        if qat and flavour is Flavour.KERAS3:
            import edgeopt.qat.keras3  # noqa: F401 - registers edgeopt's QAT layers
        if qat and flavour is Flavour.TF_KERAS:
            with import_tfmot().quantization.keras.quantize_scope():  # tfmot's QAT layers
                return module.models.load_model(path, compile=False, safe_mode=not unsafe)
        return module.models.load_model(path, compile=False, safe_mode=not unsafe)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "unsafe" in str(exc).lower():
            raise InvalidModelError(
                "The model contains Python code (e.g. a Lambda layer) that safe mode refuses to load. "
                f"Received: {str(path)!r}. Pass --unsafe (unsafe=True) only if you trust this file."
            ) from exc
        raise InvalidModelError(
            f"Cannot load the model. Received: {str(path)!r} ({str(exc).splitlines()[0]}). "
            "Check that it was saved with `model.save(...)` and that custom layers are registered."
        ) from exc
    except (OSError, TypeError, KeyError) as exc:
        raise InvalidModelError(
            f"Cannot load the model. Received: {str(path)!r} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
            "Check that the file is complete and was saved with `model.save(...)`."
        ) from exc


def import_tfmot() -> Any:
    """Imports tensorflow-model-optimization for a tf_keras model, without side effects.

    tfmot sets `TF_USE_LEGACY_KERAS=1` when imported, which silently turns TensorFlow's
    `keras` attribute into tf_keras for the rest of the process (and its subprocesses). The variable is
    restored right after the import; tfmot keeps the tf_keras it bound.
    """
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:
        raise MissingDependencyError(
            f"tensorflow-model-optimization is needed for tf_keras models. Received: {exc}. "
            f"Install it with `{_PIP[Flavour.TF_KERAS]}`."
        ) from exc
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot


def clone_with_weights(model: Any) -> Any:
    """A copy of a model with new layer objects and the same weights."""
    module = keras_module(flavour_of(model))
    clone = module.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
