"""Interaction weights: what value a (user, item) pair carries into a fit.

Every configuration holds three parameters besides its algorithm's own (recorded in the
configuration, the tuning trials and the model header):

* ``weighting``: ``"binary"`` (default: every pair seen is 1), ``"log1p"`` (confidence
  ``1 + weighting_alpha * log1p(w)``, as implicit ALS uses play counts), or ``"threshold"``
  (pairs with ``w >= weighting_threshold`` count as positive, 1; the others weigh almost
  nothing, ``BELOW_THRESHOLD``, but stay seen: their items are not recommended again);
* ``weighting_alpha``, ``weighting_threshold``: the transforms' settings.

``w`` is a pair's weight: the sum of its rows' weights for data imported with ``weight_column``
(ratings, play counts), else its number of rows. Evaluation always counts a held-out pair as
relevant, whatever its weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps

from ..errors import ValidationError
from .params import ParamSpec, choice_param, float_param

WEIGHTINGS = ("binary", "log1p", "threshold")
BELOW_THRESHOLD = 1e-3  # the value of a pair below the threshold
PARAMS: tuple[ParamSpec, ...] = (
    choice_param("weighting", "binary", WEIGHTINGS,
                 help="value of a seen pair: binary 1, log1p confidence 1 + alpha log1p(w), or threshold w >= t"),
    float_param("weighting_alpha", 1.0, 0.0, None, help="log1p: confidence scale alpha"),
    float_param("weighting_threshold", 4.0, None, None, help="threshold: the least weight that counts (e.g. rating 4)"),
)
NAMES = frozenset(p.name for p in PARAMS)


def uses_weights(params: dict) -> bool:
    """Does the configuration need the pairs' weights (anything but binary)?"""
    return params.get("weighting", "binary") != "binary"


def key(params: dict) -> tuple:
    """What identifies the transform (configurations with one key train on the same matrix)."""
    kind = params.get("weighting", "binary")
    if kind == "log1p":
        return kind, float(params["weighting_alpha"])
    if kind == "threshold":
        return kind, float(params["weighting_threshold"])
    return (kind,)


def apply(X: Any, params: dict) -> sps.csr_matrix:
    """``X`` (values: the pairs' weights) with the configuration's values; ``X`` itself when they
    already are its values (binary data, binary weighting)."""
    kind = params.get("weighting", "binary")
    if not (sps.issparse(X) and X.format == "csr"):
        X = sps.csr_matrix(X)
    if kind == "binary":
        if X.nnz == 0 or (X.data.min() == 1 and X.data.max() == 1):
            return X
        return _with_data(X, np.ones_like(X.data))
    if kind == "log1p":
        return _with_data(X, 1.0 + float(params["weighting_alpha"]) * np.log1p(np.maximum(X.data, 0.0)))
    threshold = float(params["weighting_threshold"])
    positive = X.data >= threshold
    if not positive.any():
        raise ValidationError(f"no interaction has a weight >= {threshold:g} (weighting='threshold'): nothing to learn from")
    return _with_data(X, np.where(positive, 1.0, BELOW_THRESHOLD))


def _with_data(X: sps.csr_matrix, data: np.ndarray) -> sps.csr_matrix:
    """X's pattern (its index arrays, shared, not copied) with other values."""
    out = sps.csr_matrix((data, X.indices, X.indptr), shape=X.shape, copy=False)
    out.has_sorted_indices = X.has_sorted_indices
    return out


def threshold_range(X: Any) -> tuple[float, float] | None:
    """Where a search looks for a threshold: from the least weight above the smallest (a lower
    threshold keeps every pair) to the 90 % quantile; None when every pair weighs the same."""
    data = sps.csr_matrix(X).data
    if data.size == 0 or data.min() == data.max():
        return None
    low, high = np.quantile(data, [0.1, 0.9])
    if low <= data.min():
        low = data[data > data.min()].min()
    return float(low), float(max(high, low))


def space(trial: Any, prefix: str, thresholds: tuple[float, float]) -> dict:
    """Sample a weighting with an Optuna trial (parameters prefixed like the algorithm's own)."""
    kind = trial.suggest_categorical(prefix + "weighting", list(WEIGHTINGS))
    if kind == "log1p":
        return {"weighting": kind, "weighting_alpha": trial.suggest_float(prefix + "weighting_alpha", 1e-2, 1e2, log=True)}
    if kind == "threshold":
        low, high = thresholds
        log = low > 0 and high > 10 * low
        return {"weighting": kind, "weighting_threshold": trial.suggest_float(prefix + "weighting_threshold", low, high, log=log)}
    return {"weighting": kind}
