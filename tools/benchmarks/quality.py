"""Accuracy at the same budget: tfmot by hand (its guide's recipe) vs edgeopt's defaults.

Two tasks of `_tasks.py` (noisy 12x12 digits; two-tone signals with a 0.90 ceiling),
small CNNs, several seeds, side by side in one run, accuracy on the test split:

* dense: one model per task and seed, trained in Keras 3; both arms start from its
  weights (the tfmot arm loads them into the tf_keras twin);
* pruned to 50 / 80 / 90 %, float and int8, with the same fine-tuning budget
  (`--prune-epochs`, Adam 1e-3, batch 64):
  - tfmot by hand, in a subprocess (tfmot sets TF_USE_LEGACY_KERAS=1 on import):
    `prune_low_magnitude` + `PolynomialDecay` ending at the last step (initial sparsity
    0.5 for targets above it, as the guide) + `UpdatePruningStep`, `strip_pruning`,
    then full-integer post-training quantization with `TFLiteConverter` and a
    representative dataset, evaluated in LiteRT;
  - edgeopt defaults, Keras 3: `edgeopt.Distiller(student=model, teacher=<frozen dense
    copy>)` fitted with `edgeopt.Pruning(target)`, then `edgeopt.export_tflite(...,
    ["int8"])` (LiteRT accuracy);
* the tiny student (`tiny_cnn`, about 1/10 of the parameters): from scratch vs
  `edgeopt.Distiller` with its defaults, same epochs and seed.

Targets: edgeopt >= tfmot + 2 points at 80 % pruned + int8 (mean of the seeds), and
distilled >= scratch on every task and seed.

    python tools/benchmarks/quality.py [--seeds 3] [--first-seed 0] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

SPARSITIES = (0.5, 0.8, 0.9)
BATCH = 64


def _budget(args) -> dict:
    return {"dense": args.dense_epochs, "prune": args.prune_epochs, "student": args.student_epochs}


def _accuracy(predict, x, y) -> float:
    import numpy as np

    return float(np.mean(np.argmax(predict(x), -1) == y))


def litert_accuracy(tflite: bytes, x, y) -> float:
    """Accuracy of a .tflite model in LiteRT, quantizing inputs when the model takes integers."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], [len(x), *x.shape[1:]])
    interpreter.allocate_tensors()
    data = x
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        data = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], data)
    interpreter.invoke()
    return float(np.mean(interpreter.get_tensor(out["index"]).argmax(-1) == y))


# -- the tfmot arm (runs in its own process) -------------------------------------------


def tfmot_arm(job: dict) -> dict:
    """tfmot's pruning guide by hand, on tf_keras, from the given dense weights."""
    import numpy as np
    import tensorflow as tf

    from _tasks import TASKS, cnn
    from edgeopt._keras import import_tfmot, keras_module

    tfmot = import_tfmot()
    tfk = keras_module("tf_keras")
    sparsity_api = tfmot.sparsity.keras
    results = {}
    for run in job["runs"]:
        task = TASKS[run["task"]](run["seed"])
        with np.load(run["weights"]) as f:
            weights = [f[f"w{i}"] for i in range(len(f.files))]
        steps = int(np.ceil(len(task.x_train) / BATCH)) * job["budget"]["prune"]
        for target in SPARSITIES:
            tfk.utils.set_random_seed(run["seed"])
            model = cnn(task, flavour="tf_keras")
            model.set_weights(weights)
            initial = 0.5 if target > 0.5 else 0.0
            schedule = sparsity_api.PolynomialDecay(initial_sparsity=initial, final_sparsity=target, begin_step=0,
                                                    end_step=steps)
            pruned = sparsity_api.prune_low_magnitude(model, pruning_schedule=schedule)
            pruned.compile(optimizer=tfk.optimizers.Adam(1e-3),
                           loss=tfk.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            pruned.fit(task.x_train, task.y_train, batch_size=BATCH, epochs=job["budget"]["prune"], verbose=0,
                       callbacks=[sparsity_api.UpdatePruningStep()])
            stripped = sparsity_api.strip_pruning(pruned)
            key = f"{run['task']}/{run['seed']}/{target}"
            results[f"{key}/float"] = _accuracy(lambda v: stripped.predict(v, verbose=0, batch_size=512),
                                                task.x_test, task.y_test)
            results[f"{key}/int8"] = litert_accuracy(_tfmot_int8(tf, stripped, task.x_train), task.x_test, task.y_test)
            results[f"{key}/sparsity"] = _sparsity(stripped)
            print(f"  tfmot {key}: {results[f'{key}/float']:.3f} float, {results[f'{key}/int8']:.3f} int8", flush=True)
        results[f"{run['task']}/{run['seed']}/dense/int8"] = litert_accuracy(
            _tfmot_int8(tf, _dense(cnn, task, weights), task.x_train), task.x_test, task.y_test)
    return results


def _sparsity(model) -> float:
    """Zeros among the kernels of Conv and Dense layers (what both arms prune)."""
    import numpy as np

    kernels = [layer.get_weights()[0] for layer in model.layers
               if type(layer).__name__ in ("Conv1D", "Conv2D", "Dense") and layer.get_weights()]
    return float(sum(np.count_nonzero(k == 0) for k in kernels) / sum(k.size for k in kernels))


def _dense(cnn, task, weights):
    model = cnn(task, flavour="tf_keras")
    model.set_weights(weights)
    return model


def _tfmot_int8(tf, model, x_train) -> bytes:
    """The post-training integer quantization guide: a representative dataset of 100
    training samples, int8 kernels and activations, float inputs and outputs."""
    import numpy as np

    def representative():
        for sample in x_train[:100]:
            yield [np.asarray(sample[None], np.float32)]

    spec = tf.TensorSpec([None, *x_train.shape[1:]], tf.float32)
    concrete = tf.function(lambda v: model(v, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


# -- the edgeopt arm (Keras 3, this process) --------------------------------------------


def train_dense(name: str, seed: int, budget: dict, out: Path) -> str:
    """Trains the dense model of one task and seed; returns the path of its weights."""
    import keras
    import numpy as np

    from _tasks import TASKS, cnn

    task = TASKS[name](seed)
    keras.utils.set_random_seed(seed)
    dense = cnn(task)
    dense.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dense.fit(task.x_train, task.y_train, batch_size=BATCH, epochs=budget["dense"], verbose=0)
    weights = out / f"{name}-{seed}.npz"
    np.savez(weights, **{f"w{i}": w for i, w in enumerate(dense.get_weights())})
    return str(weights)


def edgeopt_arm(name: str, seed: int, budget: dict, out: Path, weights: str, results: dict) -> None:
    """Dense, pruned and student models of one task and seed with edgeopt's defaults."""
    import keras
    import numpy as np

    import edgeopt
    from _tasks import TASKS, cnn, tiny_cnn

    task = TASKS[name](seed)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    test = (task.x_test, task.y_test)
    predict = lambda m: (lambda v: m.predict(v, verbose=0, batch_size=512))  # noqa: E731
    int8 = lambda m, d: edgeopt.export_tflite(m, ["int8"], output_dir=out / d, calibration_data=task.x_train,  # noqa: E731
                                              eval_data=test)["int8"].validation["accuracy"]
    key = f"{name}/{seed}"

    dense = cnn(task)
    with np.load(weights) as f:
        dense.set_weights([f[f"w{i}"] for i in range(len(f.files))])
    results[f"{key}/dense/float"] = _accuracy(predict(dense), *test)
    results[f"{key}/dense/int8"] = int8(dense, f"{key}/dense")

    for target in SPARSITIES:
        keras.utils.set_random_seed(seed)
        model, teacher = cnn(task), cnn(task)
        model.set_weights(dense.get_weights())
        teacher.set_weights(dense.get_weights())
        teacher.trainable = False
        distiller = edgeopt.Distiller(student=model, teacher=teacher)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
        distiller.fit(task.x_train, task.y_train, batch_size=BATCH, epochs=budget["prune"], verbose=0,
                      callbacks=[edgeopt.Pruning(target)])
        results[f"{key}/{target}/float"] = _accuracy(predict(model), *test)
        results[f"{key}/{target}/int8"] = int8(model, f"{key}/{target}")
        results[f"{key}/{target}/sparsity"] = _sparsity(model)
        print(f"  edgeopt {key}/{target}: {results[f'{key}/{target}/float']:.3f} float, "
              f"{results[f'{key}/{target}/int8']:.3f} int8", flush=True)

    keras.utils.set_random_seed(seed + 100)
    scratch = tiny_cnn(task)
    scratch.compile(optimizer=keras.optimizers.Adam(1e-3), loss=ce)
    scratch.fit(task.x_train, task.y_train, batch_size=BATCH, epochs=budget["student"], verbose=0)
    keras.utils.set_random_seed(seed + 100)
    student = tiny_cnn(task)
    distiller = edgeopt.Distiller(student=student, teacher=dense)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    distiller.fit(task.x_train, task.y_train, batch_size=BATCH, epochs=budget["student"], verbose=0)
    results[f"{key}/scratch"] = _accuracy(predict(scratch), *test)
    results[f"{key}/distilled"] = _accuracy(predict(student), *test)
    results[f"params/{name}"] = [dense.count_params(), student.count_params()]
    print(f"  {key} students: scratch {results[f'{key}/scratch']:.3f}, distilled {results[f'{key}/distilled']:.3f}",
          flush=True)


# -- the table ------------------------------------------------------------------------


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def table(results: dict, tasks: list[str], seeds: list[int]) -> tuple[str, list[str]]:
    lines = ["| task | model | tfmot by hand (tf_keras) | edgeopt defaults (Keras 3) | edgeopt − tfmot (pts) |",
             "|---|---|---|---|---|"]
    verdicts = []
    for name in tasks:
        get = lambda arm, k: [arm[f"{name}/{s}/{k}"] for s in seeds if f"{name}/{s}/{k}" in arm]  # noqa: E731
        ours, theirs = results["edgeopt"], results["tfmot"]
        rows = [("dense, float", get(ours, "dense/float"), get(ours, "dense/float")),
                ("dense, int8", get(theirs, "dense/int8"), get(ours, "dense/int8"))]
        for target in SPARSITIES:
            rows.append((f"{int(target * 100)} % pruned, sparsity reached", get(theirs, f"{target}/sparsity"),
                         get(ours, f"{target}/sparsity")))
            for kind in ("float", "int8"):
                rows.append((f"{int(target * 100)} % pruned, {kind}", get(theirs, f"{target}/{kind}"),
                             get(ours, f"{target}/{kind}")))
        for label, a, b in rows:
            delta = f"{100 * (statistics.mean(b) - statistics.mean(a)):+.1f}" if a and b else "–"
            lines.append(f"| {name} | {label} | {_cell(a)} | {_cell(b)} | {delta} |")
        teacher, student = results["edgeopt"][f"params/{name}"]
        scratch, distilled = get(ours, "scratch"), get(ours, "distilled")
        lines.append(f"| {name} | tiny student ({student} of {teacher} params), from scratch | – | {_cell(scratch)} | |")
        gains = [100 * (d - s) for d, s in zip(distilled, scratch)]
        lines.append(f"| {name} | tiny student, distilled | – | {_cell(distilled)} | per seed vs scratch: "
                     + ", ".join(f"{g:+.1f}" for g in gains) + " |")
        a, b = get(theirs, "0.8/int8"), get(ours, "0.8/int8")
        if a and b:
            margin = 100 * (statistics.mean(b) - statistics.mean(a))
            verdicts.append(f"{name}: 80 % pruned + int8, edgeopt − tfmot = {margin:+.1f} points "
                            f"(target >= +2): {'met' if margin >= 2 else 'NOT met'}")
        verdicts.append(f"{name}: distilled >= scratch on every seed: {'met' if all(g >= 0 for g in gains) else 'NOT met'}"
                        f" (min {min(gains):+.1f} points)")
    return "\n".join(lines), verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--tasks", default="noisy_digits,chirps")
    parser.add_argument("--dense-epochs", type=int, default=15)
    parser.add_argument("--prune-epochs", type=int, default=5)
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 epochs each")
    parser.add_argument("--tfmot-arm", help=argparse.SUPPRESS)  # internal: the subprocess's job file
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.tfmot_arm:
        job = json.loads(Path(args.tfmot_arm).read_text())
        Path(job["out"]).write_text(json.dumps(tfmot_arm(job)))
        return
    if args.quick:
        args.seeds, args.dense_epochs, args.prune_epochs, args.student_epochs = 1, 2, 2, 2
    tasks, seeds, budget = args.tasks.split(","), list(range(args.first_seed, args.first_seed + args.seeds)), _budget(args)
    started = time.perf_counter()
    results = {"edgeopt": {}, "tfmot": {}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        runs = []
        for name in tasks:
            for seed in seeds:
                print(f"[dense] {name} seed {seed}", flush=True)
                runs.append({"task": name, "seed": seed, "weights": train_dense(name, seed, budget, out)})
        job = {"runs": runs, "budget": budget, "out": str(out / "tfmot.json")}
        (out / "job.json").write_text(json.dumps(job))
        print("[tfmot] in a subprocess, alongside the edgeopt arm", flush=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]))
        tfmot_run = subprocess.Popen([sys.executable, __file__, "--tfmot-arm", str(out / "job.json")], env=env)
        try:
            for run in runs:
                print(f"[edgeopt] {run['task']} seed {run['seed']}", flush=True)
                edgeopt_arm(run["task"], run["seed"], budget, out, run["weights"], results["edgeopt"])
        finally:
            if tfmot_run.wait() != 0:
                raise SystemExit(f"the tfmot arm failed (exit code {tfmot_run.returncode})")
        results["tfmot"] = json.loads((out / "tfmot.json").read_text())
    text, verdicts = table(results, tasks, seeds)
    print(f"\nAccuracy on the test split (%, mean ± std over {len(seeds)} seeds, {seeds[0]}..{seeds[-1]}); budget: dense {budget['dense']} "
          f"epochs, pruning fine-tune {budget['prune']} epochs, students {budget['student']} epochs; batch {BATCH}, "
          f"Adam 1e-3; int8 in LiteRT. Wall time {time.perf_counter() - started:.0f} s.\n")
    print(text)
    print()
    for line in verdicts:
        print(f"- {line}")


if __name__ == "__main__":
    main()
