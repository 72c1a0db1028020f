"""Compare trained models fairly: every configuration re-fit and scored on one shared held-out split,
for accuracy and beyond (coverage, popularity bias, novelty, diversity), overall or per user segment."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import data
from .algorithms import build_recommender
from .errors import ValidationError
from .evaluation import TARGET_METRICS, Split, SplitConfig, beyond_accuracy, category_matrix, evaluate
from .evaluation.metrics import check_cutoff
from .recommend import metadata_frame
from .splits import split_for
from .topn import top_n_unseen
from .training import fit

if TYPE_CHECKING:
    from .base import WorkspaceBase
    from .records import TrainingData

SEGMENTS = ("activity", "new_since")  # what `compare(by=...)` can split the validation users by


@dataclass(frozen=True)
class Segment:
    """A group of the split's validation users: `rows` index `split.val_user_indices`."""

    name: str
    definition: str
    rows: np.ndarray


def compare(ws: WorkspaceBase, model_ids: Sequence[Any], training_data: Any = None,
            cutoffs: Sequence[int] = (10, 20), split: SplitConfig | dict | None = None, metadata: Any = None,
            category_column: str = "genres", by: str | None = None, since: Any = None) -> pd.DataFrame:
    """Evaluate models on one shared held-out split of one data set; one row per model, best first.

    Each model's configuration is re-fit on the split's training part, so every model is scored
    on interactions it never saw, whatever data it was trained on. Besides accuracy, each row has
    coverage, popularity_bias and novelty, and diversity when `metadata` (an item-metadata record
    or id, a DataFrame, or True for the project's latest) has categories in `category_column`
    (evaluation.METRIC_DEFINITIONS). The overall metrics are saved on the model records.

    `by="activity"`: also score light, medium and heavy users separately (tertiles of the validation
    users' training interactions); `by="new_since"` with `since` (a date): users whose first interaction
    is at or after it, and the rest. Then the frame is tidy: one row per model and segment
    ("all" first), with the segment's definition and its number of validation users.
    """
    models = [ws.model(m) for m in model_ids]
    if not models:
        raise ValidationError("compare needs at least one model id.")
    projects = {m.project_id for m in models}
    if len(projects) > 1:
        raise ValidationError(f"Models {[m.id for m in models]} belong to different projects; compare within one.")
    if by is not None and by not in SEGMENTS:
        raise ValidationError(f"by must be one of {', '.join(map(repr, SEGMENTS))} or None, got {by!r}.")
    cutoffs = tuple(check_cutoff(c) for c in ((cutoffs,) if isinstance(cutoffs, int) else cutoffs))
    if not cutoffs:
        raise ValidationError("compare needs at least one cutoff.")
    dataset = ws.training_data(training_data if training_data is not None else models[0].training_data_id)
    if dataset.project_id not in projects:
        raise ValidationError(f"Training data {dataset.id} belongs to another project than the models.")
    the_split = split_for(ws, dataset, split)
    segments = [Segment("all", "every validation user", np.arange(the_split.n_val_users))]
    if by == "activity":
        segments += activity_segments(the_split)
    elif by == "new_since":
        segments += new_user_segments(dataset, the_split, since)
    elif since is not None:
        raise ValidationError("since= goes with by='new_since'.")
    frame, column = metadata_frame(ws, models[0], metadata)
    categories = (None if frame is None
                  else category_matrix(_item_ids(dataset, the_split), frame, column, category_column))
    ranked = []  # each model's rows, "all" first
    for model in models:
        recommender = build_recommender(model.algorithm, the_split.X_train, model.params)
        started = time.perf_counter()
        fit(recommender)
        fit_seconds = time.perf_counter() - started
        lists = recommended_lists(recommender, the_split, max(cutoffs))
        rows = []
        for segment in segments:
            metrics = score_segment(recommender, the_split, segment.rows, lists, cutoffs, categories)
            if segment.name == "all":  # the overall metrics go on the record
                ws.catalog.update("models", model.id, {"metrics": {**model.metrics, **metrics}})
            where = {"segment": segment.name, "definition": segment.definition, "n_users": len(segment.rows)} if by else {}
            rows.append({"model_id": model.id, "algorithm": model.algorithm, "configuration": model.configuration,
                         **where, **metrics, "fit_seconds": fit_seconds})
        ranked.append(rows)
    ranked.sort(key=lambda rows: -rows[0][f"ndcg@{max(cutoffs)}"])  # stable: ties keep the order given
    return pd.DataFrame([row for rows in ranked for row in rows])


def score_segment(recommender: Any, split: Split, rows: np.ndarray, lists: np.ndarray, cutoffs: tuple[int, ...],
                  categories: Any = None) -> dict[str, float]:
    """Accuracy and beyond-accuracy metrics of a learnt recommender on some of the split's validation
    users (`rows` of `val_user_indices`; `lists`: every validation user's recommended items)."""
    part = split if len(rows) == split.n_val_users else Split(
        X_train=split.X_train, X_val_ground_truth=split.X_val_ground_truth[rows],
        val_user_indices=split.val_user_indices[rows], config=split.config,
        fingerprint=split.fingerprint, user_ids=split.user_ids, item_ids=split.item_ids)
    metrics = {**evaluate(recommender, part, cutoffs=cutoffs, metrics=TARGET_METRICS),
               **beyond_accuracy(lists[rows], cutoffs, split.X_train, split.X_train[part.val_user_indices], categories)}
    return {name: value for cutoff in cutoffs for name, value in metrics.items() if name.endswith(f"@{cutoff}")}


def recommended_lists(recommender: Any, split: Split, cutoff: int) -> np.ndarray:
    """Each validation user's top `cutoff` items (their training items excluded): users x cutoff
    item indices, best first, -1 where fewer items can be recommended."""
    lists = np.full((split.n_val_users, cutoff), -1, dtype=np.int64)
    row_of = np.empty(split.n_users, dtype=np.int64)
    row_of[split.val_user_indices] = np.arange(split.n_val_users)
    for users, ranks, items, _ in top_n_unseen(recommender, split.val_user_indices, cutoff):
        lists[row_of[users], ranks - 1] = items
    return lists


def activity_segments(split: Split) -> list[Segment]:
    """Light, medium and heavy validation users: tertiles of their interactions in the split's
    training part (what the models learn them from)."""
    mine = np.diff(split.X_train.indptr)[split.val_user_indices]
    return [Segment(name, text, np.flatnonzero(mask)) for name, text, mask in activity_groups(mine)]


def activity_groups(counts: np.ndarray, what: str = "training interactions") -> list[tuple[str, str, np.ndarray]]:
    """("light" | "medium" | "heavy", definition, mask) for the tertiles of users' interaction counts.
    Users with equal counts stay together: each cut goes below or above a tied count, whichever
    leaves the segment closer to a third. Empty groups are left out."""
    low, high = (_cut(counts, share) for share in (1 / 3, 2 / 3))
    groups = (("light", f"at most {low} {what}", counts <= low),
              ("medium", f"{low + 1} to {high} {what}", (counts > low) & (counts <= high)),
              ("heavy", f"more than {high} {what}", counts > high))
    return [(name, text, mask) for name, text, mask in groups if mask.any()]


def _cut(counts: np.ndarray, share: float) -> int:
    """The count c such that the share of `counts` <= c is closest to `share`."""
    value = int(np.floor(np.quantile(counts, share)))
    below, upto = np.mean(counts < value), np.mean(counts <= value)
    return value if abs(upto - share) < abs(below - share) else value - 1


def new_user_segments(dataset: TrainingData, split: Split, since: Any) -> list[Segment]:
    """Validation users whose first interaction is at or after `since`, and the rest."""
    if since is None:
        raise ValidationError("by='new_since' needs since= (a date such as '2024-06-01').")
    try:
        cut = pd.Timestamp(since)
    except (TypeError, ValueError):
        raise ValidationError(f"since must be a date (like '2024-06-01'), got {since!r}.") from None
    frame = data.read_interactions(dataset.path)
    if "time" not in frame.columns:
        raise ValidationError(f"by='new_since' needs interaction times, and training data {dataset.id} has none.")
    first = frame.groupby("user_code")["time"].min().reindex(range(split.n_users))
    times = pd.DatetimeIndex(first.iloc[split.val_user_indices])
    if (times.tz is None) != (cut.tz is None):
        cut = cut.tz_localize(times.tz) if cut.tz is None else cut.tz_convert(times.tz)
    new = np.asarray(times >= cut)
    text = f"{cut:%Y-%m-%d %H:%M:%S}".removesuffix(" 00:00:00")
    return [Segment(name, definition, np.flatnonzero(mask)) for name, definition, mask in (
        ("new", f"first interaction on or after {text}", new),
        ("existing", f"first interaction before {text}", ~new)) if mask.any()]


def _item_ids(dataset: TrainingData, split: Split) -> np.ndarray:
    return split.item_ids if split.item_ids is not None else data.interaction_matrix(dataset.path)[2]
