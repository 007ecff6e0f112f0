"""Reading a .tflite flatbuffer without an interpreter: tensors, ops, quantization, sizes.

The file is checked and parsed in pure Python (the flatbuffer schema that ships with
ai-edge-litert), so a malformed or truncated model raises `InvalidModelError` instead
of crashing the process inside the C++ interpreter.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeopt._files import gzip_size, sha256_bytes
from edgeopt.errors import InvalidModelError

_FILE_IDENTIFIER = b"TFL3"
_BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")
_FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16")


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class TensorInfo:
    """One input or output tensor: shape (-1 for free dimensions), dtype, quantization."""

    name: str
    shape: list[int]
    dtype: str
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quantized_dimension: int | None = None


@dataclass
class ParameterInfo:
    """A constant tensor stored in the file, and how many bytes it takes."""

    name: str
    shape: list[int]
    dtype: str
    size_bytes: int


@dataclass
class OpInfo:
    """One operator: its type, fused activation, and whether it computes in float."""

    index: int
    op: str
    fused_activation: str | None
    float_compute: bool


@dataclass
class TfliteInfo:
    """What `edgeopt inspect` shows about a .tflite model."""

    path: str | None
    size_bytes: int
    gzip_size_bytes: int
    sha256: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_counts: dict[str, int]
    fused_activations: dict[str, int]
    float_ops: dict[str, int]
    parameters: list[ParameterInfo]
    parameter_bytes: int
    fully_integer: bool  # no op computes in float (QUANTIZE/DEQUANTIZE at float I/O allowed)
    integer_io: bool  # inputs and outputs are integer tensors
    subgraphs: int
    ops: list[OpInfo] = field(repr=False, default_factory=list)

    @property
    def weight_dtypes(self) -> dict[str, int]:
        return dict(Counter(p.dtype for p in self.parameters))

    def to_dict(self, *, with_ops: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_ops:
            data.pop("ops")
        data["weight_dtypes"] = self.weight_dtypes
        return data


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """Reads a .tflite file after checking that it exists and is not empty."""
    path = Path(path)
    if not path.is_file():
        raise InvalidModelError(
            f"TFLite model not found. Received: {str(path)!r}. Pass the path of a .tflite file."
        )
    data = path.read_bytes()
    check_flatbuffer(data, origin=str(path))
    return data


def check_flatbuffer(data: bytes, *, origin: str = "the model") -> None:
    """Cheap structural checks before parsing: size, file identifier, root offset."""
    if len(data) == 0:
        raise InvalidModelError(f"The TFLite file is empty. Received: {origin!r} (0 bytes). Export the model again.")
    if len(data) < 16 or data[4:8] != _FILE_IDENTIFIER:
        raise InvalidModelError(
            f"Not a TFLite flatbuffer (no 'TFL3' identifier). Received: {origin!r} ({len(data)} bytes, "
            f"starting {data[:8].hex()}). Pass a .tflite file written by the TFLite converter."
        )
    (root,) = struct.unpack_from("<I", data, 0)
    if root + 4 > len(data):
        raise InvalidModelError(
            f"The TFLite file is truncated (its root table lies past the end). Received: {origin!r} "
            f"({len(data)} bytes). Copy or export the model again."
        )


def parse_model(data: bytes, *, origin: str = "the model") -> Any:
    """Parses a checked flatbuffer into the schema's object API (`ModelT`)."""
    check_flatbuffer(data, origin=origin)
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        for subgraph in model.subgraphs or []:
            for tensor in subgraph.tensors or []:
                if tensor.buffer >= len(model.buffers or []):
                    raise IndexError("tensor buffer index out of range")
            for op in subgraph.operators or []:
                if op.opcodeIndex >= len(model.operatorCodes or []):
                    raise IndexError("opcode index out of range")
                for t in list(op.inputs if op.inputs is not None else []) + list(op.outputs if op.outputs is not None else []):
                    if t >= len(subgraph.tensors or []):
                        raise IndexError("tensor index out of range")
    except Exception as exc:  # any failure to parse means the file is malformed
        raise InvalidModelError(
            f"The TFLite file is malformed or truncated ({type(exc).__name__}: {exc}). "
            f"Received: {origin!r} ({len(data)} bytes). Copy or export the model again."
        ) from None
    if not model.subgraphs:
        raise InvalidModelError(f"The TFLite model has no subgraph. Received: {origin!r}. Export the model again.")
    return model


def _buffer_size(model, tensor) -> int:
    buffer = model.buffers[tensor.buffer]
    if buffer.data is not None:
        return int(len(buffer.data))
    return int(buffer.size or 0)


def inspect_tflite(model: str | os.PathLike | bytes) -> TfliteInfo:
    """Describes a .tflite model (path or bytes) without running it.

    Args:
        model: path to a .tflite file, or its bytes.

    Returns:
        A `TfliteInfo`: I/O tensors with quantization, op histogram, fused activations,
        ops left in float, parameter bytes per tensor (largest first), `fully_integer`.
    """
    if isinstance(model, (bytes, bytearray)):
        data, path = bytes(model), None
    else:
        path = str(model)
        data = read_model_bytes(path)
    parsed = parse_model(data, origin=path or "the model")
    schema = _schema()
    op_names = _names(schema.BuiltinOperator)
    type_names = _names(schema.TensorType)
    act_names = _names(schema.ActivationFunctionType)

    def tensor_info(subgraph, index) -> TensorInfo:
        tensor = subgraph.tensors[index]
        q = tensor.quantization
        shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        return TensorInfo(
            name=(tensor.name or b"").decode(errors="replace"),
            shape=[int(d) for d in (shape if shape is not None else [])],
            dtype=type_names.get(tensor.type, str(tensor.type)).lower(),
            scale=[float(s) for s in (q.scale if q is not None and q.scale is not None else [])][:16],
            zero_point=[int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])][:16],
            quantized_dimension=int(q.quantizedDimension) if q is not None and q.scale is not None and len(q.scale) > 1 else None,
        )

    main = parsed.subgraphs[0]
    ops: list[OpInfo] = []
    parameters: dict[int, ParameterInfo] = {}
    for subgraph in parsed.subgraphs:
        for tensor in subgraph.tensors or []:
            size = _buffer_size(parsed, tensor)
            if size and tensor.buffer not in parameters:
                parameters[tensor.buffer] = ParameterInfo(
                    name=(tensor.name or b"").decode(errors="replace"),
                    shape=[int(d) for d in (tensor.shape if tensor.shape is not None else [])],
                    dtype=type_names.get(tensor.type, str(tensor.type)).lower(),
                    size_bytes=size,
                )
        for op in subgraph.operators or []:
            code = parsed.operatorCodes[op.opcodeIndex]
            builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
            name = op_names.get(builtin, str(builtin))
            if name == "CUSTOM":
                name = "CUSTOM:" + (code.customCode or b"?").decode(errors="replace")
            fused = getattr(op.builtinOptions, "fusedActivationFunction", None)
            fused_name = act_names.get(fused) if fused else None
            tensors = [t for t in list(op.inputs if op.inputs is not None else []) + list(op.outputs if op.outputs is not None else []) if t >= 0]
            # An op computes in float when a non-constant tensor it touches is float.
            # QUANTIZE/DEQUANTIZE at the model's float I/O are conversions, not compute.
            touches_float = any(
                type_names.get(subgraph.tensors[t].type) in _FLOAT_TYPES and not _buffer_size(parsed, subgraph.tensors[t])
                for t in tensors
            )
            ops.append(OpInfo(len(ops), name, fused_name, touches_float and name not in _BOUNDARY_OPS))

    # A DEQUANTIZE of a constant (float16 / int4 weights) feeds a float op, which is listed.
    float_ops = Counter(o.op for o in ops if o.float_compute)
    inputs = [tensor_info(main, i) for i in (main.inputs if main.inputs is not None else [])]
    outputs = [tensor_info(main, i) for i in (main.outputs if main.outputs is not None else [])]
    info = TfliteInfo(
        path=path,
        size_bytes=len(data),
        gzip_size_bytes=gzip_size(data),
        sha256=sha256_bytes(data),
        inputs=inputs,
        outputs=outputs,
        op_counts=dict(Counter(o.op for o in ops).most_common()),
        fused_activations=dict(Counter(f"{o.op}+{o.fused_activation}" for o in ops if o.fused_activation).most_common()),
        float_ops=dict(float_ops.most_common()),
        parameters=sorted(parameters.values(), key=lambda p: p.size_bytes, reverse=True),
        parameter_bytes=sum(p.size_bytes for p in parameters.values()),
        fully_integer=not float_ops,
        integer_io=all(t.dtype not in ("float32", "float16") for t in inputs + outputs),
        subgraphs=len(parsed.subgraphs),
        ops=ops,
    )
    return info


_NUMPY_TYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2", "FLOAT64": "<f8", "INT8": "i1", "UINT8": "u1", "INT16": "<i2",
                "INT32": "<i4", "INT64": "<i8"}


def constant_tensors(model: bytes) -> dict[str, "np.ndarray"]:
    """The constant (weight) tensors of a .tflite model by name, decoded to numpy.

    Types numpy cannot hold directly (int4, packed) are left out.
    """
    import numpy as np

    parsed = parse_model(model)
    type_names = _names(_schema().TensorType)
    values = {}
    for subgraph in parsed.subgraphs:
        for tensor in subgraph.tensors or []:
            data = parsed.buffers[tensor.buffer].data
            dtype = _NUMPY_TYPES.get(type_names.get(tensor.type, ""))
            if data is None or not len(data) or dtype is None:
                continue
            array = np.frombuffer(bytes(data), dtype=dtype)
            shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
            if int(np.prod(shape)) == array.size:
                array = array.reshape(shape)
            values[(tensor.name or b"").decode(errors="replace")] = array
    return values
