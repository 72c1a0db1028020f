"""The bandit strategy: which algorithm the next trial tunes, and local moves around its best
configuration (see the package docstring)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ..algorithms import Algorithm

BANDIT_TAU = 0.1  # relative score gap to the best algorithm that divides an algorithm's share by e
COST_SLACK = 2.0  # an algorithm's trials may cost this many times the typical algorithm's before its share falls


def choose_algorithm(study: optuna.Study, portfolio: list[Algorithm], seed: int | None, n: int) -> str:
    """Which algorithm the next trial tunes: an algorithm's share decays exponentially with its
    relative gap to the best score so far (e-fold per BANDIT_TAU) and as 1/sqrt(1 + trials per
    tuned dimension), so one-parameter algorithms saturate sooner; and, when its trials take more
    than COST_SLACK times as long as the typical algorithm's, by the square root of how much
    more (:func:`cost_factors`): a second spent there buys fewer trials elsewhere.
    Algorithms without parameters are evaluated once (their default trial) and never again."""
    best: dict[str, float] = {}
    count: dict[str, int] = {}
    seconds: dict[str, list[float]] = {}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs.get("algorithm", t.params.get("algorithm"))
        if a is None:
            continue
        count[a] = count.get(a, 0) + 1
        if t.state == TrialState.COMPLETE and t.value is not None:
            best[a] = max(best.get(a, -math.inf), float(t.value))
            if not t.user_attrs.get("cached") and t.user_attrs.get("seconds") is not None:
                seconds.setdefault(a, []).append(float(t.user_attrs["seconds"]))
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
    costs = cost_factors({a.name: seconds[a.name] for a in tunable if a.name in seconds})
    w = np.asarray(weights, dtype=float) * np.asarray([costs.get(a.name, 1.0) for a in tunable])
    rng = np.random.RandomState(((0 if seed is None else int(seed)) * 1_000_003 + n) % (2**32))
    return tunable[int(rng.choice(len(tunable), p=w / w.sum()))].name


def cost_factors(seconds: dict[str, list[float]]) -> dict[str, float]:
    """Each algorithm's share factor from its trials' seconds: 1 up to COST_SLACK times the typical
    algorithm's (the median of the algorithms' median trial), then sqrt(COST_SLACK x typical /
    its median): at 8x the typical cost, half the share."""
    medians = {a: float(np.median(s)) for a, s in seconds.items() if s}
    if len(medians) < 2:
        return {}
    typical = max(float(np.median(list(medians.values()))), 1e-3)
    return {a: min(1.0, math.sqrt(COST_SLACK * typical / max(m, 1e-9))) for a, m in medians.items()}


LOCAL_PROB = 0.5  # share of bandit trials that perturb the algorithm's best configuration


def local_move(study: optuna.Study, algorithm: str, seed: int | None, n: int) -> dict:
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
