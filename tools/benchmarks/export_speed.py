"""Wall time of one `edgeopt` export of four precisions vs four TFLiteConverter runs.

MobileNetV2 (alpha 0.35, 96x96x3, random weights, Keras 3), float32 + float16 +
dynamic + int8, measured side by side in one process after a warm-up conversion.
Target: ratio (edgeopt / four independent `from_keras_model` conversions) <= 0.6.

    python tools/benchmarks/export_speed.py [--repeats 2] [--calibration-samples 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--calibration-samples", type=int, default=100)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    import edgeopt

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)
    calib = np.random.default_rng(0).random((args.calibration_samples, 96, 96, 3), dtype=np.float32)

    def four_converter_runs() -> None:
        for precision in ("float32", "float16", "dynamic", "int8"):
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            if precision != "float32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if precision == "float16":
                converter.target_spec.supported_types = [tf.float16]
            if precision == "int8":
                converter.representative_dataset = lambda: ([s[None]] for s in calib)
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
            converter.convert()

    def edgeopt_export() -> None:
        with tempfile.TemporaryDirectory() as out:
            edgeopt.export_tflite(model, ["float32", "float16", "dynamic", "int8"], output_dir=out,
                                  calibration_data=calib, calibration_samples=args.calibration_samples)

    tiny = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    tf.lite.TFLiteConverter.from_keras_model(tiny).convert()  # warm-up: one-time converter start

    baseline, ours = [], []
    for repeat in range(args.repeats):
        for label, fn, times in (("4x TFLiteConverter.from_keras_model", four_converter_runs, baseline),
                                 ("edgeopt export_tflite (4 precisions)", edgeopt_export, ours)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            print(f"[{repeat + 1}/{args.repeats}] {label}: {times[-1]:.2f} s", flush=True)

    b, o = statistics.median(baseline), statistics.median(ours)
    print()
    print("MobileNetV2-0.35 96x96, float32+float16+dynamic+int8, "
          f"{args.calibration_samples} calibration samples, median of {args.repeats}")
    print(f"  four TFLiteConverter.from_keras_model runs: {b:.2f} s")
    print(f"  edgeopt export_tflite, one call:             {o:.2f} s")
    print(f"  ratio (target <= 0.6):                       {o / b:.2f}")


if __name__ == "__main__":
    main()
