"""Background jobs: status, progress, task log, worker processes and crash recovery.

A job is a catalog row. Its work runs either in the caller's process (foreground) or in a
detached worker process (`python -m workbench.worker CATALOG JOB_ID`) that outlives the kernel
which started it. The worker reports status, progress and log lines through short catalog
transactions; anyone may read them. A RUNNING job whose process is gone is marked FAILURE the
next time anyone looks, together with the models and tuning jobs it was producing.
"""

from __future__ import annotations

import contextlib
import html
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import psutil

from .errors import JobFailedError, WorkbenchError, describe_error
from .polling import StillWaiting, poll_until
from .signing import TEMP_FILE
from .store import Catalog, utc_now

if TYPE_CHECKING:
    from .base import WorkspaceBase

PENDING, RUNNING, SUCCESS, FAILURE, CANCELLED = "PENDING", "RUNNING", "SUCCESS", "FAILURE", "CANCELLED"
FINISHED = frozenset({SUCCESS, FAILURE, CANCELLED})


class JobCancelled(WorkbenchError):
    """Raised inside a job's work when someone asked for it to stop."""


def create_job(catalog: Catalog, kind: str, project_id: int | None, request: dict) -> int:
    return catalog.insert("jobs", {"kind": kind, "project_id": project_id, "request": request})


class Reporter:
    """What a job's work uses to report progress, log lines and rows, and to learn of a cancel.

    Everything is buffered and written in one catalog transaction at most every `interval`
    seconds (or when forced), which also refreshes the cancel flag: a job with fast steps must
    not spend its time opening the catalog.
    """

    def __init__(self, catalog: Catalog, job_id: int, interval: float = 0.5) -> None:
        self.catalog = catalog
        self.job_id = job_id
        self.interval = interval
        self._lock = threading.Lock()
        self._logs: list[tuple[str, str]] = []
        self._rows: list[tuple[str, dict]] = []
        self._progress: dict | None = None
        self._cancelled = False
        self._last_flush = 0.0

    def progress(self, fraction: float, step: str = "", force: bool = False) -> None:
        with self._lock:
            self._progress = {"progress": min(max(float(fraction), 0.0), 1.0), "step": step}
        self._maybe_flush(force)

    def log(self, message: str, level: str = "INFO") -> None:
        with self._lock:
            self._logs.append((level, message))
        self._maybe_flush(False)

    def insert(self, table: str, values: dict) -> None:
        """Queue a catalog row written with the job's next flush (e.g. a tuning trial)."""
        with self._lock:
            self._rows.append((table, values))
        self._maybe_flush(False)

    def cancel_requested(self) -> bool:
        self._maybe_flush(False)
        return self._cancelled

    def check_cancelled(self) -> None:
        if self.cancel_requested():
            raise JobCancelled(f"Job {self.job_id} was cancelled.")

    def _maybe_flush(self, force: bool) -> None:
        if force or time.monotonic() - self._last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered and read the cancel flag, in one transaction."""
        with self._lock:
            logs, rows, progress = self._logs, self._rows, self._progress
            self._logs, self._rows, self._progress = [], [], None
            self._last_flush = time.monotonic()

        def work(con) -> bool:
            for table, values in rows:
                self.catalog.insert_row(con, table, values)
            if logs:
                con.executemany(
                    "INSERT INTO job_logs (job_id, level, message) VALUES (?, ?, ?)",
                    [(self.job_id, level, message) for level, message in logs],
                )
            if progress is not None:
                self.catalog.update_row(con, "jobs", self.job_id, progress)
            row = con.execute("SELECT cancel_requested FROM jobs WHERE id = ?", [self.job_id]).fetchone()
            return bool(row and row[0])

        self._cancelled = self.catalog.run(work)


def _process_identity() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_started": psutil.Process().create_time(),
    }


def run_job(catalog: Catalog, job_id: int, work: Callable[[dict, Reporter], dict | None]) -> dict:
    """Run `work(job, reporter)` as job `job_id` in this process, recording its life in the catalog."""
    job = catalog.get("jobs", job_id, "job")
    catalog.update("jobs", job_id, {"status": RUNNING, "started_at": utc_now(), **_process_identity()})
    reporter = Reporter(catalog, job_id)
    try:
        with catalog.tagged(job["run_id"]) if job.get("run_id") else contextlib.nullcontext():
            result = work(job, reporter) or {}
        reporter.flush()
    except JobCancelled as error:
        reporter.log(str(error), "WARNING")
        reporter.flush()
        finish_job(catalog, job_id, CANCELLED, str(error))
        raise
    except BaseException as error:  # the job must end recorded, whatever happened
        reason = describe_error(error)
        reporter.log(reason, "ERROR")
        if not isinstance(error, WorkbenchError):
            reporter.log(traceback.format_exc(), "DEBUG")
        try:
            reporter.flush()
        finally:
            finish_job(catalog, job_id, FAILURE, reason)
        raise
    catalog.update("jobs", job_id, {"status": SUCCESS, "progress": 1.0, "result": result, "finished_at": utc_now()})
    return result


def finish_job(catalog: Catalog, job_id: int, status: str, reason: str, never_started: bool = False) -> bool:
    """End a job as FAILURE or CANCELLED, together with the models it was producing; whether it did.

    never_started: only a job still PENDING with no process (a stale request), so a worker that
    takes it meanwhile is not overruled.
    """

    def work(con) -> bool:
        guard = " AND status = 'PENDING' AND pid IS NULL" if never_started else ""
        changed = con.execute(
            f"UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ?{guard}",
            [status, reason, utc_now().isoformat(sep=" "), job_id],
        ).rowcount
        if not changed:
            return False
        con.execute(
            "UPDATE models SET status = 'FAILURE' WHERE job_id = ? AND status IN ('PENDING', 'RUNNING')",
            [job_id],
        )
        return True

    return catalog.run(work)


def start_worker(catalog: Catalog, job_id: int) -> int:
    """Run a recorded job in a detached worker process (`python -m workbench.worker`), which
    outlives the kernel that started it; record the worker's pid on the job."""
    log_dir = catalog.path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"job-{job_id}.log", "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.worker", str(catalog.path), str(job_id)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(catalog.home),
        )
    record_worker(catalog, job_id, process.pid)
    return process.pid


# Two processes can compute one process's start time up to a second apart (psutil adds the boot
# time, which each process reads rounded from /proc/stat); a reused pid starts far later.
_START_TIME_SLACK = 3.0


def is_alive(job: dict) -> bool:
    """Whether the process recorded for a RUNNING job still exists (same host only)."""
    if job.get("host") and job["host"] != socket.gethostname():
        return True  # cannot judge another machine's processes
    if not job.get("pid"):
        return True  # not started yet
    try:
        process = psutil.Process(job["pid"])
        alive = process.status() != psutil.STATUS_ZOMBIE
        started = job.get("process_started")
        return alive and (started is None or abs(process.create_time() - started) < _START_TIME_SLACK)
    except psutil.NoSuchProcess:
        return False


def reap_dead_jobs(catalog: Catalog, models_dir: Path | None = None) -> list[int]:
    """Mark unfinished jobs whose process died as FAILURE; remove their temp and unrecorded model files.

    PENDING jobs count too once a worker pid is recorded (`record_worker`): a worker that dies
    before it marks its job RUNNING must not leave the job PENDING forever. A read-only
    workspace is only read: nothing is reaped there.
    """
    if catalog.read_only:
        return []
    running = catalog.query(
        "SELECT * FROM jobs WHERE status IN ('PENDING', 'RUNNING') AND pid IS NOT NULL"
    )
    dead = [job for job in running if not is_alive(job)]
    for job in dead:
        finish_job(catalog, job["id"], FAILURE, f"The worker process {job['pid']} died.")
        if models_dir is not None and Path(models_dir).exists():
            for temp in Path(models_dir).glob("*/.*"):
                match = TEMP_FILE.match(temp.name)
                if match and int(match.group(1)) == job["pid"]:
                    temp.unlink(missing_ok=True)
            # A worker killed between renaming its model file into place and recording it leaves a
            # complete file of a model that is now FAILURE: remove it (as training does in-process).
            failed = catalog.query(
                "SELECT m.id, p.name FROM models m JOIN projects p ON p.id = m.project_id "
                "WHERE m.job_id = ? AND m.status = 'FAILURE' AND m.file IS NULL",
                [job["id"]],
            )
            for row in failed:
                for leftover in (Path(models_dir) / row["name"]).glob(f"{int(row['id'])}.*"):
                    if leftover.is_file():
                        leftover.unlink(missing_ok=True)
    return [job["id"] for job in dead]


def record_worker(catalog: Catalog, job_id: int, pid: int) -> None:
    """Record a just-started worker's identity on its PENDING job, so its death is noticed even
    if it dies before marking the job RUNNING (e.g. an import error in the worker)."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        started = None  # already gone: the next look at the job judges by the pid alone
    catalog.execute(
        "UPDATE jobs SET pid = ?, host = ?, process_started = ? WHERE id = ? AND status = 'PENDING' AND pid IS NULL",
        [pid, socket.gethostname(), started, job_id],
    )


class Job:
    """A handle on a job: status, progress, log, wait and cancel."""

    def __init__(self, workspace: WorkspaceBase, job_id: int) -> None:
        self.workspace = workspace
        self.id = int(job_id)

    def __repr__(self) -> str:
        record = self.record
        return f"<Job {self.id} {record['kind']} {record['status']} {record['progress']:.0%}>"

    @property
    def record(self) -> dict:
        reap_dead_jobs(self.workspace.catalog, self.workspace.models_dir)
        return self.workspace.catalog.get("jobs", self.id, "job")

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def progress(self) -> dict:
        record = self.record
        return {"fraction": record["progress"], "step": record["step"]}

    @property
    def error(self) -> str | None:
        return self.record["error"]

    @property
    def result(self) -> dict:
        return self.record["result"]

    def log(self, after_id: int = 0) -> pd.DataFrame:
        return task_log(self.workspace.catalog, job_id=self.id, after_id=after_id)

    def cancel(self) -> None:
        self.workspace.catalog.update("jobs", self.id, {"cancel_requested": True})

    def wait(self, timeout: float | None = None, poll: float = 0.2, raise_on_failure: bool = True) -> Job:
        """Wait until the job ends (TimeoutError after `timeout` s); JobFailedError if it did not succeed."""
        def finished() -> dict | None:
            record = self.record
            return record if record["status"] in FINISHED else None

        try:
            record = poll_until(finished, timeout, poll)
        except StillWaiting:
            raise TimeoutError(f"Job {self.id} is still {self.status} after {timeout} s.") from None
        if raise_on_failure and record["status"] != SUCCESS:
            raise JobFailedError(f"Job {self.id} ended {record['status']}: {record['error']}")
        return self

    def follow(self, poll: float = 0.5) -> Job:
        """In a notebook: the job's status, progress and newest log lines, updated in place until it ends."""
        from IPython.display import HTML, display

        def view() -> HTML:
            lines = self.log().tail(8)
            log = "".join(f"<div>{html.escape(str(m))}</div>" for m in lines["message"])
            return HTML(self._repr_html_() + f"<div style='font-family:monospace;font-size:90%'>{log}</div>")

        handle = display(view(), display_id=True)

        def ended() -> bool:
            handle.update(view())
            return self.status in FINISHED

        poll_until(ended, None, poll)
        return self.wait()

    def _repr_html_(self) -> str:
        record = self.record
        return (
            f"<b>Job {self.id}</b> ({html.escape(record['kind'])}): {record['status']}, "
            f"{record['progress']:.0%} {html.escape(record['step'])}"
            + (f"<br><span style='color:#b00'>{html.escape(record['error'])}</span>" if record["error"] else "")
        )


def task_log(catalog: Catalog, job_id: int, after_id: int = 0) -> pd.DataFrame:
    return catalog.query_df(
        "SELECT id, logged_at, level, message FROM job_logs WHERE job_id = ? AND id > ? ORDER BY id",
        [job_id, after_id],
    )


