"""One trial: the sampled techniques applied through the recipe steps' own code, the
result exported with `export_tflite`, validated in LiteRT and timed on the device.

Every objective is measured, never estimated: accuracy is the export report's LiteRT
validation on the recipe's test split (as `edgeopt run` reports it), size is the
.tflite file's, latency the p50 `measure_latency` reports on the search's device.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgeopt._callback import FitCallback
from edgeopt._files import atomic_write_json
from edgeopt.errors import ConfigError
from edgeopt.search.settings import SearchSettings
from edgeopt.search.space import StepContext

Progress = Callable[[str], None]
# The study's objectives, all minimised, in this order.
OBJECTIVES = ("accuracy_drop_points", "size_kb", "p50_ms")
TRIALS_DIR = "trials"


class StopPoorTrial(FitCallback):
    """Stops a trial (raises `optuna.TrialPruned`) after a fine-tuning epoch in the second
    half of its step (the last one of a one-epoch step) whose validation accuracy is
    below `floor`: the first half may ramp sparsity up, or distil from scratch.

    Optuna's `trial.report` / `should_prune` refuse multi-objective studies
    (NotImplementedError), so its pruners cannot judge these trials; this is the
    threshold rule of its `ThresholdPruner`, on the one figure a budget bounds.

    Args:
        floor: the lowest acceptable validation accuracy (a fraction).
        label: the step, for the reason recorded.
    """

    def __init__(self, floor: float, label: str):
        super().__init__()
        self.floor, self.label = floor, label

    def on_epoch_end(self, epoch, logs=None):
        import optuna

        value = (logs or {}).get("val_accuracy")
        total = self.params.get("epochs") or epoch + 1
        if value is None or epoch + 1 <= total // 2:
            return
        if float(value) < self.floor:
            raise optuna.TrialPruned(f"stopped after {self.label} epoch {epoch + 1}/{total}: validation accuracy "
                                     f"{100 * float(value):.2f}% < {100 * self.floor:.2f}%")


@dataclass
class TrialInputs:
    """What every trial of a worker shares."""

    recipe: Any  # the parsed Recipe
    settings: SearchSettings
    device: str
    out_dir: Path
    base_model: Path
    baseline: dict
    data: Any  # techniques.Data
    unsafe: bool = False  # the recipe's model runs code as it loads (--unsafe)


class TrialRunner:
    """The Optuna objective: `runner(trial)` -> the measured `OBJECTIVES`.

    Records on the trial (user attributes): `params` (every sampled value), `pid`,
    `host`, `steps`, `metrics` and `tflite`, or `duplicate_of` when a finished trial had
    the same values (its results are reused: the pipeline is seeded, so it would only
    repeat them).
    """

    def __init__(self, inputs: TrialInputs, say: Progress):
        self.inputs, self.say = inputs, say
        recipe = inputs.recipe
        self.train = recipe.train
        self.seed = inputs.settings.seed if inputs.settings.seed is not None else recipe.train["seed"]
        steps_per_epoch = math.ceil(len(inputs.data.x_train) / recipe.train["batch_size"])
        self.context = StepContext(epochs=inputs.settings.epochs, distill_epochs=inputs.settings.distill_epochs,
                                   steps_per_epoch=steps_per_epoch, builder=recipe.model.get("builder"),
                                   base_kwargs=base_kwargs(recipe.model))

    def __call__(self, trial: Any) -> tuple[float, float, float]:
        settings = self.inputs.settings
        params = settings.space.suggest(trial)
        trial.set_user_attr("params", params)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        reused = self._duplicate(trial)
        if reused is not None:
            return reused
        steps = settings.space.steps(params, self.context)
        trial.set_user_attr("steps", [kind for kind, _, _ in steps])
        trial_dir = self.inputs.out_dir / TRIALS_DIR / f"{trial.number:04d}"
        if trial_dir.exists():  # a trial number is used once per study; this is another study's leftover
            shutil.rmtree(trial_dir)
        with warnings.catch_warnings(record=True) as caught:  # kept on the trial, not printed per trial
            warnings.simplefilter("always")
            try:
                model = self._fine_tune(steps)
                metrics, tflite = self._measure(model, params["precision"], trial_dir)
            finally:
                notes = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
                if notes:
                    trial.set_user_attr("warnings", [n[:500] for n in notes[:10]])
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("tflite", str(tflite.resolve()))
        atomic_write_json(trial_dir / "trial.json", {"number": trial.number, "params": params, "metrics": metrics})
        missing = [name for name in OBJECTIVES if metrics[name] is None]
        if missing:
            raise ConfigError(f"Trial {trial.number}: {', '.join(missing)} could not be measured. Received: "
                              f"{metrics}. A search needs a classifier (class scores out) and labelled test data.")
        self._constrain(trial, metrics)
        return tuple(float(metrics[name]) for name in OBJECTIVES)

    def _constrain(self, trial: Any, metrics: dict) -> None:
        """The budget as the trial's constraints (feasible when <= 0), where Optuna has `set_constraint`."""
        budget = self.inputs.settings.budget
        if hasattr(trial, "set_constraint"):
            for name, value in zip(budget.limits, budget.constraints(metrics)):
                trial.set_constraint(name, value)

    def _duplicate(self, trial: Any) -> tuple | None:
        import optuna
        from optuna.trial import TrialState

        for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if other.number == trial.number or other.params != trial.params:
                continue
            trial.set_user_attr("duplicate_of", other.number)
            if other.state == TrialState.PRUNED:
                trial.set_user_attr("stopped", other.user_attrs.get("stopped", "stopped early"))
                raise optuna.TrialPruned(f"same values as trial {other.number}, which stopped early")
            for key in ("steps", "metrics", "tflite"):
                if key in other.user_attrs:
                    trial.set_user_attr(key, other.user_attrs[key])
            self._constrain(trial, other.user_attrs.get("metrics") or {})
            return tuple(other.values)
        return None

    def _fine_tune(self, steps: list) -> Any:
        import edgeopt
        from edgeopt import _keras
        from edgeopt.pipeline import techniques

        techniques.seed_everything(self.seed)
        model = _keras.load_model(self.inputs.base_model, unsafe=self.inputs.unsafe)
        floor = self._floor()
        state: dict = {}
        quiet = lambda line: None  # noqa: E731 - one line per trial, not per epoch
        for kind, settings, keep in steps:
            callbacks = [StopPoorTrial(floor, kind)] if floor is not None else []
            if keep:  # a later pruning step keeps the zeros of the ones before
                callbacks.append(edgeopt.KeepSparsity(exclude=settings.get("include") or ()))
            model = techniques.apply_step(kind, settings, model, self.inputs.data, self.train, quiet, state,
                                          callbacks=callbacks)
        return model

    def _floor(self) -> float | None:
        settings, baseline = self.inputs.settings, self.inputs.baseline
        drop = settings.budget.max_accuracy_drop
        if drop is None or settings.stop_margin is None or baseline.get("val_accuracy") is None:
            return None
        return baseline["val_accuracy"] - (drop + settings.stop_margin) / 100

    def _measure(self, model: Any, precision: str, trial_dir: Path) -> tuple[dict, Path]:
        from edgeopt.bench.harness import measure_latency
        from edgeopt.convert.exporter import export_tflite

        data, recipe, budget = self.inputs.data, self.inputs.recipe, self.inputs.settings.budget
        export = recipe.export or {}
        started = time.perf_counter()
        report = export_tflite(model, [precision], output_dir=trial_dir, name="model", calibration_data=data.x_train,
                               eval_data=(data.x_test, data.y_test),
                               **{k: export[k] for k in ("calibration_samples", "io_dtype") if k in export},
                               **_auto_budget(precision, budget.max_accuracy_drop))
        entry = report.entries[0]
        bench = {k: v for k, v in (recipe.bench or {}).items() if k != "devices"}
        result = measure_latency(entry.path, self.inputs.device, **bench)
        atomic_write_json(trial_dir / "bench.json", [result.to_dict()])
        accuracy = (entry.validation or {}).get("accuracy")
        base = self.inputs.baseline["accuracy"]
        p50 = result.p50_ms if result.p50_ms is not None else result.mean_ms
        metrics = {
            "precision": entry.precision,
            "accuracy": accuracy,
            "accuracy_drop_points": None if accuracy is None or base is None else round(100 * (base - accuracy), 4),
            "size_bytes": entry.size_bytes,
            "gzip_size_bytes": entry.gzip_size_bytes,
            "size_kb": budget.size_kb(entry.size_bytes, entry.gzip_size_bytes),
            "size_measure": str(budget.size),
            "p50_ms": p50,
            "p90_ms": result.p90_ms,
            "device": result.device,
            "export_bench_seconds": round(time.perf_counter() - started, 2),
        }
        return metrics, Path(entry.path)


def base_kwargs(model_section: dict) -> dict:
    """The trained model's builder kwargs, its builder's defaults filled in."""
    import inspect

    kwargs = dict(model_section.get("kwargs") or {})
    if not model_section.get("builder"):
        return kwargs
    from edgeopt.pipeline.recipe import resolve_callable

    try:
        parameters = inspect.signature(resolve_callable(model_section["builder"], "model.builder")).parameters
    except (TypeError, ValueError):
        return kwargs
    defaults = {n: p.default for n, p in parameters.items() if p.default is not inspect.Parameter.empty}
    return {**defaults, **kwargs}


def _auto_budget(precision: str, max_accuracy_drop: float | None) -> dict:
    """`auto` chooses per op within an accuracy budget: the search's, else one point."""
    if precision != "auto":
        return {}
    return {"max_accuracy_drop": 1.0 if max_accuracy_drop is None else max_accuracy_drop}
