"""The metrics the workbench reports and tunes for, by name, and cutoff validation."""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError

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
TARGET_METRICS = ("ndcg", "map", "recall", "hit", "precision")  # what a search can optimise


def check_cutoff(cutoff: Any) -> int:
    try:
        c = int(cutoff)
    except (TypeError, ValueError):
        raise ValidationError(f"cutoff must be a positive integer, got {cutoff!r}") from None
    if c != cutoff or c < 1:
        raise ValidationError(f"cutoff must be a positive integer, got {cutoff!r}")
    return c
