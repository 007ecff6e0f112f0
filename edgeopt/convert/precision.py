"""The closed vocabularies of the converter stage: precisions and I/O dtypes."""

from __future__ import annotations

from edgeopt._compat import StrEnum
from edgeopt.errors import ConfigError


class Precision(StrEnum):
    """What a TFLite model's weights and activations are stored and computed in.

    The same strings appear in recipes, on the CLI (`--precision`) and in the API.
    """

    FLOAT32 = "float32"
    FLOAT16 = "float16"  # float16 weights, float32 compute
    DYNAMIC = "dynamic"  # int8 weights, activations quantized at run time
    INT8 = "int8"  # full integer: int8 weights and activations (needs calibration)
    INT16X8 = "int16x8"  # int16 activations, int8 weights (needs calibration)
    INT4 = "int4"  # 4-bit weight-only, through ai-edge-quantizer
    AUTO = "auto"  # per-op mix of int4/int8/int16x8/float32 within max_accuracy_drop (edgeopt.convert.auto_precision)

    @property
    def needs_calibration(self) -> bool:
        return self in (Precision.INT8, Precision.INT16X8, Precision.AUTO)


class IODtype(StrEnum):
    """Input/output tensor type of a full-integer (`int8`) model."""

    INT8 = "int8"
    UINT8 = "uint8"
    FLOAT32 = "float32"


def parse_precisions(values) -> list[Precision]:
    """Turns strings into `Precision`s, keeping order and dropping repeats."""
    if isinstance(values, (str, Precision)):
        values = [values]
    result: list[Precision] = []
    for value in values:
        try:
            precision = Precision(str(value).lower())
        except ValueError:
            raise ConfigError(
                f"Unknown precision. Received: precision={value!r}. "
                f"Use one of: {', '.join(p.value for p in Precision)}."
            ) from None
        if precision not in result:
            result.append(precision)
    if not result:
        raise ConfigError(
            "No precision given. Received: precisions=[]. "
            f"Pass at least one of: {', '.join(p.value for p in Precision)}."
        )
    return result
