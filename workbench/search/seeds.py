"""Where a search starts: every portfolio algorithm's defaults and a few measured known-good
configurations, enqueued as the study's first trials."""

from __future__ import annotations

from typing import Any

import optuna

from ..algorithms import Algorithm, effective_params, weighting
from ..evaluation import Split

# Known-good starting points besides each algorithm's defaults (trial-parameter space, plain
# names; IALS reg_lambda = reg * ials_reg_scale(alpha0, ...)). Measured: IALS 128/1.0/10 is the
# best of the grid on ml-100k; IALS 128/0.1/16 on sparse long-tail data (Last.fm-2k validation
# nDCG@20 0.196 against 0.187 for the defaults; more factors want more regularisation, and
# ml-100k's defaults already sit near its optimum); RP3beta with an unlimited neighbourhood on
# long-tail data.
EXTRA_SEEDS: dict[str, list[dict]] = {
    "IALS": [{"n_components": 128, "alpha0": 1.0, "reg_lambda": 10.0},
             {"n_components": 128, "alpha0": 0.1, "reg_lambda": 16.0}],
    "RP3beta": [{"top_k": 4096, "beta": 0.3, "normalize_weight": False}],
}
# With the weighting searched too: the defaults stay binary, and IALS also starts from log1p confidence.
WEIGHTED_SEEDS: dict[str, list[dict]] = {"IALS": [{"weighting": "log1p", "weighting_alpha": 1.0}]}


def enqueue_seeds(study: optuna.Study, portfolio: list[Algorithm], split: Split, weighted: bool = False) -> None:
    """Each algorithm's defaults (iterative ones first, TopPop last), then the extra seeds
    (and, when the weighting is searched, the weighted seeds)."""
    order = sorted(portfolio, key=lambda a: (a.name == "TopPop", not a.iterative))
    binary = {"weighting": "binary"} if weighted else {}
    seeds = [(algo, binary) for algo in order]
    seeds += [(algo, {**binary, **extra}) for algo in order for extra in EXTRA_SEEDS.get(algo.name, [])]
    if weighted:
        seeds += [(algo, extra) for algo in order for extra in WEIGHTED_SEEDS.get(algo.name, [])]
    for algo, extra in seeds:
        study.enqueue_trial({"algorithm": algo.name, **default_trial_params(algo, split, extra)}, skip_if_exists=True)


def default_trial_params(algo: Algorithm, split: Split, override: dict | None = None) -> dict:
    """The algorithm's defaults (updated with ``override``, in trial-parameter space) as values
    of its search space (prefixed), clipped into it."""
    prefix = f"{algo.name}."
    out: dict[str, Any] = {prefix + k: v for k, v in (override or {}).items() if k in weighting.NAMES}
    if algo.space is None:
        return out
    shape = (split.n_users, split.n_items, split.X_train.nnz)
    ranges = algo.space_ranges(*shape)
    point = algo.space_point(effective_params(algo, {}, *shape), shape)
    point.update(override or {})
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
