"""`run_recipe`: train, compress, export, benchmark and report, stage by stage.

Layout of a run directory:

    manifest.json               recipe as resolved, versions, every stage with hashes and timings
    .edgeopt.lock               held (an OS file lock) by the run using the directory
    train/model.keras           the trained base model
    <variant>/model.keras       the variant after its steps (model.h5 for tfmot QAT models)
    <variant>/*.tflite, export_report.json, bench.json
    report.md, report.html, pareto.png
"""

from __future__ import annotations

import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edgeopt import _keras
from edgeopt._files import atomic_write_json, ensure_writable_dir
from edgeopt.errors import ConfigError, ConversionError, EdgeoptError
from edgeopt.pipeline import techniques
from edgeopt.pipeline.layout import recipe_name_problem, variant_name_problem
from edgeopt.pipeline.lock import RunLock
from edgeopt.pipeline.manifest import Manifest, hash_inputs
from edgeopt.pipeline.recipe import Recipe, check_device_names, load_recipe

Progress = Callable[[str], None]


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict
    failed: list[str]
    skipped: list[str]

    @property
    def ok(self) -> bool:
        return not self.failed


def run_recipe(recipe: str | Path | Recipe, *, out_dir: str | Path | None = None, resume: str | Path | None = None,
               devices: Sequence[str] | None = None, variants: Sequence[str] | None = None,
               progress: Progress | None = None, unsafe: bool = False) -> RunResult:
    """Runs a recipe; see the module docstring for what it writes.

    Args:
        recipe: a recipe path or a parsed `Recipe`.
        out_dir: the run directory. Defaults to `runs/<recipe>-<timestamp>`.
        resume: an earlier run directory: stages whose inputs are unchanged are skipped.
        devices: device profiles that replace the recipe's `bench.devices`.
        variants: run only these variants.
        progress: called with one line per step.
        unsafe: allow model files that hold Python code (Lambda layers): the recipe's
            `model.path` and the models the run saves itself. Only for files you trust.
            Defaults to `False`.
    """
    say = progress or (lambda line: None)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    _check_names(recipe)  # a Recipe built in Python skipped load_recipe's checks
    if devices:
        check_device_names(devices, "--device")
        if recipe.bench is None:
            raise ConfigError(f"--device needs a bench section in the recipe. Received: {recipe.path!r} has none. "
                              "Add bench: {devices: [local]}.")
        recipe.bench = dict(recipe.bench, devices=list(devices))
    if variants:
        unknown = sorted(set(variants) - {v["name"] for v in recipe.variants})
        if unknown:
            raise ConfigError(f"No such variants in {recipe.path or 'the recipe'}. Received: {unknown}. "
                              f"Variants: {[v['name'] for v in recipe.variants]}.")
        recipe.variants = [v for v in recipe.variants if v["name"] in variants]
    recipe.variants = techniques.scratch_twins(recipe.variants)  # every distilled student gets a scratch row
    if resume is not None and not Path(resume).is_dir():
        raise ConfigError(f"Nothing to resume: no such run directory. Received: {str(resume)!r}. "
                          "Pass the directory of an earlier `edgeopt run`.")
    run_dir = Path(resume or out_dir or Path("runs") / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    ensure_writable_dir(run_dir, what="run directory")
    with RunLock(run_dir):  # a second run into the same directory stops here, before it writes anything
        manifest = Manifest.open(run_dir, recipe.to_dict(), recipe.path, resume=resume is not None)
        runner = _Runner(recipe, manifest, say, unsafe=unsafe)
        try:
            runner.run()
        except KeyboardInterrupt:
            manifest.finish("interrupted")
            raise
        manifest.finish("failed" if runner.failed else "done")
        from edgeopt.pipeline.report import write_report

        write_report(run_dir)
    say(f"report: {run_dir / 'report.md'}")
    return RunResult(run_dir, manifest.data, runner.failed, runner.skipped)


class _Runner:
    def __init__(self, recipe: Recipe, manifest: Manifest, say: Progress, *, unsafe: bool = False):
        self.recipe, self.manifest, self.say, self.unsafe = recipe, manifest, say, unsafe
        self.dir = manifest.run_dir
        self.failed: list[str] = []
        self.skipped: list[str] = []
        self._data = None
        self._data_loaded = False

    @property
    def data(self):
        if not self._data_loaded:
            self._data = techniques.load_data(self.recipe.data)
            self._data_loaded = True
        return self._data

    def stage(self, key: str, input_hash: str, work: Callable[[], tuple[list[Path], dict | None]], *,
              needs: str | None = None) -> bool:
        """Runs `work` unless the manifest shows it done with the same inputs (and a `needs` file)."""
        if self.manifest.is_done(key, input_hash, needs=needs):
            self.skipped.append(key)
            self.say(f"[{key}] unchanged, skipped")
            return True
        self.say(f"[{key}] started")
        started = time.perf_counter()
        try:
            outputs, info = work()
        except KeyboardInterrupt:
            self.manifest.record(key, input_hash=input_hash, status="interrupted", seconds=time.perf_counter() - started)
            raise
        except Exception as exc:  # a failing variant must not lose the others
            error = str(exc) if isinstance(exc, EdgeoptError) else f"{type(exc).__name__}: {exc}"
            detail = None if isinstance(exc, EdgeoptError) else {"traceback": traceback.format_exc()[-4000:]}
            self.manifest.record(key, input_hash=input_hash, status="failed", seconds=time.perf_counter() - started,
                                 error=error, info=detail)
            self.failed.append(key)
            self.say(f"[{key}] FAILED after {time.perf_counter() - started:.1f} s: {error}")
            return False
        seconds = time.perf_counter() - started
        self.manifest.record(key, input_hash=input_hash, status="done", seconds=seconds, outputs=outputs, info=info)
        self.say(f"[{key}] done in {seconds:.1f} s")
        return True

    def run(self) -> None:
        base_hash = self.recipe.section_hash("model", "data", "train")
        if not self.stage("train", base_hash, self._train, needs="model"):
            return
        for variant in self.recipe.variants:
            self._variant(variant)

    def model_file(self, key: str) -> tuple[Path, str]:
        """The model a finished stage saved, and its sha256."""
        rel, digest = next((k, v) for k, v in self.manifest.output_hashes(key).items() if Path(k).stem == "model")
        return self.dir / rel, digest

    def _train(self):
        techniques.seed_everything(self.recipe.train["seed"] if self.recipe.train else 0)
        model = techniques.build_model(self.recipe.model, unsafe=self.unsafe)
        if self.recipe.train:
            techniques.fit(model, self.data, self.recipe.train, self.recipe.train["epochs"], "  train", self.say)
        path = _save(model, self.dir / "train")
        return [path], {"params": int(model.count_params()), "flavour": str(_keras.flavour_of(model))}

    def _variant(self, variant: dict) -> None:
        name = variant["name"]
        vdir = self.dir / name
        base_path, base_sha = self.model_file("train")
        if not self.stage(f"variant:{name}", hash_inputs(variant["steps"], base_sha, self.recipe.train),
                          lambda: self._apply(variant, base_path, vdir), needs="model"):
            return
        if self.recipe.export is None:
            return
        precisions = variant.get("precisions", self.recipe.export["precisions"])
        model_path, model_sha = self.model_file(f"variant:{name}")
        export_hash = hash_inputs(self.recipe.export, precisions, model_sha, self.recipe.data)
        if not self.stage(f"export:{name}", export_hash, lambda: self._export(model_path, vdir, precisions)):
            return
        # A precision the converter could not make fails the run (exit 1), though the
        # stage is done: the other files are reported and benchmarked.
        info = self.manifest.stages[f"export:{name}"].get("info") or {}
        self.failed += [f"export:{name}:{precision}" for precision in info.get("failed", [])]
        if self.recipe.bench is None:
            return
        files = {k: v for k, v in self.manifest.output_hashes(f"export:{name}").items() if k.endswith(".tflite")}
        if not files:
            return
        from edgeopt.bench.profiles import load_profile

        profiles = [load_profile(d).to_dict() for d in self.recipe.bench["devices"]]
        self.stage(f"bench:{name}", hash_inputs(self.recipe.bench, profiles, files),
                   lambda: self._bench([self.dir / rel for rel in sorted(files)], vdir))

    def _apply(self, variant: dict, base_path: Path, vdir: Path):
        vdir.mkdir(parents=True, exist_ok=True)
        for stale in vdir.glob("model.*"):
            stale.unlink()
        if not variant["steps"]:
            model_path = vdir / base_path.name
            shutil.copyfile(base_path, model_path)
            return [model_path], None
        techniques.seed_everything(self.recipe.train["seed"])
        model = _keras.load_model(base_path, unsafe=self.unsafe)
        state: dict = {}
        for step in variant["steps"]:
            ((kind, settings),) = step.items()
            self.say(f"  {variant['name']}: {kind}")
            model = techniques.apply_step(kind, settings, model, self.data, self.recipe.train, self.say, state)
        return [_save(model, vdir)], {"params": int(model.count_params())}

    def _export(self, model_path: Path, vdir: Path, precisions: list[str]):
        from edgeopt.convert.exporter import REPORT_NAME, export_tflite

        model = _keras.load_model(model_path, unsafe=self.unsafe)
        export = self.recipe.export
        calibration, evaluation = self._export_data(model)
        for stale in vdir.glob("model.*.tflite*"):  # rejected files of an earlier run too
            stale.unlink()
        try:
            report = export_tflite(model, precisions, output_dir=vdir, name="model", calibration_data=calibration,
                                   eval_data=evaluation, calibration_samples=export["calibration_samples"],
                                   io_dtype=export["io_dtype"], max_accuracy_drop=export["max_accuracy_drop"],
                                   select_tf_ops=export["select_tf_ops"], timeout_s=export["timeout_s"],
                                   progress=lambda line: self.say(f"  {line}"))
        except ConversionError as exc:
            # Rejected (AccuracyGateError) or failed precisions: the others' files are kept,
            # reported and benchmarked; only an export that produced nothing fails the stage.
            if exc.report is None or not any(e.status == "ok" for e in exc.report.entries):
                raise
            report = exc.report
            self.say(f"  {exc}")
        outputs = [Path(e.path) for e in report.entries if e.path and e.status == "ok"]
        info = {status: [e.precision for e in report.entries if e.status == status] for status in ("rejected", "failed")}
        return outputs + [vdir / REPORT_NAME], info

    def _export_data(self, model):
        if self.data is not None:
            evaluation = (self.data.x_test, self.data.y_test) if self.data.x_test is not None else None
            return self.data.x_train, evaluation
        # Architecture-only recipe: random calibration inputs; latency figures only.
        shape = [d if d is not None else 1 for d in model.inputs[0].shape[1:]]
        rng = np.random.default_rng(0)
        return rng.standard_normal((self.recipe.export["calibration_samples"], *shape)).astype("float32"), None

    def _bench(self, files: list[Path], vdir: Path):
        from edgeopt.bench.harness import benchmark

        settings = {k: v for k, v in self.recipe.bench.items() if k != "devices"}  # bench's own arguments
        results = benchmark(files, self.recipe.bench["devices"], **settings, progress=lambda line: self.say(f"  {line}"))
        for r in results:
            r.model = str(Path(r.model).relative_to(self.dir))
        path = vdir / "bench.json"
        atomic_write_json(path, [r.to_dict() for r in results])
        failed = [f"{r.device}: {r.error}" for r in results if not r.ok]
        if failed:
            raise EdgeoptError(f"{len(failed)} benchmark job(s) failed (results kept in {path}): " + "; ".join(failed))
        return [path], None


def _check_names(recipe: Recipe) -> None:
    """The recipe's and variants' names become paths: refuse any that would leave the run directory."""
    problems = [(f"name {recipe.name!r}", recipe_name_problem(recipe.name))]
    problems += [(f"variant name {v.get('name')!r}", variant_name_problem(v.get("name"))) for v in recipe.variants]
    for what, problem in problems:
        if problem:
            raise ConfigError(f"The recipe's {what} {problem}. Received: {what}. Rename it.")


def _save(model, directory: Path) -> Path:
    """Saves `directory/model.keras` (or `model.h5` for a tfmot QAT model, whose
    `.keras` files do not load back) through a temporary name."""
    from edgeopt.qat.api import is_quantization_aware

    directory.mkdir(parents=True, exist_ok=True)
    qat = _keras.flavour_of(model) is _keras.Flavour.TF_KERAS and is_quantization_aware(model)
    suffix = ".h5" if qat else ".keras"
    path, tmp = directory / f"model{suffix}", directory / f".model.tmp{suffix}"
    model.save(tmp)
    tmp.replace(path)
    return path


