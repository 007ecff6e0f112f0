"""Recipes: YAML files whose sections map one-to-one onto edgeopt's Python API.

Every section and key is checked before anything runs — unknown keys, bad values,
builders that do not import, techniques in an impossible order, missing device
profiles — and each error names the file, the key and the value.

    name: digits_cnn
    model: {builder: edgeopt.models:digits_cnn, kwargs: {flavour: tf_keras}}
    data: {source: digits}
    train: {epochs: 15, batch_size: 32, optimizer: adam, learning_rate: 0.001}
    variants:
      - name: baseline
      - name: pruned80
        steps:
          - pruning: {schedule: {polynomial_decay: {initial_sparsity: 0.0, final_sparsity: 0.8,
                                                    begin_step: 0, end_step: 200}},
                      frequency: 20, epochs: 8}
    export: {precisions: [float32, int8], calibration_samples: 200, max_accuracy_drop: 2.0}
    bench: {devices: [local], threads: 1, runs: 50, warmup: 5, min_secs: 1.0}

Section defaults are those of the public callables (`export_tflite`, `bench`), read
from their signatures, and values are checked by the same functions they use; each
step is the public callable of its name in `edgeopt.pipeline.steps.STEPS`, checked the
same way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeopt._callables import resolve_callable  # noqa: F401 - recipe users import it from here
from edgeopt._yaml import read_yaml
from edgeopt.errors import ConfigError
from edgeopt.pipeline._checks import check_call, check_keys as _check_keys, mapping as _mapping, model_spec
from edgeopt.pipeline._checks import path_string as _path_string, positive as _positive, where as _where
from edgeopt.pipeline.layout import recipe_name_problem, safe_recipe_name, variant_name_problem
from edgeopt.pipeline.sections import check_device_names  # noqa: F401 - part of this module's API
from edgeopt.pipeline.sections import parse_bench as _bench, parse_export as _export, precisions as _precisions
from edgeopt.pipeline.sections import parse_search as _search
from edgeopt.pipeline.steps import STEPS, parse_step

# What may not follow what: (earlier, later) -> why.
FORBIDDEN = {
    ("qat", "pruning"): "QAT fixes the quantization ranges; prune first, then QAT with preserve: sparsity",
    ("qat", "clustering"): "QAT fixes the quantization ranges; cluster first, then QAT with preserve: clusters",
    ("qat", "lowrank"): "factorizing a QAT model throws its learned ranges away; factorize first",
    ("qat", "distill"): "distill into a float student first, then QAT it",
    ("qat", "qat"): "a model is quantization-aware once",
    ("pruning", "lowrank"): "factorizing rewrites the kernels and loses the zeros; factorize first, then prune",
    ("clustering", "pruning"): "pruning after clustering breaks the shared values; prune first",
    ("clustering", "lowrank"): "factorizing loses the clusters; factorize first",
    ("pruning", "channel_pruning"): "removing channels rebuilds the layers and loses the pruned zeros; remove "
                                    "channels first, then prune what is left",
    ("clustering", "channel_pruning"): "removing channels after clustering breaks the shared values; remove "
                                       "channels first",
    ("qat", "channel_pruning"): "QAT fixes the quantization ranges; remove channels first, then QAT",
}
# train.optimizer -> the Keras optimizer class it names (in either Keras).
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
SECTIONS = {"name", "description", "model", "data", "train", "variants", "export", "bench", "search"}


@dataclass
class Recipe:
    """A parsed, validated recipe. `raw` holds the sections as written (defaults filled)."""

    name: str
    path: str | None
    description: str = ""
    model: dict = field(default_factory=dict)
    data: dict | None = None
    train: dict | None = None
    variants: list[dict] = field(default_factory=list)
    export: dict | None = None
    bench: dict | None = None
    search: dict | None = None  # `edgeopt search`'s settings (see edgeopt.search.settings)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("path")
        return data

    def section_hash(self, *names: str) -> str:
        blob = json.dumps({n: getattr(self, n) for n in names}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def variant(self, name: str) -> dict:
        return next(v for v in self.variants if v["name"] == name)


def load_recipe(path: str | Path, *, check_devices: bool = True) -> Recipe:
    """Reads and validates a recipe file; raises `ConfigError` naming file, key and value."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Recipe not found. Received: {str(path)!r}. Pass a .yaml recipe file.")
    return parse_recipe(read_yaml(path, "Recipe"), path=str(path), check_devices=check_devices)


def parse_recipe(data: Any, *, path: str | None = None, check_devices: bool = True) -> Recipe:
    data = _mapping(data, path, "<top>")
    _check_keys(data, SECTIONS, path, "<top>")
    if "name" in data:
        name = data["name"]
        problem = recipe_name_problem(name)
        if problem:  # it names the run directory, runs/<name>-<time>
            raise ConfigError(f"{_where(path, 'name')} {problem}. Received: {name!r}. "
                              "Use a plain name such as digits_cnn.")
    else:
        name = safe_recipe_name(Path(path).stem) if path else "recipe"
    recipe = Recipe(name=name, path=path, description=str(data.get("description", "")))
    recipe.model = model_spec(data.get("model"), path, "model")
    recipe.data = _data(data.get("data"), path) if "data" in data else None
    recipe.train = _train(data.get("train"), path) if "train" in data else None
    recipe.variants = _variants(data.get("variants"), path, recipe)
    recipe.export = _export(data.get("export"), path) if "export" in data else None
    recipe.bench = _bench(data.get("bench"), path, check_devices) if "bench" in data else None
    if "search" in data:
        if recipe.train is None or recipe.data is None:
            raise ConfigError(f"{_where(path, 'search')} fine-tunes and validates every trial, which needs the data "
                              "and train sections. Received: no train/data. Add data: {source: digits} and train: {}.")
        builder = resolve_callable(recipe.model["builder"], "model.builder") if recipe.model["builder"] else None
        recipe.search = _search(data.get("search"), path, check_devices, builder)
    if recipe.train and recipe.data is None:
        raise ConfigError(f"{_where(path, 'train')} needs a data section. Received: no 'data'. Add data: {{source: digits}}.")
    stepped = [v["name"] for v in recipe.variants if v["steps"]]
    if stepped and (recipe.train is None or recipe.data is None):
        raise ConfigError(f"{_where(path, 'variants')} {stepped} fine-tune the model, which needs the data and train "
                          "sections. Received: no train/data. Add them, or drop the steps.")
    if recipe.export and recipe.export["max_accuracy_drop"] is not None and recipe.data is None:
        raise ConfigError(f"{_where(path, 'export', 'max_accuracy_drop')} needs labelled test data. Received: no "
                          "'data' section. Add data: {source: digits}, or drop max_accuracy_drop.")
    if recipe.export and recipe.export["max_accuracy_drop"] is None:
        for variant in recipe.variants:  # a variant's own precisions, checked as the export section's are
            if "auto" in variant.get("precisions", ()):
                raise ConfigError(f"{_where(path, 'variants', variant['name'], 'precisions')}: precision auto needs "
                                  "an accuracy budget. Received: export.max_accuracy_drop=None. Add "
                                  "max_accuracy_drop: 1.0 to the export section.")
    if recipe.bench and not recipe.export:
        raise ConfigError(f"{_where(path, 'bench')} needs an export section. Received: no 'export'. "
                          "Add export: {precisions: [float32]}.")
    return recipe


def _data(data, path) -> dict:
    if data == "digits":
        data = {"source": "digits"}
    data = _mapping(data, path, "data")
    _check_keys(data, {"source", "train", "val", "test", "loader", "kwargs"}, path, "data")
    source = data.get("source", "loader" if "loader" in data else "npz" if "train" in data else None)
    kwargs = _mapping(data.get("kwargs"), path, "data", "kwargs")
    if source == "digits":
        from edgeopt.datasets import load_digits_splits

        check_call(load_digits_splits, kwargs, _where(path, "data", "kwargs"), "load_digits_splits")
        return {"source": "digits", "kwargs": kwargs}
    if source == "loader":
        loader = resolve_callable(data.get("loader"), _where(path, "data", "loader"))
        if not callable(loader):
            raise ConfigError(f"{_where(path, 'data', 'loader')} is not callable. Received: {data['loader']!r}.")
        check_call(loader, kwargs, _where(path, "data", "kwargs"), data["loader"])
        return {"source": "loader", "loader": data["loader"], "kwargs": kwargs}
    if source == "npz":
        for split in ("train", "test"):
            if split not in data:
                raise ConfigError(f"{_where(path, 'data', split)} is missing. Received: {sorted(data)}. "
                                  "Give .npz paths with arrays x and y for train and test (val optional).")
        for split in ("train", "val", "test"):
            if split in data and not Path(_path_string(data[split], path, "data", split)).is_file():
                raise ConfigError(f"{_where(path, 'data', split)}: file not found. Received: {data[split]!r}.")
        return {"source": "npz", **{s: data[s] for s in ("train", "val", "test") if s in data}}
    raise ConfigError(f"{_where(path, 'data', 'source')} is unknown. Received: {source!r}. "
                      "Use 'digits', 'npz' (with train/test paths) or 'loader' (package.module:function).")


def _train(train, path) -> dict:
    train = _mapping(train, path, "train")
    _check_keys(train, {"epochs", "batch_size", "optimizer", "learning_rate", "loss", "metrics", "seed"}, path, "train")
    out = {"epochs": 10, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001, "seed": 0,
           "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"], **train}
    _positive(out["epochs"], int, path, "train", "epochs")
    _positive(out["batch_size"], int, path, "train", "batch_size")
    _positive(out["learning_rate"], float, path, "train", "learning_rate")
    if not isinstance(out["seed"], int) or isinstance(out["seed"], bool) or not 0 <= out["seed"] < 2**32:
        raise ConfigError(f"{_where(path, 'train', 'seed')} must be an integer from 0 to 2**32 - 1. "
                          f"Received: {out['seed']!r}.")
    if not isinstance(out["loss"], str) or not out["loss"]:
        raise ConfigError(f"{_where(path, 'train', 'loss')} must be the name of a Keras loss. "
                          f"Received: {out['loss']!r}.")
    if not isinstance(out["metrics"], list) or not all(isinstance(m, str) and m for m in out["metrics"]):
        raise ConfigError(f"{_where(path, 'train', 'metrics')} must be a list of Keras metric names. "
                          f"Received: {out['metrics']!r}.")
    if not isinstance(out["optimizer"], str) or out["optimizer"] not in OPTIMIZERS:
        raise ConfigError(f"{_where(path, 'train', 'optimizer')} is unknown. Received: {out['optimizer']!r}. "
                          f"Use one of: {', '.join(OPTIMIZERS)}.")
    return out


def _variants(variants, path, recipe: Recipe) -> list[dict]:
    if variants is None:
        return [{"name": "baseline", "steps": []}]
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{_where(path, 'variants')} must be a non-empty list. Received: {variants!r}.")
    out, names = [], set()
    for i, variant in enumerate(variants):
        variant = _mapping(variant, path, "variants", i)
        _check_keys(variant, {"name", "steps", "precisions", "description"}, path, "variants", i)
        name = variant.get("name")
        problem = variant_name_problem(name)  # it names a directory of the run
        if problem:
            raise ConfigError(f"{_where(path, 'variants', i, 'name')} {problem}. Received: {name!r}.")
        if name.casefold() in names:  # one directory on case-insensitive file systems
            raise ConfigError(f"{_where(path, 'variants')} names {name!r} twice (names differing only in case "
                              f"count as one). Received: two variants {name!r}. Rename one.")
        names.add(name.casefold())
        steps = variant.get("steps") or []
        if not isinstance(steps, list):
            raise ConfigError(f"{_where(path, 'variants', name, 'steps')} must be a list. Received: {steps!r}.")
        parsed = [_step(step, path, name, j) for j, step in enumerate(steps)]
        kinds = [kind for kind, _ in parsed]
        for a in range(len(kinds)):
            for b in range(a + 1, len(kinds)):
                if (kinds[a], kinds[b]) in FORBIDDEN:
                    raise ConfigError(f"{_where(path, 'variants', name, 'steps')} puts {kinds[b]} after {kinds[a]}, "
                                      f"which cannot work: {FORBIDDEN[(kinds[a], kinds[b])]}. Received: {kinds}.")
        entry = {"name": name, "steps": [{k: v} for k, v in parsed]}
        if "precisions" in variant:
            entry["precisions"] = _precisions(variant["precisions"], path, "variants", name, "precisions")
        out.append(entry)
    return out


def _step(step, path, variant, index) -> tuple[str, dict]:
    step = _mapping(step, path, "variants", variant, "steps", index)
    if len(step) != 1:
        raise ConfigError(f"{_where(path, 'variants', variant, 'steps', index)} must name one technique. "
                          f"Received: {sorted(step, key=str)}. Use one of: {', '.join(STEPS)}.")
    ((kind, settings),) = step.items()
    if kind not in STEPS:
        raise ConfigError(f"Unknown technique in {_where(path, 'variants', variant, 'steps', index)}. "
                          f"Received: {kind!r}. Use one of: {', '.join(STEPS)}.")
    return kind, parse_step(kind, settings, path, variant)
