"""The algorithm registry: every irspack recommender with sensible defaults, a search space, a
parameter schema for forms, a cost estimate, and the hooks through which the rest of the workbench
uses what is particular to one algorithm (see :class:`Algorithm`).

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
:func:`workbench.threads.default_n_threads` (``WORKBENCH_N_THREADS`` / CPU count). Every
algorithm also takes the interaction-weight parameters of :mod:`.weighting`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import irspack
import numpy as np
import scipy.sparse as sps

from ..errors import ValidationError
from ..threads import default_n_threads
from . import costs, explain, fits, hooks, weighting
from . import spaces as S
from .params import ParamSpec, bool_param, choice_param, float_param, int_param

DEFAULT_PORTFOLIO = ("TopPop", "IALS", "RP3beta", "CosineKNN", "TruncatedSVD", "DenseSLIM")

SuggestFn = Callable[..., dict]
Factors = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class Algorithm:
    """One irspack recommender class with its parameters, search space and hooks.

    The hooks hold all that is particular to the algorithm; the rest of the workbench calls them
    instead of asking for algorithm names:

    * ``fit_to_data(kw, n_users, n_items, nnz)``: adjust resolved parameters to the data in place
      (automatic values, sizes clamped);
    * ``estimate(kw, shape, machine)``: what a fit with irspack's keyword arguments ``kw`` will
      cost on data of this :class:`~workbench.algorithms.costs.DataShape` (:mod:`.costs`);
    * ``unusable(n_users, n_items)``: why the algorithm cannot learn from data of this size, or None;
    * ``space_point(params, shape)``: parameters in the coordinates of the search space;
    * ``fit_trial(recommender, cache)``: a tuning trial's fit (same model as ``learn()``, cheaper
      when the trials share a :class:`~workbench.algorithms.fits.FitCache`);
    * ``fit_final(recommender)``: a final model's fit (irspack's ``learn()`` or a leaner one);
    * ``factors(recommender)``: (user factors U, item factors V) when ``get_score(users)`` is
      ``U[users] @ V.T``, else None;
    * ``item_weights(recommender)``: W when ``get_score(users)`` is ``X[users] @ W``, else None;
    * ``explainer(recommender)``: a function splitting the scores of a profile's recommendations
      over the profile's items (see :mod:`.explain`), or None; ``unexplainable`` says why not;
    * ``statistics(recommender)``: what the fit reports (explained variance, final loss, epochs);
    * ``check(recommender, n_users, n_items)``: raise ModelFileError unless a loaded model holds
      arrays of the shapes and index ranges its header declares.
    """

    name: str
    recommender_class: type
    defaults: dict
    iterative: bool
    params: tuple[ParamSpec, ...] = field(default=(), repr=False)
    space: SuggestFn | None = field(default=None, repr=False)
    description: str = ""
    estimate: Callable[[dict, costs.DataShape, costs.Machine], costs.Estimate] = field(default=costs.top_pop, repr=False)
    fit_to_data: Callable[[dict, int, int, int], None] = field(default=hooks.nothing, repr=False)
    unusable: Callable[[int, int], str | None] = field(default=hooks.nothing, repr=False)
    space_point: Callable[[dict, S.Shape], dict] = field(default=lambda params, shape: params, repr=False)
    fit_trial: Callable[[Any, fits.FitCache], None] = field(default=fits.learn, repr=False)
    fit_final: Callable[[Any], None] = field(default=fits.learn, repr=False)
    factors: Callable[[Any], Factors | None] = field(default=hooks.nothing, repr=False)
    item_weights: Callable[[Any], Any] = field(default=hooks.nothing, repr=False)
    explainer: Callable[[Any], explain.Explainer | None] = field(default=hooks.nothing, repr=False)
    unexplainable: str = field(default="its scores have no known decomposition over a user's own items", repr=False)
    statistics: Callable[[Any], dict] = field(default=hooks.no_statistics, repr=False)
    check: Callable[[Any, int, int], None] = field(default=hooks.check_interactions, repr=False)

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
        if n_users is not None and n_items is not None and S.takes_shape(self.space):
            return self.space(trial, p, (int(n_users), int(n_items), int(nnz or 0)))
        return self.space(trial, p)

    def space_ranges(self, n_users: int | None = None, n_items: int | None = None, nnz: int | None = None) -> dict:
        """The search space's trial parameters (prefixed) -> ``("int"|"float", low, high)`` or ``("cat", choices)``."""
        probe = S.SpaceProbe()
        self.suggest(probe, n_users=n_users, n_items=n_items, nnz=nnz)
        return probe.seen

    def params_schema(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.schema() for p in self.params}


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------

_WEIGHTING = ("NONE", "TF_IDF", "BM_25")


def _knn_params(top_k: int, shrinkage: float, weighting: bool, extra: tuple = ()) -> tuple:
    ps: list[ParamSpec] = [
        int_param("top_k", top_k, 1, None, help="neighbours kept per item/user"),
        float_param("shrinkage", shrinkage, 0.0, None, help="added to the similarity denominator"),
    ]
    ps += list(extra)
    if weighting:
        ps += [
            choice_param("feature_weighting", "NONE", _WEIGHTING),
            float_param("bm25_k1", 1.2, 0.0, None),
            float_param("bm25_b", 0.75, 0.0, 1.0),
        ]
    return tuple(ps)


# Hooks shared by families of algorithms.
_ITEM_SIMILARITY = dict(item_weights=hooks.similarity_weights, explainer=explain.item_weights_explainer,
                        check=hooks.check_item_similarity)
_ITEM_KNN = dict(_ITEM_SIMILARITY, fit_to_data=hooks.item_neighbours_fit_to_data, estimate=costs.item_similarity)
_USER_KNN = dict(fit_to_data=hooks.user_neighbours_fit_to_data, estimate=costs.user_similarity,
                 check=hooks.check_user_similarity,
                 unexplainable="it scores through similar users (a sum over neighbours), not through the user's own items")
_DENSE_ITEMS = dict(_ITEM_SIMILARITY, estimate=costs.dense_items, fit_trial=fits.fit_dense_items,
                    fit_final=fits.learn_dense_items)


def _make_registry() -> dict[str, Algorithm]:
    R = irspack
    algos: list[Algorithm] = []

    def add(name: str, cls: type, params: tuple, space: SuggestFn | None, iterative: bool = False,
            description: str = "", **hook_functions: Any) -> None:
        params = tuple(params) + weighting.PARAMS
        algos.append(Algorithm(name=name, recommender_class=cls, defaults={p.name: p.default for p in params},
                               iterative=iterative, params=params, space=space, description=description,
                               **hook_functions))

    add("TopPop", R.TopPopRecommender, (), None, description="Most popular items (non-personalised baseline).",
        check=hooks.check_top_pop, unexplainable="it ranks items by popularity alone: no item of a user's profile changes a score")
    add(
        "IALS",
        R.IALSRecommender,
        (
            int_param("n_components", 64, 1, 4096, help="latent dimension"),
            float_param("alpha0", 0.3, 0.0, None, help="weight of unobserved interactions"),
            float_param("reg", None, 0.0, None, nullable=True,
                        help="L2 regularisation; empty = auto: 8 / max(alpha0*n_items + nnz/n_users, "
                             "alpha0*n_users + nnz/n_items)"),
            float_param("nu", 1.0, 0.0, None, help="frequency-scaled regularisation exponent"),
            choice_param("confidence_scaling", "none", ("none", "log")),
            float_param("epsilon", 1.0, 1e-12, None, help="log confidence scaling epsilon"),
            float_param("init_std", 0.1, 0.0, None),
            choice_param("solver_type", "CG", ("CG", "CHOLESKY", "IALSPP")),
            int_param("max_cg_steps", 3, 1, 100),
            choice_param("loss_type", "IALSPP", ("IALSPP", "ORIGINAL")),
            int_param("train_epochs", 16, 1, 10000, help="epochs (tuning stops early and records the best)"),
            int_param("random_seed", 42, 0, 2**31 - 1),
        ),
        S.ials_space,
        iterative=True,
        description="Implicit ALS matrix factorisation (iALS++ loss, conjugate gradient).",
        estimate=costs.ials, fit_to_data=hooks.ials_fit_to_data, space_point=S.ials_space_point,
        factors=hooks.embedding_factors,
        statistics=hooks.ials_statistics, check=hooks.check_ials, explainer=explain.ials_explainer,
    )
    add(
        "RP3beta",
        R.RP3betaRecommender,
        (
            float_param("alpha", 1.0, 0.0, None, help="exponent applied to interaction values"),
            float_param("beta", 0.3, 0.0, None, help="popularity penalty"),
            int_param("top_k", 1000, 1, None, nullable=True, help="similarities kept per item (empty = all)"),
            bool_param("normalize_weight", False),
        ),
        S.rp3beta_space,
        description="3-step random walk with popularity penalty (item graph).",
        **_ITEM_KNN,
    )
    add(
        "P3alpha",
        R.P3alphaRecommender,
        (
            float_param("alpha", 1.0, 0.0, None),
            int_param("top_k", 1000, 1, None, nullable=True, help="similarities kept per item (empty = all)"),
            bool_param("normalize_weight", False),
        ),
        S.p3alpha_space,
        description="3-step random walk (item graph).",
        **_ITEM_KNN,
    )
    add("CosineKNN", R.CosineKNNRecommender, _knn_params(300, 10.0, True, (bool_param("normalize", True),)),
        S.cosine_space, description="Item-based k-nearest neighbours, cosine similarity.", **_ITEM_KNN)
    add("AsymmetricCosineKNN", R.AsymmetricCosineKNNRecommender,
        _knn_params(300, 10.0, True, (float_param("alpha", 0.5, 0.0, 1.0),)), S.asymmetric_cosine_space,
        description="Item-based k-nearest neighbours, asymmetric cosine similarity.", **_ITEM_KNN)
    add("JaccardKNN", R.JaccardKNNRecommender, _knn_params(300, 10.0, False), S.knn_space,
        description="Item-based k-nearest neighbours, Jaccard similarity.", **_ITEM_KNN)
    add("TverskyIndexKNN", R.TverskyIndexKNNRecommender,
        _knn_params(300, 10.0, False, (float_param("alpha", 0.5, 0.0, None), float_param("beta", 0.5, 0.0, None))),
        S.tversky_space, description="Item-based k-nearest neighbours, Tversky index.", **_ITEM_KNN)
    add("CosineUserKNN", R.CosineUserKNNRecommender, _knn_params(50, 10.0, True, (bool_param("normalize", True),)),
        S.cosine_space, description="User-based k-nearest neighbours, cosine similarity.", **_USER_KNN)
    add("AsymmetricCosineUserKNN", R.AsymmetricCosineUserKNNRecommender,
        _knn_params(50, 0.0, True, (float_param("alpha", 0.5, 0.0, 1.0),)), S.asymmetric_cosine_space,
        description="User-based k-nearest neighbours, asymmetric cosine similarity.", **_USER_KNN)
    add("DenseSLIM", R.DenseSLIMRecommender, (float_param("reg", 300.0, 0.0, None, help="L2 regularisation (EASE lambda)"),),
        S.dense_slim_space, description="EASE: closed-form dense item-item model (cubic in items).",
        **_DENSE_ITEMS)
    add("EDLAE", R.EDLAERecommender, (float_param("reg", 300.0, 0.0, None), float_param("dropout_p", 0.3, 0.0, 0.999)),
        S.edlae_space, description="Emphasised denoising linear autoencoder (cubic in items).", **_DENSE_ITEMS)
    add(
        "SLIM",
        R.SLIMRecommender,
        (
            float_param("alpha", 0.1, 0.0, None),
            float_param("l1_ratio", 0.01, 0.0, 1.0),
            bool_param("positive_only", True),
            int_param("n_iter", 100, 1, 10000),
            float_param("tol", 1e-4, 0.0, None),
            int_param("top_k", None, 1, None, nullable=True, help="max coefficients per item (empty = no limit)"),
        ),
        S.slim_space,
        description="Sparse linear item-item model (elastic net, coordinate descent).",
        **dict(_ITEM_KNN, estimate=costs.slim),
    )
    add("TruncatedSVD", R.TruncatedSVDRecommender,
        (int_param("n_components", 16, 1, 4096), int_param("random_seed", 0, 0, 2**31 - 1)),
        S.truncated_svd_space, description="Randomised truncated SVD of the interaction matrix.",
        estimate=costs.truncated_svd, fit_to_data=hooks.truncated_svd_fit_to_data, unusable=hooks.truncated_svd_unusable,
        fit_trial=fits.fit_truncated_svd,
        factors=hooks.embedding_factors, statistics=hooks.truncated_svd_statistics, check=hooks.check_truncated_svd,
        explainer=explain.svd_explainer)
    add(
        "NMF",
        R.NMFRecommender,
        (
            int_param("n_components", 32, 1, 4096),
            float_param("alpha", 1e-2, 0.0, None),
            float_param("l1_ratio", 1e-2, 0.0, 1.0),
            choice_param("init", None, (None, "random", "nndsvd", "nndsvda", "nndsvdar"), nullable=True),
        ),
        S.nmf_space,
        description="Non-negative matrix factorisation (scikit-learn).",
        estimate=costs.nmf, fit_to_data=hooks.nmf_fit_to_data, factors=hooks.nmf_factors, check=hooks.check_nmf,
        unexplainable="its user vector is an iterative non-negative fit, which does not split over the profile's items",
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


def algorithm_of(recommender: Any) -> Algorithm | None:
    """The registry entry whose class made ``recommender`` (None for any other object)."""
    algo = _REGISTRY.get(_LOOKUP.get(type(recommender).__name__.lower(), ""))
    return algo if algo is not None and type(recommender) is algo.recommender_class else None


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
    kw = {k: v for k, v in resolve_params(algo, params).items() if k not in weighting.NAMES}
    algo.fit_to_data(kw, n_users, n_items, nnz)
    if "n_threads" in inspect.signature(algo.recommender_class.__init__).parameters:
        kw["n_threads"] = default_n_threads()
    return kw


def build_recommender(algorithm: str | Algorithm, X: Any, params: dict | None = None, weighted: bool = False) -> Any:
    """An irspack recommender for ``X`` (users x items; its values the pairs' weights), not yet
    learnt. The configuration's weighting (:mod:`.weighting`) turns the weights into the values
    the model learns from, unless ``weighted`` says ``X`` already holds them."""
    algo = get_algorithm(algorithm)
    if not sps.issparse(X):
        X = sps.csr_matrix(X)
    if not weighted:
        X = weighting.apply(X, resolve_params(algo, params))
    n_users, n_items = X.shape
    kw = effective_params(algo, params, n_users, n_items, X.nnz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return algo.recommender_class(X, **kw)


def learn(recommender: Any) -> None:
    """Fit a final model built by :func:`build_recommender` (its algorithm's ``fit_final``)."""
    algo = algorithm_of(recommender)
    (algo.fit_final if algo is not None else fits.learn)(recommender)


def unusable_reason(algorithm: str | Algorithm, n_users: int, n_items: int, nnz: int) -> str | None:
    """Why this algorithm cannot learn from data of this size (None if it can)."""
    algo = get_algorithm(algorithm)
    if n_users < 1 or n_items < 1 or nnz < 1:
        return f"{algo.name}: no interactions to learn from"
    return algo.unusable(n_users, n_items)


def estimate_cost(algorithm: str | Algorithm, params: dict | None, shape: costs.DataShape,
                  machine: costs.Machine) -> costs.Estimate:
    """What fitting this configuration on data of ``shape`` will cost on ``machine`` (see :mod:`.costs`)."""
    algo = get_algorithm(algorithm)
    kw = effective_params(algo, params, shape.n_users, shape.n_items, shape.nnz)
    return algo.estimate(kw, shape, machine)
