"""Search spaces: how an Optuna trial samples each algorithm's parameters (each space covers
irspack's ``default_tune_range``), and the IALS regularisation scale they and the defaults share."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

# IALS (nu=1) regularises a user vector with reg * (alpha0 * n_items + N_u) and an item vector
# with reg * (alpha0 * n_users + N_i). Measured on six data sets (200 to 17.6k items, 0.3 % to
# 14 % dense): quality is best when that factor, for the average user and item, is about 8 at
# its larger side, and collapses to popularity-like output from about 12-16 on small dense data.
IALS_AUTO_REG_C = 8.0

Shape = tuple[int, int, int]  # n_users, n_items, nnz


def ials_reg_scale(alpha0: float, n_users: int, n_items: int, nnz: int = 0) -> float:
    """max(alpha0 * n_items + nnz / n_users, alpha0 * n_users + nnz / n_items)."""
    u, i = max(int(n_users), 1), max(int(n_items), 1)
    return float(max(alpha0 * i + nnz / u, alpha0 * u + nnz / i, 1e-12))


def ials_auto_reg(alpha0: float, n_users: int, n_items: int, nnz: int = 0) -> float:
    """The data-adaptive default of IALS ``reg``: 8 / ials_reg_scale(...)."""
    return float(IALS_AUTO_REG_C / ials_reg_scale(alpha0, n_users, n_items, nnz))


class SpaceProbe:
    """A stand-in Optuna trial that records every range a space asks for and answers with its low
    end (or first choice): ``seen`` maps each trial parameter to ``("int"|"float", low, high)`` or
    ``("cat", choices)``."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple] = {}

    def suggest_int(self, name: str, low: int, high: int, log: bool = False, step: int = 1) -> int:
        self.seen[name] = ("int", low, high)
        return low

    def suggest_float(self, name: str, low: float, high: float, log: bool = False, step: Any = None) -> float:
        self.seen[name] = ("float", low, high)
        return low

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.seen[name] = ("cat", list(choices))
        return choices[0]


def takes_shape(space: Callable) -> bool:
    """Does the space sample in data-dependent coordinates (a ``shape`` argument)?"""
    return "shape" in inspect.signature(space).parameters


def ials_space(trial: Any, p: str, shape: tuple[int, int, int] | None = None) -> dict:
    # irspack: n_components [4, 300], alpha0 [3e-3, 1] log, reg [1e-4, 1e-1] log
    d = {
        "n_components": trial.suggest_int(p + "n_components", 4, 512, log=True),
        "alpha0": trial.suggest_float(p + "alpha0", 1e-3, 10.0, log=True),
    }
    if shape is None:
        d["reg"] = trial.suggest_float(p + "reg", 1e-5, 1.0, log=True)
        return d
    # With the data shape known, sample the effective regularisation
    # lam = reg * ials_reg_scale(alpha0, ...) instead of reg: good configurations lie on a ridge
    # reg ~ 8 / scale(alpha0) that is axis-aligned in (alpha0, lam). The lam range maps onto a
    # reg range covering irspack's [1e-4, 1e-1] for every alpha0 in [3e-3, 1].
    n_users, n_items, nnz = shape
    lo = min(0.1, 1e-4 * ials_reg_scale(3e-3, n_users, n_items, nnz))
    hi = max(1000.0, 0.1 * ials_reg_scale(1.0, n_users, n_items, nnz))
    lam = trial.suggest_float(p + "reg_lambda", lo, hi, log=True)
    d["reg"] = lam / ials_reg_scale(d["alpha0"], n_users, n_items, nnz)
    return d


def ials_space_point(params: dict, shape: Shape) -> dict:
    """IALS parameters in the coordinates of its shape-aware space (``reg_lambda`` beside ``reg``)."""
    return {**params, "reg_lambda": params["reg"] * ials_reg_scale(params["alpha0"], *shape)}


def rp3beta_space(trial: Any, p: str) -> dict:
    # irspack: top_k [2, 1000], beta [1e-5, 0.5] log, normalize_weight. Large top_k matters on
    # long-tail catalogues (lastfm-2k: nDCG@10 0.05 at 100, 0.41 unlimited).
    return {
        "top_k": trial.suggest_int(p + "top_k", 2, 4096, log=True),
        "beta": trial.suggest_float(p + "beta", 1e-5, 1.0, log=True),
        "normalize_weight": trial.suggest_categorical(p + "normalize_weight", [True, False]),
    }


def p3alpha_space(trial: Any, p: str) -> dict:
    # irspack: top_k [10, 1000], normalize_weight
    return {
        "top_k": trial.suggest_int(p + "top_k", 2, 4096, log=True),
        "normalize_weight": trial.suggest_categorical(p + "normalize_weight", [True, False]),
    }


def knn_space(trial: Any, p: str) -> dict:
    # irspack: top_k [4, 1000], shrinkage [0, 1000]
    return {
        "top_k": trial.suggest_int(p + "top_k", 4, 1000, log=True),
        "shrinkage": trial.suggest_float(p + "shrinkage", 0.0, 1000.0),
    }


def _knn_weighting_space(trial: Any, p: str) -> dict:
    d = knn_space(trial, p)
    d["feature_weighting"] = trial.suggest_categorical(p + "feature_weighting", ["NONE", "TF_IDF", "BM_25"])
    return d


def cosine_space(trial: Any, p: str) -> dict:
    d = _knn_weighting_space(trial, p)
    d["normalize"] = trial.suggest_categorical(p + "normalize", [False, True])
    return d


def asymmetric_cosine_space(trial: Any, p: str) -> dict:
    d = _knn_weighting_space(trial, p)
    d["alpha"] = trial.suggest_float(p + "alpha", 0.0, 1.0)
    return d


def tversky_space(trial: Any, p: str) -> dict:
    d = knn_space(trial, p)
    d["alpha"] = trial.suggest_float(p + "alpha", 0.0, 2.0)
    d["beta"] = trial.suggest_float(p + "beta", 0.0, 2.0)
    return d


def dense_slim_space(trial: Any, p: str) -> dict:
    # irspack: reg [1, 1e4] log
    return {"reg": trial.suggest_float(p + "reg", 1.0, 1e5, log=True)}


def edlae_space(trial: Any, p: str) -> dict:
    # irspack: reg [1, 1e4] log, dropout_p [0, 0.99]
    return {
        "reg": trial.suggest_float(p + "reg", 1.0, 1e5, log=True),
        "dropout_p": trial.suggest_float(p + "dropout_p", 0.0, 0.99),
    }


def slim_space(trial: Any, p: str) -> dict:
    # irspack: alpha [1e-5, 1] log, l1_ratio [0, 1]
    return {
        "alpha": trial.suggest_float(p + "alpha", 1e-5, 1.0, log=True),
        "l1_ratio": trial.suggest_float(p + "l1_ratio", 0.0, 1.0),
    }


def truncated_svd_space(trial: Any, p: str) -> dict:
    # irspack: n_components [4, 512]
    return {"n_components": trial.suggest_int(p + "n_components", 4, 512, log=True)}


def nmf_space(trial: Any, p: str) -> dict:
    # irspack: n_components [4, 512], alpha [1e-10, 1e-1] log, l1_ratio [0, 1]
    return {
        "n_components": trial.suggest_int(p + "n_components", 4, 512, log=True),
        "alpha": trial.suggest_float(p + "alpha", 1e-10, 1e-1, log=True),
        "l1_ratio": trial.suggest_float(p + "l1_ratio", 0.0, 1.0),
    }

