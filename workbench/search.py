"""Hyper-parameter and algorithm search with Optuna (pure: no catalog, no processes).

One study holds every algorithm: a trial's first parameter is the categorical ``algorithm``,
followed by that algorithm's own parameters prefixed ``"<algorithm>."``.

Strategy ``"bandit"`` (default):

1. every portfolio algorithm's sensible defaults are enqueued first, plus a few measured
   known-good seeds (``EXTRA_SEEDS``), so the search starts from good points;
2. then each trial's algorithm is chosen by a seeded bandit (:func:`_choose_algorithm`): an
   algorithm's share falls e-fold per 10 % relative gap to the best score so far and with
   1/sqrt(1 + its trials per tuned dimension); parameter-less TopPop runs once;
3. the chosen algorithm's parameters are, half of the time, a Gaussian perturbation of its best
   configuration (local refinement, shrinking steps) and otherwise sampled by a seeded
   multivariate, grouped TPE sampler (which models each algorithm's parameters separately).

Strategy ``"tpe"``: same seeds, then TPE also picks the algorithm. Measured on ml-100k at 40
trials both reach the same best score (IALS, nDCG@10 0.633-0.636 on 20 % validation users / 50 %
held out; nDCG@20 0.3643 on Recotem's split), the bandit with 10-30 % less CPU because it stops
spending trials on far-behind algorithms.

Speed:

* the split and its evaluator are prepared once per search, never per trial;
* iterative algorithms (IALS) validate after every epoch, keep their best epoch (early stopping,
  patience ``PATIENCE``), and are pruned by :class:`PerAlgorithmMedianPruner`, which compares a
  trial only with earlier trials *of the same algorithm*; the best epoch count becomes the final
  ``train_epochs``;
* a configuration already evaluated in the study is not trained again (its score is reused);
* ``cost_guard`` drops algorithms that would not scale, with the reason logged.

Time limits (in-process, so a running C++ fit cannot be interrupted):

* ``timeout`` (whole search) is checked between trials *and* between epochs; an iterative trial
  reaching it stops and keeps its best epoch; a non-iterative trial is not started when the
  durations of earlier trials of its algorithm say it would overrun the deadline.
* ``per_trial_timeout``: an iterative trial is stopped at the first epoch boundary past the limit
  and keeps its best epoch so far (state COMPLETE, user attribute ``stopped``); a non-iterative
  trial can only be checked after its fit: if it took longer it is marked FAIL (too slow).

Several processes can run ``run_search`` on one study: give the same ``storage`` (an Optuna
storage, a URL, or a file path, which means a journal file) and ``study_name``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import optuna
import pandas as pd
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from .algorithms import (
    DEFAULT_PORTFOLIO,
    Algorithm,
    FitCache,
    build_recommender,
    cost_guard,
    effective_params,
    get_algorithm,
    resolve_params,
)
from .errors import ValidationError, WorkbenchError
from .evaluation import TARGET_METRICS, Split
from .threads import single_threaded_blas

__all__ = [
    "run_search",
    "study_result",
    "SearchResult",
    "SearchError",
    "PerAlgorithmMedianPruner",
    "open_storage",
    "STRATEGIES",
]

MAX_EPOCHS = 30  # upper bound of epochs of an iterative trial
PATIENCE = 3  # validations without improvement before an iterative trial stops
EPOCH_EVAL_MAX_USERS = 1000  # per-epoch validation uses at most this many validation users
# Known-good starting points besides each algorithm's defaults (trial-parameter space, plain
# names; IALS reg_lambda = reg * ials_reg_scale(alpha0, ...)). Measured: IALS 128/1.0/10 is the
# best of the grid on ml-100k; RP3beta with an unlimited neighbourhood on long-tail data.
EXTRA_SEEDS: dict[str, list[dict]] = {
    "IALS": [{"n_components": 128, "alpha0": 1.0, "reg_lambda": 10.0}],
    "RP3beta": [{"top_k": 4096, "beta": 0.3, "normalize_weight": False}],
}
_SKIPPED_ATTR = "not_started"
STRATEGIES = ("bandit", "tpe")


class SearchError(WorkbenchError):
    """The search could not produce any result (no trial completed, nothing to search)."""


# --------------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------------


class PerAlgorithmMedianPruner(BasePruner):
    """Median pruning among trials of the same algorithm (``params["algorithm"]``).

    A trial is pruned at step ``s`` when its best value so far is below the median of the values
    that completed trials of its algorithm reported at step ``s`` (maximisation), once at least
    ``n_startup_trials`` such trials exist and after ``n_warmup_steps`` steps.
    """

    def __init__(self, n_startup_trials: int = 2, n_warmup_steps: int = 1) -> None:
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step <= self.n_warmup_steps:
            return False
        algorithm = trial.params.get("algorithm")
        values = [
            t.intermediate_values[step]
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.params.get("algorithm") == algorithm and step in t.intermediate_values
        ]
        if len(values) < self.n_startup_trials:
            return False
        current = [v for v in trial.intermediate_values.values() if not math.isnan(v)]
        if not current:
            return True
        best = max(current)
        direction_max = study.direction == optuna.study.StudyDirection.MAXIMIZE
        median = float(np.median(values))
        return best < median if direction_max else best > median


# --------------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------------


@dataclass
class SearchResult:
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
    skipped: dict = field(default_factory=dict)  # algorithm -> reason (cost guard)
    study_name: str | None = None
    stopped_reason: str | None = None  # "cancelled", "timeout", "budget" (study-wide cap) or None

    @property
    def metric_name(self) -> str:
        return f"{self.metric}@{self.cutoff}"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


class _TrialTooSlow(Exception):
    pass


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


def _resolve_portfolio(
    split: Split, algorithms: Sequence[str] | None, log: Callable[[str], None]
) -> tuple[list[Algorithm], dict[str, str]]:
    names = list(DEFAULT_PORTFOLIO) if algorithms is None else list(algorithms)
    if isinstance(algorithms, str):
        names = [algorithms]
    if not names:
        raise ValidationError("give at least one algorithm to search")
    chosen: list[Algorithm] = []
    skipped: dict[str, str] = {}
    for n in names:
        algo = get_algorithm(n)
        if algo in chosen:
            continue
        reason = cost_guard(algo, split.n_users, split.n_items, split.X_train.nnz)
        if reason:
            skipped[algo.name] = reason
            log(f"skipping {algo.name}: {reason}")
            continue
        chosen.append(algo)
    if not chosen:
        raise SearchError(
            "no algorithm left to search after the cost guard: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    return chosen, skipped


def _default_trial_params(algo: Algorithm, split: Split, override: dict | None = None) -> dict:
    """The algorithm's defaults (updated with ``override``, in trial-parameter space) as values
    of its search space (prefixed), clipped into it."""
    if algo.space is None:
        return {}
    shape = (split.n_users, split.n_items, split.X_train.nnz)
    ranges = algo.space_ranges(*shape)
    point = algo.space_point(effective_params(algo, {}, *shape), shape)
    point.update(override or {})
    out: dict[str, Any] = {}
    prefix = f"{algo.name}."
    for full, spec in ranges.items():
        plain = full[len(prefix):]
        value = point.get(plain)
        if value is None:
            continue
        if spec[0] == "cat":
            if value in spec[1]:
                out[full] = value
        else:
            lo, hi = spec[1], spec[2]
            v = min(max(value, lo), hi)
            out[full] = int(round(v)) if spec[0] == "int" else float(v)
    return out


def _trial_row(t: FrozenTrial) -> dict:
    return {
        "number": t.number,
        "algorithm": t.user_attrs.get("algorithm", t.params.get("algorithm")),
        "params": t.user_attrs.get("params"),
        "score": t.value if t.state == TrialState.COMPLETE else (
            max(t.intermediate_values.values()) if t.intermediate_values else None
        ),
        "seconds": t.user_attrs.get("seconds"),
        "state": t.state.name,
        "epochs": t.user_attrs.get("epochs", max(t.intermediate_values) if t.intermediate_values else None),
        "error": t.user_attrs.get("error") or t.user_attrs.get(_SKIPPED_ATTR),
    }


# --------------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------------


def run_search(
    split: Split,
    *,
    algorithms: Sequence[str] | None = None,
    n_trials: int = 40,
    timeout: float | None = None,
    per_trial_timeout: float | None = None,
    metric: str = "ndcg",
    cutoff: int = 20,
    seed: int | None = 0,
    storage: Any = None,
    study_name: str | None = None,
    on_trial: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    max_epochs: int = MAX_EPOCHS,
    strategy: str = "bandit",
    max_study_trials: int | None = None,
    trial_attrs: dict | None = None,
) -> SearchResult:
    """Search algorithms and their parameters on ``split``; see the module docstring.

    ``n_trials`` counts the trials this call runs (pruned and failed ones included); with a shared
    ``storage``/``study_name`` every process adds its own. ``on_trial(info)`` is called after
    each trial with number, algorithm, params, score, seconds, state, best_so_far (and epochs,
    error); ``should_stop()`` is checked between trials (and epochs) to cancel.
    ``max_study_trials`` caps the whole study (every process's trials, running ones included):
    this call stops once the study holds that many, whatever ``n_trials`` says (optuna's
    MaxTrialsCallback semantics, checked before each trial is started). ``trial_attrs`` are set
    as user attributes of every trial this call runs (e.g. which worker ran it).
    """
    started = time.perf_counter()
    logf: Callable[[str], None] = log if log is not None else (lambda s: None)
    metric = str(metric).lower()
    if metric not in TARGET_METRICS:
        raise ValidationError(f"unknown metric {metric!r}; valid metrics: {', '.join(TARGET_METRICS)}")
    try:
        n_trials = int(n_trials)
    except (TypeError, ValueError):
        raise ValidationError(f"n_trials must be a positive integer, got {n_trials!r}")
    if n_trials < 1:
        raise ValidationError(f"n_trials must be a positive integer, got {n_trials!r}")
    for name, v in (("timeout", timeout), ("per_trial_timeout", per_trial_timeout)):
        if v is not None and not (isinstance(v, (int, float)) and v > 0):
            raise ValidationError(f"{name} must be a positive number of seconds, got {v!r}")
    if max_study_trials is not None and (not isinstance(max_study_trials, int) or max_study_trials < 1):
        raise ValidationError(f"max_study_trials must be a positive integer, got {max_study_trials!r}")
    if not isinstance(max_epochs, int) or max_epochs < 1:
        raise ValidationError(f"max_epochs must be a positive integer, got {max_epochs!r}")
    if strategy not in STRATEGIES:
        raise ValidationError(f"unknown strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")
    portfolio, skipped = _resolve_portfolio(split, algorithms, logf)
    names = [a.name for a in portfolio]
    evaluator = split.evaluator(cutoff=cutoff, target_metric=metric)
    epoch_evaluator = split.evaluator(cutoff=cutoff, target_metric=metric, max_users=EPOCH_EVAL_MAX_USERS)
    deadline = None if timeout is None else started + float(timeout)

    storage_obj = open_storage(storage)
    if study_name is None:
        study_name = f"search-{uuid.uuid4().hex[:12]}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            n_startup_trials=max(6, len(names) + 2),
            constant_liar=storage_obj is not None,
        )
        study = optuna.create_study(
            storage=storage_obj,
            study_name=study_name,
            direction="maximize",
            sampler=sampler,
            pruner=PerAlgorithmMedianPruner(n_startup_trials=2, n_warmup_steps=1),
            load_if_exists=True,
        )
    _check_study_compatible(study, split, metric, cutoff, names, skipped)

    existing = study.get_trials(deepcopy=False)
    if not existing:
        # Known-good starting points: each algorithm's defaults, then a few extra seeds.
        order = sorted(portfolio, key=lambda a: (a.name == "TopPop", not a.iterative))
        for algo in order:
            params = {"algorithm": algo.name, **_default_trial_params(algo, split)}
            study.enqueue_trial(params, skip_if_exists=True)
        for algo in order:
            for extra in EXTRA_SEEDS.get(algo.name, []):
                params = {"algorithm": algo.name, **_default_trial_params(algo, split, extra)}
                study.enqueue_trial(params, skip_if_exists=True)

    logf(
        f"searching {', '.join(names)} for {metric}@{cutoff}: {n_trials} trials"
        + (f", timeout {timeout:g} s" if timeout else "")
        + f" on {split.n_users:,} users x {split.n_items:,} items "
        f"({split.n_val_users:,} validation users)"
    )

    fits = FitCache(split.X_train)  # what the trials' fits share (see the algorithms' fit_trial hooks)
    # Objects alive now (modules, the study, the split) are frozen out of the garbage collector for
    # the trials: irspack calls gc.collect() in fits (DenseSLIM twice), each a full scan otherwise.
    # BLAS runs on one thread (ml-100k, 40 trials: 17-28 CPU s with 2 threads, 8-9 with 1);
    # irspack's own C++ threads are not affected.
    with single_threaded_blas(), _frozen_gc():
        # This process's fit durations per algorithm (for the deadline check).
        durations: dict[str, list[tuple[float, float]]] = {}
        stopped_reason: str | None = None
        best_so_far = _study_best(study)
        n_run = 0
        while n_run < n_trials:
            if should_stop is not None and should_stop():
                stopped_reason = "cancelled"
                logf("search cancelled")
                break
            if deadline is not None and time.perf_counter() >= deadline:
                stopped_reason = "timeout"
                logf("search timeout reached")
                break
            if max_study_trials is not None and study_trial_count(study) >= max_study_trials:
                stopped_reason = "budget"
                logf(f"the study has its {max_study_trials} trials")
                break
            if strategy == "bandit" and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                n_all = len(study.get_trials(deepcopy=False))
                chosen = _choose_algorithm(study, portfolio, seed, n_all)
                study.enqueue_trial({"algorithm": chosen, **_local_move(study, chosen, seed, n_all)})
            trial = study.ask()
            if max_study_trials is not None and not _within_budget(study, trial.number, max_study_trials):
                # Another process started a trial at the same moment; the earlier starts keep the budget.
                trial.set_user_attr(_SKIPPED_ATTR, "the study's trial budget was reached")
                study.tell(trial, state=TrialState.FAIL)
                stopped_reason = "budget"
                logf(f"the study has its {max_study_trials} trials")
                break
            n_run += 1
            t0 = time.perf_counter()
            info: dict[str, Any] = {"number": trial.number}
            progress: dict[str, Any] = {}
            for key, value in (trial_attrs or {}).items():
                trial.set_user_attr(key, value)
            try:
                name = trial.suggest_categorical("algorithm", names)
                algo = get_algorithm(name)
                sampled = algo.suggest(trial, n_users=split.n_users, n_items=split.n_items, nnz=split.X_train.nnz)
                params = _jsonable(resolve_params(algo, sampled))
                info.update(algorithm=name, params=params)
                trial.set_user_attr("algorithm", name)
                trial.set_user_attr("params", params)

                # Would a non-iterative fit overrun the search deadline? Then do not start it.
                if deadline is not None and not algo.iterative and durations.get(name):
                    expected = _expected_seconds(durations[name], params)
                    if time.perf_counter() + expected > deadline + 0.05 * float(timeout):
                        trial.set_user_attr(_SKIPPED_ATTR, "would overrun the search timeout")
                        study.tell(trial, state=TrialState.FAIL)
                        stopped_reason = "timeout"
                        logf(f"trial {trial.number}: {name} would overrun the search timeout; stopping")
                        break

                cached = _cached_value(study, name, params, trial.number)
                if cached is not None:
                    value, learnt = cached
                    params = {**params, **learnt}
                    trial.set_user_attr("params", params)
                    trial.set_user_attr("cached", True)
                    info.update(params=params)
                    epochs = learnt.get("train_epochs")
                else:
                    value, epochs, stopped = _run_trial(
                        trial, algo, params, fits, evaluator, epoch_evaluator, t0, per_trial_timeout, deadline,
                        should_stop, max_epochs, progress,
                    )
                    if epochs is not None:
                        params = {**params, "train_epochs": int(epochs)}
                        trial.set_user_attr("params", params)
                        trial.set_user_attr("epochs", int(epochs))
                        info.update(params=params)
                    if stopped:
                        trial.set_user_attr("stopped", stopped)
                if not math.isfinite(value):
                    raise FloatingPointError(f"{metric}@{cutoff} is {value}")
                seconds = time.perf_counter() - t0
                trial.set_user_attr("seconds", seconds)
                durations.setdefault(name, []).append((seconds, _size(params)))
                study.tell(trial, value)
                state = "COMPLETE"
                info.update(score=float(value), epochs=epochs)
                if best_so_far is None or value > best_so_far:
                    best_so_far = float(value)
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
                if isinstance(exc, _TrialTooSlow):
                    durations.setdefault(info.get("algorithm", "?"), []).append((seconds, _size(info["params"])))
            info.update(seconds=seconds, state=state, best_so_far=best_so_far)
            info.setdefault("algorithm", None)
            info.setdefault("params", None)
            info.setdefault("score", None)
            logf(_trial_message(info, metric, cutoff))
            if on_trial is not None:
                on_trial(dict(info))

    return _result(study, split, metric, cutoff, started, skipped, study_name, stopped_reason)


def _budget_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that count against a study-wide budget: started (running or finished), not ones
    that were given up before they ran (``not_started``)."""
    return [t for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING and _SKIPPED_ATTR not in t.user_attrs]


def study_trial_count(study: optuna.Study) -> int:
    """How many trials of the study count against its budget (running and finished)."""
    return len(_budget_trials(study))


def _within_budget(study: optuna.Study, number: int, cap: int) -> bool:
    """Is trial `number` among the first `cap` started trials (by start time, then number)?"""
    started = sorted(_budget_trials(study), key=lambda t: (t.datetime_start.timestamp() if t.datetime_start else math.inf, t.number))
    return number in {t.number for t in started[:cap]}


BANDIT_TAU = 0.1  # relative score gap to the best algorithm that divides an algorithm's share by e


def _choose_algorithm(study: optuna.Study, portfolio: list[Algorithm], seed: int | None, n: int) -> str:
    """Which algorithm the next trial tunes: an algorithm's share decays exponentially with its
    relative gap to the best score so far (e-fold per BANDIT_TAU) and as 1/sqrt(1 + trials per
    tuned dimension), so one-parameter algorithms saturate sooner.
    Algorithms without parameters are evaluated once (their default trial) and never again."""
    best: dict[str, float] = {}
    count: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs.get("algorithm", t.params.get("algorithm"))
        if a is None:
            continue
        count[a] = count.get(a, 0) + 1
        if t.state == TrialState.COMPLETE and t.value is not None:
            best[a] = max(best.get(a, -math.inf), float(t.value))
    tunable = [a for a in portfolio if a.space is not None]
    if not tunable:
        return portfolio[0].name
    for a in tunable:
        if count.get(a.name, 0) == 0:
            return a.name
    top = max(best.values()) if best else 0.0
    scale = max(abs(top), 1e-12)
    weights = []
    for a in tunable:
        gap = (top - best[a.name]) / scale if a.name in best else 1.0
        dims = max(1, len(a.space_ranges()))
        weights.append(math.exp(-gap / BANDIT_TAU) / math.sqrt(1.0 + count.get(a.name, 0) / dims))
    w = np.asarray(weights, dtype=float)
    rng = np.random.RandomState(((0 if seed is None else int(seed)) * 1_000_003 + n) % (2**32))
    return tunable[int(rng.choice(len(tunable), p=w / w.sum()))].name


LOCAL_PROB = 0.5  # share of bandit trials that perturb the algorithm's best configuration


def _local_move(study: optuna.Study, algorithm: str, seed: int | None, n: int) -> dict:
    """With probability LOCAL_PROB, a perturbation of the algorithm's best configuration so far
    (Gaussian steps in the normalised, log where the range is log, parameter space, shrinking as
    the algorithm accumulates trials); otherwise {} and TPE samples the parameters."""
    rng = np.random.RandomState(((0 if seed is None else int(seed)) * 7_919 + n * 31 + 17) % (2**32))
    if rng.rand() >= LOCAL_PROB:
        return {}
    done = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.params.get("algorithm") == algorithm and t.value is not None
    ]
    if not done:
        return {}
    best = max(done, key=lambda t: (t.value, -t.number))
    dims = max(1, len(best.distributions) - 1)
    sigma = 0.15 / math.sqrt(1.0 + len(done) / dims)
    out: dict[str, Any] = {}
    for name, dist in best.distributions.items():
        if name == "algorithm":
            continue
        value = best.params[name]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            out[name] = value if rng.rand() < 0.8 else dist.choices[rng.randint(len(dist.choices))]
            continue
        lo, hi = float(dist.low), float(dist.high)
        log = bool(getattr(dist, "log", False)) and lo > 0
        f = (lambda v: math.log(v)) if log else (lambda v: v)
        a, b = f(lo), f(hi)
        if b <= a:
            out[name] = value
            continue
        x = (f(float(value)) - a) / (b - a) + rng.normal(0.0, sigma)
        x = min(max(x, 0.0), 1.0)
        v = a + x * (b - a)
        v = math.exp(v) if log else v
        if isinstance(dist, optuna.distributions.IntDistribution):
            v = int(min(max(round(v), dist.low), dist.high))
        else:
            v = float(min(max(v, lo), hi))
        out[name] = v
    return out


def _size(params: dict) -> float:
    """A rough cost driver of a configuration (factorisation cost grows about linearly with it)."""
    v = params.get("n_components")
    return float(v) if isinstance(v, (int, float)) and v > 0 else 1.0


def _expected_seconds(history: list[tuple[float, float]], params: dict) -> float:
    """Expected duration of a fit: earlier fits of the algorithm, scaled up by size (median)."""
    size = _size(params)
    return float(np.median([sec * max(1.0, size / max(old, 1.0)) for sec, old in history]))


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
            raise ValidationError(f"no study named {study_name!r} in {storage!r}")
    attrs = study.user_attrs
    if attrs.get("workbench_search"):
        for k, v in (("metric", str(metric).lower()), ("cutoff", int(cutoff)), ("split_fingerprint", split.fingerprint)):
            if attrs.get(k) != v:
                raise ValidationError(f"study {study_name!r} has {k}={attrs.get(k)!r}, not {v!r}")
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    result = _result(study, split, str(metric).lower(), int(cutoff), time.perf_counter(),
                     dict(attrs.get("skipped") or {}), study_name, None)
    result.elapsed = max(span, 0.0)
    return result


def _study_best(study: optuna.Study) -> float | None:
    vals = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return max(vals) if vals else None


def _check_study_compatible(
    study: optuna.Study, split: Split, metric: str, cutoff: int, names: list[str], skipped: dict
) -> None:
    attrs = study.user_attrs
    mine = {"metric": metric, "cutoff": int(cutoff), "split_fingerprint": split.fingerprint,
            "split_config": split.config.key()}
    if not attrs.get("workbench_search"):
        for k, v in mine.items():
            study.set_user_attr(k, v)
        study.set_user_attr("algorithms", names)
        study.set_user_attr("skipped", dict(skipped))
        study.set_user_attr("workbench_search", True)
        return
    for k, v in mine.items():
        if attrs.get(k) != v:
            raise ValidationError(
                f"study {study.study_name!r} was created with {k}={attrs.get(k)!r}, not {v!r}; "
                "join it with the same split, metric and cutoff or use another study_name"
            )
    if attrs.get("algorithms") != names:
        raise ValidationError(
            f"study {study.study_name!r} searches {attrs.get('algorithms')}, not {names}; "
            "join it with the same algorithms or use another study_name"
        )


def _config_key(name: str, params: dict) -> str:
    p = dict(params)
    if get_algorithm(name).iterative:
        p.pop("train_epochs", None)  # learnt, not chosen
    return _params_key(name, p)


def _cached_value(study: optuna.Study, name: str, params: dict, number: int) -> tuple[float, dict] | None:
    """Score of an identical configuration already completed in the study (and what it learnt)."""
    key = _config_key(name, params)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number == number or t.value is None or t.user_attrs.get("algorithm") != name:
            continue
        p = t.user_attrs.get("params") or {}
        if _config_key(name, p) == key:
            learnt = {"train_epochs": p["train_epochs"]} if get_algorithm(name).iterative and "train_epochs" in p else {}
            return float(t.value), learnt
    return None


def _score(evaluator: Any, rec: Any) -> float:
    # Multithreaded metric sums differ in the last bits between runs; rounding keeps the
    # sampler's and pruner's comparisons (and so a seeded search) reproducible.
    return round(float(evaluator.get_target_score(rec)), 12)


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """The objects alive on entry are left out of garbage collections until the exit."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run_trial(
    trial: optuna.Trial,
    algo: Algorithm,
    params: dict,
    fits: FitCache,
    evaluator: Any,
    epoch_evaluator: Any,
    t0: float,
    per_trial_timeout: float | None,
    deadline: float | None,
    should_stop: Callable[[], bool] | None,
    max_epochs: int,
    progress: dict,
) -> tuple[float, int | None, str | None]:
    rec = build_recommender(algo, fits.X, params)
    if not algo.iterative:
        algo.fit_trial(rec, fits)
        took = time.perf_counter() - t0
        if per_trial_timeout is not None and took > per_trial_timeout:
            raise _TrialTooSlow(
                f"fit took {took:.1f} s, more than per_trial_timeout={per_trial_timeout:g} s"
            )
        return _score(evaluator, rec), None, None

    # Iterative: our own epoch loop (irspack's primitives). Validation after epochs 1-4, then
    # every second epoch; on a fixed sample of validation users when there are many, in which
    # case the best state is scored once more on all of them.
    rec.start_learning()
    best = -math.inf
    best_epoch = 0
    bad = 0
    stopped: str | None = None
    for epoch in range(1, max_epochs + 1):
        rec.run_epoch()
        if epoch > 4 and epoch % 2 and epoch != max_epochs:
            continue
        score = _score(epoch_evaluator, rec)
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
        now = time.perf_counter()
        if per_trial_timeout is not None and now - t0 > per_trial_timeout:
            stopped = "per_trial_timeout"
            break
        if deadline is not None and now >= deadline:
            stopped = "search timeout"
            break
        if should_stop is not None and should_stop():
            stopped = "cancelled"
            break
    if best_epoch == 0:
        raise RuntimeError("no epoch was validated")
    if epoch_evaluator is not evaluator:
        rec.load_state()
        best = _score(evaluator, rec)
    return best, best_epoch, stopped


def _trial_message(info: dict, metric: str, cutoff: int) -> str:
    score = info.get("score")
    s = "-" if score is None else f"{score:.4f}"
    extra = ""
    if info.get("epochs"):
        extra = f", {info['epochs']} epochs"
    if info.get("error"):
        extra += f" ({info['error']})"
    best = info.get("best_so_far")
    return (
        f"trial {info['number']} {info.get('algorithm')} {info['state']}: {metric}@{cutoff}={s}"
        f" in {info['seconds']:.2f} s{extra}; best {'-' if best is None else f'{best:.4f}'}"
        f" | {info.get('params')}"
    )


def _result(
    study: optuna.Study,
    split: Split,
    metric: str,
    cutoff: int,
    started: float,
    skipped: dict,
    study_name: str,
    stopped_reason: str | None,
) -> SearchResult:
    trials = study.get_trials(deepcopy=False)
    rows = [_trial_row(t) for t in trials if t.state != TrialState.RUNNING and t.state != TrialState.WAITING]
    df = pd.DataFrame(
        rows, columns=["number", "algorithm", "params", "score", "seconds", "state", "epochs", "error"]
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    n_pruned = sum(t.state == TrialState.PRUNED for t in trials)
    n_failed = sum(
        t.state == TrialState.FAIL and _SKIPPED_ATTR not in t.user_attrs for t in trials
    )
    elapsed = time.perf_counter() - started
    if not complete:
        errors = [t.user_attrs.get("error") for t in trials if t.user_attrs.get("error")]
        reason = (
            f"no trial completed ({n_failed} failed, {n_pruned} pruned"
            + (f", stopped: {stopped_reason}" if stopped_reason else "")
            + ")"
        )
        if errors:
            reason += f"; last error: {errors[-1]}"
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
        study_name=study_name,
        stopped_reason=stopped_reason,
    )
