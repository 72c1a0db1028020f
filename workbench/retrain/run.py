"""One retrain: new data in, a challenger gated against the model serving now, the winner activated.

1. Data: `new_data` is imported (appended to the latest training data, or replacing it).
2. Challenger: `mode="retrain"` keeps the active model's configuration; `mode="retune"` tunes
   on the data before the gate's cut (never on the interactions the gate holds out).
3. Gate (`gate.py`): the newest interactions are held out by a time cut; the active model, as
   it is, and the challenger, trained on everything before the cut, are scored on the same
   users and items; without a time column both configurations are re-fit on one random split.
4. Decision: `activate="if_better"` activates when the challenger's score is at least the
   active one's minus `tolerance`; "always" and "never" do what they say. The new model is
   the challenger's configuration trained on all the data (held-out window included); it stays
   registered either way. Activation is a compare-and-set: a model someone else activated
   during the run is not overridden.
5. Delivery: with `export=PATH`, the active model's top-N for every user is written there.

A failed run changes nothing in the catalog: every row it created carries its run id and is
removed (`journal.undo_run`); the active model is never touched before the last step.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import psutil

from .. import data, jobs, tuning
from ..algorithms import build_recommender
from ..comparison import compare
from ..errors import NotFoundError, ValidationError, WorkbenchError, check_choice
from ..queries import is_sql_query
from ..records import Project, TrainedModel
from ..recovery import write_active_model
from ..training import fit
from . import gate
from .batch import IMPORT_OPTIONS, import_new_data, stats_row
from .journal import ProjectLock, project_lock, undo_run
from .report import RetrainOutcome, fmt, quiet_progress

if TYPE_CHECKING:
    from ..workspace import Workspace

MODES = ("retrain", "retune")
POLICIES = ("if_better", "always", "never")
_FLOAT_SLACK = 1e-12  # scores equal up to float noise count as equal


def decide(policy: str, new_score: float | None, old_score: float | None, tolerance: float = 0.0,
           metric: str = "score", has_active: bool = True) -> tuple[bool, str]:
    """Whether to activate the new model under `policy`, and why (pure; no catalog)."""
    check_choice("activate", policy, POLICIES)
    new_text = f"the new model's {metric} is {fmt(new_score)}"
    if policy == "never":
        return False, f"activate='never': the new model is registered but not activated ({new_text})."
    if not has_active:
        return True, f"No model was active, so the new model becomes the active one ({new_text})."
    if policy == "always":
        return True, f"activate='always' ({new_text}, the active model's {fmt(old_score)})."
    if new_score is None or not math.isfinite(new_score):
        return False, f"The new model has no valid {metric} on the held-out interactions; the active model stays."
    if old_score is None or not math.isfinite(old_score):
        return True, f"The active model has no valid {metric} on the held-out interactions ({new_text})."
    threshold = old_score - tolerance
    comparison = (f"new {metric} {new_score:.4f} vs active {old_score:.4f}"
                  + (f" (tolerance {tolerance:g}: at least {threshold:.4f} needed)" if tolerance else ""))
    if new_score >= threshold - _FLOAT_SLACK:
        return True, f"The new model is at least as good: {comparison}."
    return False, f"The new model is worse: {comparison}; the active model stays."


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a positive whole number, got {value!r}.")
    return value


def _check_new_data(new_data: Any) -> None:
    if new_data is None or isinstance(new_data, pd.DataFrame) or is_sql_query(new_data):
        return
    if isinstance(new_data, (str, os.PathLike)):
        if not str(new_data).strip():
            raise ValidationError("new_data is empty: give a file path or a DuckDB query, or None to use the latest data.")
        if not Path(new_data).is_file():
            raise ValidationError(f"new_data {str(new_data)!r}: no such file (relative paths are relative to {os.getcwd()}).")
        return
    raise ValidationError(f"new_data must be a file path, a DuckDB query, a DataFrame or None, not {type(new_data).__name__}.")


def retrain(ws: Workspace | str | os.PathLike | None, project: Any, new_data: Any = None, *, append: bool = True,
            mode: str = "retrain", n_trials: int = 20, timeout: float | None = None, activate: str = "if_better",
            tolerance: float = 0.0, metric: str = "ndcg", cutoff: int = 20, seed: int = 0, holdout: Any = None,
            algorithms: Sequence[str] | None = None, import_options: dict | None = None,
            export: str | os.PathLike | None = None, export_cutoff: int = 10, lock_timeout: float = 0.0) -> RetrainOutcome:
    """Retrain (or retune) a project's model on new data, gate it against the active model, deliver.

    ws: a Workspace (or a location for `workbench.open`). project: name, id or record.
    new_data: file path (CSV/TSV/Parquet/JSON/NDJSON, .gz too), DuckDB query or DataFrame with the
        project's columns; None uses the latest training data as it is.
    append: add the new rows to the latest training data (True) or replace it (False).
    mode: "retrain" keeps the active model's configuration; "retune" tunes (`n_trials`, `timeout`
        seconds, `algorithms`) on the data before the gate's cut. Without an active model
        "retrain" falls back to "retune".
    holdout: the gate's window of newest interactions: None (the new batch when one was
        appended after the older data, else the newest 10%), "Nd" (the last N days) or a fraction.
    activate: "if_better" (new score >= active score - tolerance), "always", "never".
        metric/cutoff: the gate's metric (and the tuning target), e.g. ndcg@20.
    import_options: delimiter, null_ids, duplicates, time_unit, weight_column (as for
        import_training_data); duplicates= applies to the appended rows too.
    export: a .parquet, .csv or .duckdb path: the active model's top-`export_cutoff` for every
        user is written there at the end of the run.
    lock_timeout: seconds to wait for another retrain of the project to end (0: fail at once).

    Raises WorkbenchError subclasses (RetrainBusyError when the project is being retrained) and
    leaves the catalog as it was on any failure.
    """
    from ..workspace import Workspace, open_workspace

    started = time.monotonic()
    ws = ws if isinstance(ws, Workspace) else open_workspace(ws)
    check_choice("mode", mode, MODES)
    check_choice("activate", activate, POLICIES)
    check_choice("metric", metric, tuning.METRICS)
    _positive_int("cutoff", cutoff)
    _positive_int("n_trials", n_trials)
    _positive_int("export_cutoff", export_cutoff)
    if not isinstance(append, bool):
        raise ValidationError(f"append must be True or False, got {append!r}.")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValidationError(f"timeout must be a positive number of seconds or None, got {timeout!r}.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance < 0:
        raise ValidationError(f"tolerance must be a number >= 0, got {tolerance!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32 - 1:
        raise ValidationError(f"seed must be a whole number in [0, 2**32 - 1), got {seed!r}.")
    gate.check_holdout(holdout)
    if export is not None and not Path(export).parent.is_dir():
        raise ValidationError(f"export {str(export)!r}: the folder {Path(export).parent} does not exist.")
    options = dict(import_options or {})
    unknown = set(options) - set(IMPORT_OPTIONS)
    if unknown:
        raise ValidationError(f"Unknown import option(s) {', '.join(sorted(unknown))}; valid: {', '.join(IMPORT_OPTIONS)}.")
    _check_new_data(new_data)
    p = ws.project(project)
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
            started_at=datetime.now(UTC).isoformat(timespec="seconds"), run_id=uuid.uuid4().hex,
            active_before=old.id if old else None, metrics_backup={},
        )
        settings = _Settings(mode, n_trials, timeout, activate, float(tolerance), metric, cutoff, seed, holdout,
                             algorithms)
        try:
            with quiet_progress(), ws.catalog.tagged(lock.journal["run_id"]):
                outcome = _Run(ws, lock, p, old, settings, notes).run(new_data, append, options)
        except BaseException as error:
            try:
                removed = undo_run(ws, lock.journal)
                lock.write(state="rolled back", error=f"{type(error).__name__}: {error}", removed=removed)
            except Exception as cleanup_error:  # keep the journal "running": the next run retries the undo
                error.add_note(f"Cleaning up after the failure failed too ({cleanup_error}); "
                               "the next retrain of this project will retry it.")
            raise
        lock.write(state="finished", decision=outcome.decision, new_model_id=outcome.new_model.id,
                   finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    if export is not None and outcome.active_model_id is not None:
        outcome.export = str(ws.export_recommendations(p, export, cutoff=export_cutoff))
    outcome.seconds = time.monotonic() - started
    return outcome


class _Settings:
    def __init__(self, mode, n_trials, timeout, policy, tolerance, metric, cutoff, seed, holdout, algorithms):
        self.mode, self.n_trials, self.timeout, self.policy = mode, n_trials, timeout, policy
        self.tolerance, self.metric, self.cutoff, self.seed = tolerance, metric, cutoff, seed
        self.holdout, self.algorithms = holdout, algorithms
        self.key = f"{metric}@{cutoff}"


class _Run:
    """The steps of one retrain, inside its lock and run tag."""

    def __init__(self, ws: Workspace, lock: ProjectLock, project: Project, old: TrainedModel | None,
                 settings: _Settings, notes: list[str]) -> None:
        self.ws, self.lock, self.p, self.old, self.s, self.notes = ws, lock, project, old, settings, notes
        self.tuning_job = None
        self.new_model: TrainedModel | None = None  # trained by a gate that needs it (the random split's)

    def run(self, new_data: Any, append: bool, options: dict) -> RetrainOutcome:
        dataset, previous, statistics, changes, batch_start = self.data(new_data, append, options)
        mode = self.s.mode
        if mode == "retrain" and self.old is None:
            mode = "retune"
            self.notes.append("No active model to retrain: ran a tuning job instead (mode 'retune').")
        scores = self.time_gate(dataset, mode, batch_start) if self.p.time_column else None
        if scores is None:
            scores = self.random_gate(dataset, mode)
        config, comparison, new_score, old_score, intervals, gate_info, segments = scores
        activate_it, reason = decide(self.s.policy, new_score, old_score, self.s.tolerance, self.s.key,
                                     has_active=self.old is not None)
        new_model = self.new_model or self.ws.train(config, dataset)  # the challenger's configuration, all the data
        if new_model.status != jobs.SUCCESS:
            raise WorkbenchError(f"Model {new_model.id} ended {new_model.status}.")
        self.ws.catalog.update("models", new_model.id, {"metrics": {f"gate_{self.s.key}": new_score}})
        active_id = self.old.id if self.old is not None else None
        if activate_it:
            now = _activate_if_unchanged(self.ws, self.p.id, new_model.id, active_id)
            if now == new_model.id:
                active_id = now
            else:
                activate_it = False
                reason += f" But the active model changed during the run (now {now}), so it was not overridden."
                active_id = now
        comparison.loc[comparison["role"] == "new", "model_id"] = new_model.id
        tuning_job = self.ws.tuning_job(self.tuning_job.id) if self.tuning_job is not None else None
        return RetrainOutcome(
            project=self.p.name, mode=mode, requested_mode=self.s.mode, policy=self.s.policy,
            tolerance=self.s.tolerance, metric=self.s.key, decision="activated" if activate_it else "kept",
            reason=reason, new_score=new_score, old_score=old_score, intervals=intervals, gate=gate_info,
            statistics=statistics, changes=changes, comparison=comparison, segments=segments,
            training_data=dataset, previous_data=previous, new_model=self.ws.model(new_model.id), old_model=self.old,
            tuning_job=tuning_job, active_model_id=active_id, seconds=0.0, notes=self.notes,
        )

    # -------------------------------------------------------------------------------- data

    def data(self, new_data: Any, append: bool, options: dict):
        ws, p, old = self.ws, self.p, self.old
        try:
            latest = ws.latest_training_data(p)
        except NotFoundError:
            latest = None
        previous = ws.training_data(old.training_data_id) if old is not None else latest
        batch_stats, batch_start = None, None
        if new_data is None:
            if latest is None:
                raise ValidationError(f"Project {p.name!r} has no training data yet: pass new_data.")
            dataset = latest
            self.notes.append(f"No new data given: trained on the latest training data ({latest.id}).")
        else:
            base = latest if append else None
            if append and latest is None:
                self.notes.append("The project had no training data: the new data is its first.")
            dataset, batch_stats, batch_start = import_new_data(ws, p, new_data, base, previous, options)
            if batch_stats.get("already_present"):
                kept = options.get("duplicates", "keep") == "keep"
                self.notes.append(
                    f"{batch_stats['already_present']:,} of the {batch_stats['n_rows']:,} appended rows were already "
                    f"in the training data (same user, item{' and time' if p.time_column else ''}); "
                    + ("they were kept twice (pass duplicates='last' to keep one)." if kept
                       else "duplicates='last' kept one of each."))
        previous_path = previous.path if previous is not None else None
        rows = []
        if previous is not None:
            label = f"previous (model {old.id}'s data)" if old is not None else "previous (latest data)"
            rows.append(stats_row(label, previous.id, previous, None))
        if batch_stats is not None:
            rows.append(batch_stats)
        rows.append(stats_row("new training data", dataset.id, dataset, previous_path))
        statistics = pd.DataFrame(rows).set_index("data")
        counts = [c for c in ("training_data_id", "n_rows", "n_users", "n_items", "users_not_in_previous",
                              "items_not_in_previous", "already_present") if c in statistics]
        statistics[counts] = statistics[counts].astype("Int64")
        changes = {
            "rows_added": int(dataset.n_rows - (previous.n_rows if previous is not None else 0)),
            "users_added": int(dataset.n_users - (previous.n_users if previous is not None else 0)),
            "items_added": int(dataset.n_items - (previous.n_items if previous is not None else 0)),
            "new_users": rows[-1]["users_not_in_previous"], "new_items": rows[-1]["items_not_in_previous"],
            "already_present": batch_stats.get("already_present") if batch_stats else None,
        }
        return dataset, previous, statistics, changes, batch_start

    # -------------------------------------------------------------------------------- gates

    def time_gate(self, dataset, mode: str, batch_start):
        frame = data.read_interactions(dataset.path)
        _, user_ids, item_ids = data.interaction_matrix(dataset.path)
        cut, description = gate.choose_cut(frame["time"], self.s.holdout, batch_start)
        try:
            holdout = gate.make_holdout(frame, user_ids, item_ids, cut, description)
        except gate.NothingToScore as error:
            self.notes.append(f"{error} The gate fell back to a random split.")
            return None
        del frame
        config = self.challenger_config(mode, dataset, holdout)
        challenger = build_recommender(config.algorithm, holdout.train, config.params)
        fit(challenger)
        metrics = {"new": gate.per_user_metrics(challenger, holdout.train_user_ids, holdout.item_ids, holdout,
                                                self.s.cutoff)}
        if self.old is not None:
            served = self.ws.load_model(self.old.id)  # the signed file that is serving: no re-fit
            metrics["old"] = gate.per_user_metrics(served.recommender, served.user_ids, served.item_ids, holdout,
                                                   self.s.cutoff)
        name = self.s.metric
        intervals = gate.bootstrap(metrics.get("old", {}).get(name), metrics["new"][name], seed=self.s.seed)
        rows = []
        for role, label in (("old", "active (old)"), ("new", "new")):
            if role in metrics:
                model = self.old if role == "old" else None
                rows.append({"role": label, "model_id": model.id if model else None,
                             "algorithm": model.algorithm if model else config.algorithm,
                             **{f"{m}@{self.s.cutoff}": float(v.mean()) for m, v in metrics[role].items()},
                             "low": intervals[role].low, "high": intervals[role].high})
        comparison = pd.DataFrame(rows)
        segments = gate.segment_table(holdout, {role: metrics[role][name] for role in ("old", "new") if role in metrics},
                                      self.s.key)
        old_score = intervals["old"].mean if "old" in intervals else None
        return (config, comparison, intervals["new"].mean, old_score, intervals, holdout.summary(), segments)

    def random_gate(self, dataset, mode: str):
        """No time column (or no user active on both sides of the cut): both configurations re-fit on
        one random split of the new data."""
        if not self.p.time_column:
            self.notes.append("The project has no time column, so the gate cannot hold out the newest interactions: "
                              "both configurations were re-fit on one random split of the data instead.")
        config = self.challenger_config(mode, dataset, None)
        split = {"scheme": "random", "seed": self.s.seed + 1}
        self.new_model = self.ws.train(config, dataset)
        ids = ([self.old.id] if self.old is not None else []) + [self.new_model.id]
        if self.old is not None:
            self.lock.write(metrics_backup={str(self.old.id): self.old.metrics})
        frame = compare(self.ws, ids, training_data=dataset, cutoffs=(self.s.cutoff,), split=split)
        frame = frame.set_index("model_id").loc[ids].reset_index()
        frame.insert(0, "role", (["active (old)"] if self.old is not None else []) + ["new"])
        if self.old is not None and self.old.configuration_id == config.id:
            self.notes.append("Old and new share one configuration, so on the random split both are the same "
                              "configuration re-fitted: any difference is training noise.")
        score = dict(zip(frame["role"], frame[self.s.key]))
        intervals = {role: gate.Interval(float(v), float("nan"), float("nan"))
                     for role, v in (("old", score.get("active (old)")), ("new", score["new"])) if v is not None}
        return (config, frame, float(score["new"]), score.get("active (old)"), intervals,
                {"window": f"a random split (seed {split['seed']}), both configurations re-fit"}, None)

    def challenger_config(self, mode: str, dataset, holdout: gate.Holdout | None):
        if mode == "retrain":
            return self.ws.configuration(self.old.configuration_id)
        tune_on = dataset
        if holdout is not None:  # tune on the data before the cut only: the gate's window stays unseen
            rows, weighted = _rows_before(dataset, holdout.cut, self.p)
            tune_on = self.ws.import_training_data(self.p, rows, weight_column="weight" if weighted else None,
                                                   name=f"training data {dataset.id} before {holdout.cut:%Y-%m-%d %H:%M}")
        self.tuning_job = self.ws.tune(tune_on, algorithms=self.s.algorithms, n_trials=self.s.n_trials,
                                       timeout=self.s.timeout, metric=self.s.metric, cutoff=self.s.cutoff,
                                       seed=self.s.seed, split={"scheme": "random", "seed": self.s.seed},
                                       train_after_tuning=False)
        if not self.tuning_job.best_configuration_id:
            raise WorkbenchError(f"Tuning job {self.tuning_job.id} found no configuration "
                                 f"({self.tuning_job.error or 'no result'}).")
        return self.ws.configuration(self.tuning_job.best_configuration_id)


def _rows_before(dataset, cut, project: Project) -> tuple[pd.DataFrame, bool]:
    """The data set's rows before `cut`, with the project's column names (and whether they carry weights)."""
    frame = data.read_interactions(dataset.path)
    names = {"user_id": project.user_column, "item_id": project.item_column, "time": project.time_column,
             "weight": "weight"}
    keep = frame[frame["time"] < pd.Timestamp(cut)]
    keep = keep[[c for c in names if c in keep]].rename(columns=names)
    return keep, "weight" in keep


def _activate_if_unchanged(ws: Workspace, project_id: int, model_id: int, expected: int | None) -> int | None:
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

