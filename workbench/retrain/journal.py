"""The per-project retraining lock, which also journals the run, and undoing a run that failed.

Two retrains of one project never interleave: `data/locks/<project>.retrain.lock` is held with an
exclusive `flock` for the whole run, and a second run fails at once (or after `lock_timeout`
seconds) with `RetrainBusyError` naming the holder's pid. The kernel drops a `flock` when its
holder dies, so the lock of a crashed run is simply taken over; the lock file also journals the
run (its pid, its run id, the active model before it), so the next run (or `workbench doctor`)
removes what a crashed run had registered: every row a run creates carries its run id.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import models
from ..errors import WorkbenchError
from ..polling import StillWaiting, poll_until

if TYPE_CHECKING:
    from ..workspace import Workspace


class RetrainBusyError(WorkbenchError):
    """Another retrain of the same project holds its lock."""


class ProjectLock:
    """An exclusive, crash-safe retraining lock for one project: data/locks/<project>.retrain.lock.

    `flock` is released by the kernel when its holder exits or dies, so a lock is never stale: a
    dead holder's lock is taken over by the next run. The file's JSON content says who holds it and
    journals the run; a journal still marked "running" when the lock is acquired is the trace of a
    crashed run (see `recover`).
    """

    def __init__(self, ws: Workspace, project: str) -> None:
        self.ws = ws
        self.project = project
        self.path = ws.data_dir / "locks" / f"{project}.retrain.lock"
        self._fd: int | None = None
        self.journal: dict = {}
        self.previous: dict = {}

    def acquire(self, timeout: float = 0.0, poll: float = 0.2) -> ProjectLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

        def locked() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        try:
            poll_until(locked, timeout, poll)
        except StillWaiting:
            holder = _read_json(self.path)
            os.close(fd)
            raise RetrainBusyError(self._busy_message(holder, timeout)) from None
        self._fd = fd
        self.previous = _read_json(self.path)
        return self

    def _busy_message(self, holder: dict, timeout: float) -> str:
        who = "another process"
        if holder.get("pid"):
            who = f"process {holder['pid']} on {holder.get('host', '?')}"
            if holder.get("started_at"):
                who += f" (started {holder['started_at']})"
        waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
        return (f"Project {self.project!r} is already being retrained by {who}; this run did not start{waited}. "
                f"Try again when that run ends (lock file: {self.path}).")

    def write(self, **changes: Any) -> None:
        """Update the journal in the lock file (atomically enough: one small write, then fsync)."""
        self.journal.update(changes)
        text = json.dumps(self.journal, default=str).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)
        os.fsync(self._fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # drops the flock

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def project_lock(ws: Workspace, project: str, timeout: float = 0.0) -> ProjectLock:
    """Acquire the retraining lock of `project` (a context manager); RetrainBusyError if held."""
    return ProjectLock(ws, project).acquire(timeout)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def undo_run(ws: Workspace, journal: dict) -> list[str]:
    """Remove what the run described by `journal` registered; return what was removed.

    Every row a run creates carries its run id (`Catalog.tagged`), whatever process created it,
    so a run killed at any point, even before its first job recorded a process, is undone by
    that id alone. The active model is put back if the run had changed it, and the metrics
    `compare` wrote on the previously active model are restored. A model of the run that someone
    else activated meanwhile stays, with its job, configuration, tuning job and training data.
    """
    run_id = journal.get("run_id")
    if not run_id:
        return []
    project_id = journal["project_id"]
    files: list[str] = []

    def work(con) -> list[str]:
        files.clear()

        def ids(sql: str, params: Sequence = ()) -> set[int]:
            return {int(r[0]) for r in con.execute(sql, list(params)).fetchall() if r[0] is not None}

        def inside(values: set[int]) -> str:
            return "(" + ", ".join(str(int(v)) for v in values) + ")" if values else "(NULL)"

        own = {table: ids(f"SELECT id FROM {table} WHERE run_id = ?", [run_id])
               for table in ("models", "tuning_jobs", "configurations", "jobs", "training_data", "item_metadata")}
        con.execute(f"UPDATE projects SET active_model_id = ? WHERE id = ? AND active_model_id IN {inside(own['models'])}",
                    [journal.get("active_before"), project_id])
        kept = ids(f"SELECT active_model_id FROM projects WHERE active_model_id IN {inside(own['models'])}")
        if kept:  # activated by someone else meanwhile: it stays, with what it needs
            kept_tuning = ids(f"SELECT id FROM tuning_jobs WHERE model_id IN {inside(kept)}")
            own["models"] -= kept
            own["tuning_jobs"] -= kept_tuning
            own["jobs"] -= ids(f"SELECT job_id FROM models WHERE id IN {inside(kept)} "
                               f"UNION SELECT job_id FROM tuning_jobs WHERE id IN {inside(kept_tuning)}")
            own["configurations"] -= ids(f"SELECT configuration_id FROM models WHERE id IN {inside(kept)}")
            own["training_data"] -= ids(f"SELECT training_data_id FROM models WHERE id IN {inside(kept)}")
        for model_id, metrics in (journal.get("metrics_backup") or {}).items():
            con.execute("UPDATE models SET metrics = ? WHERE id = ?", [json.dumps(metrics), int(model_id)])
        files.extend(r[0] for r in con.execute(f"SELECT file FROM models WHERE id IN {inside(own['models'])}") if r[0])
        con.execute(f"DELETE FROM models WHERE id IN {inside(own['models'])}")
        con.execute(f"DELETE FROM tuning_trials WHERE tuning_job_id IN {inside(own['tuning_jobs'])}")
        for table in ("tuning_jobs", "configurations", "training_data", "item_metadata"):
            con.execute(f"DELETE FROM {table} WHERE id IN {inside(own[table])}")
        con.execute(f"DELETE FROM job_logs WHERE job_id IN {inside(own['jobs'])}")
        con.execute(f"DELETE FROM jobs WHERE id IN {inside(own['jobs'])}")
        labels = {"models": "model", "tuning_jobs": "tuning job", "configurations": "configuration", "jobs": "job",
                  "training_data": "training data", "item_metadata": "item metadata"}
        return [f"{labels[table]}{'s' if len(values) > 1 and table != 'training_data' else ''} "
                f"{', '.join(map(str, sorted(values)))}" for table, values in own.items() if values]

    removed = ws.catalog.run(work)
    for file in files:
        absolute = ws.catalog.absolute(file)
        Path(absolute).unlink(missing_ok=True)
        models.forget_cached(absolute)
    return removed
