"""Validation splits and offline metrics.

A :class:`Split` keeps the full user x item space of a snapshot: ``X_train`` has one row per
user (in the snapshot's user-code order) and one column per item, with the held-out interactions
removed. The held-out interactions of the *validation users* form ``X_val_ground_truth`` (one row
per validation user, in the order of ``val_user_indices``).

Schemes (:class:`SplitConfig`):

``"random"``
    A share ``val_user_ratio`` of the users that have at least two interactions become validation
    users; for each, ``max(1, floor(n_u * heldout_ratio))`` random interactions (never all of
    them) are held out. Same scheme as irspack's ``split_dataframe_partial_user_holdout`` (and
    Recotem's "random" split, which uses ``val_user_ratio=1.0``), with its own seeded RNG so the
    result depends only on the data, the configuration and the seed.
``"latest"``
    Validation users are drawn as for ``"random"``; each holds out its *latest*
    ``max(1, floor(n_u * heldout_ratio))`` interactions (needs times).
``"time"``
    A global cut: every interaction later than the ``time_quantile`` quantile of all interaction
    times is held out. Validation users are the users with held-out interactions *and* at least one
    training interaction (``val_user_ratio`` and ``heldout_ratio`` are ignored).

Duplicate (user, item) pairs are collapsed; a pair's time is its latest time.

Splits are deterministic and cached: the same data fingerprint and configuration always give the
same split (an in-process LRU returns the very same object; ``cache_dir`` adds an ``.npz`` cache on
disk). Treat the arrays of a split as read-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sps
from irspack import Evaluator

from .algorithms import algorithm_of
from .errors import ValidationError
from .threads import default_n_threads

__all__ = [
    "SCHEMES",
    "METRICS",
    "DEFAULT_METRICS",
    "SplitConfig",
    "Split",
    "ValidationEvaluator",
    "make_split",
    "evaluate",
    "clear_split_cache",
]

SCHEMES = ("random", "latest", "time")

# Our metric name -> irspack's metric name.
METRICS: dict[str, str] = {
    "ndcg": "ndcg",
    "map": "map",
    "recall": "recall",
    "hit": "hit",
    "precision": "precision",
    "coverage": "catalog_coverage",
    "appeared_item": "appeared_item",
    "gini_index": "gini_index",
    "entropy": "entropy",
}
DEFAULT_METRICS = ("ndcg", "map", "recall", "hit", "precision", "coverage")
TARGET_METRICS = ("ndcg", "map", "recall", "hit", "precision")

_SPLIT_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitConfig:
    """How to hold out validation interactions. See the module docstring for the schemes."""

    scheme: str = "random"
    heldout_ratio: float = 0.2
    val_user_ratio: float = 0.2
    time_quantile: float = 0.9
    seed: int = 42

    def __post_init__(self) -> None:
        scheme = str(self.scheme).strip().lower()
        if scheme not in SCHEMES:
            raise ValidationError(
                f"unknown split scheme {self.scheme!r}; valid schemes: {', '.join(SCHEMES)}"
            )
        object.__setattr__(self, "scheme", scheme)
        for name, low_open, high_closed in (
            ("heldout_ratio", 0.0, False),
            ("val_user_ratio", 0.0, True),
            ("time_quantile", 0.0, False),
        ):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValidationError(f"{name} must be a number, got {value!r}")
            ok = value > low_open and (value <= 1.0 if high_closed else value < 1.0)
            if not ok:
                bounds = "(0, 1]" if high_closed else "(0, 1)"
                raise ValidationError(f"{name} must be in {bounds}, got {value!r}")
            object.__setattr__(self, name, value)
        try:
            seed = int(self.seed)
        except (TypeError, ValueError):
            raise ValidationError(f"seed must be an integer, got {self.seed!r}")
        if isinstance(self.seed, float) and self.seed != seed or not 0 <= seed < 2**32:
            raise ValidationError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        object.__setattr__(self, "seed", seed)

    @property
    def needs_times(self) -> bool:
        return self.scheme in ("latest", "time")

    def key(self) -> str:
        """Canonical string of the settings that matter for the scheme."""
        d: dict[str, Any] = {"scheme": self.scheme, "seed": self.seed}
        if self.scheme == "time":
            d["time_quantile"] = self.time_quantile
        else:
            d["heldout_ratio"] = self.heldout_ratio
            d["val_user_ratio"] = self.val_user_ratio
        return json.dumps(d, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "SplitConfig":
        if d is None:
            return cls()
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - valid
        if unknown:
            raise ValidationError(
                f"unknown split setting(s) {', '.join(sorted(unknown))}; "
                f"valid settings: {', '.join(sorted(valid))}"
            )
        return cls(**d)


# --------------------------------------------------------------------------------------------
# evaluator over an arbitrary subset of users
# --------------------------------------------------------------------------------------------


class ValidationEvaluator(Evaluator):
    """An irspack :class:`~irspack.Evaluator` whose ground-truth rows belong to arbitrary (not
    necessarily contiguous) rows of the training matrix.

    irspack's own evaluator needs the validation users to be one contiguous block of rows
    (``offset``); this one scores ``user_indices`` with ``model.get_score`` and feeds the blocks
    to irspack's metric core, masking the users' training interactions. It works with
    irspack's ``learn_with_optimizer`` and ``get_target_score`` like the base class.
    """

    def __init__(
        self,
        ground_truth: sps.csr_matrix,
        user_indices: np.ndarray,
        train_rows: sps.csr_matrix,
        cutoff: int = 20,
        target_metric: str = "ndcg",
        n_threads: int | None = None,
        mb_size: int = 512,
    ) -> None:
        super().__init__(
            ground_truth,
            offset=0,
            cutoff=cutoff,
            target_metric=target_metric,
            masked_interactions=train_rows,
            n_threads=default_n_threads() if n_threads is None else n_threads,
            mb_size=mb_size,
        )
        self.user_indices = np.asarray(user_indices, dtype=np.int64)

    def _score_chunks(self, model: Any) -> Iterable[np.ndarray]:
        if self.n_items != model.n_items:
            raise ValidationError(
                f"the model has {model.n_items} items but the split has {self.n_items}"
            )
        if len(self.user_indices) and int(self.user_indices.max()) >= model.n_users:
            raise ValidationError(
                f"the model has {model.n_users} users, fewer than the split's user space"
            )
        score = model.get_score
        W_dense = _dense_similarity(model)
        if W_dense is not None:
            X = model.X_train_all

            def score(idx: np.ndarray) -> np.ndarray:
                return X[idx].astype(W_dense.dtype, copy=False) @ W_dense

        for start in range(0, len(self.user_indices), self.mb_size):
            idx = self.user_indices[start : start + self.mb_size]
            scores = score(idx)
            if sps.issparse(scores):
                scores = scores.toarray()
            scores = np.asarray(scores)
            if scores.dtype not in (np.float32, np.float64):
                scores = scores.astype(np.float64)
            yield scores

    def get_scores(self, model: Any, cutoffs: list[int]) -> dict[str, float]:  # type: ignore[override]
        return self.get_scores_from_score_chunks(self._score_chunks(model), list(cutoffs))

    def get_score(self, model: Any) -> dict[str, float]:  # type: ignore[override]
        suffix = f"@{self.cutoff}"
        return {
            k[: -len(suffix)]: v for k, v in self.get_scores(model, [self.cutoff]).items()
        }


DENSE_SIMILARITY_MAX_CELLS = 1 << 24  # 16.8M cells (128 MB in float64): about 4,000 items


def _dense_similarity(model: Any) -> np.ndarray | None:
    """The item-item weights of a similarity recommender (whose scores are ``X[u] @ W``, its
    ``item_weights`` hook) as a dense array, for scoring with a sparse x dense product in ``W``'s
    precision: several times faster than scipy's sparse x sparse product (whose output is nearly
    dense anyway) and, for a float32 ``W`` (DenseSLIM), than upcasting ``W`` for every block. A
    sparse ``W`` is made dense only up to ``DENSE_SIMILARITY_MAX_CELLS``. None for any other model
    (scored by its own ``get_score``)."""
    algorithm = algorithm_of(model)
    W = None if algorithm is None else algorithm.item_weights(model)
    if W is None:
        return None
    if sps.issparse(W):
        if W.shape[0] * W.shape[1] > DENSE_SIMILARITY_MAX_CELLS:
            return None
        W = W.toarray()
    W = np.asarray(W)
    if W.dtype not in (np.float32, np.float64):
        return None
    return W


# --------------------------------------------------------------------------------------------
# the split
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Split:
    """A validation split. Rows of ``X_train`` are all users (snapshot user-code order); columns
    all items. ``X_val_ground_truth[i]`` holds the held-out items of user ``val_user_indices[i]``."""

    X_train: sps.csr_matrix
    X_val_ground_truth: sps.csr_matrix
    val_user_indices: np.ndarray
    config: SplitConfig
    fingerprint: str
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    _evaluators: dict = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_evaluators"] = {}  # irspack's C++ evaluators do not pickle; rebuilt on demand
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def n_users(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_val_users(self) -> int:
        return int(len(self.val_user_indices))

    @property
    def n_train_interactions(self) -> int:
        return int(self.X_train.nnz)

    @property
    def n_heldout(self) -> int:
        return int(self.X_val_ground_truth.nnz)

    @property
    def X_val_train(self) -> sps.csr_matrix:
        """Training rows of the validation users (what their recommendations are based on)."""
        return self.X_train[self.val_user_indices]

    def summary(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "config": self.config.to_dict(),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_val_users": self.n_val_users,
            "n_train_interactions": self.n_train_interactions,
            "n_heldout": self.n_heldout,
        }

    def evaluator(
        self,
        cutoff: int = 20,
        target_metric: str = "ndcg",
        n_threads: int | None = None,
        max_users: int | None = None,
    ) -> ValidationEvaluator:
        """An irspack Evaluator for the validation users (cached per settings).

        ``max_users`` limits it to a fixed, seeded sample of that many validation users (cheaper
        per-epoch validation on large data); None uses them all."""
        cutoff = _check_cutoff(cutoff)
        target_metric = str(target_metric).lower()
        if target_metric not in TARGET_METRICS:
            raise ValidationError(
                f"unknown target metric {target_metric!r}; valid metrics: {', '.join(TARGET_METRICS)}"
            )
        if max_users is not None and max_users >= self.n_val_users:
            max_users = None
        key = (cutoff, target_metric, n_threads, max_users)
        with self._lock:
            ev = self._evaluators.get(key)
            if ev is None:
                gt, users = self.X_val_ground_truth, self.val_user_indices
                if max_users is not None:
                    rng = np.random.RandomState(self.config.seed)
                    rows = np.sort(rng.choice(self.n_val_users, size=int(max_users), replace=False))
                    gt, users = gt[rows], users[rows]
                ev = ValidationEvaluator(
                    gt,
                    users,
                    self.X_train[users],
                    cutoff=cutoff,
                    target_metric=target_metric,
                    n_threads=n_threads,
                )
                self._evaluators[key] = ev
        return ev

    # ---- persistence -------------------------------------------------------------------------

    def save_npz(self, path: str | os.PathLike) -> None:
        path = Path(path)
        meta = {
            "version": _SPLIT_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "config": self.config.to_dict(),
        }
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            "val_user_indices": self.val_user_indices,
        }
        for prefix, m in (("train", self.X_train), ("gt", self.X_val_ground_truth)):
            arrays[f"{prefix}_data"] = m.data
            arrays[f"{prefix}_indices"] = m.indices
            arrays[f"{prefix}_indptr"] = m.indptr
            arrays[f"{prefix}_shape"] = np.asarray(m.shape, dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".split-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load_npz(
        cls,
        path: str | os.PathLike,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> "Split":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("version") != _SPLIT_FORMAT_VERSION:
                raise ValidationError(f"{path}: unsupported split file version")
            mats = {}
            for prefix in ("train", "gt"):
                mats[prefix] = sps.csr_matrix(
                    (z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]),
                    shape=tuple(int(s) for s in z[f"{prefix}_shape"]),
                )
            val = np.asarray(z["val_user_indices"], dtype=np.int64)
        return cls(
            X_train=mats["train"],
            X_val_ground_truth=mats["gt"],
            val_user_indices=val,
            config=SplitConfig.from_dict(meta["config"]),
            fingerprint=meta["fingerprint"],
            user_ids=user_ids,
            item_ids=item_ids,
        )


def _check_cutoff(cutoff: Any) -> int:
    try:
        c = int(cutoff)
    except (TypeError, ValueError):
        raise ValidationError(f"cutoff must be a positive integer, got {cutoff!r}")
    if c != cutoff or c < 1:
        raise ValidationError(f"cutoff must be a positive integer, got {cutoff!r}")
    return c


# --------------------------------------------------------------------------------------------
# input normalisation
# --------------------------------------------------------------------------------------------


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
            raise ValidationError("the time column is neither numeric nor datetime")
    if not np.isfinite(t).all():
        raise ValidationError("the time column has missing or infinite values")
    return t


_TIME_COLUMNS = ("time", "timestamp", "ts", "datetime")


def _from_dataframe(
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
    vals = np.ones(len(rows), dtype=np.float64)
    return rows, cols, vals, times, int(n_users), int(n_items), user_ids, item_ids


def _from_matrix(X: Any, times: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int, int]:
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


def _dedupe(
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


def _content_fingerprint(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, times: np.ndarray | None, shape: tuple
) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([int(shape[0]), int(shape[1])]).encode())
    for a in (rows, cols, vals) + (() if times is None else (times,)):
        h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------------------------
# the schemes
# --------------------------------------------------------------------------------------------


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


def _build_split(
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


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------

_CACHE_SIZE = 8
_cache: "OrderedDict[tuple[str, str], Split]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_split_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _cache_file(cache_dir: str | os.PathLike, fingerprint: str, cfg: SplitConfig) -> Path:
    digest = hashlib.sha256(f"{fingerprint}\n{cfg.key()}".encode()).hexdigest()[:32]
    return Path(cache_dir) / f"split-{digest}.npz"


def make_split(
    data: pd.DataFrame | sps.spmatrix | np.ndarray,
    user_ids: Sequence[Any] | np.ndarray | None = None,
    item_ids: Sequence[Any] | np.ndarray | None = None,
    config: SplitConfig | dict | None = None,
    times: Any = None,
    fingerprint: str | None = None,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    time_column: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Split:
    """Make (or fetch from cache) the validation split of a data set.

    ``data`` is either

    * the data layer's ``read_interactions(snapshot)`` DataFrame: columns ``user_code``,
      ``item_code`` (0-based codes; ``user_id``/``item_id`` are used as ids when present), or
      only ``user_id``/``item_id`` (factorised in sorted order), plus an optional time column
      (``time_column``, default: the first of time/timestamp/ts/datetime present; numbers or
      datetimes). Pass ``n_users``/``n_items`` to keep users/items without interactions; or
    * an interaction matrix (``interaction_matrix(snapshot)``'s csr), with ``times`` a sparse
      matrix of the same sparsity pattern or a 1-D array aligned with its sorted non-zeros.

    ``fingerprint`` identifies the data (e.g. the snapshot fingerprint); if omitted, a hash of
    the content is used. The same fingerprint + config give the same split, from an in-process
    LRU cache and, with ``cache_dir``, an ``.npz`` file cache.
    """
    if config is None:
        cfg = SplitConfig()
    elif isinstance(config, dict):
        cfg = SplitConfig.from_dict(config)
    elif isinstance(config, SplitConfig):
        cfg = config
    else:
        raise ValidationError(f"config must be a SplitConfig or dict, got {type(config).__name__}")

    if fingerprint is not None:
        key = (str(fingerprint), cfg.key())
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
        if cache_dir is not None:
            path = _cache_file(cache_dir, str(fingerprint), cfg)
            if path.exists():
                try:
                    split = Split.load_npz(path, _opt_array(user_ids), _opt_array(item_ids))
                except (OSError, ValueError, KeyError):
                    split = None
                if split is not None and split.fingerprint == str(fingerprint) and split.config == cfg:
                    if split.user_ids is None or split.item_ids is None:
                        _fill_ids_from(split, data)
                    _remember(key, split)
                    return split

    if isinstance(data, pd.DataFrame):
        if times is not None:
            raise ValidationError("with a DataFrame, pass times as a column (time_column), not times=")
        rows, cols, vals, t, nu, ni, uids, iids = _from_dataframe(
            data, n_users, n_items, user_ids, item_ids, time_column
        )
    elif sps.issparse(data) or isinstance(data, np.ndarray):
        rows, cols, vals, t, nu, ni = _from_matrix(data, times)
        if n_users is not None and n_users != nu or n_items is not None and n_items != ni:
            raise ValidationError("n_users/n_items disagree with the interaction matrix shape")
        uids, iids = user_ids, item_ids
    else:
        raise ValidationError(
            f"data must be an interactions DataFrame or a sparse matrix, got {type(data).__name__}"
        )
    if len(rows) and (rows.min() < 0 or rows.max() >= nu or cols.min() < 0 or cols.max() >= ni):
        raise ValidationError("user/item codes out of range for n_users/n_items")
    uids = _opt_array(uids)
    iids = _opt_array(iids)
    if uids is not None and len(uids) != nu:
        raise ValidationError(f"user_ids has {len(uids)} entries but there are {nu} users")
    if iids is not None and len(iids) != ni:
        raise ValidationError(f"item_ids has {len(iids)} entries but there are {ni} items")
    if cfg.needs_times and t is None:
        raise ValidationError(
            f"split scheme {cfg.scheme!r} needs interaction times; the data has none "
            f"(valid schemes without times: random)"
        )
    if len(rows) == 0:
        raise ValidationError("cannot make a validation split of an empty data set")
    rows, cols, vals, t = _dedupe(rows, cols, vals, t, ni)

    fp = str(fingerprint) if fingerprint is not None else _content_fingerprint(rows, cols, vals, t, (nu, ni))
    key = (fp, cfg.key())
    if fingerprint is None:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit

    X_train, X_gt, val_users = _build_split(rows, cols, vals, t, nu, ni, cfg)
    split = Split(
        X_train=X_train,
        X_val_ground_truth=X_gt,
        val_user_indices=val_users,
        config=cfg,
        fingerprint=fp,
        user_ids=uids,
        item_ids=iids,
    )
    if cache_dir is not None:
        try:
            split.save_npz(_cache_file(cache_dir, fp, cfg))
        except OSError:
            pass  # the disk cache is an optimisation only
    return _remember(key, split)


def _opt_array(a: Any) -> np.ndarray | None:
    return None if a is None else np.asarray(a)


def _fill_ids_from(split: Split, data: Any) -> None:
    if isinstance(data, pd.DataFrame):
        try:
            _, _, _, _, _, _, uids, iids = _from_dataframe(
                data, split.n_users, split.n_items, split.user_ids, split.item_ids, None
            )
        except ValidationError:
            return
        split.user_ids = _opt_array(uids)
        split.item_ids = _opt_array(iids)


def _remember(key: tuple[str, str], split: Split) -> Split:
    with _cache_lock:
        existing = _cache.get(key)
        if existing is not None:
            _cache.move_to_end(key)
            return existing
        _cache[key] = split
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return split


def evaluate(
    recommender: Any,
    split: Split,
    cutoffs: Sequence[int] = (10, 20),
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_threads: int | None = None,
) -> dict[str, float]:
    """Score a learnt recommender on the split's validation users.

    Returns ``{"ndcg@10": ..., "coverage@10": ..., ...}``; ``coverage`` is catalog coverage: the
    share of all items recommended to at least one validation user within the cutoff.
    """
    if isinstance(cutoffs, int):
        cutoffs = (cutoffs,)
    cuts = [_check_cutoff(c) for c in cutoffs]
    if not cuts:
        raise ValidationError("give at least one cutoff")
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if str(m).lower() not in METRICS]
    if unknown:
        raise ValidationError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; valid metrics: {', '.join(METRICS)}"
        )
    shape = getattr(recommender, "X_train_all", None)
    if shape is None:
        raise ValidationError("evaluate needs an irspack recommender")
    if recommender.X_train_all.shape != split.X_train.shape:
        raise ValidationError(
            f"the recommender was built on a {recommender.X_train_all.shape} matrix, "
            f"the split is {split.X_train.shape}"
        )
    if recommender.X_train_all.nnz != split.X_train.nnz:
        raise ValidationError(
            "evaluate a recommender built on split.X_train: this one was built on "
            f"{recommender.X_train_all.nnz:,} interactions, the split trains on "
            f"{split.X_train.nnz:,} (scoring a model that saw the held-out items would leak)"
        )
    ev = split.evaluator(cutoff=max(cuts), n_threads=n_threads)
    raw = ev.get_scores(recommender, cuts)
    out: dict[str, float] = {}
    for c in cuts:
        for m in metrics:
            m = str(m).lower()
            out[f"{m}@{c}"] = float(raw[f"{METRICS[m]}@{c}"])
    return out
