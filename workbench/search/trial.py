"""One trial of a search: sample a configuration, reuse the score of an identical one, skip it
when its estimated cost does not fit the budget (:mod:`.budget`), else fit (iterative
algorithms epoch by epoch, with early stopping and pruning) and score it; record it in the study
whatever happens. A failed or skipped trial never stops the search."""

from __future__ import annotations

import math
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..algorithms import Algorithm, FitCache, build_recommender, get_algorithm, resolve_params, weighting
from ..evaluation import Split
from .budget import TrialBudget
from .study import SKIPPED_STATE_ATTR, cached_value

MAX_EPOCHS = 30  # upper bound of epochs of an iterative trial
PATIENCE = 3  # validations without improvement before an iterative trial stops
EPOCH_EVAL_MAX_USERS = 1000  # per-epoch validation uses at most this many validation users
# A trial's score covers at most this many (user, item) cells: on large catalogues a fixed sample
# of the validation users (20k items: 2,500 users; 200k items: 1,000). Scoring 10,000 users over
# 20k items took 41% of a trial's time (1.8 s a validation); up to 5,000 items every validation
# user up to 10,000.
TRIAL_EVAL_MAX_CELLS = 50_000_000
WEIGHTED_MATRICES_KEPT = 2  # training matrices of other weightings (and what their fits share) kept at once


def scored_users(split: Split) -> tuple[int, int]:
    """How many validation users score a trial, and an iterative trial's epochs."""
    trial = min(split.n_val_users, max(EPOCH_EVAL_MAX_USERS, TRIAL_EVAL_MAX_CELLS // max(split.n_items, 1)))
    return trial, min(trial, EPOCH_EVAL_MAX_USERS)


class TrialTooSlow(Exception):
    """A non-iterative fit took longer than ``per_trial_timeout``."""


@dataclass
class TrialLimits:
    """When trials stop: the search deadline (and its length), the per-trial limit, a cancel
    check and the epoch cap of iterative algorithms."""

    deadline: float | None = None
    timeout: float | None = None
    per_trial_timeout: float | None = None
    should_stop: Callable[[], bool] | None = None
    max_epochs: int = MAX_EPOCHS


@dataclass
class TrialRunner:
    """Runs the trials of one search process on one split, one at a time. ``weights`` (the
    thresholds' range, see :func:`~workbench.algorithms.weighting.space`) makes each trial also
    sample the configuration's interaction weighting."""

    split: Split
    names: list[str]
    metric: str
    cutoff: int
    limits: TrialLimits
    budget: TrialBudget
    trial_attrs: dict = field(default_factory=dict)
    best_so_far: float | None = None
    weights: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        trial_users, epoch_users = scored_users(self.split)
        self.evaluator = self.split.evaluator(cutoff=self.cutoff, target_metric=self.metric, max_users=trial_users)
        self.epoch_evaluator = self.split.evaluator(cutoff=self.cutoff, target_metric=self.metric,
                                                    max_users=epoch_users)
        # what the trials' fits share (the fit_trial hooks), per weighting of the training matrix
        self.fits: OrderedDict[tuple, FitCache] = OrderedDict()

    def fit_cache(self, params: dict) -> FitCache:
        """The shared fits of the training matrix weighted as ``params`` say (the latest few kept)."""
        key = weighting.key(params)
        cache = self.fits.get(key)
        if cache is None:
            cache = self.fits[key] = FitCache(weighting.apply(self.split.X_train, params))
            while len(self.fits) > WEIGHTED_MATRICES_KEPT:
                self.fits.popitem(last=False)
        self.fits.move_to_end(key)
        return cache

    def run(self, study: optuna.Study, trial: optuna.Trial) -> dict:
        """Run and record ``trial``; return what happened (number, algorithm, params, score,
        seconds, state, epochs, error, best_so_far, and the estimate). State SKIPPED: its cost
        did not fit the budget (``error`` says why)."""
        t0 = time.perf_counter()
        info: dict[str, Any] = {"number": trial.number}
        progress: dict[str, Any] = {}
        name, cost = None, None
        for key, value in self.trial_attrs.items():
            trial.set_user_attr(key, value)
        try:
            name = trial.suggest_categorical("algorithm", self.names)
            algo = get_algorithm(name)
            split = self.split
            sampled = algo.suggest(trial, n_users=split.n_users, n_items=split.n_items, nnz=split.X_train.nnz)
            if self.weights is not None:
                sampled.update(weighting.space(trial, f"{name}.", self.weights))
            params = _jsonable(resolve_params(algo, sampled))
            info.update(algorithm=name, params=params)
            trial.set_user_attr("algorithm", name)
            trial.set_user_attr("params", params)
            cached = cached_value(study, name, params, trial.number)
            cost = None if cached is not None else self.budget.cost(algo, params)
            if cost is not None:
                info["estimate"] = cost.as_dict()
                trial.set_user_attr("estimate", info["estimate"])
                reason = self.budget.refusal(algo, cost)
                if reason is not None:
                    return self._skip(study, trial, info, reason, cost, t0)
            stopped = None
            if cached is not None:
                value, learnt = cached
                params = {**params, **learnt}
                trial.set_user_attr("params", params)
                trial.set_user_attr("cached", True)
                info.update(params=params)
                epochs = learnt.get("train_epochs")
            else:
                value, epochs, stopped = self._fit_and_score(trial, algo, params, t0, progress)
                if epochs is not None:
                    params = {**params, "train_epochs": int(epochs)}
                    trial.set_user_attr("params", params)
                    trial.set_user_attr("epochs", int(epochs))
                    info.update(params=params)
                if stopped:
                    trial.set_user_attr("stopped", stopped)
            if not math.isfinite(value):
                raise FloatingPointError(f"{self.metric}@{self.cutoff} is {value}")
            seconds = time.perf_counter() - t0
            trial.set_user_attr("seconds", seconds)
            if cost is not None and not stopped:
                self.budget.record(name, cost.raw_seconds, seconds)
            study.tell(trial, value)
            state = "COMPLETE"
            info.update(score=float(value), epochs=epochs)
            if self.best_so_far is None or value > self.best_so_far:
                self.best_so_far = float(value)
        except optuna.TrialPruned:
            seconds = time.perf_counter() - t0
            trial.set_user_attr("seconds", seconds)
            study.tell(trial, state=TrialState.PRUNED)
            state = "PRUNED"
            info.update(score=progress.get("best"), epochs=progress.get("epoch"))
        except (KeyboardInterrupt, SystemExit):
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        except Exception as exc:  # a failed trial never kills the search
            seconds = time.perf_counter() - t0
            message = f"{type(exc).__name__}: {exc}"[:500]
            try:
                trial.set_user_attr("seconds", seconds)
                trial.set_user_attr("error", message)
                trial.set_user_attr("traceback", traceback.format_exc()[-2000:])
            except Exception:
                pass
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            state = "FAIL"
            info.update(error=message, score=None)
            if isinstance(exc, TrialTooSlow) and cost is not None:
                self.budget.record(name, cost.raw_seconds, seconds)
        info.update(seconds=seconds, state=state, best_so_far=self.best_so_far)
        info.setdefault("algorithm", None)
        info.setdefault("params", None)
        info.setdefault("score", None)
        return info

    def message(self, info: dict) -> str:
        """The log line of a trial, for people: number, algorithm, score, seconds, key parameters."""
        shown = list((info.get("params") or {}).items())
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown[:5])
        params = f" ({params}{', …' if len(shown) > 5 else ''})" if shown else ""
        head = f"Trial {info['number'] + 1}: {info.get('algorithm')}"
        if info["state"] == "SKIPPED":
            return f"{head} skipped, not run: {info['error']}"
        score, metric = info.get("score"), f"{self.metric}@{self.cutoff}"
        took = f"in {info['seconds']:.1f} s"
        if info["state"] == "FAIL":
            return f"{head} failed {took}: {info.get('error')}"
        if info["state"] == "PRUNED":
            reached = "" if score is None else f", {metric} {score:.4f} after {info.get('epochs')} epochs"
            return f"{head} stopped early {took}, behind earlier trials{reached}{params}"
        best = " · new best" if score is not None and score == info.get("best_so_far") else ""
        return f"{head} {metric} {score:.4f} {took}{best}{params}"

    def _skip(self, study: optuna.Study, trial: optuna.Trial, info: dict, reason: str, cost: Any,
              t0: float) -> dict:
        """Record a trial whose estimated cost does not fit: not run, state SKIPPED, with the reason."""
        reason = f"{reason} (estimate {cost.describe()})"
        trial.set_user_attr(SKIPPED_STATE_ATTR, reason)
        study.tell(trial, state=TrialState.FAIL)
        info.update(state="SKIPPED", error=reason, score=None, seconds=time.perf_counter() - t0,
                    best_so_far=self.best_so_far)
        return info

    def _fit_and_score(self, trial: optuna.Trial, algo: Algorithm, params: dict, t0: float,
                       progress: dict) -> tuple[float, int | None, str | None]:
        """(score, best epoch or None, why an iterative fit stopped early or None)."""
        limits = self.limits
        fits = self.fit_cache(params)
        rec = build_recommender(algo, fits.X, params, weighted=True)
        if not algo.iterative:
            algo.fit_trial(rec, fits)
            took = time.perf_counter() - t0
            if limits.per_trial_timeout is not None and took > limits.per_trial_timeout:
                raise TrialTooSlow(f"fit took {took:.1f} s, more than per_trial_timeout={limits.per_trial_timeout:g} s")
            return _score(self.evaluator, rec), None, None

        # Iterative: our own epoch loop (irspack's primitives). Validation after epochs 1-4, then
        # every second epoch; on a fixed sample of validation users when there are many, in which
        # case the best state is scored once more on all of them.
        rec.start_learning()
        best = -math.inf
        best_epoch = 0
        bad = 0
        stopped: str | None = None
        for epoch in range(1, limits.max_epochs + 1):
            rec.run_epoch()
            if epoch > 4 and epoch % 2 and epoch != limits.max_epochs:
                continue
            score = _score(self.epoch_evaluator, rec)
            if math.isnan(score):
                raise FloatingPointError(f"score is NaN at epoch {epoch}")
            if score > best:
                best, best_epoch, bad = score, epoch, 0
                rec.save_state()
            else:
                bad += 1
            trial.report(score, epoch)
            progress.update(best=best, epoch=epoch)
            if bad >= PATIENCE:
                break
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")
            stopped = self._stop_reason(t0)
            if stopped:
                break
        if best_epoch == 0:
            raise RuntimeError("no epoch was validated")
        if self.epoch_evaluator is not self.evaluator:
            rec.load_state()
            best = _score(self.evaluator, rec)
        return best, best_epoch, stopped

    def _stop_reason(self, t0: float) -> str | None:
        """Why an iterative trial should stop at this epoch boundary (None: go on)."""
        limits, now = self.limits, time.perf_counter()
        if limits.per_trial_timeout is not None and now - t0 > limits.per_trial_timeout:
            return "per_trial_timeout"
        if limits.deadline is not None and now >= limits.deadline:
            return "search timeout"
        if limits.should_stop is not None and limits.should_stop():
            return "cancelled"
        return None


def _score(evaluator: Any, rec: Any) -> float:
    # Multithreaded metric sums differ in the last bits between runs; rounding keeps the
    # sampler's and pruner's comparisons (and so a seeded search) reproducible.
    return round(float(evaluator.get_target_score(rec)), 12)


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating,)):
            v = float(v)
        elif isinstance(v, (np.bool_,)):
            v = bool(v)
        out[k] = v
    return out
