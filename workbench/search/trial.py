"""One trial of a search: sample a configuration, reuse the score of an identical one, else fit
(iterative algorithms epoch by epoch, with early stopping and pruning) and score it; record it in
the study whatever happens. A failed trial never stops the search."""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import optuna
from optuna.trial import TrialState

from ..algorithms import Algorithm, FitCache, build_recommender, get_algorithm, resolve_params
from ..evaluation import Split
from .study import SKIPPED_ATTR, cached_value

MAX_EPOCHS = 30  # upper bound of epochs of an iterative trial
PATIENCE = 3  # validations without improvement before an iterative trial stops
EPOCH_EVAL_MAX_USERS = 1000  # per-epoch validation uses at most this many validation users


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
    """Runs the trials of one search process on one split, one at a time."""

    split: Split
    names: list[str]
    metric: str
    cutoff: int
    limits: TrialLimits
    trial_attrs: dict = field(default_factory=dict)
    best_so_far: float | None = None

    def __post_init__(self) -> None:
        self.evaluator = self.split.evaluator(cutoff=self.cutoff, target_metric=self.metric)
        self.epoch_evaluator = self.split.evaluator(cutoff=self.cutoff, target_metric=self.metric,
                                                    max_users=EPOCH_EVAL_MAX_USERS)
        self.fits = FitCache(self.split.X_train)  # what the trials' fits share (the fit_trial hooks)
        self.durations: dict[str, list[tuple[float, float]]] = {}  # this process's fits per algorithm (seconds, size)

    def run(self, study: optuna.Study, trial: optuna.Trial) -> dict | None:
        """Run and record ``trial``; return what happened (number, algorithm, params, score,
        seconds, state, epochs, error, best_so_far), or None when the trial was given up because
        it would overrun the search deadline (the search should stop)."""
        t0 = time.perf_counter()
        info: dict[str, Any] = {"number": trial.number}
        progress: dict[str, Any] = {}
        for key, value in self.trial_attrs.items():
            trial.set_user_attr(key, value)
        try:
            name = trial.suggest_categorical("algorithm", self.names)
            algo = get_algorithm(name)
            split = self.split
            sampled = algo.suggest(trial, n_users=split.n_users, n_items=split.n_items, nnz=split.X_train.nnz)
            params = _jsonable(resolve_params(algo, sampled))
            info.update(algorithm=name, params=params)
            trial.set_user_attr("algorithm", name)
            trial.set_user_attr("params", params)
            if self._would_overrun(algo, params):
                trial.set_user_attr(SKIPPED_ATTR, "would overrun the search timeout")
                study.tell(trial, state=TrialState.FAIL)
                return None
            cached = cached_value(study, name, params, trial.number)
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
            self.durations.setdefault(name, []).append((seconds, _size(params)))
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
            if isinstance(exc, TrialTooSlow):
                self.durations.setdefault(info.get("algorithm", "?"), []).append((seconds, _size(info["params"])))
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
        score, metric = info.get("score"), f"{self.metric}@{self.cutoff}"
        took = f"in {info['seconds']:.1f} s"
        if info["state"] == "FAIL":
            return f"{head} failed {took}: {info.get('error')}"
        if info["state"] == "PRUNED":
            reached = "" if score is None else f", {metric} {score:.4f} after {info.get('epochs')} epochs"
            return f"{head} stopped early {took}, behind earlier trials{reached}{params}"
        best = " · new best" if score is not None and score == info.get("best_so_far") else ""
        return f"{head} {metric} {score:.4f} {took}{best}{params}"

    def _would_overrun(self, algo: Algorithm, params: dict) -> bool:
        """Would a non-iterative fit, judged by this process's earlier fits of the algorithm,
        end after the search deadline (plus 5 % of the timeout)? Then it is not started."""
        limits, history = self.limits, self.durations.get(algo.name)
        if limits.deadline is None or algo.iterative or not history:
            return False
        return time.perf_counter() + _expected_seconds(history, params) > limits.deadline + 0.05 * float(limits.timeout)

    def _fit_and_score(self, trial: optuna.Trial, algo: Algorithm, params: dict, t0: float,
                       progress: dict) -> tuple[float, int | None, str | None]:
        """(score, best epoch or None, why an iterative fit stopped early or None)."""
        limits = self.limits
        rec = build_recommender(algo, self.fits.X, params)
        if not algo.iterative:
            algo.fit_trial(rec, self.fits)
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


def _size(params: dict) -> float:
    """A rough cost driver of a configuration (factorisation cost grows about linearly with it)."""
    v = params.get("n_components")
    return float(v) if isinstance(v, (int, float)) and v > 0 else 1.0


def _expected_seconds(history: list[tuple[float, float]], params: dict) -> float:
    """Expected duration of a fit: earlier fits of the algorithm, scaled up by size (median)."""
    size = _size(params)
    return float(np.median([sec * max(1.0, size / max(old, 1.0)) for sec, old in history]))
