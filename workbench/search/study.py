"""A search's Optuna study: its storage, what each trial records, the study-wide trial budget,
configurations already evaluated, and the result as it stands."""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ..algorithms import get_algorithm, resolve_params
from ..errors import ValidationError, WorkbenchError
from ..evaluation import Split

SKIPPED_ATTR = "not_started"  # user attribute of a trial given up before it ran: the study's budget was reached
SKIPPED_STATE_ATTR = "skipped"  # user attribute of a trial whose estimated cost did not fit (the reason): SKIPPED
TRIAL_COLUMNS = ["number", "algorithm", "params", "score", "seconds", "state", "epochs", "error", "estimate"]


class SearchError(WorkbenchError):
    """The search could not produce any result (no trial completed, nothing to search)."""


@dataclass
class SearchResult:
    """The best configuration of a study and its trials (one row each, ``TRIAL_COLUMNS``)."""

    best_algorithm: str
    best_params: dict
    best_score: float
    trials: pd.DataFrame
    n_pruned: int
    n_failed: int
    elapsed: float
    metric: str = "ndcg"
    cutoff: int = 20
    n_complete: int = 0
    skipped: dict = field(default_factory=dict)  # algorithm -> why it was left out of the search
    n_skipped: int = 0  # trials not run because their estimated cost did not fit (state SKIPPED)
    study_name: str | None = None
    stopped_reason: str | None = None  # "cancelled", "timeout", "budget" (study-wide cap) or None

    @property
    def metric_name(self) -> str:
        return f"{self.metric}@{self.cutoff}"


def open_storage(storage: Any) -> Any:
    """``None`` (in memory), an Optuna storage object, a URL (``sqlite:///...``), or a file path
    (journal file storage, safe for several processes on one machine)."""
    if storage is None or not isinstance(storage, str):
        return storage
    if "://" in storage:
        # SQLAlchemy 2.1 reads a plain postgresql:// URL as psycopg 3; the workbench ships psycopg2.
        for plain in ("postgresql://", "postgres://"):
            if storage.startswith(plain):
                return "postgresql+psycopg2://" + storage[len(plain):]
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(storage))


def _params_key(algorithm: str, params: dict) -> str:
    return algorithm + json.dumps(params, sort_keys=True, default=str)

def trial_row(t: FrozenTrial) -> dict:
    """A finished or failed trial as a row of ``SearchResult.trials`` (``TRIAL_COLUMNS``)."""
    return {
        "number": t.number,
        "algorithm": t.user_attrs.get("algorithm", t.params.get("algorithm")),
        "params": t.user_attrs.get("params"),
        "score": t.value if t.state == TrialState.COMPLETE else (
            max(t.intermediate_values.values()) if t.intermediate_values else None
        ),
        "seconds": t.user_attrs.get("seconds"),
        "state": "SKIPPED" if SKIPPED_STATE_ATTR in t.user_attrs else t.state.name,
        "epochs": t.user_attrs.get("epochs", max(t.intermediate_values) if t.intermediate_values else None),
        "error": t.user_attrs.get("error") or t.user_attrs.get(SKIPPED_STATE_ATTR) or t.user_attrs.get(SKIPPED_ATTR),
        "estimate": t.user_attrs.get("estimate"),
    }


def budget_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count against a study-wide budget: started (running or finished), not ones
    that were given up before they ran (``not_started``)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING and SKIPPED_ATTR not in t.user_attrs]


def study_trial_count(study: optuna.Study) -> int:
    """How many trials of the study count against its budget (running and finished)."""
    return len(budget_trials(study))


def within_budget(study: optuna.Study, number: int, cap: int) -> bool:
    """Is trial `number` among the first `cap` started trials (by start time, then number)?"""
    started = sorted(budget_trials(study), key=lambda t: (t.datetime_start.timestamp() if t.datetime_start else math.inf, t.number))
    return number in {t.number for t in started[:cap]}


def study_best(study: optuna.Study) -> float | None:
    """The best score of the study's completed trials (None before the first)."""
    vals = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(vals) if vals else None


def check_study_compatible(
    study: optuna.Study, split: Split, metric: str, cutoff: int, names: list[str], skipped: dict,
    search_weighting: bool = False,
) -> None:
    """Record what a new study searches, or refuse to join one that searches something else."""
    attrs = study.user_attrs
    mine = {"metric": metric, "cutoff": int(cutoff), "split_fingerprint": split.fingerprint,
            "split_config": split.config.key(), "search_weighting": bool(search_weighting)}
    if not attrs.get("workbench_search"):
        for k, v in mine.items():
            study.set_user_attr(k, v)
        study.set_user_attr("algorithms", names)
        study.set_user_attr("skipped", dict(skipped))
        study.set_user_attr("workbench_search", True)
        return
    for k, v in mine.items():
        if attrs.get(k, False if k == "search_weighting" else None) != v:
            raise ValidationError(
                f"study {study.study_name!r} was created with {k}={attrs.get(k)!r}, not {v!r}; "
                "join it with the same split, metric and cutoff or use another study_name"
            )
    if attrs.get("algorithms") != names:
        raise ValidationError(
            f"study {study.study_name!r} searches {attrs.get('algorithms')}, not {names}; "
            "join it with the same algorithms or use another study_name"
        )


def config_key(name: str, params: dict) -> str:
    """What identifies a configuration within a study (learnt values left out)."""
    p = dict(params)
    if get_algorithm(name).iterative:
        p.pop("train_epochs", None)  # learnt, not chosen
    return name + json.dumps(p, sort_keys=True, default=str)


def cached_value(study: optuna.Study, name: str, params: dict, number: int) -> tuple[float, dict] | None:
    """Score of an identical configuration already completed in the study (and what it learnt)."""
    key = config_key(name, params)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number == number or t.value is None or t.user_attrs.get("algorithm") != name:
            continue
        p = t.user_attrs.get("params") or {}
        if config_key(name, p) == key:
            learnt = {"train_epochs": p["train_epochs"]} if get_algorithm(name).iterative and "train_epochs" in p else {}
            return float(t.value), learnt
    return None


def study_result(
    split: Split,
    *,
    storage: Any,
    study_name: str,
    metric: str = "ndcg",
    cutoff: int = 20,
) -> SearchResult:
    """The result of a (possibly multi-process) study as it stands: best over all its trials.
    ``elapsed`` spans the first trial start to the last trial end."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
        except KeyError:
            raise ValidationError(f"no study named {study_name!r} in {storage!r}") from None
    attrs = study.user_attrs
    if attrs.get("workbench_search"):
        for k, v in (("metric", str(metric).lower()), ("cutoff", int(cutoff)), ("split_fingerprint", split.fingerprint)):
            if attrs.get(k) != v:
                raise ValidationError(f"study {study_name!r} has {k}={attrs.get(k)!r}, not {v!r}")
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    result = summarize(study, str(metric).lower(), int(cutoff), time.perf_counter(),
                       dict(attrs.get("skipped") or {}), study_name, None)
    result.elapsed = max(span, 0.0)
    return result


def summarize(study: optuna.Study, metric: str, cutoff: int, started: float, skipped: dict, study_name: str,
              stopped_reason: str | None) -> SearchResult:
    """The study's best completed trial and all its finished trials; SearchError if none completed."""
    trials = study.get_trials(deepcopy=False)
    rows = [trial_row(t) for t in trials if t.state != TrialState.RUNNING and t.state != TrialState.WAITING]
    df = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    n_skipped = sum(SKIPPED_STATE_ATTR in t.user_attrs for t in trials)
    n_failed = sum(
        t.state == TrialState.FAIL and SKIPPED_ATTR not in t.user_attrs for t in trials
    ) - n_skipped
    elapsed = time.perf_counter() - started
    if not complete:
        errors = [t.user_attrs.get("error") for t in trials if t.user_attrs.get("error")]
        reason = (
            f"no trial completed ({n_failed} failed, {n_pruned} pruned, {n_skipped} skipped"
            + (f", stopped: {stopped_reason}" if stopped_reason else "")
            + ")"
        )
        if errors:
            reason += f"; last error: {errors[-1]}"
        skips = [t.user_attrs[SKIPPED_STATE_ATTR] for t in trials if SKIPPED_STATE_ATTR in t.user_attrs]
        if skips:
            reason += f"; last skipped: {skips[-1]}"
        if skipped:
            reason += "; left out: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise SearchError(reason)
    best = max(complete, key=lambda t: (t.value, -t.number))
    best_algorithm = best.user_attrs.get("algorithm", best.params.get("algorithm"))
    best_params = resolve_params(best_algorithm, best.user_attrs.get("params") or {})
    return SearchResult(
        best_algorithm=best_algorithm,
        best_params=best_params,
        best_score=float(best.value),
        trials=df,
        n_pruned=n_pruned,
        n_failed=n_failed,
        elapsed=elapsed,
        metric=metric,
        cutoff=int(cutoff),
        n_complete=len(complete),
        skipped=dict(skipped),
        n_skipped=n_skipped,
        study_name=study_name,
        stopped_reason=stopped_reason,
    )
