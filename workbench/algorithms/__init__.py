"""The irspack recommender registry (:mod:`.registry`), its parameters (:mod:`.params`), search
spaces (:mod:`.spaces`) and per-algorithm hooks (:mod:`.hooks`, :mod:`.fits`)."""

from .fits import FitCache
from .hooks import LIMITS
from .params import ParamSpec
from .registry import (
    DEFAULT_PORTFOLIO,
    Algorithm,
    algorithm_of,
    build_recommender,
    cost_guard,
    effective_params,
    get_algorithm,
    list_algorithms,
    resolve_params,
)
from .spaces import SpaceProbe, ials_auto_reg, ials_reg_scale

__all__ = [
    "Algorithm",
    "ParamSpec",
    "FitCache",
    "SpaceProbe",
    "get_algorithm",
    "algorithm_of",
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
