"""The trained model every trial starts from, and its measured figures: the reference
of the budget's accuracy drop.

`<search dir>/train/model.keras` is the recipe's model trained as `edgeopt run` trains
it; `<search dir>/baseline/` holds its float32 .tflite, validated in LiteRT and timed
on the search's device; `baseline.json` records both with the hashes of their inputs,
so a rerun reuses them when nothing they depend on changed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from edgeopt._files import atomic_write_json, sha256_file
from edgeopt.errors import ConfigError
from edgeopt.pipeline.manifest import hash_inputs

BASELINE = "baseline.json"
Progress = Callable[[str], None]


def _read(path: Path) -> dict:
    """The previous record, or `{}` when missing or not one edgeopt wrote (then it is redone)."""
    from edgeopt.pipeline.readers import read_json

    if not path.is_file():
        return {}
    try:
        data = read_json(path, BASELINE)
    except ConfigError:
        return {}
    ok = isinstance(data, dict) and isinstance(data.get("base_hash"), str) and isinstance(data.get("model_sha256"), str)
    return data if ok else {}


def prepare_baseline(recipe: Any, settings: Any, device: str, out_dir: Path, data: Any, say: Progress,
                     *, unsafe: bool = False) -> tuple[Path, dict]:
    """Trains (or reuses) the base model and measures (or reuses) its figures.

    Returns:
        `(model path, figures)`: figures hold `accuracy` (float32 .tflite, test split),
        `val_accuracy` (the Keras model, validation split, or None), `size_bytes`,
        `gzip_size_bytes`, `p50_ms` and `device`.
    """
    from edgeopt import _keras
    from edgeopt.pipeline import techniques

    record_path = out_dir / BASELINE
    record = _read(record_path)
    model_path = out_dir / "train" / "model.keras"
    base_hash = hash_inputs(recipe.model, recipe.data, recipe.train)
    model = None
    if (record.get("base_hash") == base_hash and model_path.is_file()
            and sha256_file(model_path) == record.get("model_sha256")):
        say(f"trained model: unchanged, reusing {model_path}")
    else:
        say(f"training the recipe's model ({recipe.train['epochs']} epochs)")
        techniques.seed_everything(recipe.train["seed"])
        model = techniques.build_model(recipe.model, unsafe=unsafe)
        techniques.fit(model, data, recipe.train, recipe.train["epochs"], "  train", lambda line: None)
        _save(model, model_path)
        record = {"base_hash": base_hash, "model_sha256": sha256_file(model_path)}
        atomic_write_json(record_path, record)
    if settings.space.layer_names():
        model = model or _keras.load_model(model_path, unsafe=unsafe)
        _check_layers(model, settings.space.layer_names())
    export = {k: (recipe.export or {}).get(k) for k in ("calibration_samples", "io_dtype")}
    bench = {k: v for k, v in (recipe.bench or {}).items() if k != "devices"}
    measure_hash = hash_inputs(record["model_sha256"], device, export, bench, recipe.data)
    figures = record.get("figures")
    if record.get("measure_hash") == measure_hash and isinstance(figures, dict) and _complete(figures):
        return model_path, figures
    model = model or _keras.load_model(model_path, unsafe=unsafe)
    figures = _measure(model, device, bench, out_dir / "baseline", data, say)
    record.update(measure_hash=measure_hash, figures=figures)
    atomic_write_json(record_path, record)
    return model_path, figures


def _complete(figures: dict) -> bool:
    return all(isinstance(figures.get(k), (int, float)) and math.isfinite(figures[k])
               for k in ("accuracy", "size_bytes", "gzip_size_bytes", "p50_ms"))


def _measure(model: Any, device: str, bench: dict, directory: Path, data: Any, say: Progress) -> dict:
    import numpy as np

    from edgeopt.bench.harness import measure_latency
    from edgeopt.convert.exporter import export_tflite

    say("exporting the trained model to float32 and timing it on " + device)
    report = export_tflite(model, ["float32"], output_dir=directory, name="model", eval_data=(data.x_test, data.y_test))
    entry = report.entries[0]
    accuracy = (entry.validation or {}).get("accuracy")
    if accuracy is None:
        raise ConfigError("A search needs the model's accuracy, and this model's could not be measured. Received: "
                          "outputs that are not class scores, or no labels in the test data. Search a classifier.")
    val_accuracy = None
    if data.x_val is not None and data.y_val is not None:
        predictions = np.asarray(model.predict(data.x_val, verbose=0))
        if predictions.ndim == 2 and predictions.shape[1] > 1:
            val_accuracy = float(np.mean(predictions.argmax(axis=1) == np.asarray(data.y_val).reshape(-1)))
    result = measure_latency(entry.path, device, **bench)
    p50 = result.p50_ms if result.p50_ms is not None else result.mean_ms
    figures = {"accuracy": accuracy, "val_accuracy": val_accuracy, "size_bytes": entry.size_bytes,
               "gzip_size_bytes": entry.gzip_size_bytes, "p50_ms": p50, "device": result.device}
    say(f"baseline: accuracy {100 * accuracy:.2f}%, {entry.gzip_size_bytes / 1024:.1f} KiB gzip, p50 {p50:.4f} ms "
        f"on {device}")
    return figures


def _check_layers(model: Any, names: list[str]) -> None:
    from edgeopt._layers import iter_layers, kernel_of

    layers = {layer.name: layer for layer in iter_layers(model)}
    with_kernels = sorted(name for name, layer in layers.items() if kernel_of(layer) is not None)
    for name in names:
        if name not in with_kernels:
            raise ConfigError(f"search.space.layer_sparsity names a layer the model has no prunable kernel in. "
                              f"Received: {name!r}. Layers with kernels: {', '.join(with_kernels)}.")


def _save(model: Any, path: Path) -> None:
    """`model.save` through a temporary name, so a stopped run leaves no half-written model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    tmp.replace(path)
