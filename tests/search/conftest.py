"""Search fixtures: a tiny search recipe, and a real PostgreSQL server on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

# Trials small enough for tests: 1 epoch, a width-4 CNN, float32 exports, 3 timed runs.
TINY = {
    "name": "tiny",
    "model": {"builder": "edgeopt.models:digits_cnn", "kwargs": {"width": 4}},
    "data": {"source": "digits"},
    "train": {"epochs": 1, "batch_size": 64},
    "export": {"precisions": ["float32"]},
    "bench": {"devices": ["local"], "runs": 3, "warmup": 1, "min_secs": 0.0},
    "search": {"space": {"sparsity": {"low": 0.0, "high": 0.6}, "precision": ["float32"]},
               "budget": {"max_accuracy_drop": 50.0}, "epochs": 1, "startup_trials": 2, "stop_margin": None},
}


def write_recipe(directory: Path, **changes) -> Path:
    """TINY with top-level or `search` keys replaced (`search={...}` merges into it)."""
    data = {**TINY, **{k: v for k, v in changes.items() if k != "search"}}
    data["search"] = {**TINY["search"], **changes.get("search", {})}
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """TINY's trained model and baseline figures, made once, for a search directory to
    start from (`seed_with`): a search reuses them as a rerun does."""
    from edgeopt.pipeline import techniques
    from edgeopt.pipeline.recipe import load_recipe
    from edgeopt.search.baseline import prepare_baseline
    from edgeopt.search.settings import SearchSettings

    root = tmp_path_factory.mktemp("tiny_base")
    recipe = load_recipe(write_recipe(root))
    prepare_baseline(recipe, SearchSettings(**recipe.search), "local", root, techniques.load_data(recipe.data),
                     lambda line: None)
    return root


def seed_with(base: Path, out: Path) -> Path:
    """`out` holding a copy of `base`'s trained model and baseline (never `base` itself)."""
    out.mkdir(parents=True)
    shutil.copytree(base / "train", out / "train")
    shutil.copytree(base / "baseline", out / "baseline")
    shutil.copy(base / "baseline.json", out / "baseline.json")
    return out


def _pg_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server (initdb in a temp dir, trust auth, 127.0.0.1 only,
    its unix socket in the temp dir); its SQLAlchemy URL. Run as `postgres` under root,
    since PostgreSQL refuses to run as root."""
    initdb, pg_ctl = _pg_program("initdb"), _pg_program("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed: no initdb on PATH or in /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql; .ci/run does)")
    pytest.importorskip("psycopg2", reason="pip install psycopg2-binary (the dev extra)")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="edgeopt-pg-"))
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the server as "
                        "(the postgresql package creates it)")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "edgeopt", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w",
                        "-t", "60", "start"], check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        log = (root / "server.log").read_text() if (root / "server.log").is_file() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.decode()[-2000:]} {log[-2000:]}") from None
    try:
        yield f"postgresql+psycopg2://edgeopt@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)
