"""`run_recipe` end to end on a reduced recipe: manifest, report rows, PNG, resume,
failure isolation, interruption; the architecture-only recipes run export + bench."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from edgeopt.cli import cli
from edgeopt.pipeline.recipe import load_recipe
from edgeopt.pipeline.run import run_recipe

ROOT = Path(__file__).resolve().parents[2]
SMALL = """
name: small
model: {builder: edgeopt.models:digits_cnn, kwargs: {width: 4}}
data: {source: digits}
train: {epochs: 2, batch_size: 64}
variants:
  - name: baseline
  - name: pruned
    steps:
      - pruning: {schedule: {constant_sparsity: {target_sparsity: 0.5}}, frequency: 5, epochs: 1}
  - name: broken
    steps:
      - distill: {student: {builder: edgeopt.models:digits_cnn, kwargs: {width: 2, num_classes: 5}}, epochs: 1}
export: {precisions: [float32, int8], calibration_samples: 50}
bench: {devices: [local], runs: 5, warmup: 1, min_secs: 0.0}
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One run of SMALL, shared by the module: read it, never change it (see `own_run`)."""
    root = tmp_path_factory.mktemp("run")
    recipe = root / "small.yaml"
    recipe.write_text(SMALL)
    lines = []
    result = run_recipe(recipe, out_dir=root / "out", progress=lines.append)
    return result, recipe, lines


@pytest.fixture
def own_run(small_run, tmp_path):
    """A private copy of the shared run, for a test that resumes, re-runs or edits it."""
    result, recipe, lines = small_run
    run_dir = tmp_path / "out"
    shutil.copytree(result.run_dir, run_dir)
    return dataclasses.replace(result, run_dir=run_dir), recipe, lines


def test_manifest_report_and_plot(small_run):
    result, _, lines = small_run
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    stages = manifest["stages"]
    # the broken student's from-scratch twin fails too (5 classes, 10 labels)
    assert manifest["status"] == "failed" and result.failed == ["variant:broken", "variant:broken-scratch"]
    assert "different output widths" in stages["variant:broken"]["error"]
    for key in ("train", "variant:baseline", "export:baseline", "bench:baseline", "variant:pruned",
                "export:pruned", "bench:pruned"):
        assert stages[key]["status"] == "done" and stages[key]["seconds"] >= 0, key
        for rel, digest in stages[key]["outputs"].items():
            assert (result.run_dir / rel).is_file() and len(digest) == 64
    assert manifest["recipe"]["name"] == "small" and manifest["versions"]["tensorflow"]
    rows = json.loads((result.run_dir / "report.json").read_text())
    assert {(r["variant"], r["precision"]) for r in rows} == {
        ("baseline", "float32"), ("baseline", "int8"), ("pruned", "float32"), ("pruned", "int8")}
    base = next(r for r in rows if r["variant"] == "baseline" and r["precision"] == "float32")
    assert base["accuracy_drop_points"] == 0.0 and base["compression"] == 1.0 and base["speedup"] == 1.0
    assert all(r["p50_ms"] > 0 and r["device"] == "local" for r in rows)
    assert any(r["pareto"] for r in rows)
    with Image.open(result.run_dir / "pareto.png") as image:
        image.verify()
        assert image.format == "PNG"
    html = (result.run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert "| pruned | int8 | local |" in (result.run_dir / "report.md").read_text()
    assert any("[train] done" in line for line in lines) and any("epoch 2/2" in line for line in lines)


def test_resume_skips_everything_unchanged(own_run):
    result, recipe, _ = own_run
    before = json.loads((result.run_dir / "manifest.json").read_text())["stages"]
    again = run_recipe(recipe, resume=result.run_dir)
    after = json.loads((result.run_dir / "manifest.json").read_text())["stages"]
    done = [k for k, v in before.items() if v["status"] == "done"]
    assert set(again.skipped) == set(done)
    for key in done:
        assert after[key]["finished"] == before[key]["finished"]
    assert again.failed == ["variant:broken", "variant:broken-scratch"]  # failed stages are retried, and fail again


def test_changed_settings_rerun_only_what_depends_on_them(own_run, tmp_path):
    result, recipe, _ = own_run
    changed = tmp_path / "small.yaml"
    changed.write_text(recipe.read_text().replace("runs: 5,", "runs: 6,"))
    again = run_recipe(changed, resume=result.run_dir, variants=["baseline"])
    assert "train" in again.skipped and "export:baseline" in again.skipped
    assert "bench:baseline" not in again.skipped and not again.failed


def test_interrupt_leaves_a_consistent_manifest(tmp_path):
    recipe = tmp_path / "small.yaml"
    recipe.write_text(SMALL.replace("  - name: broken\n", "").split("    steps:\n      - distill")[0]
                      + "export: {precisions: [float32]}\n")

    def interrupt(line):
        if line.startswith("[export:baseline] started"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out_dir=tmp_path / "out", progress=interrupt)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["stages"]["train"]["status"] == "done"
    finished = run_recipe(recipe, resume=tmp_path / "out")
    assert "train" in finished.skipped and finished.ok


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv2_vww96", "dscnn_kws"])
def test_architecture_only_recipes_export_and_bench(tmp_path, name):
    result = run_recipe(ROOT / "recipes" / f"{name}.yaml", out_dir=tmp_path / name)
    assert result.ok, result.failed
    rows = json.loads((result.run_dir / "report.json").read_text())
    precisions = load_recipe(ROOT / "recipes" / f"{name}.yaml").export["precisions"]
    assert {r["precision"] for r in rows} == set(precisions)
    assert all(r["p50_ms"] > 0 and r["accuracy"] is None for r in rows)
    int8 = next(r for r in rows if r["precision"] == "int8")
    assert int8["compression"] > 2


def test_cli_run_report_compare(own_run, tmp_path):
    result, recipe, _ = own_run
    out = CliRunner().invoke(cli, ["run", str(recipe), "--resume", str(result.run_dir), "--variants", "baseline",
                                   "--json", "-q"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["run_dir"] == str(result.run_dir) and "train" in data["skipped"]
    (result.run_dir / "report.md").unlink()
    out = CliRunner().invoke(cli, ["report", str(result.run_dir)])
    assert out.exit_code == 0 and (result.run_dir / "report.md").is_file()
    out = CliRunner().invoke(cli, ["compare", str(result.run_dir), str(result.run_dir), "--json"])
    diffs = json.loads(out.stdout)
    assert diffs and all(d["accuracy"]["delta"] in (0, None) for d in diffs)
    out = CliRunner().invoke(cli, ["compare", str(result.run_dir), str(tmp_path)])
    assert out.exit_code == 1 and "Not an edgeopt run directory" in out.stderr
    out = CliRunner().invoke(cli, ["run", str(recipe), "--variants", "nope", "--out", str(tmp_path / "x")])
    assert out.exit_code == 1 and "No such variants" in out.stderr


TINY_EXPORT = """
name: tiny_export
model: {builder: edgeopt.models:digits_cnn, kwargs: {width: 2}}
variants:
  - name: baseline
export: {precisions: [float32, int8, float16], calibration_samples: 8, timeout_s: 300}
bench: {devices: [local], runs: 3, warmup: 1, min_secs: 0.0}
"""


def test_a_failed_precision_keeps_the_others_and_fails_the_run(tmp_path, monkeypatch):
    """The converter dies on int8 (an injected SIGSEGV in the export child): float32 and
    float16 are still written, reported and benchmarked, and the run says int8 failed."""
    from edgeopt.convert._worker import CRASH_VARIABLE

    monkeypatch.setenv(CRASH_VARIABLE, "int8")
    recipe = tmp_path / "tiny_export.yaml"
    recipe.write_text(TINY_EXPORT)
    result = run_recipe(recipe, out_dir=tmp_path / "out")
    assert result.failed == ["export:baseline:int8"] and not result.ok
    rows = {r["precision"]: r for r in json.loads((result.run_dir / "report.json").read_text())}
    assert rows["int8"]["status"] == "failed" and rows["int8"]["p50_ms"] is None
    for precision in ("float32", "float16"):
        assert rows[precision]["status"] == "ok" and rows[precision]["p50_ms"] > 0
        assert (result.run_dir / "baseline" / f"model.{precision}.tflite").is_file()
    assert "int8 (failed)" in (result.run_dir / "report.md").read_text()


def test_export_timeout_and_select_tf_ops_are_recipe_keys(tmp_path):
    from edgeopt import ConfigError
    from edgeopt.pipeline.recipe import parse_recipe
    import yaml

    data = yaml.safe_load(TINY_EXPORT)
    assert parse_recipe(data).export["select_tf_ops"] is False
    assert parse_recipe(data).export["timeout_s"] == 300
    for key, bad in (("timeout_s", 0), ("timeout_s", "soon"), ("select_tf_ops", "yes")):
        data["export"] = {"precisions": ["float32"], key: bad}
        with pytest.raises(ConfigError, match=f"export.*{key}.*Received: {key}={bad!r}"):
            parse_recipe(data)
