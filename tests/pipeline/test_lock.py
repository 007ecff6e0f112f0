"""One `edgeopt run` per run directory (an OS file lock), and run directories whose
JSON files are truncated, hand-edited or hostile: one error line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from edgeopt._files import sha256_file
from edgeopt.cli import cli
from edgeopt.errors import ConfigError
from edgeopt.pipeline.compare import compare_runs
from edgeopt.pipeline.lock import RunLock
from edgeopt.pipeline.manifest import Manifest
from edgeopt.pipeline.readers import load_manifest
from edgeopt.pipeline.report import collect_rows, write_report
from edgeopt.pipeline.run import run_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPE = """
name: locked
model: {{builder: edgeopt.models:digits_cnn, kwargs: {{width: 4}}}}
data: {{source: loader, loader: tests.pipeline.blocking_data:load, kwargs: {{release: {release}}}}}
train: {{epochs: 1, batch_size: 64}}
variants: [{{name: baseline}}]
export: {{precisions: [float32], calibration_samples: 20}}
"""


def child_env() -> dict:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""), "TF_CPP_MIN_LOG_LEVEL": "2"}


def edgeopt_run(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "edgeopt.cli", "run", *map(str, args), "-q"], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_second_concurrent_run_into_one_dir_is_refused(tmp_path):
    release = tmp_path / "release"
    slow, fast = tmp_path / "slow.yaml", tmp_path / "fast.yaml"
    slow.write_text(RECIPE.format(release=json.dumps(str(release))))
    fast.write_text(RECIPE.format(release=json.dumps(str(slow))))  # exists already: no wait
    out = tmp_path / "out"
    first = edgeopt_run(slow, "--out", out, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (out / "manifest.json").is_file():  # written once the first run holds the lock
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.1)
        second = edgeopt_run(fast, "--out", out, cwd=tmp_path)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Another edgeopt run is using this run directory" in lines[0], err
        assert f"pid {first.pid}" in lines[0] and "--out" in lines[0] and "Traceback" not in err
    finally:
        release.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["recipe"]["name"] == "locked"
    outputs = {rel: digest for stage in manifest["stages"].values() for rel, digest in stage["outputs"].items()}
    assert "baseline/model.float32.tflite" in outputs
    for rel, digest in outputs.items():
        assert sha256_file(out / rel) == digest, rel
    with RunLock(out):  # released when the run ended
        pass


def test_locked_directory_refused_before_anything_is_written(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(release=json.dumps(str(recipe))))
    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out):
        started = time.perf_counter()
        with pytest.raises(ConfigError, match=r"Another edgeopt run is using this run directory \(pid \d+"):
            run_recipe(recipe, out_dir=out)
        assert time.perf_counter() - started < 5
        result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(out)])
        assert result.exit_code == 1 and "Another edgeopt run" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (out / "manifest.json").exists()
    with RunLock(out), pytest.raises(ConfigError):  # a lock is exclusive within one process too
        with RunLock(out):
            pass


def test_lock_is_released_when_the_run_fails(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError, match="Nothing to resume"):
        run_recipe(_tiny_recipe(tmp_path), resume=out)
    with RunLock(out):
        pass


def _tiny_recipe(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nmodel: {builder: edgeopt.models:digits_cnn, kwargs: {width: 2}}\n")
    return path


def _run_dir(tmp_path, content: str | bytes) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    (run / "manifest.json").write_bytes(data)
    return run


GOOD = json.dumps({"recipe": {"name": "r", "variants": [{"name": "baseline", "steps": []}]}, "status": "done",
                   "updated": "now", "stages": {"train": {"status": "done", "input_hash": "x", "seconds": 1.0,
                                                          "outputs": {"train/model.keras": "ab"}}}})
BAD = {
    "truncated": GOOD[: len(GOOD) // 2],
    "list": "[1, 2, 3]",
    "empty": "",
    "not-utf8": b"\xff\xfe{",
    "deep": "[" * 100000,
    "no-stages": json.dumps({"recipe": {"name": "r", "variants": []}, "status": "done"}),
    "variant-escapes": GOOD.replace('"baseline"', '"../../etc"'),
    "output-escapes": GOOD.replace("train/model.keras", "/etc/passwd"),
    "nan-seconds": GOOD.replace("1.0", "NaN"),
}


@pytest.mark.parametrize("content", BAD.values(), ids=BAD.keys())
def test_broken_manifest_is_one_line_in_report_compare_and_resume(tmp_path, content):
    run = _run_dir(tmp_path, content)
    recipe = _tiny_recipe(tmp_path)
    for args in (["report", str(run)], ["compare", str(run), str(run)], ["run", str(recipe), "--resume", str(run)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert len(result.stderr.strip().splitlines()) == 1 and "manifest.json" in result.stderr, result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_good_manifest_still_reads(tmp_path):
    run = _run_dir(tmp_path, GOOD)
    assert load_manifest(run)["stages"]["train"]["status"] == "done"
    assert write_report(run) == [] and (run / "report.md").is_file()


@pytest.mark.parametrize("name, content", [
    ("export_report.json", "{\"entries\": [{\"precision\": 1}]}"),
    ("export_report.json", "{\"entries\": "),
    ("bench.json", "{\"model\": 1}"),
])
def test_broken_variant_files_are_one_line_in_report(tmp_path, name, content):
    run = _run_dir(tmp_path, GOOD)
    (run / "baseline").mkdir()
    export = {"entries": [{"precision": "float32", "status": "ok", "path": "x/model.float32.tflite",
                           "size_bytes": 10, "gzip_size_bytes": 8, "validation": {"accuracy": 0.9}}]}
    (run / "baseline" / "export_report.json").write_text(json.dumps(export))
    (run / "baseline" / name).write_text(content)
    result = CliRunner().invoke(cli, ["report", str(run)])
    assert result.exit_code == 1 and name in result.stderr and len(result.stderr.strip().splitlines()) == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=30)
KEYS = st.sampled_from(["recipe", "name", "variants", "stages", "status", "updated", "outputs", "seconds", "input_hash",
                        "error", "info", "baseline", "train", "train/model.keras", "../x", "/etc/passwd"])
SHAPED = st.recursive(JSON, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
                      max_leaves=40)


def _exercise(run: Path) -> None:
    for call in (lambda: load_manifest(run), lambda: collect_rows(run), lambda: write_report(run),
                 lambda: compare_runs(run, run),
                 lambda: Manifest.open(run, {"name": "r", "variants": []}, None, resume=True)):
        try:
            call()
        except ConfigError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(SHAPED.map(json.dumps),
                 st.builds(lambda cut: GOOD[:cut], st.integers(0, len(GOOD))),
                 st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_any_manifest_content_is_handled(tmp_path, content):
    run = tmp_path / "h"
    run.mkdir(exist_ok=True)
    (run / "manifest.json").write_text(content, encoding="utf-8", errors="surrogateescape")
    _exercise(run)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["status", "input_hash", "seconds", "outputs", "error", "info"]), SHAPED),
       SHAPED, SHAPED)
def test_any_manifest_near_a_good_one_is_handled(tmp_path, stage, variant, status):
    data = json.loads(GOOD)
    data["stages"]["train"].update(stage)
    data["recipe"]["variants"].append(variant)
    data["status"] = status
    run = tmp_path / "h2"
    run.mkdir(exist_ok=True)
    (run / "manifest.json").write_text(json.dumps(data))
    _exercise(run)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["export_report.json", "bench.json"]), st.one_of(
    SHAPED, st.fixed_dictionaries({"entries": st.lists(st.dictionaries(st.sampled_from(
        ["precision", "status", "path", "size_bytes", "gzip_size_bytes", "validation"]), SHAPED), max_size=3)}),
    st.lists(st.dictionaries(st.sampled_from(["model", "status", "device", "p50_ms", "p90_ms"]), SHAPED), max_size=3)))
def test_any_variant_file_content_is_handled(tmp_path, name, content):
    run = tmp_path / "h3"
    (run / "baseline").mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").write_text(GOOD)
    export = {"entries": [{"precision": "float32", "status": "ok", "path": "x/model.float32.tflite",
                           "size_bytes": 10, "gzip_size_bytes": 8, "validation": {"accuracy": 0.9}}]}
    (run / "baseline" / "export_report.json").write_text(json.dumps(export))
    (run / "baseline" / "bench.json").write_text("[]")
    (run / "baseline" / name).write_text(json.dumps(content))
    _exercise(run)
