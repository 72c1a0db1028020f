"""``run_search``: this process's share of a search (see the package docstring)."""

from __future__ import annotations

import contextlib
import gc
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from ..algorithms import (
    DEFAULT_PORTFOLIO,
    Algorithm,
    DataShape,
    Machine,
    get_algorithm,
    machine,
    unusable_reason,
    weighting,
)
from ..errors import ValidationError
from ..evaluation import TARGET_METRICS, Split
from ..threads import single_threaded_blas
from .bandit import choose_algorithm, local_move
from .budget import TrialBudget
from .budget import memory_limit as resolve_memory_limit
from .pruner import PerAlgorithmMedianPruner
from .seeds import enqueue_seeds
from .study import (
    SKIPPED_ATTR,
    SearchError,
    SearchResult,
    check_study_compatible,
    open_storage,
    study_best,
    study_trial_count,
    summarize,
    within_budget,
)
from .trial import MAX_EPOCHS, TrialLimits, TrialRunner, scored_users

STRATEGIES = ("bandit", "tpe")


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
    memory_limit: int | str | None = None,
    max_model_bytes: float | None = None,
    search_weighting: bool = False,
    speed: Machine | None = None,
    warn: Callable[[str], None] | None = None,
) -> SearchResult:
    """Search algorithms and their parameters on ``split``; see the package docstring.

    ``n_trials`` counts the trials this call runs (pruned and failed ones included); with a shared
    ``storage``/``study_name`` every process adds its own. ``on_trial(info)`` is called after
    each trial with number, algorithm, params, score, seconds, state, best_so_far (and epochs,
    error); ``should_stop()`` is checked between trials (and epochs) to cancel.
    ``max_study_trials`` caps the whole study (every process's trials, running ones included):
    this call stops once the study holds that many, whatever ``n_trials`` says (optuna's
    MaxTrialsCallback semantics, checked before each trial is started). ``trial_attrs`` are set
    as user attributes of every trial this call runs (e.g. which worker ran it).

    Budget (:mod:`.budget`): ``memory_limit`` (bytes or text like ``"6GB"``; default
    ``WORKBENCH_MEMORY_LIMIT``, else half the available memory) and ``max_model_bytes`` (the
    largest model a file may hold) bound each trial's estimated cost on this machine (``speed``,
    default: measured once per process); trials that would not fit are skipped (state SKIPPED,
    the reason in ``error``), algorithms whose cheapest configuration would not fit are left out
    (``SearchResult.skipped``); each is passed to ``warn`` (default ``log``).
    ``search_weighting``: also search each configuration's interaction weighting
    (:mod:`workbench.algorithms.weighting`) when the split's interactions carry weights.
    """
    started = time.perf_counter()
    logf: Callable[[str], None] = log if log is not None else (lambda s: None)
    warnf: Callable[[str], None] = warn if warn is not None else logf
    metric = str(metric).lower()
    n_trials = _check_arguments(metric, n_trials, timeout, per_trial_timeout, max_study_trials, max_epochs, strategy)
    limits = TrialLimits(deadline=None if timeout is None else started + float(timeout), timeout=timeout,
                         per_trial_timeout=per_trial_timeout, should_stop=should_stop, max_epochs=max_epochs)
    trial_users, epoch_users = scored_users(split)
    budget = TrialBudget(
        shape=DataShape.of(split.X_train), machine=speed or machine(), memory_limit=resolve_memory_limit(memory_limit),
        n_val_users=trial_users, epoch_val_users=epoch_users,
        max_epochs=max_epochs, deadline=limits.deadline, timeout=timeout, per_trial_timeout=per_trial_timeout,
        max_model_bytes=max_model_bytes,
    )
    portfolio, skipped = _resolve_portfolio(split, algorithms, budget, warnf)
    names = [a.name for a in portfolio]
    thresholds = weighting.threshold_range(split.X_train) if search_weighting else None
    if search_weighting and thresholds is None:
        logf("search_weighting: every interaction weighs the same here, so every configuration stays binary")
    if study_name is None:
        study_name = f"search-{uuid.uuid4().hex[:12]}"
    study = _open_study(open_storage(storage), study_name, seed, len(names))
    check_study_compatible(study, split, metric, cutoff, names, skipped, thresholds is not None)
    if not study.get_trials(deepcopy=False):
        enqueue_seeds(study, portfolio, split, weighted=thresholds is not None)

    logf(
        f"Searching {', '.join(names)} for the best {metric}@{cutoff}: {n_trials} trials"
        + (f", {timeout:g} s at most" if timeout else "")
        + f", on {split.n_users:,} users × {split.n_items:,} items ({split.n_val_users:,} validation users"
        + (f", {trial_users:,} of them score each trial" if trial_users < split.n_val_users else "")
        + f"). Memory limit {budget.memory_limit / 1e9:.1f} GB; {budget.machine.describe()}."
    )
    runner = TrialRunner(split, names, metric, cutoff, limits, budget, dict(trial_attrs or {}), weights=thresholds)
    # Objects alive now (modules, the study, the split) are frozen out of the garbage collector for
    # the trials: irspack calls gc.collect() in fits (DenseSLIM twice), each a full scan otherwise.
    # BLAS runs on one thread (ml-100k, 40 trials: 17-28 CPU s with 2 threads, 8-9 with 1);
    # irspack's own C++ threads are not affected.
    with single_threaded_blas(), _frozen_gc():
        runner.best_so_far = study_best(study)
        stopped_reason = _run_trials(study, runner, portfolio, n_trials, strategy, seed, max_study_trials, logf,
                                     warnf, on_trial)
    return summarize(study, metric, cutoff, started, skipped, study_name, stopped_reason)


def _run_trials(study: optuna.Study, runner: TrialRunner, portfolio: list[Algorithm], n_trials: int, strategy: str,
                seed: int | None, max_study_trials: int | None, log: Callable[[str], None],
                warn: Callable[[str], None], on_trial: Callable[[dict], None] | None) -> str | None:
    """Run up to ``n_trials`` trials; return why the search stopped early (None: it did not)."""
    limits, budget = runner.limits, runner.budget
    for _ in range(n_trials):
        if limits.should_stop is not None and limits.should_stop():
            log("Cancelled: no more trials.")
            return "cancelled"
        if limits.deadline is not None and time.perf_counter() >= limits.deadline:
            log("The time budget is used up: no more trials.")
            return "timeout"
        if max_study_trials is not None and study_trial_count(study) >= max_study_trials:
            log(f"The study has its {max_study_trials} trials (counting every worker's).")
            return "budget"
        if strategy == "bandit" and not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            affordable = [a for a in portfolio if budget.refusal(a, budget.cheapest(a)) is None]
            if not affordable:
                log("The time left is too short for any algorithm's cheapest trial: no more trials.")
                return "timeout"
            n_all = len(study.get_trials(deepcopy=False))
            chosen = choose_algorithm(study, affordable, seed, n_all)
            study.enqueue_trial({"algorithm": chosen, **local_move(study, chosen, seed, n_all)})
        trial = study.ask()
        if max_study_trials is not None and not within_budget(study, trial.number, max_study_trials):
            # Another process started a trial at the same moment; the earlier starts keep the budget.
            trial.set_user_attr(SKIPPED_ATTR, "the study's trial budget was reached")
            study.tell(trial, state=TrialState.FAIL)
            log(f"The study has its {max_study_trials} trials (counting every worker's).")
            return "budget"
        info = runner.run(study, trial)
        (warn if info["state"] == "SKIPPED" else log)(runner.message(info))
        if on_trial is not None:
            on_trial(dict(info))
    return None


def _check_arguments(metric: str, n_trials: Any, timeout: Any, per_trial_timeout: Any, max_study_trials: Any,
                     max_epochs: Any, strategy: str) -> int:
    """ValidationError for a bad argument; ``n_trials`` as an int."""
    if metric not in TARGET_METRICS:
        raise ValidationError(f"unknown metric {metric!r}; valid metrics: {', '.join(TARGET_METRICS)}")
    try:
        count = int(n_trials)
    except (TypeError, ValueError):
        raise ValidationError(f"n_trials must be a positive integer, got {n_trials!r}") from None
    if count < 1:
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
    return count


def _resolve_portfolio(
    split: Split, algorithms: Sequence[str] | None, budget: TrialBudget, warn: Callable[[str], None]
) -> tuple[list[Algorithm], dict[str, str]]:
    """The algorithms to search and why the others are left out: they cannot learn from the data,
    or not even their cheapest configuration fits the budget."""
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
        reason = unusable_reason(algo, split.n_users, split.n_items, split.X_train.nnz)
        if reason is None:
            cost = budget.cheapest(algo)
            refusal = budget.refusal(algo, cost, whole_search=True)
            reason = None if refusal is None else f"even its cheapest configuration {refusal} (estimate {cost.describe()})"
        if reason:
            skipped[algo.name] = reason
            warn(f"skipping {algo.name}: {reason}")
            continue
        chosen.append(algo)
    if not chosen:
        raise SearchError(
            "no algorithm fits the data and the budget: "
            + "; ".join(f"{k}: {v}" for k, v in skipped.items())
        )
    return chosen, skipped


def _open_study(storage: Any, study_name: str, seed: int | None, n_algorithms: int) -> optuna.Study:
    """Create or load the study, with a seeded multivariate, grouped TPE sampler and the
    per-algorithm median pruner."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            n_startup_trials=max(6, n_algorithms + 2),
            constant_liar=storage is not None,
        )
        return optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            sampler=sampler,
            pruner=PerAlgorithmMedianPruner(),
            load_if_exists=True,
        )


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """The objects alive on entry are left out of garbage collections until the exit."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
