"""Tuning insight: which parameters mattered in a tuning job, and how each algorithm's best score
grew with its trials.

The importances are Optuna's fANOVA (``optuna.importance``) over one algorithm's completed trials,
rebuilt from the catalog's trial rows in the coordinates the search sampled (IALS: ``reg_lambda``,
the effective regularisation, not ``reg``), so they exist for every job, whatever its study
storage was. An algorithm with fewer than ``MIN_TRIALS`` completed trials has none: its note says so.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from .algorithms import Algorithm, get_algorithm
from .errors import ValidationError
from .splits import split_for

if TYPE_CHECKING:
    from .base import WorkspaceBase

MIN_TRIALS = 5  # completed trials of an algorithm before its parameter importances mean anything
Shape = tuple[int, int, int]  # n_users, n_items, nnz of the split's training part


@dataclass
class TuningInsight:
    """What a tuning job found out. Frames:

    * ``importances``: algorithm, parameter, importance (an algorithm's sum to 1), n_trials (its
      completed trials used); most important first within each algorithm;
    * ``best_by_trials``: one row per trial in study order: algorithm, trial (the algorithm's
      1st, 2nd... trial), number (in the study), state, score, best_score (the algorithm's best
      completed score so far);
    * ``by_algorithm``: algorithm, n_trials, n_complete, best_score, best_trial (study number).

    ``notes``: algorithm -> why it has no importances (too few trials, nothing to tune...).
    """

    tuning_job_id: int
    metric: str
    importances: pd.DataFrame
    best_by_trials: pd.DataFrame
    by_algorithm: pd.DataFrame
    notes: dict[str, str] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(a)}: {html.escape(n)}</li>" for a, n in self.notes.items())
        return (f"<b>Tuning job {self.tuning_job_id}</b> ({html.escape(self.metric)})"
                f"{self.by_algorithm.to_html(index=False)}<b>Parameter importances</b>"
                f"{self.importances.to_html(index=False)}" + (f"<ul>{notes}</ul>" if notes else ""))


def tuning_insight(ws: WorkspaceBase, tuning_job_id: Any, min_trials: int = MIN_TRIALS) -> TuningInsight:
    """The insight of a tuning job (finished or running: the trials so far)."""
    job = ws.tuning_job(tuning_job_id)
    if job.trials is None or job.trials.empty:
        raise ValidationError(f"Tuning job {job.id} has no finished trial yet (status {job.status}); "
                              "ask again once trials have run.")
    split = split_for(ws, ws.training_data(job.training_data_id), job.split)
    importances, notes = parameter_importances(job.trials, (split.n_users, split.n_items, split.X_train.nnz),
                                               min_trials=min_trials)
    history = best_by_trials(job.trials)
    return TuningInsight(job.id, f"{job.metric}@{job.cutoff}", importances, history, by_algorithm(history), notes)


def parameter_importances(trials: pd.DataFrame, shape: Shape, min_trials: int = MIN_TRIALS,
                          seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """fANOVA importances of each algorithm's searched parameters over its completed trials
    (`trials`: number, algorithm, params, score, state, as a tuning job holds them), and a note per
    algorithm without any."""
    rows, notes = [], {}
    for name, group in trials.groupby("algorithm", sort=False):
        algorithm = get_algorithm(name)
        complete = group[(group["state"] == "COMPLETE") & group["score"].notna()]
        distributions = search_distributions(algorithm, shape)
        points = [(point, score) for point, score in
                  ((space_point(algorithm, params, shape, distributions), score)
                   for params, score in zip(complete["params"], complete["score"])) if point is not None]
        if not distributions:
            notes[name] = "it has no parameters to tune"
        elif len(points) < min_trials:
            notes[name] = f"{len(points)} completed trial(s); importances need at least {min_trials}"
        elif len({score for _, score in points}) < 2:
            notes[name] = f"all {len(points)} completed trials scored the same"
        else:
            with _quiet_optuna():
                study = optuna.create_study(direction="maximize")
                study.add_trials([optuna.trial.create_trial(params=point, distributions=distributions, value=float(score))
                                  for point, score in points])
                importance = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
            rows += [{"algorithm": name, "parameter": parameter, "importance": float(value), "n_trials": len(points)}
                     for parameter, value in importance.items()]
    return pd.DataFrame(rows, columns=["algorithm", "parameter", "importance", "n_trials"]), notes


def search_distributions(algorithm: Algorithm, shape: Shape) -> dict[str, BaseDistribution]:
    """The algorithm's search space as Optuna distributions, by plain parameter name, as a search on
    data of `shape` samples it."""
    with _quiet_optuna():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    algorithm.suggest(trial, n_users=shape[0], n_items=shape[1], nnz=shape[2])
    prefix = f"{algorithm.name}."
    return {name.removeprefix(prefix): distribution for name, distribution in trial.distributions.items()
            if name != "algorithm"}


def space_point(algorithm: Algorithm, params: dict, shape: Shape,
                distributions: dict[str, BaseDistribution]) -> dict | None:
    """A trial's recorded parameters in the search space's coordinates, clipped into its ranges
    (None when they do not fit it: a missing parameter, an unknown choice)."""
    try:
        values = algorithm.space_point(dict(params or {}), shape)
    except (KeyError, TypeError, ValueError):
        return None
    point = {}
    for name, distribution in distributions.items():
        value = values.get(name)
        if isinstance(distribution, CategoricalDistribution):
            if value not in distribution.choices:
                return None
        elif value is None:
            return None
        else:
            value = min(max(value, distribution.low), distribution.high)
            value = int(round(value)) if isinstance(distribution, IntDistribution) else float(value)
        point[name] = value
    return point


def best_by_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Each trial in study order with its algorithm's trial count and best completed score so far."""
    frame = trials.sort_values("number", kind="stable")[["algorithm", "number", "state", "score"]].reset_index(drop=True)
    frame.insert(1, "trial", frame.groupby("algorithm").cumcount() + 1)
    completed = frame["score"].where(frame["state"] == "COMPLETE")
    frame["best_score"] = completed.groupby(frame["algorithm"]).cummax().groupby(frame["algorithm"]).ffill()
    return frame


def by_algorithm(history: pd.DataFrame) -> pd.DataFrame:
    """One row per algorithm of a `best_by_trials` frame: trials, completed trials, best score and
    the study number of its best trial; best first."""
    completed = history[history["state"] == "COMPLETE"]
    best = completed.loc[completed.groupby("algorithm")["score"].idxmax(), ["algorithm", "score", "number"]] \
        if not completed.empty else pd.DataFrame(columns=["algorithm", "score", "number"])
    summary = (history.groupby("algorithm", sort=False)
               .agg(n_trials=("number", "size"), n_complete=("state", lambda s: int((s == "COMPLETE").sum())))
               .reset_index()
               .merge(best.rename(columns={"score": "best_score", "number": "best_trial"}), on="algorithm", how="left"))
    return summary.sort_values("best_score", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna without its INFO line per study created (the studies here are scratch, in memory)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
