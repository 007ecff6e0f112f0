"""Channel pruning: what removing whole channels buys in speed, and what it costs in accuracy.

Side by side in one run:
  * MobileNetV2-1.0-224 (random weights, `weights=None`) dense vs 30 % vs 50 % of every
    prunable group's channels removed (`edgeopt.prune_channels`, L1): params, MACs and
    LiteRT p50 latency on this machine, 1 thread, float32 and int8, models interleaved
    round by round (the VM is noisy), >= 50 timed runs each
    (target: 50 % removed -> float32 p50 <= 0.55 x dense);
  * a digits CNN (`edgeopt.models.digits_cnn`) on scikit-learn's digits, and on a harder
    variant generated here (random shifts, Gaussian noise, an occluding square): test
    accuracy after channel pruning at 30 / 50 % + fine-tuning, against unstructured
    magnitude pruning (`edgeopt.Pruning` + `ConstantSparsity`) fine-tuned the same number
    of epochs at the same number of non-zero parameters; `--seeds` seeds (default 3),
    mean and spread;
  * an 80 %-sparse MobileNetV2-1.0-224 float32 (kernels magnitude-pruned) with and without
    the converter's sparse encoding (XNNPACK sparse inference), and what `export_tflite`
    chose for it (`settings["sparse_inference"]` in export_report.json).

    nice python tools/benchmarks/channel_pruning.py [--rounds 5] [--runs-per-round 10] [--epochs 30] [--seeds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def latencies_ms(paths: dict[str, str], rounds: int, runs: int, warmup: int = 5) -> dict[str, float]:
    """p50 per model: `rounds` rounds, each running every model `runs` times in turn."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreters = {}
    for name, path in paths.items():
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        data = np.random.default_rng(0).uniform(-1, 1, detail["shape"])
        if detail["dtype"] != np.float32:
            data = np.clip(np.round(data / detail["quantization"][0] + detail["quantization"][1]), -128, 127)
        interpreter.set_tensor(detail["index"], data.astype(detail["dtype"]))
        for _ in range(warmup):
            interpreter.invoke()
        interpreters[name] = interpreter
    times = {name: [] for name in paths}
    for _ in range(rounds):
        for name, interpreter in interpreters.items():
            for _ in range(runs):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def mobilenet_table(args, out: str) -> None:
    import keras
    import numpy as np

    import edgeopt
    from edgeopt.channels import model_cost

    keras.utils.set_random_seed(0)
    dense = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    models = {"dense": dense}
    for ratio in (0.3, 0.5):
        models[f"{int(ratio * 100)} % removed"] = edgeopt.prune_channels(dense, ratio)
    calibration = np.random.default_rng(1).uniform(-1, 1, (args.calibration, 224, 224, 3)).astype("float32")
    paths, costs = {}, {}
    for name, model in models.items():
        costs[name] = model_cost(model)
        started = time.perf_counter()
        report = edgeopt.export_tflite(model, ["float32", "int8"], output_dir=f"{out}/{name.split()[0]}",
                                       name="mobilenetv2", calibration_data=calibration,
                                       calibration_samples=args.calibration, io_dtype="float32")
        for precision in ("float32", "int8"):
            paths[f"{name} {precision}"] = report[precision].path
        print(f"exported {name} in {time.perf_counter() - started:.0f} s", flush=True)
    p50 = latencies_ms(paths, args.rounds, args.runs_per_round)
    from importlib.metadata import version

    print(f"\nMobileNetV2-1.0-224, random weights, ai-edge-litert {version('ai-edge-litert')} on this machine, "
          "1 thread, p50 of "
          f"{args.rounds * args.runs_per_round} runs per model ({args.rounds} interleaved rounds)")
    print(f"  {'model':<14} {'params':>10} {'MMACs':>8} {'f32 p50 ms':>11} {'int8 p50 ms':>12} {'f32 vs dense':>13} "
          f"{'int8 vs dense':>14}")
    for name in models:
        f32, i8 = p50[f"{name} float32"], p50[f"{name} int8"]
        print(f"  {name:<14} {costs[name].params:>10,} {costs[name].macs / 1e6:>8.1f} {f32:>11.2f} {i8:>12.2f} "
              f"{f32 / p50['dense float32']:>12.2f}x {i8 / p50['dense int8']:>13.2f}x")
    ratio = p50["50 % removed float32"] / p50["dense float32"]
    print(f"  50 % removed, float32: {ratio:.2f} x dense p50 (target <= 0.55): {'met' if ratio <= 0.55 else 'MISSED'}")


def sparse_table(args, out: str) -> None:
    """80 %-sparse MobileNetV2 float32: dense vs sparse encoding, and export_tflite's choice."""
    import keras
    import numpy as np

    import edgeopt
    from edgeopt.convert.engines import convert_saved_model
    from edgeopt.convert.precision import Precision

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    for layer in model.layers:
        if type(layer).__name__ in ("Conv2D", "Dense", "DepthwiseConv2D"):
            kernel, *rest = layer.get_weights()
            cut = np.quantile(np.abs(kernel), 0.8)
            layer.set_weights([np.where(np.abs(kernel) <= cut, 0, kernel).astype(kernel.dtype), *rest])
    saved = f"{out}/sparse_saved_model"
    model.export(saved, format="tf_saved_model", verbose=False)
    paths = {}
    for name, flag in (("dense encoding", False), ("sparse encoding", True)):
        data, _ = convert_saved_model(saved, Precision.FLOAT32, sparsity=flag)
        paths[name] = f"{out}/{name.split()[0]}.tflite"
        with open(paths[name], "wb") as f:
            f.write(data)
    sample = np.random.default_rng(2).uniform(-1, 1, (4, 224, 224, 3)).astype("float32")
    report = edgeopt.export_tflite(model, ["float32"], output_dir=f"{out}/sparse_export", calibration_data=sample)
    decision = report["float32"].settings["sparse_inference"]
    p50 = latencies_ms(paths, args.rounds, args.runs_per_round)
    print(f"\nMobileNetV2-1.0-224, kernels 80 % zeros, float32, 1 thread, p50 of "
          f"{args.rounds * args.runs_per_round} runs, interleaved")
    for name, path in paths.items():
        info = edgeopt.inspect_tflite(path)
        print(f"  {name:<16} {info.size_bytes / 1e6:>7.2f} MB  gzip {info.gzip_size_bytes / 1e6:>6.2f} MB  "
              f"DENSIFY ops {info.op_counts.get('DENSIFY', 0):>3}  p50 {p50[name]:>8.2f} ms")
    print(f"  export_tflite chose: {'sparse' if decision['used'] else 'dense'} ({decision['reason']}; its own "
          f"timing dense {decision.get('dense_p50_ms', float('nan')):.2f} ms, sparse "
          f"{decision.get('sparse_p50_ms', float('nan')):.2f} ms)")


def harder_digits(data, seed: int = 0):
    """Digits with a random shift of up to 1 pixel, noise (sigma 0.1) and a 2x2 occluding square."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def corrupt(x):
        x = x.copy()
        for i in range(len(x)):
            dy, dx = rng.integers(-1, 2, 2)
            x[i] = np.roll(x[i], (dy, dx), axis=(0, 1))
            top, left = rng.integers(1, 5, 2)
            x[i, top:top + 2, left:left + 2] = 0.0
        return np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype("float32")

    import dataclasses
    return dataclasses.replace(data, x_train=corrupt(data.x_train), x_val=corrupt(data.x_val),
                               x_test=corrupt(data.x_test))


def accuracy_table(args, task: str, data, seed: int = 0) -> list[tuple]:
    import keras
    import numpy as np

    import edgeopt
    from edgeopt.models import digits_cnn

    def compiled(model, learning_rate):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def accuracy(model):
        return float(np.mean(model.predict(data.x_test, verbose=0).argmax(1) == data.y_test))

    keras.utils.set_random_seed(seed)
    dense = compiled(digits_cnn(width=args.width), 1e-3)
    dense.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=32, verbose=0)
    rows = [(task, "dense", "-", dense.count_params(), accuracy(dense), accuracy(dense))]
    kernels = sum(int(np.prod(l.get_weights()[0].shape)) for l in dense.layers
                  if type(l).__name__ in ("Conv2D", "Dense"))
    steps = int(np.ceil(len(data.x_train) / 32))
    for ratio in (0.3, 0.5):
        keras.utils.set_random_seed(seed)
        small = edgeopt.prune_channels(dense, ratio, criterion="taylor", data=(data.x_train[:512], data.y_train[:512]))
        before = accuracy(small)
        compiled(small, 5e-4).fit(data.x_train, data.y_train, epochs=args.finetune, batch_size=32, verbose=0)
        params = small.count_params()
        rows.append((task, "channels (taylor)", f"{ratio:.0%}", params, before, accuracy(small)))
        # unstructured pruning to the same number of non-zero parameters (kernels only are pruned)
        sparsity = (dense.count_params() - params) / kernels
        keras.utils.set_random_seed(seed)
        sparse = compiled(digits_cnn(width=args.width), 5e-4)
        sparse.set_weights(dense.get_weights())
        sparse.fit(data.x_train, data.y_train, epochs=args.finetune, batch_size=32, verbose=0,
                   callbacks=[edgeopt.Pruning(edgeopt.ConstantSparsity(sparsity), frequency=steps)])
        nonzero = dense.count_params() - int(round(edgeopt.sparsity_report(sparse).sparsity * kernels))
        rows.append((task, f"unstructured {sparsity:.0%}", f"{ratio:.0%}", nonzero, float("nan"), accuracy(sparse)))
        print(f"{task} seed {seed}: {ratio:.0%} done", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs-per-round", type=int, default=10)
    parser.add_argument("--calibration", type=int, default=16, help="int8 calibration samples (random)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of the dense digits CNN")
    parser.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs after pruning")
    parser.add_argument("--width", type=int, default=32, help="digits_cnn width")
    parser.add_argument("--skip-mobilenet", action="store_true")
    parser.add_argument("--skip-sparse", action="store_true")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the accuracy table (mean and spread)")
    args = parser.parse_args()

    import edgeopt

    with tempfile.TemporaryDirectory() as out:
        if not args.skip_mobilenet:
            mobilenet_table(args, out)
        if not args.skip_sparse:
            sparse_table(args, out)
    import numpy as np

    digits = edgeopt.load_digits_splits()
    tasks = {"digits": digits, "digits+noise": harder_digits(digits)}
    results: dict[tuple, list] = {}
    for seed in range(args.seeds):
        for task, data in tasks.items():
            for task_name, method, ratio, params, before, after in accuracy_table(args, task, data, seed):
                results.setdefault((task_name, method.split(" ")[0] if method.startswith("unstructured") else method,
                                    ratio), []).append((params, before, after))
    print(f"\nDigits CNN (digits_cnn(width={args.width})), dense trained {args.epochs} epochs, each pruned model "
          f"fine-tuned {args.finetune} epochs; test accuracy on {len(digits.x_test)} digits, "
          f"{args.seeds} seeds: mean ± std")
    print(f"  {'task':<14} {'method':<20} {'ratio':>6} {'params':>9} {'acc before FT':>16} {'acc after FT':>16}")
    for (task, method, ratio), runs in results.items():
        params = int(np.mean([r[0] for r in runs]))
        before = [r[1] for r in runs if r[1] == r[1]]
        after = [r[2] for r in runs]
        before_text = f"{100 * np.mean(before):.2f} ± {100 * np.std(before):.2f}" if before else "-"
        print(f"  {task:<14} {method:<20} {ratio:>6} {params:>9,} {before_text:>16} "
              f"{100 * np.mean(after):>8.2f} ± {100 * np.std(after):.2f}")


if __name__ == "__main__":
    main()
