"""A validation split (:class:`Split`) and how it is made (:class:`SplitConfig`)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sps

from ..errors import ValidationError
from .evaluator import ValidationEvaluator
from .metrics import TARGET_METRICS, check_cutoff

SCHEMES = ("random", "latest", "time")
_SPLIT_FORMAT_VERSION = 2  # 2: X_train holds the pairs' weights (1: binary), so older files are recomputed


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
                raise ValidationError(f"{name} must be a number, got {value!r}") from None
            ok = value > low_open and (value <= 1.0 if high_closed else value < 1.0)
            if not ok:
                bounds = "(0, 1]" if high_closed else "(0, 1)"
                raise ValidationError(f"{name} must be in {bounds}, got {value!r}")
            object.__setattr__(self, name, value)
        try:
            seed = int(self.seed)
        except (TypeError, ValueError):
            raise ValidationError(f"seed must be an integer, got {self.seed!r}") from None
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
    def from_dict(cls, d: dict[str, Any] | None) -> SplitConfig:
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


@dataclass(eq=False)
class Split:
    """A validation split. Rows of ``X_train`` are all users (snapshot user-code order); columns
    all items; its values are the pairs' weights (summed, or counted, over duplicate rows: 1 for
    plain interaction logs), which a configuration's weighting turns into what it learns from.
    ``X_val_ground_truth[i]`` holds the held-out items of user ``val_user_indices[i]``, each 1."""

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
        cutoff = check_cutoff(cutoff)
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
    ) -> Split:
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
