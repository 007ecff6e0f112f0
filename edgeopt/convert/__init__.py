"""The converter stage: TFLite export, calibration data, validation, inspection."""

from edgeopt.convert.exporter import ExportEntry, ExportReport, export_tflite
from edgeopt.convert.inspect import TfliteInfo, inspect_tflite
from edgeopt.convert.precision import IODtype, Precision

__all__ = ["ExportEntry", "ExportReport", "IODtype", "Precision", "TfliteInfo", "export_tflite", "inspect_tflite"]
