"""The irspack recommender registry (:mod:`.registry`), its parameters (:mod:`.params`), search
spaces (:mod:`.spaces`), interaction weights (:mod:`.weighting`), cost estimates (:mod:`.costs`)
and per-algorithm hooks (:mod:`.hooks`, :mod:`.fits`)."""

from . import weighting
from .costs import DataShape, Estimate, Machine, machine
from .fits import FitCache
from .params import ParamSpec
from .registry import (
    DEFAULT_PORTFOLIO,
    Algorithm,
    algorithm_of,
    build_recommender,
    effective_params,
    estimate_cost,
    get_algorithm,
    learn,
    list_algorithms,
    resolve_params,
    unusable_reason,
)
from .spaces import SpaceProbe, ials_auto_reg, ials_reg_scale

__all__ = [
    "Algorithm",
    "ParamSpec",
    "FitCache",
    "SpaceProbe",
    "DataShape",
    "Estimate",
    "Machine",
    "machine",
    "weighting",
    "get_algorithm",
    "algorithm_of",
    "list_algorithms",
    "resolve_params",
    "effective_params",
    "build_recommender",
    "learn",
    "estimate_cost",
    "unusable_reason",
    "DEFAULT_PORTFOLIO",
    "ials_auto_reg",
    "ials_reg_scale",
]
