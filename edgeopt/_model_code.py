"""Finding Python code in a Keras model file before anything deserializes it.

Keras' own `safe_mode` covers only part of the ground: tf_keras ignores it for `.h5`
files (a `Lambda` layer's marshalled bytecode runs as the model loads), tf_keras
imports any module a `.keras` config names, and a `TFOpLambda` can call any TensorFlow
symbol (`tf.load_op_library`, `tf.io.write_file`). So edgeopt reads the model config
JSON itself (`config.json` in a `.keras` zip, the `model_config` attribute of an
`.h5`) and refuses, unless the caller passed `unsafe=True`:

- every `Lambda` layer (bytecode or a reference to an arbitrary Python function),
  and Keras 3's `__lambda__` objects, at any depth (nested models, wrappers);
- any object with `function_type`/`output_shape_type` `"lambda"` (marshalled code);
- `TFSMLayer`, which loads and runs a SavedModel named in the config;
- serialized objects whose `module` is outside Keras, TensorFlow and edgeopt
  (tf_keras imports it), and Keras function references into non-modelling APIs;
- tf_keras op layers whose TensorFlow symbol can touch files, load native code or
  call Python (`io.*`, `load_op_library`, `py_function`, ...), and private attribute
  access (`__class__`) through `InstanceProperty`/`InstanceMethod`.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from edgeopt.errors import InvalidModelError

# A model config larger than this is not a model config (guards against zip bombs).
MAX_CONFIG_BYTES = 64 << 20

_CODE_CLASSES = {"Lambda": "a Lambda layer (Python code)", "__lambda__": "a serialized Python lambda",
                 "TFSMLayer": "a TFSMLayer (loads and runs a SavedModel)"}
# Root packages a serialized object's `module` may name.
_TRUSTED_MODULES = {"keras", "tf_keras", "tensorflow", "tensorflow_model_optimization", "edgeopt", "builtins",
                    "numpy", "keras_hub", "keras_cv", "keras_nlp"}
# Keras namespaces whose functions are not modelling functions (files, downloads, loading).
_NON_MODELLING = {"utils", "models", "saving", "config", "preprocessing", "export", "callbacks", "datasets",
                  "backend", "applications", "visualization"}
# TensorFlow namespaces a tf_keras op layer may call: pure tensor maths.
_PURE_TF_NAMESPACES = {"math", "nn", "linalg", "image", "signal", "bitwise", "random", "strings", "sparse", "ragged",
                       "dtypes", "__operators__", "quantization", "experimental.numpy"}
# Top-level TensorFlow symbols an op layer may not call: files, native code, Python, state.
_IMPURE_TF_SYMBOLS = {"print", "Print", "py_function", "numpy_function", "py_func", "eager_py_func",
                      "load_op_library", "load_library", "write_file", "read_file", "matching_files", "Variable",
                      "function", "init_scope", "control_dependencies", "device", "Module", "timestamp",
                      "get_logger", "register_tensor_conversion_function"}


def _symbol_problem(symbol: Any) -> str | None:
    """Why a tf_keras op layer's TensorFlow symbol is not pure tensor maths, or None."""
    if not isinstance(symbol, str) or not symbol:
        return f"an op layer with a non-string TensorFlow symbol {symbol!r}"
    name = symbol
    for prefix in ("compat.v1.", "compat.v2."):
        name = name.removeprefix(prefix)
    if "." not in name:
        if name in _IMPURE_TF_SYMBOLS or name.startswith("_"):
            return f"an op layer calling tf.{symbol}"
        return None
    if not any(name.startswith(namespace + ".") for namespace in _PURE_TF_NAMESPACES):
        return f"an op layer calling tf.{symbol}"
    return None


def _module_problem(node: dict) -> str | None:
    module = node.get("module")
    if module is None:
        return None
    if not isinstance(module, str):
        return f"an object with a non-string module {module!r}"
    if module.split(".", 1)[0] not in _TRUSTED_MODULES:
        return f"an object from module {module!r} (loading would import it)"
    parts = module.split(".")
    if node.get("class_name") == "function" and parts[0] in ("keras", "tf_keras"):
        if _NON_MODELLING.intersection(parts[1:]):
            return f"a reference to {module}.{node.get('config')} (not a modelling function)"
    return None


def _short(name: Any) -> str:
    """The bare class name of `Package>Name` or `module.Name` spellings."""
    return str(name).rsplit(">", 1)[-1].rsplit(".", 1)[-1]


def _node_problem(node: dict) -> str | None:
    """What in one serialized object would run Python code, or None."""
    for key in ("function_type", "output_shape_type"):
        if node.get(key) == "lambda":
            return "marshalled Python bytecode"
    class_names = {_short(node[key]) for key in ("class_name", "registered_name") if isinstance(node.get(key), str)}
    for name in class_names:
        if name in _CODE_CLASSES:
            return _CODE_CLASSES[name]
    config = node.get("config") if isinstance(node.get("config"), dict) else {}
    if class_names & {"TFOpLambda", "SlicingOpLambda"}:
        return _symbol_problem(config.get("function"))
    if "ClassMethod" in class_names and config.get("cls_symbol") != "RaggedTensor":
        return f"a class-method layer on tf.{config.get('cls_symbol')}"
    if class_names & {"ClassMethod", "InstanceProperty", "InstanceMethod"}:
        attr = config.get("method_name", config.get("attr_name"))
        if not isinstance(attr, str) or attr.startswith("_"):
            return f"a layer reaching the tensor attribute {attr!r}"
    return _module_problem(node)


def find_code(config: Any) -> str | None:
    """Describes the first thing in a Keras model config that would run Python code.

    Args:
        config: a parsed model config (any JSON value).

    Returns:
        `None` when nothing in `config` runs code as it loads; otherwise what was found
        and where, e.g. `"a Lambda layer (Python code) 'lambda_1' in 'outer'"`.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(config, ())]
    while stack:  # iterative: hostile configs may nest deeper than the recursion limit
        node, where = stack.pop()
        if isinstance(node, list):
            stack.extend((item, where) for item in reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        inner = node.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        if "class_name" in node or "function_type" in node or "output_shape_type" in node:
            problem = _node_problem(node)
            if problem:
                label = f" {name!r}" if isinstance(name, str) else ""
                trail = f" in {' > '.join(repr(w) for w in where)}" if where else ""
                return f"{problem}{label}{trail}"
        if isinstance(name, str) and "class_name" in node:
            where = where + (name,)
        stack.extend((value, where) for value in reversed(list(node.values())))
    return None


def _check_size(size: int, path: Path, where: str) -> None:
    if size > MAX_CONFIG_BYTES:
        raise InvalidModelError(
            f"The model file's {where} is over {MAX_CONFIG_BYTES >> 20} MiB. Received: {size} bytes in "
            f"{str(path)!r}. Save the model again with `model.save(...)`."
        )


def _parse(raw: Any, path: Path, where: str) -> Any:
    if raw is None:
        return None  # no config stored: the Keras loader says so itself
    if not isinstance(raw, (bytes, str)):
        raise InvalidModelError(
            f"The model file's {where} is not JSON text. Received: {type(raw).__name__} in {str(path)!r}. "
            "Save the model again with `model.save(...)`."
        )
    _check_size(len(raw), path, where)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidModelError(
            f"The model file's {where} is not valid JSON. Received: {str(path)!r} ({type(exc).__name__}). "
            "Save the model again with `model.save(...)`."
        ) from None


def read_config(path: str | os.PathLike) -> Any:
    """The model config a Keras loader would read from a `.keras` or `.h5` file.

    Raises:
        InvalidModelError: the file or its config cannot be read.
    """
    path = Path(path)
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                info = archive.getinfo("config.json")
                _check_size(info.file_size, path, "config.json")
                return _parse(archive.read(info), path, "config.json")
        import h5py

        with h5py.File(path, "r") as handle:
            return _parse(handle.attrs.get("model_config"), path, "model_config")
    except InvalidModelError:
        raise
    except Exception as exc:  # zipfile and h5py raise many types on hostile files
        raise InvalidModelError(
            f"Cannot read the {path.suffix} model file. Received: {str(path)!r} ({type(exc).__name__}: "
            f"{str(exc)[:200]}). Save the model again with `model.save(...)`."
        ) from exc


def refuse_code(path: str | os.PathLike) -> None:
    """Raises `InvalidModelError` if the model file at `path` would run Python code as it loads."""
    problem = find_code(read_config(path))
    if problem:
        raise InvalidModelError(
            f"The model file holds code that would run when it loads: {problem}. Received: {str(path)!r}. "
            "Pass --unsafe (unsafe=True) only if you trust this file and whoever wrote it."
        )
