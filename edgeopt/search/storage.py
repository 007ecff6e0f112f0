"""Where a study lives, and how workers share it without losing or repeating a trial.

Embedded by default: an SQLite file in the search directory (`study.db`). With
`--storage postgresql://user@host/db` many machines share one study. Either way it is
Optuna's `RDBStorage`, with heartbeats, so a trial whose worker died is marked FAIL.

`--trials N` is the study's total. Optuna's own `MaxTrialsCallback` checks the count
after a trial ends, so parallel workers overshoot it; here each worker holds
`ClaimLock` while it counts the trials and asks for a new one. The lock is a file
lock beside the SQLite file (every worker of an SQLite study is on one machine), or a
PostgreSQL advisory lock on the study's name; the kernel or the server drops either
when its process dies.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from edgeopt.errors import ConfigError, EdgeoptError, MissingDependencyError

STUDY_DB = "study.db"
HEARTBEAT_S = 30  # a running trial says it is alive this often
GRACE_S = 300  # and is failed when silent this long (a worker that died)
_CLAIM_TIMEOUT_S = 300.0
_FIX = ("Pass sqlite:///path/study.db or postgresql://user@host:port/db "
        "(PostgreSQL needs: pip install psycopg2-binary).")


def default_url(out_dir: str | os.PathLike) -> str:
    """The embedded study: `sqlite:////abs/path/<out_dir>/study.db`."""
    return f"sqlite:///{(Path(out_dir) / STUDY_DB).resolve()}"


def _url(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise ConfigError(f"--storage is not a database URL. Received: {url!r}. {_FIX}") from None


def display_url(url: str) -> str:
    """`url` without its password, for messages and reports."""
    try:
        return _url(url).render_as_string(hide_password=True)
    except ConfigError:
        return "<not a URL>"


def resolve_url(url: str) -> str:
    """`url` with a PostgreSQL driver that is installed: a plain `postgresql://` means
    psycopg (3) to SQLAlchemy 2.1 but psycopg2 to 2.0, and the dev extra installs
    psycopg2-binary, so the driver is picked here (psycopg, else psycopg2)."""
    import importlib.util

    parsed = _url(url)
    if parsed.drivername == "postgresql":
        for module, driver in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
            if importlib.util.find_spec(module) is not None:
                return parsed.set(drivername=driver).render_as_string(hide_password=False)
    return url


def backend_of(url: str) -> str:
    """`"sqlite"` or `"postgresql"`, its driver importable; any other storage is refused with the fix.

    Raises:
        ConfigError: not a URL, another database, an unknown driver, in-memory SQLite.
        MissingDependencyError: the driver is known but not installed (psycopg2).
    """
    from sqlalchemy.exc import NoSuchModuleError

    parsed = _url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"Unsupported --storage. Received: {display_url(url)!r}. {_FIX}")
    if backend == "sqlite" and (not parsed.database or parsed.database == ":memory:"):
        raise ConfigError(f"--storage needs an SQLite file, not an in-memory database. Received: "
                          f"{display_url(url)!r}. {_FIX}")
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ConfigError(f"--storage names an unknown database driver. Received: {display_url(url)!r}. "
                          f"{_FIX}") from None
    except ImportError as exc:
        package = {"psycopg": "'psycopg[binary]'"}.get(getattr(exc, "name", None), "psycopg2-binary")
        raise MissingDependencyError(f"The driver for {backend} is not installed. Received: {display_url(url)!r} "
                                     f"({exc}). Run: pip install {package}") from None
    return backend


def heartbeat_s(grace_s: float) -> float:
    """How often a running trial beats: ten beats per grace period, at most `HEARTBEAT_S` apart."""
    return min(HEARTBEAT_S, max(0.1, grace_s / 10))


def open_storage(url: str, *, grace_s: float = GRACE_S, attempts: int = 5) -> Any:
    """Optuna's `RDBStorage` for `url`, with heartbeats; retries briefly, since workers
    starting together race to create the tables. A trial silent for `grace_s` seconds is
    stale (`optuna.storages.fail_stale_trials` marks it FAIL).

    Raises:
        ConfigError: the database cannot be reached or is not a study storage.
        MissingDependencyError: the URL's database driver is not installed.
    """
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    backend = backend_of(url)
    if backend == "sqlite":
        Path(_url(url).database).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    problem = None
    for attempt in range(attempts):
        try:
            # Optuna takes whole seconds for both
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=max(1, int(heartbeat_s(grace_s))),
                                              grace_period=max(1, int(grace_s)))
        except (OperationalError, IntegrityError, ProgrammingError) as exc:  # unreachable, or a creation race
            problem = " ".join(str(exc.orig if exc.orig is not None else exc).split())[:300]
            time.sleep(0.2 * 2**attempt)
        except (RuntimeError, ValueError) as exc:  # Optuna: a schema of another version
            problem = " ".join(str(exc).split())[:300]
            break
    raise ConfigError(f"Cannot open the study storage. Received: {display_url(url)!r} ({problem}). "
                      "Check the URL, that the server runs and that the user may create tables.")


def _lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key for the study."""
    digest = hashlib.sha256(f"edgeopt-search:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ClaimLock:
    """Held while a worker counts the trials and claims a new one; blocks up to 5 minutes.

    Args:
        url: the study storage.
        study_name: the study (PostgreSQL locks are per study).
    """

    def __init__(self, url: str, study_name: str):
        self.url, self.study_name = url, study_name
        self.backend = backend_of(url)
        self._engine = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.backend == "sqlite":
            with _file_lock(Path(_url(self.url).database).with_suffix(".claim.lock")):
                yield
            return
        from sqlalchemy import text
        from sqlalchemy.pool import NullPool

        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self.url, poolclass=NullPool)
        key = _lock_key(self.study_name)
        with self._engine.connect() as connection:
            _wait(lambda: connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar(),
                  f"the study's advisory lock on {display_url(self.url)}")
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()


def _wait(try_once, what: str) -> None:
    deadline = time.monotonic() + _CLAIM_TIMEOUT_S
    delay = 0.01
    while not try_once():
        if time.monotonic() > deadline:
            raise EdgeoptError(f"Timed out after {_CLAIM_TIMEOUT_S:.0f} s waiting for {what}. Received: another "
                               "worker holds it. Check for a hung edgeopt search process.")
        time.sleep(delay)
        delay = min(0.2, delay * 2)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            def attempt():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    return False

            def release():
                fcntl.flock(fd, fcntl.LOCK_UN)
        except ImportError:  # Windows
            import msvcrt

            def attempt():
                try:
                    msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                    return True
                except OSError:
                    return False

            def release():
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        _wait(attempt, f"the claim lock {str(path)!r}")
        try:
            yield
        finally:
            release()
    finally:
        os.close(fd)


class Heartbeat:
    """Records a running trial's heartbeat every `heartbeat_s(grace_s)` seconds, in a thread.

    Optuna's `study.optimize` does this for its own trials; edgeopt asks for trials
    under `ClaimLock` (`study.ask`), so it beats itself. `trial_id` is the storage's id
    (Optuna's storage API is by id).
    """

    def __init__(self, storage: Any, trial_id: int, grace_s: float = GRACE_S):
        self.storage, self.trial_id, self.interval_s = storage, trial_id, heartbeat_s(grace_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edgeopt-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # a missed beat is not worth a failed trial
                self.storage.record_heartbeat(self.trial_id)

    def __enter__(self) -> "Heartbeat":
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
