"""Median pruning that compares a trial only with earlier trials of its own algorithm."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState


class PerAlgorithmMedianPruner(BasePruner):
    """Median pruning among trials of the same algorithm (``params["algorithm"]``).

    A trial is pruned at step ``s`` when its best value so far is below the median of the values
    that completed trials of its algorithm reported at step ``s`` (maximisation), once at least
    ``n_startup_trials`` such trials exist and after ``n_warmup_steps`` steps.

    The default warm-up (no pruning up to epoch 4: first at epoch 6, the next validated one) spares
    slow starters: IALS with a small ``alpha0`` and a strong regularisation scores low for a few
    epochs and ends best. Last.fm-2k's test nDCG@20 (``bench/bench_tuning.py``, 40 trials) with
    pruning from epoch 2: 0.2799 (validation 0.1866); from epoch 3: 0.2885; from epoch 6: 0.2921
    (validation 0.1995). ml-100k's stays 0.443-0.446; its wall time grows 6.5 to 7.8 s.
    """

    def __init__(self, n_startup_trials: int = 2, n_warmup_steps: int = 4) -> None:
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

