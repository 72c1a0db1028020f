"""The held-out split of a training data snapshot: the one tuning, `train(evaluate=True)`,
comparison and tuning insight score on (cached under ``data/splits``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import data
from .errors import ValidationError
from .evaluation import Split, SplitConfig, make_split

if TYPE_CHECKING:
    from .base import WorkspaceBase


def split_for(ws: WorkspaceBase, dataset: dict, config: SplitConfig | dict | None,
              sample_users: int | None = None) -> Split:
    """The (cached) held-out split of a training data snapshot (of a sample of its users)."""
    return snapshot_split(dataset.path, dataset.fingerprint, dataset.n_users, dataset.n_items, config,
                           ws.data_dir / "splits", f"training data {dataset.id}", sample_users)


def snapshot_split(path: Any, fingerprint: str, n_users: int, n_items: int, config: SplitConfig | dict | None,
                    cache_dir: Path | None, label: str, sample_users: int | None = None) -> Split:
    """The held-out split of the interaction snapshot at `path` (no catalog needed: remote workers use it).

    Its training part carries the pairs' weights (the weight column's sums, else the rows' counts)
    for configurations that weight interactions. `sample_users`: the split of that many users
    drawn with the split's seed (all items kept), for tuning on a sample of a large data set.
    """
    config = SplitConfig.from_dict(config) if not isinstance(config, SplitConfig) else config
    rows = None
    if sample_users is not None and sample_users < n_users:
        rows = np.sort(np.random.RandomState(config.seed).choice(n_users, int(sample_users), replace=False))
        fingerprint = f"{fingerprint}:users-{int(sample_users)}"
    if config.needs_times:
        frame = data.read_interactions(path)
        if "time" not in frame.columns:
            raise ValidationError(f"The {config.scheme!r} split needs interaction times, and {label} has none.")
        if rows is not None:
            frame = frame[np.isin(frame["user_code"].to_numpy(), rows)]
            frame = frame.assign(user_code=np.searchsorted(rows, frame["user_code"].to_numpy()))
            n_users = len(rows)
        return make_split(frame, config=config, fingerprint=fingerprint, n_users=n_users,
                          n_items=n_items, time_column="time", cache_dir=cache_dir)
    weighting = "raw" if data.snapshot_info(path).weighted else "count"
    X, user_ids, item_ids = data.interaction_matrix(path, weighting=weighting)
    if rows is not None:
        X, user_ids = X[rows], user_ids[rows]
    return make_split(X, user_ids, item_ids, config=config, fingerprint=fingerprint, cache_dir=cache_dir)
