"""edgeopt's Keras 3 QAT against tfmot's QAT on the tf_keras twin of the same network.

Side by side in one run, on scikit-learn's digits (8x8x1), digits_cnn in both Kerases,
same training recipe: float accuracy, post-training int8, edgeopt Keras 3 QAT int8
and tfmot QAT int8 (LiteRT accuracy on the test split); fit epoch time of the two QAT
models; and MobileNetV2-0.35-96 (random weights) through Keras 3 QAT to a fully-int8
.tflite (conversion only).
Targets: edgeopt QAT within 0.3 points of tfmot's and within 0.5 of float; epoch time
<= 1.2x tfmot's.

    python tools/benchmarks/keras3_qat.py [--qat-epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--float-epochs", type=int, default=20)
    parser.add_argument("--qat-epochs", type=int, default=4)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import numpy as np

    import edgeopt
    from _timing import EpochTimer
    from edgeopt._keras import keras_module
    from edgeopt.models import digits_cnn, mobilenetv2

    data = edgeopt.load_digits_splits()
    eval_data = (data.x_test, data.y_test)


    rows, epoch_times, plain_times = {}, {}, {}
    with tempfile.TemporaryDirectory() as out:
        for flavour, label in (("keras3", "edgeopt Keras 3 QAT"), ("tf_keras", "tfmot QAT (tf_keras twin)")):
            k = keras_module(flavour)
            k.utils.set_random_seed(0)
            model = digits_cnn(flavour=flavour)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            timer = EpochTimer()
            model.fit(data.x_train, data.y_train, epochs=args.float_epochs, batch_size=32, verbose=0, callbacks=[timer])
            plain_times[label] = statistics.median(timer.times[1:])
            float_acc = float(np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test))
            ptq = edgeopt.export_tflite(model, ["int8"], output_dir=f"{out}/{flavour}-ptq",
                                        calibration_data=data.x_train, eval_data=eval_data)["int8"]
            qat = edgeopt.quantize_aware(model)
            qat.compile(optimizer=k.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                        metrics=["accuracy"])
            timer = EpochTimer()
            qat.fit(data.x_train, data.y_train, epochs=args.qat_epochs, batch_size=32, verbose=0, callbacks=[timer])
            epoch_times[label] = statistics.median(timer.times[1:])
            entry = edgeopt.export_tflite(qat, ["int8"], output_dir=f"{out}/{flavour}-qat", eval_data=eval_data)["int8"]
            rows[flavour] = dict(label=label, float=float_acc, ptq=ptq.validation["accuracy"],
                                 qat=entry.validation["accuracy"], fully_integer=entry.fully_integer)
            print(f"  {flavour}: done", flush=True)

        keras = keras_module("keras3")
        keras.utils.set_random_seed(0)
        net = mobilenetv2()
        started = time.perf_counter()
        qat = edgeopt.quantize_aware(net)
        x = np.random.default_rng(0).random((32, 96, 96, 3), dtype=np.float32)
        qat.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        qat.fit(x, np.zeros(32, dtype=int), epochs=1, batch_size=16, verbose=0)  # ranges need one pass
        mnv2 = edgeopt.export_tflite(qat, ["int8"], output_dir=f"{out}/mnv2", eval_data=x)["int8"]
        mnv2_seconds = time.perf_counter() - started

    print(f"\nQAT on digits ({len(data.x_test)} test digits), digits_cnn, LiteRT int8 accuracy")
    print(f"  {'':<28} {'float':>8} {'PTQ int8':>9} {'QAT int8':>9}  fully int8")
    for row in rows.values():
        print(f"  {row['label']:<28} {row['float']:>8.2%} {row['ptq']:>9.2%} {row['qat']:>9.2%}  {row['fully_integer']}")
    ours, theirs = rows["keras3"], rows["tf_keras"]
    print(f"  edgeopt QAT vs tfmot QAT: {100 * (ours['qat'] - theirs['qat']):+.2f} points (target within 0.3); "
          f"vs its float: {100 * (ours['qat'] - ours['float']):+.2f} points (target within 0.5)")
    a, b = epoch_times["edgeopt Keras 3 QAT"], epoch_times["tfmot QAT (tf_keras twin)"]
    print(f"\nQAT fit epoch time (median of epochs 2..{args.qat_epochs}): edgeopt Keras 3 {a * 1000:.0f} ms, "
          f"tfmot {b * 1000:.0f} ms, ratio {a / b:.2f} (target <= 1.2)")
    pa, pb = plain_times["edgeopt Keras 3 QAT"], plain_times["tfmot QAT (tf_keras twin)"]
    print(f"  plain (float) fit epoch: Keras 3 {pa * 1000:.0f} ms, tf_keras {pb * 1000:.0f} ms (ratio {pa / pb:.2f}); "
          f"QAT overhead over plain fit: edgeopt {a / pa:.2f}x, tfmot {b / pb:.2f}x")
    print(f"\nMobileNetV2-0.35-96 (random weights) through Keras 3 QAT: fully int8 {mnv2.fully_integer}, "
          f"float ops {mnv2.float_ops or 'none'}, {sum(mnv2.op_counts.values())} ops, {mnv2.size_bytes} bytes, "
          f"max |LiteRT - Keras| {mnv2.validation['max_abs_error']:.4f}, {mnv2_seconds:.1f} s")


if __name__ == "__main__":
    main()
