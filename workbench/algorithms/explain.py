"""How a model's score of an item splits over the user's own items: the ``explainer`` hooks.

An explainer is made once per loaded model. Called with a profile (item indices and their
interaction values) and target item indices, it returns a (targets x profile items) array of
contributions whose row sums are the targets' scores for that profile:

* item-item models (KNN, RP3beta, P3alpha, SLIM, DenseSLIM, EDLAE) score ``x @ W``, so profile item
  i contributes ``x_i W[i, j]`` to item j: exactly the served score;
* TruncatedSVD projects the profile, ``u = x V``, so ``score_j = sum_i x_i (v_i . v_j)``;
* IALS solves its user vector in closed form against the item factors V (irspack's user step):
  ``(alpha0 V'V + sum_i c_i v_i v_i' + reg (alpha0 n_items + n_u)^nu I) u = sum_i (b + c_i) v_i``
  with ``c_i`` the (optionally log-scaled) interaction value and ``b`` = alpha0 for the original
  loss, 0 for iALS++. So ``score_j = sum_i (b + c_i) v_j' A^-1 v_i``. A user vector learnt in
  training (solved against the previous epoch's items) or by the few conjugate-gradient steps of
  a cold-user solve is close to, not exactly, this solution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sps

from .hooks import similarity_weights

Explainer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def item_weights_explainer(recommender: Any) -> Explainer | None:
    """Item-item models: the contribution of profile item i to item j is ``x_i W[i, j]``."""
    W = similarity_weights(recommender)
    if W is None:
        return None
    if sps.issparse(W):
        by_column = sps.csc_matrix(W)  # a few target columns are cheap to cut from CSC

        def weights(items: np.ndarray, targets: np.ndarray) -> np.ndarray:
            return by_column[:, targets][items].toarray()
    else:
        dense = np.asarray(W)

        def weights(items: np.ndarray, targets: np.ndarray) -> np.ndarray:
            return dense[np.ix_(items, targets)]

    def explain(items: np.ndarray, values: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return (weights(items, targets) * np.asarray(values, dtype=np.float64)[:, None]).T

    return explain


def svd_explainer(recommender: Any) -> Explainer:
    """TruncatedSVD: ``score_j = sum_i x_i (v_i . v_j)`` with V the SVD components (items x k)."""
    V = np.asarray(recommender.decomposer_.components_, dtype=np.float64).T

    def explain(items: np.ndarray, values: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return (V[targets] @ V[items].T) * np.asarray(values, dtype=np.float64)

    return explain


def ials_explainer(recommender: Any) -> Explainer:
    """IALS: the closed form of irspack's user solve, split over the profile items (module docstring)."""
    V = np.asarray(recommender.get_item_embedding(), dtype=np.float64)
    alpha0, nu, reg = float(recommender.alpha0), float(recommender.nu), float(recommender.scaled_reg)
    unobserved = alpha0 * (V.T @ V)
    bias = alpha0 if recommender.loss_type.name == "ORIGINAL" else 0.0
    log_epsilon = float(recommender.epsilon) if recommender.confidence_scaling.name == "log" else None
    n_items = V.shape[0]

    def explain(items: np.ndarray, values: np.ndarray, targets: np.ndarray) -> np.ndarray:
        confidence = np.asarray(values, dtype=np.float64)
        if log_epsilon is not None:
            confidence = np.log1p(confidence / log_epsilon)
        if len(items) == 0:
            return np.zeros((len(targets), 0))
        profile = V[items]
        system = unobserved + (profile.T * confidence) @ profile
        system[np.diag_indices_from(system)] += reg * (alpha0 * n_items + len(items)) ** nu
        solved = scipy.linalg.solve(system, profile.T * (bias + confidence), assume_a="pos")
        return V[targets] @ solved

    return explain
