"""Why a model recommends what it does, for :class:`workbench.recommend.Recommender`.

* :class:`ItemSimilarity`: an item's neighbours in a model: its row of the item-item weights W
  (KNN, RP3beta, SLIM...: what having the item adds to every other item's score, the registry's
  ``item_weights`` hook), else the cosine of the item factors (IALS, TruncatedSVD, NMF: the
  ``factors`` hook).
* :func:`because` and :func:`contributions_frame`: the contributions of a user's own items to the
  scores of recommended items (the registry's ``explainer`` hook, :mod:`workbench.algorithms.explain`),
  as the short "because" list of each recommendation and as a full table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sps

from .algorithms import algorithm_of


class ItemSimilarity:
    """Item-to-item similarity in one model: item-item weights, or unit-length item factors."""

    def __init__(self, weights: Any = None, unit_factors: np.ndarray | None = None) -> None:
        self.weights = weights
        self.unit_factors = unit_factors

    @classmethod
    def of(cls, recommender: Any) -> ItemSimilarity | None:
        """The model's similarity (None when it has neither item-item weights nor item factors)."""
        algorithm = algorithm_of(recommender)
        if algorithm is None:
            return None
        W = algorithm.item_weights(recommender)
        if W is not None:
            return cls(weights=sps.csr_matrix(W) if sps.issparse(W) else np.asarray(W))
        factors = algorithm.factors(recommender)
        if factors is None:
            return None
        items = np.asarray(factors[1], dtype=np.float64)
        norms = np.linalg.norm(items, axis=1, keepdims=True)
        return cls(unit_factors=np.divide(items, norms, out=np.zeros_like(items), where=norms > 0))

    @property
    def kind(self) -> str:
        return "item-item weight" if self.weights is not None else "cosine of the item factors"

    def row(self, index: int) -> np.ndarray:
        """Every item's similarity to item `index` (float64); -inf for the item itself and for items
        it has no weight towards."""
        if self.unit_factors is not None:
            row = self.unit_factors @ self.unit_factors[index]
        elif sps.issparse(self.weights):
            start, end = self.weights.indptr[index], self.weights.indptr[index + 1]
            row = np.zeros(self.weights.shape[1])
            row[self.weights.indices[start:end]] = self.weights.data[start:end]
        else:
            row = np.array(self.weights[index], dtype=np.float64)
        if self.weights is not None:
            row[row == 0] = -np.inf
        row[index] = -np.inf
        return row


def because(contributions: np.ndarray, profile_ids: Sequence, top: int) -> list[tuple[float, list[dict]]]:
    """For each row of a (targets x profile items) contribution array: the explained score (the
    row's sum) and its `top` largest positive contributions, each `{"item_id", "contribution",
    "share"}` (share of the explained score). `profile_ids`: plain ids (a list, not numpy scalars)."""
    out = []
    for parts in np.asarray(contributions, dtype=np.float64):
        total = float(parts.sum())
        best = np.argsort(-parts, kind="stable")[:top]
        out.append((total, [{"item_id": profile_ids[k], "contribution": float(parts[k]),
                             "share": float(parts[k]) / total if total else float("nan")}
                            for k in best if parts[k] > 0]))
    return out


def contributions_frame(contributions: np.ndarray, target_ids: Sequence, profile_ids: Sequence) -> pd.DataFrame:
    """All contributions as a table: item_id, because_item_id, contribution, share (of the item's
    explained score); items in the order given, biggest contribution first within each."""
    contributions = np.asarray(contributions, dtype=np.float64)
    n_targets, n_profile = contributions.shape
    totals = contributions.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(totals != 0, contributions / totals, np.nan)
    frame = pd.DataFrame({
        "item_id": np.repeat(np.asarray(target_ids, dtype=object), n_profile),
        "because_item_id": np.tile(np.asarray(profile_ids, dtype=object), n_targets),
        "contribution": contributions.ravel(),
        "share": shares.ravel(),
        "_target": np.repeat(np.arange(n_targets), n_profile),
    })
    frame = frame.sort_values(["_target", "contribution"], ascending=[True, False], kind="stable")
    return frame.drop(columns="_target").reset_index(drop=True)


def because_text(because: list[dict], names: Mapping | None = None) -> str:
    """An explanation as text, "A (41%), B (22%)"; `names` (a dict or Series) maps item ids to what
    to show (titles)."""
    names = {} if names is None else names
    return ", ".join(f"{names.get(part['item_id'], part['item_id'])} ({part['share']:.0%})" for part in because)
