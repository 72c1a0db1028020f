"""The split schemes: which users validate and which of their interactions are held out."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sps

from ..errors import ValidationError
from .split import SplitConfig


def _pick_val_users(counts: np.ndarray, cfg: SplitConfig, rng: np.random.RandomState) -> np.ndarray:
    eligible = np.flatnonzero(counts >= 2)
    if len(eligible) == 0:
        raise ValidationError(
            "cannot make a validation split: no user has at least 2 interactions"
        )
    n_val = max(1, int(len(eligible) * cfg.val_user_ratio))
    chosen = rng.permutation(eligible)[:n_val]
    return np.sort(chosen)


def _heldout_mask_per_user(
    rows: np.ndarray,
    counts: np.ndarray,
    val_users: np.ndarray,
    cfg: SplitConfig,
    rng: np.random.RandomState,
    times: np.ndarray | None,
) -> np.ndarray:
    nnz = len(rows)
    is_val_user = np.zeros(len(counts), dtype=bool)
    is_val_user[val_users] = True
    n_hold = np.zeros(len(counts), dtype=np.int64)
    c = counts[val_users]
    n_hold[val_users] = np.minimum(
        np.maximum(1, np.floor(c * cfg.heldout_ratio + 1e-9).astype(np.int64)), c - 1
    )
    tie = rng.random_sample(nnz)
    if cfg.scheme == "random":
        order = np.lexsort((tie, rows))
    else:  # latest first; random tie-break among equal times
        assert times is not None
        order = np.lexsort((tie, -times, rows))
    sorted_rows = rows[order]
    starts = np.concatenate([[0], np.cumsum(counts)])[:-1]
    rank = np.arange(nnz) - starts[sorted_rows]
    held_sorted = rank < n_hold[sorted_rows]
    held = np.zeros(nnz, dtype=bool)
    held[order] = held_sorted
    return held


def build_split(
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    times: np.ndarray | None,
    n_users: int,
    n_items: int,
    cfg: SplitConfig,
) -> tuple[sps.csr_matrix, sps.csr_matrix, np.ndarray]:
    counts = np.bincount(rows, minlength=n_users)
    if cfg.scheme in ("random", "latest"):
        rng = np.random.RandomState(cfg.seed)
        val_users = _pick_val_users(counts, cfg, rng)
        held = _heldout_mask_per_user(rows, counts, val_users, cfg, rng, times)
    else:
        assert times is not None
        cut = float(np.quantile(times, cfg.time_quantile))
        held = times > cut
        if not held.any():
            raise ValidationError(
                f"no interaction is later than the {cfg.time_quantile:g} time quantile "
                "(all times equal?); choose a smaller time_quantile or another scheme"
            )
        train_counts = np.bincount(rows[~held], minlength=n_users)
        held_counts = np.bincount(rows[held], minlength=n_users)
        val_users = np.flatnonzero((held_counts > 0) & (train_counts > 0))
        if len(val_users) == 0:
            raise ValidationError(
                "no user has interactions both before and after the time cut; "
                "choose another time_quantile or scheme"
            )
        # held-out interactions of users without training history are dropped from both sides
    X_train = sps.csr_matrix(
        (vals[~held], (rows[~held], cols[~held])), shape=(n_users, n_items), dtype=np.float64
    )
    X_train.sort_indices()
    is_val = np.zeros(n_users, dtype=bool)
    is_val[val_users] = True
    gt_mask = held & is_val[rows]
    pos = np.full(n_users, -1, dtype=np.int64)
    pos[val_users] = np.arange(len(val_users))
    X_gt = sps.csr_matrix(
        (np.ones(int(gt_mask.sum())), (pos[rows[gt_mask]], cols[gt_mask])),
        shape=(len(val_users), n_items),
        dtype=np.float64,
    )
    X_gt.sort_indices()
    return X_train, X_gt, val_users.astype(np.int64)
