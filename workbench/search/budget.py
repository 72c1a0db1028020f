"""What a search may spend, and whether a trial fits: before each trial its seconds and peak
memory are estimated (:mod:`workbench.algorithms.costs`) and the trial runs only when it fits
the time left, the per-trial limit, the memory limit and the largest model file; otherwise it
is skipped, with the reason and the estimate. An algorithm whose cheapest configuration does
not fit is left out of the search from the start, with its reason.

The memory limit is ``memory_limit`` (bytes, or text such as ``"6GB"``), else the environment
variable ``WORKBENCH_MEMORY_LIMIT``, else half of the memory available when the search starts.
Time estimates are rescaled per algorithm by how its finished trials compared with their
estimates (the median ratio), so a machine busier or faster than measured is soon accounted for.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from ..algorithms import Algorithm, DataShape, Estimate, Machine, SpaceProbe, estimate_cost, resolve_params
from ..algorithms.costs import describe_bytes, ranking_seconds
from ..errors import ValidationError
from ..evaluation import score_block_users

MEMORY_LIMIT_VARIABLE = "WORKBENCH_MEMORY_LIMIT"
CALIBRATION_BOUNDS = (0.25, 8.0)  # how far measured trials may rescale an algorithm's estimates
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_limit(value: Any = None) -> int:
    """The memory limit in bytes: ``value`` (bytes, or text like ``"6GB"``, ``"512 MiB"``), else
    ``WORKBENCH_MEMORY_LIMIT``, else half of the memory available now."""
    source = "memory_limit"
    if value is None:
        value, source = os.environ.get(MEMORY_LIMIT_VARIABLE) or None, MEMORY_LIMIT_VARIABLE
    if value is None:
        return int(psutil.virtual_memory().available // 2)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValidationError(f"{source}={value!r} is not an amount of memory (bytes, or e.g. '6GB', '512MiB')")
        number = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(number) or number < 1e6:
        raise ValidationError(f"{source}={value!r}: give at least 1 MB")
    return int(number)


@dataclass
class TrialCost:
    """A trial's estimate: the fit's, plus scoring the validation users (once, or per validated epoch)."""

    fit: Estimate
    raw_seconds: float  # the whole trial, as estimated
    seconds: float  # the whole trial, rescaled by the algorithm's calibration
    first_seconds: float  # what must fit in the time left: all of it, or an iterative trial's first epoch
    peak_bytes: float

    def describe(self) -> str:
        text = f"~{_s(self.seconds)}, ~{describe_bytes(self.peak_bytes)} peak"
        return text + (f"; {self.fit.driver}" if self.fit.driver else "")

    def as_dict(self) -> dict:
        return {"seconds": round(self.seconds, 4), "peak_bytes": int(self.peak_bytes),
                "model_bytes": int(self.fit.model_bytes)}


def _s(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:,.0f} s"


@dataclass
class TrialBudget:
    """The limits of one search process and what its trials have shown about the estimates."""

    shape: DataShape
    machine: Machine
    memory_limit: int
    n_val_users: int
    epoch_val_users: int
    max_epochs: int
    deadline: float | None = None  # time.perf_counter() value
    timeout: float | None = None
    per_trial_timeout: float | None = None
    max_model_bytes: float | None = None
    ratios: dict[str, list[float]] = field(default_factory=dict)

    def cost(self, algo: Algorithm, params: dict) -> TrialCost:
        fit = estimate_cost(algo, params, self.shape, self.machine)
        per_user = fit.score_seconds + ranking_seconds(self.shape.n_items, self.machine)
        scoring = self.n_val_users * per_user
        if algo.iterative:
            epochs = self.max_epochs
            validations = min(epochs, 4) + max(epochs - 4, 0) / 2
            seconds = fit.setup_seconds + epochs * fit.epoch_seconds + validations * self.epoch_val_users * per_user
            first = fit.setup_seconds + fit.epoch_seconds + self.epoch_val_users * per_user
            seconds += scoring if self.epoch_val_users < self.n_val_users else 0.0
        else:
            seconds = first = fit.seconds + scoring
        scale = self.calibration(algo.name)
        block = min(score_block_users(self.shape.n_items), max(self.n_val_users, 1))
        peak = fit.peak_bytes + 2 * block * self.shape.n_items * 8  # a block of scores and irspack's copy of it
        return TrialCost(fit, seconds, seconds * scale, first * scale, peak)

    def calibration(self, name: str) -> float:
        ratios = self.ratios.get(name)
        if not ratios:
            return 1.0
        low, high = CALIBRATION_BOUNDS
        return min(max(statistics.median(ratios), low), high)

    def record(self, name: str, estimated: float, measured: float) -> None:
        """A finished trial's measured seconds against its (uncalibrated) estimate."""
        if estimated > 0 and measured > 0:
            self.ratios.setdefault(name, []).append(measured / estimated)

    def refusal(self, algo: Algorithm, cost: TrialCost, whole_search: bool = False) -> str | None:
        """Why a trial of this cost cannot run now (None: it can). ``whole_search``: judged
        against the whole timeout rather than the time left (whether to search it at all)."""
        limit = describe_bytes(self.memory_limit)
        if cost.peak_bytes > self.memory_limit:
            return (f"needs ~{describe_bytes(cost.peak_bytes)} of memory, more than the limit of {limit} "
                    f"(memory_limit= or {MEMORY_LIMIT_VARIABLE}; default half the available memory)")
        if self.max_model_bytes is not None and cost.fit.model_bytes > self.max_model_bytes:
            return (f"its model would hold ~{describe_bytes(cost.fit.model_bytes)}, more than a model file may "
                    f"({describe_bytes(self.max_model_bytes)})")
        if self.per_trial_timeout is not None and not algo.iterative and cost.first_seconds > self.per_trial_timeout:
            return f"would take ~{_s(cost.first_seconds)}, more than per_trial_timeout={self.per_trial_timeout:g} s"
        if self.deadline is not None:
            left = self.timeout if whole_search else self.deadline - time.perf_counter()
            if cost.first_seconds > left + 0.05 * float(self.timeout):
                return f"would take ~{_s(cost.first_seconds)}, more than the {_s(max(left, 0.0))} left of the timeout"
        return None

    def cheapest(self, algo: Algorithm) -> TrialCost:
        """The cost of the algorithm's cheapest configuration: the low end of every range of its
        search space (sizes such as n_components and top_k are costs' main drivers)."""
        probe = SpaceProbe()
        sampled = algo.suggest(probe, n_users=self.shape.n_users, n_items=self.shape.n_items, nnz=self.shape.nnz)
        return self.cost(algo, resolve_params(algo, sampled))
