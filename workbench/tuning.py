"""Tuning jobs: an Optuna search over algorithms, auto-train of the best, and fair comparisons.

The search itself is `search.run_search` (pure). This module gives it a catalog record, a
background job with progress and a log line per trial, parallel worker processes joined to one
study, and the auto-train of the best configuration (the "Auto-Train (After Tuning)" flow).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from . import data, jobs, search
from .algorithms import DEFAULT_PORTFOLIO, get_algorithm
from .errors import SnapshotMismatchError, ValidationError, WorkbenchError

# METRICS: the metrics a search can target (ui.tuning and retrain read them here)
from .evaluation import TARGET_METRICS as METRICS
from .evaluation import Split, SplitConfig
from .polling import StillWaiting, poll_until
from .records import TuningJob
from .signing import DEFAULT_MAX_PAYLOAD_BYTES
from .splits import snapshot_split, split_for
from .training import create_model_record, train_model

if TYPE_CHECKING:
    from .base import WorkspaceBase

SEARCH_REPORT_INTERVAL = 2.0  # seconds between the catalog writes of a running search (trial rows, log, progress)


def tune(ws: WorkspaceBase, training_data: Any, algorithms: Sequence[str] | None = None, n_trials: int = 40,
         timeout: float | None = None, per_trial_timeout: float | None = None, metric: str = "ndcg",
         cutoff: int = 20, split: SplitConfig | dict | None = None, train_after_tuning: bool = True,
         n_jobs: int = 1, storage: str | None = None, seed: int = 0, background: bool = False,
         memory_limit: int | str | None = None, search_weighting: bool = False,
         sample_users: int | None = None) -> TuningJob:
    """Search the best configuration on a held-out split of `training_data`; train it by default.

    `n_jobs > 1` runs trials in that many processes joined to one Optuna study; `storage` (an
    Optuna storage URL) lets workers on other machines join too (`workbench tune-worker`). With
    `storage` and `n_jobs=0` this process only coordinates: the workers run every trial.
    `memory_limit`, `search_weighting`: see `search.run_search`; `sample_users`: tune on the
    split of a random sample of that many users (the best configuration is trained on all).
    """
    dataset = ws.training_data(training_data)
    names = [get_algorithm(a).name for a in algorithms] if algorithms else None
    if metric not in METRICS:
        raise ValidationError(f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}.")
    for label, value in (("n_trials", n_trials), ("cutoff", cutoff), ("n_jobs", n_jobs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if label == "n_jobs" and storage else 1):
            raise ValidationError(f"{label} must be a positive whole number, got {value!r}.")
    split_config = split if isinstance(split, SplitConfig) else SplitConfig.from_dict(split)
    if memory_limit is not None:
        search.memory_limit(memory_limit)  # a bad value is refused now, not in the job
    if sample_users is not None and (not isinstance(sample_users, int) or isinstance(sample_users, bool)
                                     or sample_users < 2):
        raise ValidationError(f"sample_users must be a whole number of users >= 2, got {sample_users!r}.")
    options = {"memory_limit": memory_limit, "search_weighting": bool(search_weighting), "sample_users": sample_users}

    catalog = ws.catalog

    def work(con) -> tuple[int, int]:
        job_id = catalog.insert_row(con, "jobs", {"kind": "tune", "project_id": dataset.project_id, "request": {}})
        tuning_id = catalog.insert_row(con, "tuning_jobs", {
            "project_id": dataset.project_id, "training_data_id": dataset.id, "job_id": job_id,
            "n_trials": n_trials, "timeout_overall": timeout, "timeout_singlestep": per_trial_timeout,
            "algorithms": names or list(DEFAULT_PORTFOLIO), "metric": metric, "cutoff": cutoff,
            "split": split_config.to_dict(), "seed": seed, "n_jobs": n_jobs, "storage": storage,
            "train_after_tuning": train_after_tuning,
        })
        con.execute("UPDATE jobs SET request = ? WHERE id = ?",
                    [json.dumps({"tuning_job_id": tuning_id, "options": options}), job_id])
        con.execute("UPDATE tuning_jobs SET study_name = ? WHERE id = ?", [study_name_of(tuning_id), tuning_id])
        return tuning_id, job_id

    tuning_id, job_id = catalog.run(work)
    if background:
        jobs.start_worker(catalog, job_id)
    else:
        jobs.run_job(catalog, job_id, lambda job, reporter: run_tuning_job(ws, job, reporter))
    return ws.tuning_job(tuning_id)



def list_tuning_jobs(ws: WorkspaceBase, project: Any = None) -> pd.DataFrame:
    where, params = ws.project_filter(project, "t")
    return ws.catalog.query_df(
        f"""
        SELECT t.id, p.name AS project, t.training_data_id, j.status, t.n_trials,
               (SELECT count(*) FROM tuning_trials x WHERE x.tuning_job_id = t.id) AS trials_done,
               t.metric, t.cutoff, t.best_score, c.algorithm AS best_algorithm, t.best_configuration_id,
               t.model_id, t.timeout_overall, t.created_at
        FROM tuning_jobs t JOIN projects p ON p.id = t.project_id LEFT JOIN jobs j ON j.id = t.job_id
        LEFT JOIN configurations c ON c.id = t.best_configuration_id {where} ORDER BY t.id DESC
        """,
        params,
    )


def _study_storage(ws: WorkspaceBase, record: dict) -> str | None:
    if record["storage"]:
        return record["storage"]
    if record["n_jobs"] > 1:
        studies = ws.data_dir / "studies"
        studies.mkdir(parents=True, exist_ok=True)
        return str(studies / f"{record['study_name']}.journal")
    return None


def _trial_recorder(record: dict, reporter: jobs.Reporter, worker: int, started: float):
    """on_trial callback: a catalog row per trial (the search logs its own line) and the job's progress."""

    def on_trial(info: dict) -> None:
        reporter.insert("tuning_trials", {
            "tuning_job_id": record["id"], "number": info.get("number"), "algorithm": info.get("algorithm"),
            "params": info.get("params") or {}, "score": _finite(info.get("score")),
            "seconds": info.get("seconds"), "state": info.get("state", "?"), "worker": worker,
        })
        if worker != 0:
            return
        done = int(info.get("number", 0)) + 1  # study-wide: counts every worker's trials
        elapsed = time.monotonic() - started
        fraction = done / max(record["n_trials"], 1)
        if record["timeout_overall"]:
            fraction = max(fraction, elapsed / record["timeout_overall"])
        estimate = elapsed / fraction - elapsed if fraction > 0 else float("nan")
        best = info.get("best_so_far")
        reporter.progress(
            0.9 * min(fraction, 1.0),
            f"{min(done, record['n_trials'])}/{record['n_trials']} trials, best "
            f"{'-' if best is None else f'{best:.4f}'}, {elapsed:.0f} s elapsed, ~{max(estimate, 0):.0f} s left",
        )

    return on_trial


def _split_in_words(split: Split, sample_users: int | None = None) -> str:
    """The log line describing a tuning job's held-out split."""
    config = split.config
    sampled = f" (a sample of {split.n_users:,} users, all items)" if sample_users else ""
    hidden = {"random": f"a random {config.heldout_ratio:.0%} of the interactions of",
              "latest": f"the latest {config.heldout_ratio:.0%} of the interactions of",
              "time": f"the interactions after the {config.time_quantile:.0%} time quantile, of"}[config.scheme]
    return (f"Held-out split ({config.scheme}, seed {config.seed}): {hidden} {split.n_val_users:,} validation users "
            f"({split.n_heldout:,} interactions) are hidden; each trial learns from the other "
            f"{split.n_train_interactions:,} interactions ({split.n_users:,} users, {split.n_items:,} items) and is "
            f"scored on how well it finds the hidden ones{sampled}.")


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _tuning_record(ws: WorkspaceBase, tuning_id: int) -> dict:
    """A tuning job's row with the options its job's request holds (memory_limit, search_weighting, sample_users)."""
    record = ws.catalog.get("tuning_jobs", tuning_id, "tuning job")
    request = ws.catalog.get("jobs", record["job_id"], "job")["request"] if record["job_id"] else {}
    return {**record, **_options(request.get("options"))}


def _options(options: dict | None) -> dict:
    return {"memory_limit": None, "search_weighting": False, "sample_users": None, **(options or {})}


def _search(record: dict, split: Split, reporter: jobs.Reporter, n_trials: int, worker: int,
            storage: str | None, started: float, max_study_trials: int | None = None) -> search.SearchResult:
    """Run this process's share of the trials; the overall timeout counts from `started`."""
    timeout = record["timeout_overall"]
    if timeout:
        timeout = max(timeout - (time.monotonic() - started), 0.1)
    # Trials take a fraction of a second each: writing the catalog (open, commit) after every one
    # would cost a large share of a small search; rows, log lines and progress are written in
    # batches instead (a cancel is noticed within the same interval).
    interval = reporter.interval
    reporter.interval = max(interval, SEARCH_REPORT_INTERVAL)
    try:
        return search.run_search(
            split, algorithms=record["algorithms"], n_trials=n_trials, timeout=timeout,
            per_trial_timeout=record["timeout_singlestep"], metric=record["metric"], cutoff=record["cutoff"],
            seed=record["seed"] + worker, storage=storage, study_name=record["study_name"],
            on_trial=_trial_recorder(record, reporter, worker, started),
            should_stop=reporter.cancel_requested, log=reporter.log,
            warn=lambda message: reporter.log(message, "WARNING"),
            max_study_trials=max_study_trials, trial_attrs={"worker": worker},
            memory_limit=record["memory_limit"], search_weighting=record["search_weighting"],
            max_model_bytes=DEFAULT_MAX_PAYLOAD_BYTES,
        )
    finally:
        reporter.interval = interval


def run_tuning_job(ws: WorkspaceBase, job: dict, reporter: jobs.Reporter) -> dict:
    """The body of a tuning job: search (in parallel when asked), record the best, train it."""
    started = time.monotonic()
    record = _tuning_record(ws, job["request"]["tuning_job_id"])
    dataset = ws.training_data(record["training_data_id"])
    reporter.progress(0.01, "preparing the split", force=True)
    split = split_for(ws, dataset, record["split"], record["sample_users"])
    reporter.log(_split_in_words(split, record["sample_users"]))
    storage = _study_storage(ws, record)
    shared = bool(record["storage"])  # a storage other processes and machines can join (tune-worker)
    if shared:
        _publish_study(record, dataset, split, storage)
        # everyone runs until the study-wide budget; n_jobs=0: this process only coordinates
        shares = [record["n_trials"] if record["n_jobs"] else 0] + [record["n_trials"]] * (record["n_jobs"] - 1)
    else:
        shares = [record["n_trials"] // record["n_jobs"] + (1 if i < record["n_trials"] % record["n_jobs"] else 0)
                  for i in range(record["n_jobs"])]
    cap = record["n_trials"] if shared else None
    helpers = [_start_helper(ws, record["id"], shares[i], i, storage) for i in range(1, record["n_jobs"]) if shares[i]]
    try:
        try:
            result = (_search(record, split, reporter, shares[0], 0, storage, started, cap)
                      if shares[0] else None)
        finally:
            for helper in helpers:
                helper.wait()
        if shared and (result is None or result.stopped_reason != "cancelled"):
            _wait_for_workers(record, storage, reporter, started, until_budget=result is None)
            if result is None:
                reporter.check_cancelled()
    finally:
        if shared:
            _set_study_attr(storage, record["study_name"], "workbench_stopped", True)  # remote workers stop too
    if helpers or shared:
        result = search.study_result(split, storage=storage, study_name=record["study_name"],
                                     metric=record["metric"], cutoff=record["cutoff"])
    if shared:
        _copy_worker_trials(ws, record, storage, reporter)
    if result.stopped_reason == "cancelled":
        reporter.check_cancelled()
    return record_best(ws, record, result, reporter)


def _load_study(storage: str, study_name: str) -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.load_study(study_name=study_name, storage=search.open_storage(storage))


def _set_study_attr(storage: str, study_name: str, key: str, value: Any) -> None:
    try:
        _load_study(storage, study_name).set_user_attr(key, value)
    except Exception:  # the study is gone or the storage unreachable: nothing to tell
        pass


def _publish_study(record: dict, dataset: dict, split: Split, storage: str) -> None:
    """Create the job's study and store in its user attributes all a remote worker needs (it has no catalog)."""
    job = {
        "tuning_job_id": record["id"], "snapshot_fingerprint": dataset.fingerprint,
        "snapshot_path": str(Path(dataset.path).resolve()), "n_users": dataset.n_users,
        "n_items": dataset.n_items, "split": split.config.to_dict(), "metric": record["metric"],
        "cutoff": record["cutoff"], "algorithms": list(record["algorithms"]), "n_trials": record["n_trials"],
        "seed": record["seed"], "timeout_overall": record["timeout_overall"],
        "timeout_singlestep": record["timeout_singlestep"],
        "options": {key: record[key] for key in ("memory_limit", "search_weighting", "sample_users")},
    }
    for attempt in range(10):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study = optuna.create_study(storage=search.open_storage(storage), study_name=record["study_name"],
                                            direction="maximize", load_if_exists=True)
            break
        except Exception:  # a worker creating Optuna's tables in a fresh database at the same moment
            if attempt == 9:
                raise
            time.sleep(0.5)
    old = study.user_attrs.get("workbench_job")
    if old and old.get("snapshot_fingerprint") != job["snapshot_fingerprint"]:
        raise ValidationError(f"Study {record['study_name']!r} in that storage already belongs to another tuning job "
                              "(other data); use a fresh database or schema for this catalog's jobs.")
    study.set_user_attr("workbench_job", job)
    study.set_user_attr("workbench_stopped", False)


def _wait_for_workers(record: dict, storage: str, reporter: jobs.Reporter, started: float,
                      until_budget: bool = False) -> None:
    """Wait until the study has its n_trials finished trials or (unless `until_budget`) no worker runs a trial
    (bounded by the timeout)."""
    study = _load_study(storage, record["study_name"])
    timeout = record["timeout_overall"]
    logged = False

    def done() -> bool:
        nonlocal logged
        trials = [t for t in study.get_trials(deepcopy=False) if search.SKIPPED_ATTR not in t.user_attrs]
        finished = sum(t.state.is_finished() for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished >= record["n_trials"] or not running and not until_budget:
            return True
        if timeout and time.monotonic() - started >= timeout:
            reporter.log(f"The time budget is used up: not waiting for the {running} trial(s) other workers still run.")
            return True
        if reporter.cancel_requested():
            return True
        if until_budget:
            reporter.progress(0.9 * finished / max(record["n_trials"], 1),
                              f"{finished}/{record['n_trials']} trials finished by the workers, {running} running")
        if not logged:
            reporter.log(f"waiting for the trials of other workers ({finished} of {record['n_trials']} finished, "
                         f"{running} running)")
            logged = True
        return False

    poll_until(done, timeout=None, interval=0.5)


def _copy_worker_trials(ws: WorkspaceBase, record: dict, storage: str, reporter: jobs.Reporter) -> None:
    """Copy the trials other processes ran (remote workers have no catalog) into tuning_trials."""
    reporter.flush()
    known = {row["number"] for row in ws.catalog.query(
        "SELECT number FROM tuning_trials WHERE tuning_job_id = ?", [record["id"]])}
    study = _load_study(storage, record["study_name"])
    for trial in study.get_trials(deepcopy=False):
        if trial.number in known or not trial.state.is_finished() or search.SKIPPED_ATTR in trial.user_attrs:
            continue
        row = search.trial_row(trial)
        worker = trial.user_attrs.get("worker")
        reporter.insert("tuning_trials", {
            "tuning_job_id": record["id"], "number": trial.number, "algorithm": row["algorithm"],
            "params": row["params"] or {}, "score": _finite(row["score"]), "seconds": row["seconds"],
            "state": row["state"], "worker": worker if isinstance(worker, int) and abs(worker) < 2**31 else -1,
        })
    reporter.flush()


def record_best(ws: WorkspaceBase, record: dict, result: search.SearchResult, reporter: jobs.Reporter) -> dict:
    """Save the best configuration and, when asked, train it on all the data."""
    for name, reason in result.skipped.items():
        reporter.log(f"{name} was not searched: {reason}", "WARNING")
    config = ws.create_configuration(record["project_id"], result.best_algorithm, result.best_params,
                                     name=f"tuned-{record['id']}-{result.best_algorithm}", tuning_job_id=record["id"])
    reporter.log(f"Best: {result.best_algorithm}, {record['metric']}@{record['cutoff']} {result.best_score:.4f}, saved as "
                 f"configuration #{config.id} {config.name!r}. Trials: {result.n_complete} complete, {result.n_pruned} "
                 f"stopped early, {result.n_failed} failed, {result.n_skipped} skipped.")
    ws.catalog.update("tuning_jobs", record["id"], {"best_score": result.best_score, "best_configuration_id": config.id})
    outcome = {"tuning_job_id": record["id"], "best_configuration_id": config.id, "best_score": result.best_score,
               "skipped": skipped_summary(result)}
    if record["train_after_tuning"]:
        reporter.progress(0.92, "training the best configuration on all the data", force=True)
        dataset = ws.training_data(record["training_data_id"])
        model_id, model_job = create_model_record(ws, config, dataset)
        ws.catalog.update("tuning_jobs", record["id"], {"model_id": model_id})
        ws.catalog.update("models", model_id, {"metrics": {f"val_{record['metric']}@{record['cutoff']}": result.best_score}})
        jobs.run_job(ws.catalog, model_job, lambda _job, model_reporter: train_model(ws, model_id, model_reporter))
        reporter.log(f"Trained model #{model_id} ({result.best_algorithm}) with the best configuration on all the data.")
        outcome["model_id"] = model_id
    return outcome


def skipped_summary(result: search.SearchResult) -> list[dict]:
    """What the search did not run, and why: algorithms left out, then skipped trials."""
    out = [{"algorithm": name, "number": None, "reason": reason} for name, reason in result.skipped.items()]
    trials = result.trials[result.trials["state"] == "SKIPPED"]
    out += [{"algorithm": row.algorithm, "number": int(row.number), "reason": row.error, "estimate": row.estimate}
            for row in trials.itertuples()]
    return out


def _start_helper(ws: WorkspaceBase, tuning_id: int, n_trials: int, worker: int, storage: str | None) -> subprocess.Popen:
    log = ws.data_dir / "logs" / f"tuning-{tuning_id}-worker-{worker}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "workbench.worker", "--join-tuning", str(ws.catalog_path), str(tuning_id),
             str(n_trials), str(worker), storage or ""],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
        )


def join_tuning_job(ws: WorkspaceBase, tuning_id: int, n_trials: int, worker: int = 1,
                    storage: str | None = None) -> search.SearchResult:
    """Add `n_trials` trials to a tuning job's study from this process (a helper or a remote worker)."""
    record = _tuning_record(ws, tuning_id)
    storage = storage or _study_storage(ws, record)
    if storage is None:
        raise ValidationError(f"Tuning job {tuning_id} has no shared study storage; start it with n_jobs > 1 or storage=.")
    split = split_for(ws, ws.training_data(record["training_data_id"]), record["split"], record["sample_users"])
    reporter = jobs.Reporter(ws.catalog, record["job_id"])
    try:
        return _search(record, split, reporter, n_trials, worker, storage, time.monotonic())
    finally:
        reporter.flush()


def study_name_of(job_id: int) -> str:
    return f"workbench-tuning-{int(job_id)}"


def _local_snapshot(ref: str) -> Path:
    if "://" in ref:
        if not ref.startswith("file://"):
            raise ValidationError(f"--snapshot {ref!r}: only local paths and file:// URLs are supported; copy or mount "
                                  "the snapshot folder (e.g. a shared volume) and give its path.")
        ref = ref[len("file://"):]
    return Path(ref)


def run_worker(job_id: int, storage: str, snapshot: str | None = None, n_trials: int | None = None,
               worker: int | None = None, wait: float = 60.0, log=print) -> search.SearchResult | None:
    """Join tuning job `job_id`'s study in `storage` from any machine, without the catalog.

    Everything else comes from the study's user attributes (written by the coordinator) and the
    job's Parquet snapshot (`snapshot`, default: the path the coordinator recorded). Runs trials
    until the study has its n_trials (or `n_trials` of this worker's own ran, or the coordinator
    stopped); returns None when there was nothing left to do.
    """
    if "://" not in storage:
        raise ValidationError(f"--storage must be a database URL (e.g. postgresql://user:pass@host/db), got {storage!r}.")
    study_name = study_name_of(job_id)
    problem = None

    def published() -> tuple[optuna.Study, dict] | None:
        nonlocal problem
        problem = None
        try:
            study = _load_study(storage, study_name)
        except KeyError:
            return None
        except Exception as error:  # unreachable, or the coordinator is creating Optuna's tables right now
            problem = error
            return None
        job = study.user_attrs.get("workbench_job")
        return (study, job) if job is not None else None

    try:
        study, job = poll_until(published, timeout=wait, interval=0.5)
    except StillWaiting:
        study = job = None
    if problem is not None:
        raise WorkbenchError(f"Cannot open the study storage: {type(problem).__name__}: {problem}".splitlines()[0])
    if job is None:
        raise ValidationError(f"No tuning job {job_id} in that storage (no study {study_name!r} created by a "
                              f"coordinator within {wait:g} s).")
    path = _local_snapshot(snapshot or job["snapshot_path"])
    info = data.snapshot_info(path)
    if info.fingerprint != job["snapshot_fingerprint"]:
        raise SnapshotMismatchError(
            f"Snapshot {path} has fingerprint {info.fingerprint[:16]}..., but tuning job {job_id} was created on "
            f"{job['snapshot_fingerprint'][:16]}...; hand this worker the job's own snapshot."
        )
    worker = os.getpid() if worker is None else int(worker)
    if study.user_attrs.get("workbench_stopped") or search.study_trial_count(study) >= job["n_trials"]:
        log(f"tuning job {job_id}: nothing left to do")
        return None
    options = _options(job.get("options"))
    split = snapshot_split(path, info.fingerprint, info.n_users, info.n_items, job["split"], None, str(path),
                            options["sample_users"])

    def stopped() -> bool:
        return bool(study.user_attrs.get("workbench_stopped"))

    return search.run_search(
        split, algorithms=job["algorithms"], n_trials=n_trials or job["n_trials"], timeout=job["timeout_overall"],
        per_trial_timeout=job["timeout_singlestep"], metric=job["metric"], cutoff=job["cutoff"],
        seed=job["seed"] + 1000 + worker % 1_000_000, storage=storage, study_name=study_name, should_stop=stopped,
        log=log, max_study_trials=job["n_trials"], trial_attrs={"worker": worker, "host": socket.gethostname()},
        memory_limit=options["memory_limit"], search_weighting=options["search_weighting"],
        max_model_bytes=DEFAULT_MAX_PAYLOAD_BYTES,
    )
