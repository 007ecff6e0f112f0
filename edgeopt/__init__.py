"""edgeopt: from `model.fit` to a measured model on an edge device.

The public API; everything else is internal. Importing edgeopt imports neither
TensorFlow nor Keras: they load when a function that needs them runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from edgeopt.errors import (
    AccuracyGateError,
    ConfigError,
    ConversionError,
    DeviceError,
    DeviceUnreachableError,
    EdgeoptError,
    InvalidModelError,
    MissingDependencyError,
    OutputError,
    RemoteCommandError,
)

__version__ = "0.1.0"

# name -> module that defines it; loaded on first access so `import edgeopt` stays light.
_LAZY = {
    "export_tflite": "edgeopt.convert.exporter",
    "ExportReport": "edgeopt.convert.exporter",
    "inspect_tflite": "edgeopt.convert.inspect",
    "quantization_sensitivity": "edgeopt.convert.sensitivity",
    "Sensitivity": "edgeopt.convert.sensitivity",
    "Precision": "edgeopt.convert.precision",
    "IODtype": "edgeopt.convert.precision",
    "load_model": "edgeopt._keras",
    "load_digits_splits": "edgeopt.datasets",
    "measure_latency": "edgeopt.bench.harness",
    "benchmark": "edgeopt.bench.harness",
    "LatencyResult": "edgeopt.bench.result",
    "DeviceProfile": "edgeopt.bench.profiles",
    "load_profile": "edgeopt.bench.profiles",
    "Pruning": "edgeopt.pruning.callback",
    "KeepSparsity": "edgeopt.pruning.callback",
    "ConstantSparsity": "edgeopt.pruning.schedule",
    "PolynomialDecay": "edgeopt.pruning.schedule",
    "PruningSchedule": "edgeopt.pruning.schedule",
    "sparsity_report": "edgeopt.pruning.report",
    "cluster_weights": "edgeopt.clustering.api",
    "strip_clustering": "edgeopt.clustering.api",
    "factorize": "edgeopt.lowrank.svd",
    "prune_channels": "edgeopt.channels.prune",
    "channel_sensitivity": "edgeopt.channels.sensitivity",
    "quantize_aware": "edgeopt.qat.api",
    "Distiller": "edgeopt.distill.api",
    "run_recipe": "edgeopt.pipeline.run",
    "run_search": "edgeopt.search.study",
    "load_recipe": "edgeopt.pipeline.recipe",
}

if TYPE_CHECKING:  # pragma: no cover
    from edgeopt._keras import load_model
    from edgeopt.bench.harness import benchmark, measure_latency
    from edgeopt.bench.profiles import DeviceProfile, load_profile
    from edgeopt.bench.result import LatencyResult
    from edgeopt.convert.exporter import ExportReport, export_tflite
    from edgeopt.convert.inspect import inspect_tflite
    from edgeopt.convert.sensitivity import Sensitivity, quantization_sensitivity
    from edgeopt.convert.precision import IODtype, Precision
    from edgeopt.clustering.api import cluster_weights, strip_clustering
    from edgeopt.datasets import load_digits_splits
    from edgeopt.distill.api import Distiller
    from edgeopt.pipeline.recipe import load_recipe
    from edgeopt.pipeline.run import run_recipe
    from edgeopt.search.study import run_search
    from edgeopt.qat.api import quantize_aware
    from edgeopt.lowrank.svd import factorize
    from edgeopt.channels.prune import prune_channels
    from edgeopt.channels.sensitivity import channel_sensitivity
    from edgeopt.pruning.callback import KeepSparsity, Pruning
    from edgeopt.pruning.report import sparsity_report
    from edgeopt.pruning.schedule import ConstantSparsity, PolynomialDecay, PruningSchedule


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgeopt' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "AccuracyGateError",
    "ConfigError",
    "ConversionError",
    "DeviceError",
    "DeviceUnreachableError",
    "EdgeoptError",
    "InvalidModelError",
    "MissingDependencyError",
    "OutputError",
    "RemoteCommandError",
    *_LAZY,
]
