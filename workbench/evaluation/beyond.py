"""Beyond accuracy: what recommendation lists cover, how popular and how new their items are, and
how varied each list is.

Every function takes the lists as an int array ``lists`` (users x k item indices, best first, -1
where a user has fewer than k recommendations) and the training matrix they were made from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sps

from ..errors import ValidationError

METRIC_DEFINITIONS: dict[str, str] = {
    "coverage": "Catalog coverage: the share of all items recommended to at least one user.",
    "popularity_bias": "Mean popularity percentile of the recommended items minus that of the users' own items "
                       "(0: as popular as what the users pick; above 0: leans to popular items).",
    "novelty": "Mean self-information of the recommended items, log2(users / users who have the item): "
               "higher means less known items.",
    "diversity": "Intra-list diversity: mean Jaccard distance between the category sets of each pair of items "
                 "in a list (0: all alike, 1: no category shared).",
}
CATEGORY_SEPARATOR = "|"
_BLOCK_CELLS = 1 << 22  # lists x k x categories per block of the pairwise diversity computation


def item_popularity(X: sps.spmatrix) -> np.ndarray:
    """How many users interacted with each item (the training matrix's column counts)."""
    return np.diff(sps.csc_matrix(X).indptr)


def popularity_percentiles(popularity: np.ndarray) -> np.ndarray:
    """Each item's percentile rank by popularity, in [0, 1]: the share of items less popular than it
    plus half the share as popular (itself included)."""
    popularity = np.asarray(popularity)
    ordered = np.sort(popularity)
    below = np.searchsorted(ordered, popularity, side="left")
    equal = np.searchsorted(ordered, popularity, side="right") - below
    return (below + 0.5 * equal) / len(popularity)


def catalog_coverage(lists: np.ndarray, n_items: int) -> float:
    """The share of the `n_items` items that appear in at least one list."""
    return len(np.unique(lists[lists >= 0])) / n_items


def popularity_bias(lists: np.ndarray, profiles: sps.spmatrix, popularity: np.ndarray) -> float:
    """Mean over users of (mean percentile of their recommended items - mean percentile of their own
    items in `profiles`, users x items); users without both are left out."""
    percentiles = popularity_percentiles(popularity)
    recommended = _row_means(lists, percentiles)
    has = sps.csr_matrix(profiles, dtype=np.float64, copy=True)
    has.data[:] = 1.0
    counts = np.diff(has.indptr)
    own = np.divide(has @ percentiles, counts, out=np.full(len(counts), np.nan), where=counts > 0)
    both = ~np.isnan(recommended) & ~np.isnan(own)
    return float(np.mean(recommended[both] - own[both])) if both.any() else float("nan")


def novelty(lists: np.ndarray, popularity: np.ndarray, n_users: int) -> float:
    """Mean over users of the mean self-information log2(n_users / popularity) of their recommended
    items; an item no user has counts as had by one."""
    information = np.log2(n_users / np.maximum(np.asarray(popularity, dtype=np.float64), 1.0))
    means = _row_means(lists, information)
    return float(np.nanmean(means)) if not np.isnan(means).all() else float("nan")


def intra_list_diversity(lists: np.ndarray, categories: sps.spmatrix) -> float:
    """Mean over lists of the mean Jaccard distance between the category sets (rows of `categories`,
    items x categories, nonzero = has) of each pair of its items. Items without a category are left
    out, and lists with fewer than two such items."""
    C = (sps.csr_matrix(categories) != 0).astype(np.float64).tocsr()
    sizes = np.asarray(C.sum(axis=1)).ravel()
    means = []
    size = max(1, _BLOCK_CELLS // max(lists.shape[1] * C.shape[1], 1))
    for start in range(0, len(lists), size):
        block = lists[start:start + size]
        valid = block >= 0
        valid[valid] = sizes[block[valid]] > 0
        items = np.where(valid, block, 0)
        dense = C[items.ravel()].toarray().reshape(*items.shape, C.shape[1]) * valid[..., None]
        shared = np.einsum("ukc,ulc->ukl", dense, dense)
        own = sizes[items] * valid
        union = own[:, :, None] + own[:, None, :] - shared
        pair = valid[:, :, None] & valid[:, None, :] & ~np.eye(block.shape[1], dtype=bool)
        distance = np.where(pair, 1.0 - shared / np.where(pair, union, 1.0), 0.0)
        n_pairs = pair.sum(axis=(1, 2))
        means.append(distance.sum(axis=(1, 2))[n_pairs > 0] / n_pairs[n_pairs > 0])
    means = np.concatenate(means) if means else np.zeros(0)
    return float(means.mean()) if len(means) else float("nan")


def category_matrix(item_ids: Any, metadata: pd.DataFrame, item_column: str, category_column: str,
                    separator: str = CATEGORY_SEPARATOR) -> sps.csr_matrix:
    """Items (in the order of `item_ids`) x categories, 1 where an item has a category: the
    `category_column` of `metadata` split on `separator` ("Drama|Comedy", like MovieLens genres)."""
    for column in (item_column, category_column):
        if column not in metadata.columns:
            raise ValidationError(f"The item metadata has no column {column!r}; its columns: "
                                  f"{', '.join(map(str, metadata.columns))}.")
    table = metadata.drop_duplicates(item_column, keep="last")
    labels = table[category_column].where(table[category_column].notna(), "").astype(str)
    by_item = dict(zip(table[item_column].astype(str), labels))
    rows, names = [], {}
    for row, item_id in enumerate(np.asarray(item_ids).astype(str)):
        for name in {part.strip() for part in by_item.get(item_id, "").split(separator)} - {""}:
            rows.append((row, names.setdefault(name, len(names))))
    rows = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return sps.csr_matrix((np.ones(len(rows)), (rows[:, 0], rows[:, 1])), shape=(len(item_ids), max(len(names), 1)))


def beyond_accuracy(lists: np.ndarray, cutoffs: tuple[int, ...], X_train: sps.spmatrix, profiles: sps.spmatrix,
                    categories: sps.spmatrix | None = None) -> dict[str, float]:
    """Every metric above at every cutoff (the first `cutoff` columns of `lists`), named like the
    accuracy metrics: ``{"coverage@10": ..., "popularity_bias@10": ..., "novelty@10": ...,
    "diversity@10": ...}`` (diversity only with `categories`). `profiles`: the users' own items."""
    popularity = item_popularity(X_train)
    out: dict[str, float] = {}
    for cutoff in cutoffs:
        top = lists[:, :cutoff]
        out[f"coverage@{cutoff}"] = catalog_coverage(top, X_train.shape[1])
        out[f"popularity_bias@{cutoff}"] = popularity_bias(top, profiles, popularity)
        out[f"novelty@{cutoff}"] = novelty(top, popularity, X_train.shape[0])
        if categories is not None:
            out[f"diversity@{cutoff}"] = intra_list_diversity(top, categories)
    return out


def _row_means(lists: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each list's mean of `values` over its items (NaN for an empty list)."""
    valid = lists >= 0
    counts = valid.sum(axis=1)
    sums = np.where(valid, values[np.where(valid, lists, 0)], 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(lists), np.nan), where=counts > 0)
