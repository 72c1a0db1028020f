"""The algorithm registry: every irspack recommender with sensible defaults, a search space, a
parameter schema for forms, and a cost guard.

Defaults were chosen from grids measured on ml-100k (943 x 1,682), lastfm-2k (1,892 x 17,632)
and clustered synthetic data (400 x 300, 2,000 x 3,000), nDCG@10 with 20 % validation users and
half of their interactions held out. Default nDCG@10 on ml-100k / lastfm-2k (TopPop 0.373 / 0.164):

* IALS 64 factors, alpha0 0.3, reg auto (``ials_auto_reg``), CG, 16 epochs: 0.628 / 0.429, and
  0.666 on the 300 x 200 demo data (irspack's own defaults, alpha0 = 0: ~0.003 on ml-100k; a fixed
  reg tuned on ml-100k collapses to 0.17 on lastfm-2k, hence the data-adaptive reg);
* RP3beta beta 0.3, top_k 1000: 0.565 / 0.291 (irspack-like beta 0.6, top_k 100: 0.465 / 0.024 --
  irspack keeps the top_k largest weights per *column*, which starves popular targets);
* DenseSLIM reg 300: 0.614 (irspack's reg 1: 0.48); TruncatedSVD 16 components: 0.615 / 0.375
  (irspack's 4: 0.55); CosineKNN top_k 300, shrinkage 10, normalised: 0.561 / 0.409;
  user-KNN top_k 50: 0.60 / 0.39; EDLAE reg 300, dropout 0.3: 0.622; SLIM alpha 0.1: 0.607;
  NMF 32 components: 0.620.

``n_threads`` is never a user parameter: it is fixed at build time from
:func:`workbench.evaluation.default_n_threads` (``WORKBENCH_N_THREADS`` / CPU count).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import irspack
import numpy as np
import scipy.sparse as sps

from .errors import ValidationError
from .evaluation import default_n_threads

__all__ = [
    "Algorithm",
    "ParamSpec",
    "get_algorithm",
    "list_algorithms",
    "resolve_params",
    "effective_params",
    "build_recommender",
    "cost_guard",
    "DEFAULT_PORTFOLIO",
    "LIMITS",
    "ials_auto_reg",
    "ials_reg_scale",
]

# Limits for cost_guard (module-level so a deployment can adjust them).
LIMITS: dict[str, int] = {
    # DenseSLIM / EDLAE invert a dense n_items x n_items float32 matrix: memory 4*n^2 bytes per copy
    # (several copies at peak), time cubic (40 s for 17.6k items on a 2-core machine).
    "dense_items": 6000,
    # SLIM: one elastic-net per item over the whole user axis.
    "slim_items": 20000,
    "slim_nnz": 5_000_000,
    # user-KNN keeps a user x user similarity and scores through it.
    "user_knn_users": 50000,
    # NMF (sklearn, coordinate descent, fitted twice by irspack).
    "nmf_nnz": 5_000_000,
}

DEFAULT_PORTFOLIO = ("TopPop", "IALS", "RP3beta", "CosineKNN", "TruncatedSVD", "DenseSLIM")

# IALS (nu=1) regularises a user vector with reg * (alpha0 * n_items + N_u) and an item vector
# with reg * (alpha0 * n_users + N_i). Measured on six data sets (200 to 17.6k items, 0.3 % to
# 14 % dense): quality is best when that factor, for the average user and item, is about 8 at
# its larger side, and collapses to popularity-like output from about 12-16 on small dense data.
IALS_AUTO_REG_C = 8.0


def ials_reg_scale(alpha0: float, n_users: int, n_items: int, nnz: int = 0) -> float:
    """max(alpha0 * n_items + nnz / n_users, alpha0 * n_users + nnz / n_items)."""
    u, i = max(int(n_users), 1), max(int(n_items), 1)
    return float(max(alpha0 * i + nnz / u, alpha0 * u + nnz / i, 1e-12))


def ials_auto_reg(alpha0: float, n_users: int, n_items: int, nnz: int = 0) -> float:
    """The data-adaptive default of IALS ``reg``: 8 / ials_reg_scale(...)."""
    return float(IALS_AUTO_REG_C / ials_reg_scale(alpha0, n_users, n_items, nnz))


# --------------------------------------------------------------------------------------------
# parameter specs
# --------------------------------------------------------------------------------------------

_KINDS = ("int", "float", "bool", "str", "choices")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str  # one of _KINDS
    default: Any
    low: float | None = None  # inclusive validation bounds
    high: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    help: str = ""

    def schema(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.kind, "default": self.default}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.low is not None:
            d["min"] = self.low
        if self.high is not None:
            d["max"] = self.high
        if self.nullable:
            d["nullable"] = True
        if self.help:
            d["help"] = self.help
        return d

    def coerce(self, value: Any, algorithm: str) -> Any:
        where = f"{algorithm} parameter {self.name!r}"
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null") and self.nullable):
            if self.nullable:
                return None
            raise ValidationError(f"{where} cannot be empty (default: {self.default!r})")
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            if isinstance(value, (int, np.integer)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.strip().lower() in ("true", "yes", "1")
            raise ValidationError(f"{where} must be true or false, got {value!r}")
        if self.kind == "int":
            v: Any
            if isinstance(value, (bool, np.bool_)):
                raise ValidationError(f"{where} must be an integer, got {value!r}")
            if isinstance(value, (int, np.integer)):
                v = int(value)
            elif isinstance(value, (float, np.floating)) and float(value).is_integer():
                v = int(value)
            elif isinstance(value, str):
                try:
                    f = float(value.strip())
                except ValueError:
                    raise ValidationError(f"{where} must be an integer, got {value!r}")
                if not f.is_integer():
                    raise ValidationError(f"{where} must be an integer, got {value!r}")
                v = int(f)
            else:
                raise ValidationError(f"{where} must be an integer, got {value!r}")
            self._check_range(v, where)
            return v
        if self.kind == "float":
            if isinstance(value, (bool, np.bool_)):
                raise ValidationError(f"{where} must be a number, got {value!r}")
            try:
                v = float(value.strip() if isinstance(value, str) else value)
            except (TypeError, ValueError):
                raise ValidationError(f"{where} must be a number, got {value!r}")
            if not math.isfinite(v):
                raise ValidationError(f"{where} must be a finite number, got {value!r}")
            self._check_range(v, where)
            return v
        if self.kind == "choices":
            assert self.choices is not None
            for c in self.choices:
                if value == c and type(value) is type(c):
                    return c
            if isinstance(value, str):
                for c in self.choices:
                    if isinstance(c, str) and c.lower() == value.strip().lower():
                        return c
            raise ValidationError(
                f"{where} must be one of {', '.join(map(repr, self.choices))}; got {value!r}"
            )
        # str
        if not isinstance(value, str):
            raise ValidationError(f"{where} must be a string, got {value!r}")
        return value

    def _check_range(self, v: float, where: str) -> None:
        if self.low is not None and v < self.low or self.high is not None and v > self.high:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            raise ValidationError(f"{where} must be in [{lo}, {hi}], got {v!r}")


def _i(name: str, default: Any, low: float | None = None, high: float | None = None, nullable: bool = False, help: str = "") -> ParamSpec:
    return ParamSpec(name, "int", default, low, high, None, nullable, help)


def _f(name: str, default: Any, low: float | None = None, high: float | None = None, nullable: bool = False, help: str = "") -> ParamSpec:
    return ParamSpec(name, "float", default, low, high, None, nullable, help)


def _b(name: str, default: bool, help: str = "") -> ParamSpec:
    return ParamSpec(name, "bool", default, help=help)


def _c(name: str, default: Any, choices: tuple, nullable: bool = False, help: str = "") -> ParamSpec:
    return ParamSpec(name, "choices", default, choices=choices, nullable=nullable, help=help)


# --------------------------------------------------------------------------------------------
# the Algorithm record
# --------------------------------------------------------------------------------------------

SuggestFn = Callable[[Any, str], dict]


@dataclass(frozen=True, eq=False)
class Algorithm:
    name: str
    recommender_class: type
    defaults: dict
    iterative: bool
    params: tuple[ParamSpec, ...] = field(default=(), repr=False)
    space: SuggestFn | None = field(default=None, repr=False)
    description: str = ""

    @property
    def class_name(self) -> str:
        return self.recommender_class.__name__

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise ValidationError(
            f"unknown {self.name} parameter {name!r}; valid parameters: "
            f"{', '.join(p.name for p in self.params) or '(none)'}"
        )

    def suggest(
        self,
        trial: Any,
        prefix: str | None = None,
        *,
        n_users: int | None = None,
        n_items: int | None = None,
        nnz: int | None = None,
    ) -> dict:
        """Sample a configuration with an Optuna trial. Parameter names in the trial are
        prefixed with ``"<name>."`` (so one study can hold several algorithms); the returned
        dict has plain names and only the sampled parameters (merge with resolve_params).
        Knowing the data shape (``n_users``, ``n_items``, ``nnz``) lets some spaces sample in
        better coordinates (IALS: the effective regularisation ``reg_lambda``)."""
        if self.space is None:
            return {}
        p = f"{self.name}." if prefix is None else prefix
        if n_users is not None and n_items is not None and "shape" in _space_args(self.space):
            return self.space(trial, p, (int(n_users), int(n_items), int(nnz or 0)))
        return self.space(trial, p)

    def params_schema(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.schema() for p in self.params}


# --------------------------------------------------------------------------------------------
# search spaces (each covers irspack's default_tune_range)
# --------------------------------------------------------------------------------------------


def _space_ials(trial: Any, p: str, shape: tuple[int, int, int] | None = None) -> dict:
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


def _space_args(fn: Callable) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


def _space_rp3(trial: Any, p: str) -> dict:
    # irspack: top_k [2, 1000], beta [1e-5, 0.5] log, normalize_weight. Large top_k matters on
    # long-tail catalogues (lastfm-2k: nDCG@10 0.05 at 100, 0.41 unlimited).
    return {
        "top_k": trial.suggest_int(p + "top_k", 2, 4096, log=True),
        "beta": trial.suggest_float(p + "beta", 1e-5, 1.0, log=True),
        "normalize_weight": trial.suggest_categorical(p + "normalize_weight", [True, False]),
    }


def _space_p3(trial: Any, p: str) -> dict:
    # irspack: top_k [10, 1000], normalize_weight
    return {
        "top_k": trial.suggest_int(p + "top_k", 2, 4096, log=True),
        "normalize_weight": trial.suggest_categorical(p + "normalize_weight", [True, False]),
    }


def _knn_base(trial: Any, p: str) -> dict:
    # irspack: top_k [4, 1000], shrinkage [0, 1000]
    return {
        "top_k": trial.suggest_int(p + "top_k", 4, 1000, log=True),
        "shrinkage": trial.suggest_float(p + "shrinkage", 0.0, 1000.0),
    }


def _knn_weighting(trial: Any, p: str) -> dict:
    d = _knn_base(trial, p)
    d["feature_weighting"] = trial.suggest_categorical(p + "feature_weighting", ["NONE", "TF_IDF", "BM_25"])
    return d


def _space_cosine(trial: Any, p: str) -> dict:
    d = _knn_weighting(trial, p)
    d["normalize"] = trial.suggest_categorical(p + "normalize", [False, True])
    return d


def _space_asym(trial: Any, p: str) -> dict:
    d = _knn_weighting(trial, p)
    d["alpha"] = trial.suggest_float(p + "alpha", 0.0, 1.0)
    return d


def _space_tversky(trial: Any, p: str) -> dict:
    d = _knn_base(trial, p)
    d["alpha"] = trial.suggest_float(p + "alpha", 0.0, 2.0)
    d["beta"] = trial.suggest_float(p + "beta", 0.0, 2.0)
    return d


def _space_dense_slim(trial: Any, p: str) -> dict:
    # irspack: reg [1, 1e4] log
    return {"reg": trial.suggest_float(p + "reg", 1.0, 1e5, log=True)}


def _space_edlae(trial: Any, p: str) -> dict:
    # irspack: reg [1, 1e4] log, dropout_p [0, 0.99]
    return {
        "reg": trial.suggest_float(p + "reg", 1.0, 1e5, log=True),
        "dropout_p": trial.suggest_float(p + "dropout_p", 0.0, 0.99),
    }


def _space_slim(trial: Any, p: str) -> dict:
    # irspack: alpha [1e-5, 1] log, l1_ratio [0, 1]
    return {
        "alpha": trial.suggest_float(p + "alpha", 1e-5, 1.0, log=True),
        "l1_ratio": trial.suggest_float(p + "l1_ratio", 0.0, 1.0),
    }


def _space_svd(trial: Any, p: str) -> dict:
    # irspack: n_components [4, 512]
    return {"n_components": trial.suggest_int(p + "n_components", 4, 512, log=True)}


def _space_nmf(trial: Any, p: str) -> dict:
    # irspack: n_components [4, 512], alpha [1e-10, 1e-1] log, l1_ratio [0, 1]
    return {
        "n_components": trial.suggest_int(p + "n_components", 4, 512, log=True),
        "alpha": trial.suggest_float(p + "alpha", 1e-10, 1e-1, log=True),
        "l1_ratio": trial.suggest_float(p + "l1_ratio", 0.0, 1.0),
    }


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------

_WEIGHTING = ("NONE", "TF_IDF", "BM_25")


def _knn_params(top_k: int, shrinkage: float, weighting: bool, extra: tuple = ()) -> tuple:
    ps: list[ParamSpec] = [
        _i("top_k", top_k, 1, None, help="neighbours kept per item/user"),
        _f("shrinkage", shrinkage, 0.0, None, help="added to the similarity denominator"),
    ]
    ps += list(extra)
    if weighting:
        ps += [
            _c("feature_weighting", "NONE", _WEIGHTING),
            _f("bm25_k1", 1.2, 0.0, None),
            _f("bm25_b", 0.75, 0.0, 1.0),
        ]
    return tuple(ps)


def _make_registry() -> dict[str, Algorithm]:
    R = irspack
    algos: list[Algorithm] = []

    def add(name: str, cls: type, params: tuple, space: SuggestFn | None, iterative: bool = False, description: str = "") -> None:
        algos.append(
            Algorithm(
                name=name,
                recommender_class=cls,
                defaults={p.name: p.default for p in params},
                iterative=iterative,
                params=params,
                space=space,
                description=description,
            )
        )

    add("TopPop", R.TopPopRecommender, (), None, description="Most popular items (non-personalised baseline).")
    add(
        "IALS",
        R.IALSRecommender,
        (
            _i("n_components", 64, 1, 4096, help="latent dimension"),
            _f("alpha0", 0.3, 0.0, None, help="weight of unobserved interactions"),
            _f("reg", None, 0.0, None, nullable=True,
               help="L2 regularisation; empty = auto: 8 / max(alpha0*n_items + nnz/n_users, "
                    "alpha0*n_users + nnz/n_items)"),
            _f("nu", 1.0, 0.0, None, help="frequency-scaled regularisation exponent"),
            _c("confidence_scaling", "none", ("none", "log")),
            _f("epsilon", 1.0, 1e-12, None, help="log confidence scaling epsilon"),
            _f("init_std", 0.1, 0.0, None),
            _c("solver_type", "CG", ("CG", "CHOLESKY", "IALSPP")),
            _i("max_cg_steps", 3, 1, 100),
            _c("loss_type", "IALSPP", ("IALSPP", "ORIGINAL")),
            _i("train_epochs", 16, 1, 10000, help="epochs (tuning stops early and records the best)"),
            _i("random_seed", 42, 0, 2**31 - 1),
        ),
        _space_ials,
        iterative=True,
        description="Implicit ALS matrix factorisation (iALS++ loss, conjugate gradient).",
    )
    add(
        "RP3beta",
        R.RP3betaRecommender,
        (
            _f("alpha", 1.0, 0.0, None, help="exponent applied to interaction values"),
            _f("beta", 0.3, 0.0, None, help="popularity penalty"),
            _i("top_k", 1000, 1, None, nullable=True, help="similarities kept per item (empty = all)"),
            _b("normalize_weight", False),
        ),
        _space_rp3,
        description="3-step random walk with popularity penalty (item graph).",
    )
    add(
        "P3alpha",
        R.P3alphaRecommender,
        (
            _f("alpha", 1.0, 0.0, None),
            _i("top_k", 1000, 1, None, nullable=True, help="similarities kept per item (empty = all)"),
            _b("normalize_weight", False),
        ),
        _space_p3,
        description="3-step random walk (item graph).",
    )
    add(
        "CosineKNN",
        R.CosineKNNRecommender,
        _knn_params(300, 10.0, True, (_b("normalize", True),)),
        _space_cosine,
        description="Item-based k-nearest neighbours, cosine similarity.",
    )
    add(
        "AsymmetricCosineKNN",
        R.AsymmetricCosineKNNRecommender,
        _knn_params(300, 10.0, True, (_f("alpha", 0.5, 0.0, 1.0),)),
        _space_asym,
        description="Item-based k-nearest neighbours, asymmetric cosine similarity.",
    )
    add(
        "JaccardKNN",
        R.JaccardKNNRecommender,
        _knn_params(300, 10.0, False),
        lambda t, p: _knn_base(t, p),
        description="Item-based k-nearest neighbours, Jaccard similarity.",
    )
    add(
        "TverskyIndexKNN",
        R.TverskyIndexKNNRecommender,
        _knn_params(300, 10.0, False, (_f("alpha", 0.5, 0.0, None), _f("beta", 0.5, 0.0, None))),
        _space_tversky,
        description="Item-based k-nearest neighbours, Tversky index.",
    )
    add(
        "CosineUserKNN",
        R.CosineUserKNNRecommender,
        _knn_params(50, 10.0, True, (_b("normalize", True),)),
        _space_cosine,
        description="User-based k-nearest neighbours, cosine similarity.",
    )
    add(
        "AsymmetricCosineUserKNN",
        R.AsymmetricCosineUserKNNRecommender,
        _knn_params(50, 0.0, True, (_f("alpha", 0.5, 0.0, 1.0),)),
        _space_asym,
        description="User-based k-nearest neighbours, asymmetric cosine similarity.",
    )
    add(
        "DenseSLIM",
        R.DenseSLIMRecommender,
        (_f("reg", 300.0, 0.0, None, help="L2 regularisation (EASE lambda)"),),
        _space_dense_slim,
        description="EASE: closed-form dense item-item model (cubic in items).",
    )
    add(
        "EDLAE",
        R.EDLAERecommender,
        (_f("reg", 300.0, 0.0, None), _f("dropout_p", 0.3, 0.0, 0.999)),
        _space_edlae,
        description="Emphasised denoising linear autoencoder (cubic in items).",
    )
    add(
        "SLIM",
        R.SLIMRecommender,
        (
            _f("alpha", 0.1, 0.0, None),
            _f("l1_ratio", 0.01, 0.0, 1.0),
            _b("positive_only", True),
            _i("n_iter", 100, 1, 10000),
            _f("tol", 1e-4, 0.0, None),
            _i("top_k", None, 1, None, nullable=True, help="max coefficients per item (empty = no limit)"),
        ),
        _space_slim,
        description="Sparse linear item-item model (elastic net, coordinate descent).",
    )
    add(
        "TruncatedSVD",
        R.TruncatedSVDRecommender,
        (_i("n_components", 16, 1, 4096), _i("random_seed", 0, 0, 2**31 - 1)),
        _space_svd,
        description="Randomised truncated SVD of the interaction matrix.",
    )
    add(
        "NMF",
        R.NMFRecommender,
        (
            _i("n_components", 32, 1, 4096),
            _f("alpha", 1e-2, 0.0, None),
            _f("l1_ratio", 1e-2, 0.0, 1.0),
            _c("init", None, (None, "random", "nndsvd", "nndsvda", "nndsvdar"), nullable=True),
        ),
        _space_nmf,
        description="Non-negative matrix factorisation (scikit-learn).",
    )
    return {a.name: a for a in algos}


_REGISTRY: dict[str, Algorithm] = _make_registry()
_LOOKUP: dict[str, str] = {}
for _a in _REGISTRY.values():
    _LOOKUP[_a.name.lower()] = _a.name
    _LOOKUP[_a.class_name.lower()] = _a.name


def list_algorithms() -> list[str]:
    return list(_REGISTRY)


def get_algorithm(name: str | Algorithm) -> Algorithm:
    """By short name or irspack class name, any case: "ials", "IALSRecommender"."""
    if isinstance(name, Algorithm):
        return name
    if isinstance(name, type) and name.__name__.lower() in _LOOKUP:
        return _REGISTRY[_LOOKUP[name.__name__.lower()]]
    key = str(name).strip().lower()
    if key in _LOOKUP:
        return _REGISTRY[_LOOKUP[key]]
    raise ValidationError(
        f"unknown algorithm {name!r}; valid algorithms: {', '.join(_REGISTRY)}"
    )


def resolve_params(algorithm: str | Algorithm, params: dict | None) -> dict:
    """Defaults merged with ``params``, each value validated and coerced to its type."""
    algo = get_algorithm(algorithm)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError(f"parameters must be a mapping, got {type(params).__name__}")
    params = dict(params)
    valid = {p.name: p for p in algo.params}
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValidationError(
            f"unknown {algo.name} parameter(s) {', '.join(map(repr, unknown))}; "
            f"valid parameters: {', '.join(valid) or '(none)'}"
        )
    out = dict(algo.defaults)
    for k, v in params.items():
        out[k] = valid[k].coerce(v, algo.name)
    return out


def effective_params(
    algorithm: str | Algorithm, params: dict | None, n_users: int, n_items: int, nnz: int = 0
) -> dict:
    """The keyword arguments actually passed to irspack for data of this shape: resolved params
    with automatic values filled in (IALS ``reg``), sizes clamped to the data, and n_threads."""
    algo = get_algorithm(algorithm)
    kw = resolve_params(algo, params)
    name = algo.name
    if name == "IALS":
        if kw.get("reg") is None:
            kw["reg"] = ials_auto_reg(kw["alpha0"], n_users, n_items, nnz)
        kw["n_components"] = max(1, int(kw["n_components"]))
    if name in ("TruncatedSVD",):
        kw["n_components"] = max(1, min(int(kw["n_components"]), n_items - 1, max(n_users - 1, 1)))
    if name == "NMF":
        kw["n_components"] = max(1, min(int(kw["n_components"]), n_items, n_users))
    if "top_k" in kw and kw["top_k"] is not None:
        limit = n_users if name in ("CosineUserKNN", "AsymmetricCosineUserKNN") else n_items
        kw["top_k"] = max(1, min(int(kw["top_k"]), max(limit, 1)))
    if "n_threads" in _init_params(algo.recommender_class):
        kw["n_threads"] = default_n_threads()
    return kw


def _init_params(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)


def build_recommender(algorithm: str | Algorithm, X: Any, params: dict | None = None) -> Any:
    """An irspack recommender for ``X`` (users x items), not yet learnt."""
    algo = get_algorithm(algorithm)
    if not sps.issparse(X):
        X = sps.csr_matrix(X)
    n_users, n_items = X.shape
    if algo.name == "TruncatedSVD" and n_items < 2:
        raise ValidationError("TruncatedSVD needs at least 2 items")
    kw = effective_params(algo, params, n_users, n_items, X.nnz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return algo.recommender_class(X, **kw)


def cost_guard(algorithm: str | Algorithm, n_users: int, n_items: int, nnz: int) -> str | None:
    """Why this algorithm should be skipped on data of this size (None if it is fine)."""
    algo = get_algorithm(algorithm)
    name = algo.name
    if n_users < 1 or n_items < 1 or nnz < 1:
        return f"{name}: no interactions to learn from"
    if name in ("DenseSLIM", "EDLAE") and n_items > LIMITS["dense_items"]:
        gb = 4.0 * n_items * n_items / 1e9
        return (
            f"{name} inverts a dense {n_items:,} x {n_items:,} matrix ({gb:.1f} GB per copy, "
            f"time cubic in items); skipped above {LIMITS['dense_items']:,} items"
        )
    if name == "SLIM" and (n_items > LIMITS["slim_items"] or nnz > LIMITS["slim_nnz"]):
        return (
            f"SLIM fits one elastic net per item ({n_items:,} items, {nnz:,} interactions); "
            f"skipped above {LIMITS['slim_items']:,} items or {LIMITS['slim_nnz']:,} interactions"
        )
    if name in ("CosineUserKNN", "AsymmetricCosineUserKNN") and n_users > LIMITS["user_knn_users"]:
        return (
            f"{name} builds a {n_users:,} x {n_users:,} user similarity; "
            f"skipped above {LIMITS['user_knn_users']:,} users"
        )
    if name == "NMF" and nnz > LIMITS["nmf_nnz"]:
        return f"NMF is slow on {nnz:,} interactions; skipped above {LIMITS['nmf_nnz']:,}"
    if name == "TruncatedSVD" and (n_items < 2 or n_users < 2):
        return "TruncatedSVD needs at least 2 users and 2 items"
    return None
