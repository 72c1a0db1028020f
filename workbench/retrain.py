"""Headless retraining: new interactions in, a new model out, compared with the active one, gated.

    from workbench.retrain import retrain
    outcome = retrain(ws, "movies", new_data="ratings-2025-06.csv", mode="retrain", activate="if_better")
    outcome.statistics, outcome.comparison, outcome.decision, outcome.reason, outcome.new_model

One run:

1. **Data.** `new_data` (a file path, a DuckDB query or a DataFrame) is imported as a new training
   data snapshot: with `append=True` its rows are added to the project's latest training data (the
   union of both), with `append=False` it replaces it. Without `new_data` the latest training data
   is used as it is.
2. **Model.** `mode="retrain"` trains the active model's configuration on that data;
   `mode="retune"` runs a tuning job (an Optuna search across algorithms) and trains its best
   configuration. A project without an active model has nothing to retrain, so `"retrain"` falls
   back to `"retune"` there (noted in `outcome.notes`): the first scheduled run bootstraps itself.
3. **Comparison.** The active and the new model's configurations are both re-fitted on the training
   part of one fresh held-out split of the new data and scored on its held-out part
   (`Workspace.compare`), so neither is scored on interactions it saw. The split's seed is
   `seed + 1`: a tuning job (seed `seed`) never chose its configuration on the comparison's held-out
   interactions.
4. **Decision.** `activate="if_better"` activates the new model when its score is at least the
   active one's minus `tolerance`; `"always"` and `"never"` do what they say. The new model stays
   registered either way. Activation is a compare-and-set: if someone activated another model
   during the run, the run does not override it.

A failed run changes nothing in the catalog: whatever it registered (training data, tuning job,
configurations, models and their files, their jobs and log lines) is removed and the metrics
`compare` wrote on the active model are restored; the active model is never touched before the
final step. The Parquet snapshot files of an import stay on disk (content-addressed, immutable,
reused by the next attempt with the same data).

Two retrains of one project never interleave: `data/locks/<project>.retrain.lock` is held with an
exclusive `flock` for the whole run, and a second run fails at once (or after `lock_timeout`
seconds) with `RetrainBusyError` naming the holder's pid. The kernel drops a `flock` when its
holder dies, so the lock of a crashed run is simply taken over; the lock file also journals the run
(its pid and where the catalog's ids stood when it began), so the next run removes what a crashed
run had registered before doing its own work.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import io
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import psutil
import pyarrow.parquet as pq

from . import data, jobs, models, tuning
from .errors import NotFoundError, ValidationError, WorkbenchError, check_choice
from .records import TrainedModel, TrainingData, TuningJob
from .recovery import write_active_model

if TYPE_CHECKING:
    from .workspace import Workspace

MODES = ("retrain", "retune")
POLICIES = ("if_better", "always", "never")
COMPARISON_SEED_OFFSET = 1
_FLOAT_SLACK = 1e-12  # scores equal up to float noise count as equal
_IMPORT_OPTIONS = ("delimiter", "null_ids", "duplicates", "time_unit")


class RetrainBusyError(WorkbenchError):
    """Another retrain of the same project holds its lock."""


# ---------------------------------------------------------------------------------------------
# The outcome


@dataclass
class RetrainOutcome:
    """What a retrain did, ready to display: data statistics, comparison, decision, new model."""

    project: str
    mode: str                       # what ran: "retrain" or "retune"
    requested_mode: str
    policy: str                     # activate=...
    tolerance: float
    metric: str                     # the gate's metric, e.g. "ndcg@20"
    decision: str                   # "activated" or "kept"
    reason: str
    new_score: float | None
    old_score: float | None
    statistics: pd.DataFrame        # previous data, imported batch, new data
    changes: dict                   # rows/users/items added vs the previous data
    comparison: pd.DataFrame        # one row per model on the shared split
    split: dict
    training_data: TrainingData
    previous_data: TrainingData | None
    new_model: TrainedModel
    old_model: TrainedModel | None
    tuning_job: TuningJob | None
    active_model_id: int | None     # after the run
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def activated(self) -> bool:
        return self.decision == "activated"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest (what the `workbench retrain` command prints)."""
        return {
            "project": self.project, "mode": self.mode, "requested_mode": self.requested_mode,
            "policy": self.policy, "tolerance": self.tolerance, "decision": self.decision,
            "activated": self.activated, "reason": self.reason, "metric": self.metric,
            "new_score": _json_float(self.new_score), "old_score": _json_float(self.old_score),
            "new_model_id": self.new_model.id,
            "old_model_id": self.old_model.id if self.old_model else None,
            "active_model_id": self.active_model_id, "training_data_id": self.training_data.id,
            "previous_training_data_id": self.previous_data.id if self.previous_data else None,
            "tuning_job_id": self.tuning_job.id if self.tuning_job else None,
            "changes": self.changes, "split": self.split, "seconds": round(self.seconds, 2),
            "notes": list(self.notes),
        }

    def headline(self) -> str:
        """One line: what was decided, with the scores."""
        scores = f"{self.metric} new {_fmt(self.new_score)}"
        if self.old_model is not None:
            scores += f" vs active {_fmt(self.old_score)}"
        verb = "activated" if self.activated else "kept the active model; registered"
        if not self.activated and self.old_model is None:
            verb = "registered (no active model)"
        return f"{self.project}: {verb} model {self.new_model.id} ({self.mode}; {scores})"

    def decision_view(self):
        """The decision and why, as Markdown for a notebook."""
        from IPython.display import Markdown

        active = f"model {self.active_model_id}" if self.active_model_id is not None else "none"
        lines = [
            f"### {'Activated' if self.activated else 'Not activated'}: model {self.new_model.id}",
            f"**Why:** {self.reason}",
            f"- mode: `{self.mode}`" + (f" (asked: `{self.requested_mode}`)" if self.mode != self.requested_mode else ""),
            f"- policy: `activate={self.policy!r}`, tolerance {self.tolerance:g} on `{self.metric}`",
            f"- active model now: {active}",
        ] + [f"- note: {note}" for note in self.notes]
        return Markdown("\n".join(lines))

    def chart(self):
        """Old vs new on the shared split: an SVG bar chart of every metric at the cutoff."""
        from IPython.display import SVG

        return SVG(data=comparison_svg(self.comparison, self.metric))

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.activated else "#9a6700"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (
            f"<b>Retrain of {html.escape(self.project)}</b>: "
            f"<span style='color:{colour};font-weight:bold'>{html.escape(self.decision)}</span> "
            f"model {self.new_model.id}<br>{html.escape(self.reason)}"
            + (f"<ul>{notes}</ul>" if notes else "")
        )

    def _repr_json_(self) -> dict:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RetrainOutcome {self.headline()}>"


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


# ---------------------------------------------------------------------------------------------
# The gate


def decide(policy: str, new_score: float | None, old_score: float | None, tolerance: float = 0.0,
           metric: str = "score", has_active: bool = True) -> tuple[bool, str]:
    """Whether to activate the new model under `policy`, and why (pure; no catalog)."""
    check_choice("activate", policy, POLICIES)
    new_text = f"the new model's {metric} is {_fmt(new_score)}"
    if policy == "never":
        return False, f"activate='never': the new model is registered but not activated ({new_text})."
    if not has_active:
        return True, f"No model was active, so the new model becomes the active one ({new_text})."
    if policy == "always":
        return True, f"activate='always' ({new_text}, the active model's {_fmt(old_score)})."
    if new_score is None or not math.isfinite(new_score):
        return False, f"The new model has no valid {metric} on the shared split; the active model stays."
    if old_score is None or not math.isfinite(old_score):
        return True, f"The active model has no valid {metric} on the shared split ({new_text})."
    threshold = old_score - tolerance
    comparison = (f"new {metric} {new_score:.4f} vs active {old_score:.4f}"
                  + (f" (tolerance {tolerance:g}: at least {threshold:.4f} needed)" if tolerance else ""))
    if new_score >= threshold - _FLOAT_SLACK:
        return True, f"The new model is at least as good: {comparison}."
    return False, f"The new model is worse: {comparison}; the active model stays."


# ---------------------------------------------------------------------------------------------
# The per-project lock, which also journals the run for crash recovery


class ProjectLock:
    """An exclusive, crash-safe retraining lock for one project: data/locks/<project>.retrain.lock.

    `flock` is released by the kernel when its holder exits or dies, so a lock is never stale: a
    dead holder's lock is taken over by the next run. The file's JSON content says who holds it and
    journals the run; a journal still marked "running" when the lock is acquired is the trace of a
    crashed run (see `recover`).
    """

    def __init__(self, ws: "Workspace", project: str) -> None:
        self.ws = ws
        self.project = project
        self.path = ws.data_dir / "locks" / f"{project}.retrain.lock"
        self._fd: int | None = None
        self.journal: dict = {}
        self.previous: dict = {}

    def acquire(self, timeout: float = 0.0, poll: float = 0.2) -> "ProjectLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_json(self.path)
                    os.close(fd)
                    raise RetrainBusyError(self._busy_message(holder, timeout)) from None
                time.sleep(poll)
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

    def __enter__(self) -> "ProjectLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def project_lock(ws: "Workspace", project: str, timeout: float = 0.0) -> ProjectLock:
    """Acquire the retraining lock of `project` (a context manager); RetrainBusyError if held."""
    return ProjectLock(ws, project).acquire(timeout)


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------------------------
# Undo: remove what a run registered


def undo_run(ws: "Workspace", journal: dict) -> list[str]:
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


# ---------------------------------------------------------------------------------------------
# Data


def _snapshot_ids(path: str | os.PathLike, kind: str) -> pa.Array:
    return pq.read_table(Path(path) / f"{kind}.parquet").column(0).combine_chunks()


def _count_unseen(path: str | os.PathLike, previous: str | os.PathLike | None, kind: str) -> int | None:
    """How many users (items) of one snapshot are absent from another."""
    if previous is None:
        return None
    ids, known = _snapshot_ids(path, kind), _snapshot_ids(previous, kind)
    if ids.type != known.type:
        ids, known = ids.cast(pa.string()), known.cast(pa.string())
    return int(len(ids) - pc.sum(pc.is_in(ids, value_set=known)).as_py()) if len(ids) else 0


def _stats_row(label: str, record_id: int | None, snap: Any, previous_path: Any) -> dict:
    get = snap.get if isinstance(snap, dict) else lambda key: getattr(snap, key)
    path = get("path")
    return {
        "data": label, "training_data_id": record_id, "n_rows": int(get("n_rows")), "n_users": int(get("n_users")),
        "n_items": int(get("n_items")), "time_min": get("time_min"), "time_max": get("time_max"),
        "users_not_in_previous": _count_unseen(path, previous_path, "users"),
        "items_not_in_previous": _count_unseen(path, previous_path, "items"),
    }


def _import_new_data(ws: "Workspace", project: dict, source: Any, base: TrainingData | None,
                     previous: TrainingData | None, options: dict) -> tuple[TrainingData, dict]:
    """Import `source` (appended to `base` when given); return the new record and the batch's statistics."""
    previous_path = previous.path if previous is not None else None
    if base is None:
        record = ws.import_training_data(project, source, **options)
        return record, _stats_row("new batch", None, record, previous_path)
    columns = {"user_id": project.user_column, "item_id": project.item_column}
    if project.time_column:
        columns["time"] = project.time_column
    with tempfile.TemporaryDirectory(prefix=".retrain-batch-", dir=ws.data_dir) as scratch:
        batch = data.build_interaction_snapshot(
            source, scratch, user_column=project.user_column, item_column=project.item_column,
            time_column=project.time_column, sandbox=ws.sql_sandbox(), **options,
        )
        batch_stats = _stats_row("new batch", None, batch, previous_path)
        new_rows = data.read_interactions(batch.path)
        old_rows = data.read_interactions(base.path)
    wanted = [c for c in columns if c in new_rows.columns and c in old_rows.columns]
    old_rows, new_rows = old_rows[wanted], new_rows[wanted]
    for column in ("user_id", "item_id"):
        if old_rows[column].dtype != new_rows[column].dtype:  # e.g. integer ids before, text ids now
            old_rows[column] = old_rows[column].astype(str)
            new_rows[column] = new_rows[column].astype(str)
    combined = pd.concat([old_rows, new_rows], ignore_index=True).rename(columns=columns)
    del old_rows, new_rows
    final_options = {k: v for k, v in options.items() if k == "duplicates"}
    record = ws.import_training_data(project, combined, name=f"{_short_source(batch.source)} + training data {base.id}",
                                     **final_options)
    ws.catalog.update("training_data", record.id, {"source": f"training data {base.id} + {batch.source}"})
    return ws.training_data(record.id), batch_stats


def _short_source(source: str, limit: int = 60) -> str:
    text = str(source)
    if not text.startswith("SQL:"):
        text = Path(text).name or text
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Keeping the report readable

_PROGRESS = re.compile(r"█|\|[█-]{8,}\||\d+\.\d+% \[\d+/\d+")


class _DropProgressBars(io.TextIOBase):
    """A stdout that passes everything through except console progress bars (irspack's fastprogress)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self._dropping = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if _PROGRESS.search(text) or (self._dropping and not text.strip()):
            self._dropping = True
        else:
            self._dropping = False
            self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


@contextlib.contextmanager
def _quiet_progress():
    with warnings.catch_warnings(), contextlib.redirect_stdout(_DropProgressBars(sys.stdout)):
        warnings.filterwarnings("ignore", message="Couldn't import ipywidgets")
        yield


# ---------------------------------------------------------------------------------------------
# Parameters


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a positive whole number, got {value!r}.")
    return value


def _check_new_data(new_data: Any) -> None:
    if new_data is None or isinstance(new_data, pd.DataFrame):
        return
    if data.is_sql_query(new_data):
        return
    if isinstance(new_data, (str, os.PathLike)):
        if not str(new_data).strip():
            raise ValidationError("new_data is empty: give a file path or a DuckDB query, or None to use the latest data.")
        if not Path(new_data).is_file():
            raise ValidationError(f"new_data {str(new_data)!r}: no such file (relative paths are relative to {os.getcwd()}).")
        return
    raise ValidationError(f"new_data must be a file path, a DuckDB query, a DataFrame or None, not {type(new_data).__name__}.")


# ---------------------------------------------------------------------------------------------
# The run


def retrain(ws: "Workspace | str | os.PathLike | None", project: Any, new_data: Any = None, *, append: bool = True,
            mode: str = "retrain", n_trials: int = 20, timeout: float | None = None, activate: str = "if_better",
            tolerance: float = 0.0, metric: str = "ndcg", cutoff: int = 20, seed: int = 0,
            algorithms: Sequence[str] | None = None, import_options: dict | None = None,
            lock_timeout: float = 0.0) -> RetrainOutcome:
    """Retrain (or retune) a project's model on new data, compare it with the active model, gate it.

    ws: a Workspace (or a location for `workbench.open`). project: name, id or record.
    new_data: file path (CSV/TSV/Parquet/JSON/NDJSON, .gz too), DuckDB query or DataFrame with the
        project's columns; None uses the latest training data as it is.
    append: add the new rows to the latest training data (True) or replace it (False).
    mode: "retrain" trains the active model's configuration; "retune" runs a tuning job
        (`n_trials`, `timeout` seconds, `algorithms`) and trains its best configuration. Without an
        active model "retrain" falls back to "retune".
    activate: "if_better" (new score >= active score - tolerance on one shared split), "always",
        "never". metric/cutoff: the gate's metric (and the tuning target), e.g. ndcg@20.
    import_options: delimiter, null_ids, duplicates, time_unit (as for import_training_data).
    lock_timeout: seconds to wait for another retrain of the project to end (0: fail at once).

    Raises WorkbenchError subclasses (RetrainBusyError when the project is being retrained) and
    leaves the catalog as it was on any failure.
    """
    from .workspace import Workspace, open_workspace

    started = time.monotonic()
    ws = ws if isinstance(ws, Workspace) else open_workspace(ws)
    check_choice("mode", mode, MODES)
    check_choice("activate", activate, POLICIES)
    check_choice("metric", metric, tuning.METRICS)
    _positive_int("cutoff", cutoff)
    _positive_int("n_trials", n_trials)
    if not isinstance(append, bool):
        raise ValidationError(f"append must be True or False, got {append!r}.")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValidationError(f"timeout must be a positive number of seconds or None, got {timeout!r}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance < 0:
        raise ValidationError(f"tolerance must be a number >= 0, got {tolerance!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32 - COMPARISON_SEED_OFFSET:
        raise ValidationError(f"seed must be a whole number in [0, 2**32 - 1), got {seed!r}.")
    options = dict(import_options or {})
    unknown = set(options) - set(_IMPORT_OPTIONS)
    if unknown:
        raise ValidationError(f"Unknown import option(s) {', '.join(sorted(unknown))}; valid: {', '.join(_IMPORT_OPTIONS)}.")
    _check_new_data(new_data)
    p = ws.project(project)
    key = f"{metric}@{cutoff}"
    notes: list[str] = []

    with project_lock(ws, p.name, timeout=lock_timeout) as lock:
        if lock.previous.get("state") == "running" and lock.previous.get("project_id") == p.id:
            removed = undo_run(ws, lock.previous)
            notes.append(f"An earlier retrain (pid {lock.previous.get('pid')}, started {lock.previous.get('started_at')}) "
                         f"died mid-run (or could not clean up after a failure); what it had registered was removed"
                         + (f": {'; '.join(removed)}." if removed else " (nothing)."))
        old = ws.active_model(p)
        lock.write(
            state="running", project=p.name, project_id=p.id, pid=os.getpid(), host=socket.gethostname(),
            process_started=psutil.Process().create_time(),
            started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), run_id=uuid.uuid4().hex,
            active_before=old.id if old else None, metrics_backup={},
        )
        try:
            with _quiet_progress(), ws.catalog.tagged(lock.journal["run_id"]):
                outcome = _run(ws, lock, p, old, new_data, append, mode, n_trials, timeout, activate,
                               float(tolerance), metric, cutoff, seed, algorithms, options, key, notes)
        except BaseException as error:
            try:
                removed = undo_run(ws, lock.journal)
                lock.write(state="rolled back", error=f"{type(error).__name__}: {error}", removed=removed)
            except Exception as cleanup_error:  # keep the journal "running": the next run retries the undo
                error.add_note(f"Cleaning up after the failure failed too ({cleanup_error}); "
                               "the next retrain of this project will retry it.")
            raise
        lock.write(state="finished", decision=outcome.decision, new_model_id=outcome.new_model.id,
                   finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    outcome.seconds = time.monotonic() - started
    return outcome


def _run(ws: "Workspace", lock: ProjectLock, p: dict, old: TrainedModel | None, new_data: Any, append: bool,
         mode: str, n_trials: int, timeout: float | None, policy: str, tolerance: float, metric: str, cutoff: int,
         seed: int, algorithms: Sequence[str] | None, options: dict, key: str, notes: list[str]) -> RetrainOutcome:
    try:
        latest = ws.latest_training_data(p)
    except NotFoundError:
        latest = None
    previous = ws.training_data(old.training_data_id) if old is not None else latest

    # 1. The data.
    if new_data is None:
        if latest is None:
            raise ValidationError(f"Project {p.name!r} has no training data yet: pass new_data.")
        dataset, batch_stats = latest, None
        notes.append(f"No new data given: trained on the latest training data ({latest.id}).")
    else:
        base = latest if append else None
        if append and latest is None:
            notes.append("The project had no training data: the new data is its first.")
        dataset, batch_stats = _import_new_data(ws, p, new_data, base, previous, options)
    previous_path = previous.path if previous is not None else None
    rows = []
    if previous is not None:
        label = f"previous (model {old.id}'s data)" if old is not None else "previous (latest data)"
        rows.append(_stats_row(label, previous.id, previous, None))
    if batch_stats is not None:
        rows.append(batch_stats)
    rows.append(_stats_row("new training data", dataset.id, dataset, previous_path))
    statistics = pd.DataFrame(rows).set_index("data")
    counts = ["training_data_id", "n_rows", "n_users", "n_items", "users_not_in_previous", "items_not_in_previous"]
    statistics[counts] = statistics[counts].astype("Int64")
    changes = {
        "rows_added": int(dataset.n_rows - (previous.n_rows if previous is not None else 0)),
        "users_added": int(dataset.n_users - (previous.n_users if previous is not None else 0)),
        "items_added": int(dataset.n_items - (previous.n_items if previous is not None else 0)),
        "new_users": rows[-1]["users_not_in_previous"], "new_items": rows[-1]["items_not_in_previous"],
    }

    # 2. The new model.
    used_mode, tuning_job = mode, None
    if mode == "retrain" and old is None:
        used_mode = "retune"
        notes.append("No active model to retrain: ran a tuning job instead (mode 'retune').")
    if used_mode == "retrain":
        config = ws.configuration(old.configuration_id)
        new_model = ws.train(config, dataset)
    else:
        tuning_job = ws.tune(dataset, algorithms=algorithms, n_trials=n_trials, timeout=timeout, metric=metric,
                             cutoff=cutoff, seed=seed, split={"scheme": "random", "seed": seed},
                             train_after_tuning=True)
        if not tuning_job.model_id:
            raise WorkbenchError(f"Tuning job {tuning_job.id} trained no model ({tuning_job.error or 'no result'}).")
        new_model = ws.model(tuning_job.model_id)
    if new_model.status != jobs.SUCCESS:
        raise WorkbenchError(f"Model {new_model.id} ended {new_model.status}.")

    # 3. Old vs new on one fresh split of the new data.
    split = {"scheme": "random", "seed": seed + COMPARISON_SEED_OFFSET}
    ids = [new_model.id]
    if old is not None:
        lock.write(metrics_backup={str(old.id): old.metrics})
        ids = [old.id, new_model.id]
    frame = ws.compare(ids, training_data=dataset, cutoffs=(cutoff,), split=split)
    frame = frame.set_index("model_id").loc[ids].reset_index()
    frame.insert(0, "role", ["active (old)" if old is not None and m == old.id else "new" for m in frame["model_id"]])
    score = dict(zip(frame["model_id"], frame[key]))
    new_score = float(score[new_model.id])
    old_score = float(score[old.id]) if old is not None else None
    if old is not None and old.configuration_id == new_model.configuration_id:
        notes.append("Old and new share one configuration, so on the shared split both are the same "
                     "configuration re-fitted: any difference is training noise.")

    # 4. The decision, then activation as the very last catalog step (compare-and-set).
    activate_it, reason = decide(policy, new_score, old_score, tolerance, key, has_active=old is not None)
    new_model = ws.model(new_model.id)
    tuning_job = ws.tuning_job(tuning_job.id) if tuning_job is not None else None
    active_id = old.id if old is not None else None
    if activate_it:
        now = _activate_if_unchanged(ws, p.id, new_model.id, active_id)
        if now == new_model.id:
            active_id = new_model.id
            new_model.active = True
        else:
            activate_it = False
            reason += f" But the active model changed during the run (now {now}), so it was not overridden."
            active_id = now
    return RetrainOutcome(
        project=p.name, mode=used_mode, requested_mode=mode, policy=policy, tolerance=tolerance, metric=key,
        decision="activated" if activate_it else "kept", reason=reason, new_score=new_score, old_score=old_score,
        statistics=statistics, changes=changes, comparison=frame, split=split, training_data=dataset,
        previous_data=previous, new_model=new_model, old_model=old,
        tuning_job=tuning_job,
        active_model_id=active_id, seconds=0.0, notes=notes,
    )


def _activate_if_unchanged(ws: "Workspace", project_id: int, model_id: int, expected: int | None) -> int | None:
    """Make `model_id` active if the active model is still `expected`; return the active model's id."""

    def work(con) -> int | None:
        current = con.execute("SELECT active_model_id FROM projects WHERE id = ?", [project_id]).fetchone()[0]
        if current != expected:
            return current
        con.execute("UPDATE projects SET active_model_id = ? WHERE id = ?", [model_id, project_id])
        return model_id

    active = ws.catalog.run(work)
    if active == model_id:
        write_active_model(ws.data_dir, ws.project(project_id).name, model_id)
    return active


# ---------------------------------------------------------------------------------------------
# The chart


def comparison_svg(comparison: pd.DataFrame, gate_metric: str | None = None, width: int = 640) -> str:
    """A horizontal grouped bar chart (SVG text) of every metric at the cutoff, one bar per model."""
    cutoff = gate_metric.split("@", 1)[1] if gate_metric and "@" in gate_metric else None
    metrics = [c for c in comparison.columns if "@" in str(c) and (cutoff is None or str(c).endswith(f"@{cutoff}"))]
    colours = {"active (old)": "#8c959f", "new": "#0969da"}
    models = [(str(r.get("role", "model")), f"{r.get('role', 'model')}: model {r['model_id']} ({r['algorithm']})")
              for _, r in comparison.iterrows()]
    values = comparison[metrics].astype(float) if metrics else pd.DataFrame()
    top = max(float(values.max().max()) if len(values) else 0.0, 1e-9)
    bar, gap, label_w, value_w = 14, 10, 140, 60
    plot_w = width - label_w - value_w
    legend_h = 22 * len(models) + 8
    height = legend_h + len(metrics) * (len(models) * bar + gap) + 10
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">']
    for i, (role, label) in enumerate(models):
        y = 6 + 22 * i
        parts.append(f'<rect x="{label_w}" y="{y}" width="12" height="12" fill="{colours.get(role, "#6e7781")}"/>'
                     f'<text x="{label_w + 18}" y="{y + 11}">{esc(label)}</text>')
    y = legend_h
    for metric in metrics:
        group_h = len(models) * bar
        weight = "bold" if metric == gate_metric else "normal"
        name = f"{metric} (gate)" if metric == gate_metric else metric
        parts.append(f'<text x="{label_w - 8}" y="{y + group_h / 2 + 4}" text-anchor="end" '
                     f'font-weight="{weight}">{esc(str(name))}</text>')
        for j, (role, _) in enumerate(models):
            value = float(values[metric].iloc[j])
            w = 0.0 if not math.isfinite(value) else max(plot_w * value / top, 0.0)
            parts.append(f'<rect x="{label_w}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 2}" '
                         f'fill="{colours.get(role, "#6e7781")}"/>'
                         f'<text x="{label_w + w + 4:.1f}" y="{y + j * bar + bar - 4}">{_fmt(value)}</text>')
        y += group_h + gap
    parts.append("</svg>")
    return "".join(parts)
