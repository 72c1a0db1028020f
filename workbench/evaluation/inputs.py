"""Interactions given as a DataFrame or a sparse matrix, normalised to sorted, unique
(user, item) pairs with values and optional times."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sps

from ..errors import ValidationError


def _times_to_float(values: Any) -> np.ndarray:
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if s.isna().any():
            raise ValidationError("the time column has missing values")
        return s.astype("datetime64[ns]").astype(np.int64).to_numpy(dtype=np.float64)
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        return s.astype(np.int64).to_numpy(dtype=np.float64)
    try:
        t = pd.to_numeric(s).to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        try:
            return _times_to_float(pd.to_datetime(s))
        except (TypeError, ValueError):
            raise ValidationError("the time column is neither numeric nor datetime") from None
    if not np.isfinite(t).all():
        raise ValidationError("the time column has missing or infinite values")
    return t


_TIME_COLUMNS = ("time", "timestamp", "ts", "datetime")


def from_dataframe(
    df: pd.DataFrame,
    n_users: int | None,
    n_items: int | None,
    user_ids: Any,
    item_ids: Any,
    time_column: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int, int, Any, Any]:
    if "user_code" in df.columns and "item_code" in df.columns:
        rows = df["user_code"].to_numpy()
        cols = df["item_code"].to_numpy()
        if not (np.issubdtype(rows.dtype, np.integer) and np.issubdtype(cols.dtype, np.integer)):
            raise ValidationError("user_code and item_code must be integer columns")
        rows = rows.astype(np.int64)
        cols = cols.astype(np.int64)
        if user_ids is None and "user_id" in df.columns:
            n_u = int(rows.max()) + 1 if len(rows) else 0
            user_ids = np.empty(n_u if n_users is None else n_users, dtype=object)
            user_ids[rows] = df["user_id"].to_numpy()
        if item_ids is None and "item_id" in df.columns:
            n_i = int(cols.max()) + 1 if len(cols) else 0
            item_ids = np.empty(n_i if n_items is None else n_items, dtype=object)
            item_ids[cols] = df["item_id"].to_numpy()
    elif "user_id" in df.columns and "item_id" in df.columns:
        if user_ids is None:
            rows, user_ids = pd.factorize(df["user_id"], sort=True)
        else:
            rows = pd.Index(user_ids).get_indexer(df["user_id"])
        if item_ids is None:
            cols, item_ids = pd.factorize(df["item_id"], sort=True)
        else:
            cols = pd.Index(item_ids).get_indexer(df["item_id"])
        if (rows < 0).any() or (cols < 0).any():
            raise ValidationError("interactions refer to users or items missing from user_ids/item_ids")
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        user_ids = np.asarray(user_ids)
        item_ids = np.asarray(item_ids)
    else:
        raise ValidationError(
            "the interactions need columns user_code and item_code (or user_id and item_id); "
            f"got columns: {', '.join(map(str, df.columns))}"
        )
    times = None
    if time_column is None:
        time_column = next((c for c in _TIME_COLUMNS if c in df.columns), None)
    elif time_column not in df.columns:
        raise ValidationError(
            f"time column {time_column!r} not found; columns: {', '.join(map(str, df.columns))}"
        )
    if time_column is not None:
        times = _times_to_float(df[time_column])
    if n_users is None:
        n_users = len(user_ids) if user_ids is not None else (int(rows.max()) + 1 if len(rows) else 0)
    if n_items is None:
        n_items = len(item_ids) if item_ids is not None else (int(cols.max()) + 1 if len(cols) else 0)
    # a pair's value: the sum of its rows' weights, else its number of rows (dedupe sums them)
    vals = df["weight"].to_numpy(dtype=np.float64) if "weight" in df.columns else np.ones(len(rows), dtype=np.float64)
    return rows, cols, vals, times, int(n_users), int(n_items), user_ids, item_ids


def from_matrix(X: Any, times: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int, int]:
    X = sps.csr_matrix(X, dtype=np.float64, copy=True)
    X.sum_duplicates()
    X.eliminate_zeros()
    X.sort_indices()
    n_users, n_items = X.shape
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(X.indptr))
    cols = X.indices.astype(np.int64)
    t = None
    if times is not None:
        if sps.issparse(times):
            T = sps.csr_matrix(times, dtype=np.float64, copy=True)
            T.sum_duplicates()
            T.sort_indices()
            if T.shape != X.shape or not (
                np.array_equal(T.indptr, X.indptr) and np.array_equal(T.indices, X.indices)
            ):
                raise ValidationError(
                    "times must have exactly the sparsity pattern of the interaction matrix "
                    "(or be a 1-D array aligned with its sorted non-zeros)"
                )
            t = T.data.astype(np.float64)
        else:
            t = _times_to_float(np.asarray(times).ravel())
            if len(t) != X.nnz:
                raise ValidationError(
                    f"times has {len(t)} entries but the interaction matrix has {X.nnz} non-zeros"
                )
    return rows, cols, X.data.copy(), t, n_users, n_items


def dedupe(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, times: np.ndarray | None, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Unique (row, col) pairs sorted by (row, col); values summed, times maxed."""
    key = rows * np.int64(max(n_items, 1)) + cols
    order = np.argsort(key, kind="stable")
    key = key[order]
    uniq, start = np.unique(key, return_index=True)
    if len(uniq) == len(key):
        r, c, v = rows[order], cols[order], vals[order]
        t = None if times is None else times[order]
        return r, c, v, t
    v = np.add.reduceat(vals[order], start) if len(start) else vals[:0]
    t = None
    if times is not None:
        t = np.maximum.reduceat(times[order], start) if len(start) else times[:0]
    return rows[order][start], cols[order][start], v, t


def content_fingerprint(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, times: np.ndarray | None, shape: tuple
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([int(shape[0]), int(shape[1])]).encode())
    for a in (rows, cols, vals) + (() if times is None else (times,)):
        h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()
