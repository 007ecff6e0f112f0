"""QAT vs post-training int8, and a distilled vs a from-scratch student, on digits.

Side by side in one run, scikit-learn's digits (8x8x1), LiteRT accuracy on the test split:
  * QAT (tf_keras through tfmot): float accuracy, post-training int8, QAT int8
    (targets: QAT >= PTQ and within 0.5 points of float);
  * distillation (Keras 3): teacher digits_cnn(width=32); student digits_cnn(width=2)
    (< 1/4 of the teacher's parameters) trained from scratch vs distilled
    (T=4, alpha=0.1), same epochs and seeds (target: distilled better than scratch;
    the share of the teacher-scratch gap it closes is printed).

    python tools/benchmarks/qat_distill.py [--seeds 3] [--student-epochs 80]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=80)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import numpy as np

    import edgeopt
    from edgeopt._keras import keras_module
    from edgeopt.models import digits_cnn

    data = edgeopt.load_digits_splits()
    eval_data = (data.x_test, data.y_test)

    # --- QAT vs PTQ (tf_keras) -------------------------------------------------------
    tfk = keras_module("tf_keras")
    tfk.utils.set_random_seed(0)
    model = digits_cnn(flavour="tf_keras")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=20, batch_size=32, verbose=0)
    float_acc = model.evaluate(data.x_test, data.y_test, verbose=0)[1]
    qat = edgeopt.quantize_aware(model)
    qat.compile(optimizer=tfk.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    with tempfile.TemporaryDirectory() as out:
        ptq = edgeopt.export_tflite(model, ["int8"], output_dir=f"{out}/ptq", calibration_data=data.x_train,
                                    eval_data=eval_data)["int8"]
        qat_entry = edgeopt.export_tflite(qat, ["int8"], output_dir=f"{out}/qat", eval_data=eval_data)["int8"]
    ptq_acc, qat_acc = ptq.validation["accuracy"], qat_entry.validation["accuracy"]
    print(f"QAT on digits (tf_keras digits_cnn, {model.count_params()} params), {len(data.x_test)} test digits")
    print(f"  {'float (Keras)':<28} {float_acc:.2%}")
    print(f"  {'post-training int8 (LiteRT)':<28} {ptq_acc:.2%}  ({100 * (ptq_acc - float_acc):+.2f} points)")
    print(f"  {'QAT int8 (LiteRT)':<28} {qat_acc:.2%}  ({100 * (qat_acc - float_acc):+.2f} points; fully integer: "
          f"{qat_entry.fully_integer})")
    print(f"  targets: QAT >= PTQ: {qat_acc >= ptq_acc}; within 0.5 points of float: "
          f"{abs(qat_acc - float_acc) * 100 <= 0.5}")

    # --- distillation (Keras 3) ------------------------------------------------------
    keras = keras_module("keras3")
    logits_ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras.utils.set_random_seed(0)
    teacher = digits_cnn(width=32, softmax=False)
    teacher.compile(optimizer="adam", loss=logits_ce, metrics=["accuracy"])
    teacher.fit(data.x_train, data.y_train, epochs=20, batch_size=32, verbose=0)
    teacher_acc = teacher.evaluate(data.x_test, data.y_test, verbose=0)[1]
    scratch, distilled = [], []
    for seed in range(1, args.seeds + 1):
        keras.utils.set_random_seed(seed)
        student = digits_cnn(width=2, softmax=False)
        student.compile(optimizer="adam", loss=logits_ce, metrics=["accuracy"])
        student.fit(data.x_train, data.y_train, epochs=args.student_epochs, batch_size=32, verbose=0)
        scratch.append(student.evaluate(data.x_test, data.y_test, verbose=0)[1])
        keras.utils.set_random_seed(seed)
        student = digits_cnn(width=2, softmax=False)
        distiller = edgeopt.Distiller(student=student, teacher=teacher, temperature=4.0, alpha=0.1)
        distiller.compile(optimizer="adam", metrics=["accuracy"])
        distiller.fit(data.x_train, data.y_train, epochs=args.student_epochs, batch_size=32, verbose=0)
        distilled.append(np.mean(distiller.student.predict(data.x_test, verbose=0).argmax(1) == data.y_test))
        print(f"  seed {seed}: scratch {scratch[-1]:.2%}, distilled {distilled[-1]:.2%}", flush=True)
    s, d = statistics.mean(scratch), statistics.mean(distilled)
    print(f"\nDistillation on digits (Keras 3), mean of {args.seeds} seeds, {args.student_epochs} student epochs")
    print(f"  {'teacher digits_cnn(width=32)':<34} {teacher.count_params():>6} params  {teacher_acc:.2%}")
    print(f"  {'student from scratch (width=2)':<34} {student.count_params():>6} params  {s:.2%}")
    print(f"  {'student distilled (T=4, alpha=0.1)':<34} {student.count_params():>6} params  {d:.2%}")
    gap = teacher_acc - s
    print(f"  distilled - scratch: {100 * (d - s):+.2f} points; closes {100 * (d - s) / gap:.0f} % of the "
          f"teacher-scratch gap ({100 * gap:.2f} points)")


if __name__ == "__main__":
    main()
