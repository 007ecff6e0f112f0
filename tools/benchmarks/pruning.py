"""Pruning overhead and what 80 % sparsity + int8 buys, on scikit-learn's digits (8x8x1).

Side by side in one run, same CNN (edgeopt.models.digits_cnn) and data:
  * epoch time of plain `fit`, of `fit` + `edgeopt.Pruning` (Keras 3 and tf_keras), and of
    tfmot's `prune_low_magnitude` + `UpdatePruningStep` on the tf_keras twin
    (targets: edgeopt <= 1.15x plain fit, and no slower than tfmot);
  * a dense float model vs the same model pruned to 80 % then exported to int8:
    accuracy (LiteRT) and gzip size vs the float32 .tflite (targets: >= 10x smaller,
    accuracy within 1 point).

The CNN is `digits_cnn(width=64)` (206k parameters) on the 8x8 digits as they are.

    python tools/benchmarks/pruning.py [--epochs 10] [--repeats 3] [--width 64]
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
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()

    import numpy as np

    import edgeopt
    from _timing import EpochTimer
    from edgeopt._keras import import_tfmot, keras_module
    from edgeopt.models import digits_cnn

    data = edgeopt.load_digits_splits()
    steps = int(np.ceil(len(data.x_train) / args.batch_size)) * args.epochs


    def make(flavour, learning_rate=1e-3):
        k = keras_module(flavour)
        k.utils.set_random_seed(0)
        model = digits_cnn(flavour=flavour, width=args.width)
        model.compile(optimizer=k.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def epoch_time(model, callbacks):
        timer = EpochTimer()
        model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                  callbacks=[*callbacks, timer])
        return timer.times[1:]  # the first epoch traces the step function

    tfmot = import_tfmot()

    def tfmot_variant():
        model = make("tf_keras")
        schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=steps, frequency=10)
        pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
        pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return pruned, [tfmot.sparsity.keras.UpdatePruningStep()]

    def ours(flavour):
        return make(flavour), [edgeopt.Pruning(edgeopt.PolynomialDecay(0.0, 0.8, 0, steps), frequency=10)]

    variants = {
        "keras3 plain fit": lambda: (make("keras3"), []),
        "keras3 fit + edgeopt.Pruning": lambda: ours("keras3"),
        "tf_keras plain fit": lambda: (make("tf_keras"), []),
        "tf_keras fit + edgeopt.Pruning": lambda: ours("tf_keras"),
        "tf_keras tfmot prune_low_magnitude": tfmot_variant,
    }
    times = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, build in variants.items():
            model, callbacks = build()
            epochs = epoch_time(model, callbacks)
            times[name].extend(epochs)
            print(f"[{repeat + 1}/{args.repeats}] {name}: {statistics.median(epochs) * 1000:.1f} ms/epoch", flush=True)
    t = {name: statistics.median(v) for name, v in times.items()}  # median of every timed epoch

    print(f"\nEpoch time, digits 8x8, digits_cnn(width={args.width}) ({make('keras3').count_params()} params), batch {args.batch_size}, "
          f"{args.epochs} epochs, median of epochs 2..{args.epochs} of {args.repeats} interleaved runs")
    for name, value in t.items():
        print(f"  {name:<36} {value * 1000:7.1f} ms")
    print(f"  edgeopt overhead, Keras 3:   {t['keras3 fit + edgeopt.Pruning'] / t['keras3 plain fit']:.3f}x plain fit"
          " (target <= 1.15)")
    print(f"  edgeopt overhead, tf_keras:  {t['tf_keras fit + edgeopt.Pruning'] / t['tf_keras plain fit']:.3f}x plain fit"
          " (target <= 1.15)")
    print(f"  tfmot overhead, tf_keras:    {t['tf_keras tfmot prune_low_magnitude'] / t['tf_keras plain fit']:.3f}x "
          "plain fit")
    print(f"  edgeopt (tf_keras) / tfmot:  {t['tf_keras fit + edgeopt.Pruning'] / t['tf_keras tfmot prune_low_magnitude']:.3f}"
          " (target <= 1.0)")

    # 80 % sparsity, then int8: accuracy and gzip size against the dense float model.
    # Dense: 30 epochs. Pruned: from the dense weights, cubic schedule to 80 % over 10
    # epochs, then 10 more epochs holding the mask, at half the learning rate.
    dense = make("keras3")
    dense.fit(data.x_train, data.y_train, epochs=30, batch_size=32, verbose=0)
    pruned = make("keras3", learning_rate=5e-4)
    pruned.set_weights(dense.get_weights())
    steps_per_epoch = int(np.ceil(len(data.x_train) / 32))
    pruned.fit(data.x_train, data.y_train, epochs=20, batch_size=32, verbose=0, callbacks=[
        edgeopt.Pruning(edgeopt.PolynomialDecay(0.0, 0.8, 0, 10 * steps_per_epoch), frequency=steps_per_epoch // 2)])
    with tempfile.TemporaryDirectory() as out:
        eval_data = (data.x_test, data.y_test)
        float_entry = edgeopt.export_tflite(dense, ["float32"], output_dir=f"{out}/dense", eval_data=eval_data)["float32"]
        int8_entry = edgeopt.export_tflite(pruned, ["int8"], output_dir=f"{out}/pruned", eval_data=eval_data,
                                           calibration_data=data.x_train)["int8"]
    dense_acc = float_entry.validation["reference_accuracy"]
    int8_acc = int8_entry.validation["accuracy"]
    print(f"\n80 % sparsity ({edgeopt.sparsity_report(pruned).sparsity:.1%} measured) then int8, "
          f"{len(data.x_test)} test digits")
    print(f"  dense float32 Keras accuracy:       {dense_acc:.2%}")
    print(f"  pruned int8 LiteRT accuracy:        {int8_acc:.2%} ({100 * (int8_acc - dense_acc):+.2f} points; "
          "target within 1)")
    print(f"  dense float32 .tflite gzip:         {float_entry.gzip_size_bytes} bytes ({float_entry.size_bytes} raw)")
    print(f"  pruned int8 .tflite gzip:           {int8_entry.gzip_size_bytes} bytes ({int8_entry.size_bytes} raw)")
    print(f"  gzip size ratio:                    {float_entry.gzip_size_bytes / int8_entry.gzip_size_bytes:.1f}x "
          "smaller (target >= 10)")


if __name__ == "__main__":
    main()
