"""The public API: every name resolves, and no public name is also a module's name.

A package attribute named like one of its submodules is replaced by that module as
soon as anything imports the submodule (`edgeopt.bench` the function vs
`edgeopt/bench/`), so the API would depend on import order. Checked in a fresh
interpreter after importing every module, the order in which it breaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import edgeopt

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import importlib, json, pkgutil, sys, types
import edgeopt

modules = sorted(m.name for m in pkgutil.walk_packages(edgeopt.__path__, "edgeopt.")
                 if not m.name.rsplit(".", 1)[-1] == "__main__")
for name in modules:
    importlib.import_module(name)
report = {"modules": modules, "shadowed": [], "all_collisions": [], "unresolved": [], "public": {}}
for package in ["edgeopt"] + [m for m in modules if hasattr(sys.modules[m], "__path__")]:
    pkg = sys.modules[package]
    children = {m.rsplit(".", 1)[-1] for m in modules if m.rsplit(".", 1)[0] == package}
    for child in sorted(children):
        if getattr(pkg, child, None) is not sys.modules[f"{package}.{child}"]:
            report["shadowed"].append(f"{package}.{child}")
    for name in getattr(pkg, "__all__", []):
        if name in children:
            report["all_collisions"].append(f"{package}.{name}")
        try:
            getattr(pkg, name)
        except AttributeError:
            report["unresolved"].append(f"{package}.{name}")
for name in edgeopt.__all__:
    value = getattr(edgeopt, name, None)
    report["public"][name] = "module" if isinstance(value, types.ModuleType) else type(value).__name__
print(json.dumps(report))
"""


def _probe() -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_no_public_name_is_a_module_name_after_importing_everything():
    report = _probe()
    assert "edgeopt.bench.harness" in report["modules"] and "edgeopt.pruning.callback" in report["modules"]
    assert report["shadowed"] == []  # a package attribute hides one of its submodules
    assert report["all_collisions"] == []  # a name in some __all__ is also a submodule's name
    assert report["unresolved"] == []
    assert not [name for name, kind in report["public"].items() if kind == "module"]
    assert report["public"]["benchmark"] == "function" and report["public"]["measure_latency"] == "function"


def test_every_public_name_resolves_here_too():
    for name in edgeopt.__all__:
        assert getattr(edgeopt, name) is not None, name
    assert "bench" not in edgeopt.__all__ and "benchmark" in edgeopt.__all__
    assert set(edgeopt.__all__) <= set(dir(edgeopt))
