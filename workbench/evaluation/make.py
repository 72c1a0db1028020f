"""``make_split``: the (cached) validation split of a data set."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sps

from ..errors import ValidationError
from .inputs import content_fingerprint, dedupe, from_dataframe, from_matrix
from .schemes import build_split
from .split import Split, SplitConfig

_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str], Split] = OrderedDict()
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
        rows, cols, vals, t, nu, ni, uids, iids = from_dataframe(
            data, n_users, n_items, user_ids, item_ids, time_column
        )
    elif sps.issparse(data) or isinstance(data, np.ndarray):
        rows, cols, vals, t, nu, ni = from_matrix(data, times)
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
    rows, cols, vals, t = dedupe(rows, cols, vals, t, ni)

    fp = str(fingerprint) if fingerprint is not None else content_fingerprint(rows, cols, vals, t, (nu, ni))
    key = (fp, cfg.key())
    if fingerprint is None:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit

    X_train, X_gt, val_users = build_split(rows, cols, vals, t, nu, ni, cfg)
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
            _, _, _, _, _, _, uids, iids = from_dataframe(
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
