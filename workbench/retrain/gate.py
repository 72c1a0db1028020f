"""The retraining gate: will the new model serve the next period better than the one serving now?

The newest interactions are held out by a time cut. The active model is scored exactly as it
is (its signed file, no re-fit) and the challenger is trained on everything before the cut;
both rank items for the same users (those active both before and after the cut), with the same
items excluded (what each user had before the cut), against the same relevant items (what they
took after it, new to them), with the same metric. A bootstrap over users gives each score and
their difference a confidence interval. Users the active model never saw are recommended for
from their profile where the algorithm can (`get_score_cold_user`), else they count as misses:
that is how the active model would serve them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sps

from ..comparison import activity_groups
from ..errors import ValidationError
from ..topn import top_n

DEFAULT_FRACTION = 0.1  # without a batch to hold out: the newest 10% of interactions
BATCH_FRACTION_RANGE = (0.01, 0.5)  # a new batch is the window when it holds this share of the rows
BOOTSTRAP_SAMPLES = 1000
SCORE_BLOCK = 1024  # users scored per dense block
METRIC_NAMES = ("ndcg", "map", "recall", "hit", "precision")
_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d(?:ays?)?\s*$", re.IGNORECASE)


class NothingToScore(ValidationError):
    """No user is active both before and after the cut."""


@dataclass
class Holdout:
    """The newest interactions held out by a time cut, and what the challenger may learn from."""

    cut: datetime
    description: str
    n_interactions: int  # rows at or after the cut
    n_window_users: int  # users with rows at or after the cut
    n_new_users: int  # of them, users with nothing before the cut (no profile to rank from: not scored)
    user_ids: np.ndarray  # the scored users
    item_ids: np.ndarray  # every item of the data: the column space of `history` and `relevant`
    history: sps.csr_matrix  # scored users x items: what they had before the cut
    relevant: sps.csr_matrix  # scored users x items: what they took after it, new to them
    activity: np.ndarray  # scored users' interactions before the cut
    train: sps.csr_matrix  # all users x items, rows before the cut: the challenger's training data
    train_user_ids: np.ndarray

    def summary(self) -> dict[str, Any]:
        return {"cut": self.cut.isoformat(sep=" ", timespec="seconds"), "window": self.description,
                "held_out_interactions": self.n_interactions, "window_users": self.n_window_users,
                "scored_users": len(self.user_ids), "new_users_not_scored": self.n_new_users}


def choose_cut(times: pd.Series, holdout: Any = None, batch_start: datetime | None = None) -> tuple[datetime, str]:
    """The time cut and how it was chosen.

    holdout: None (default), "Nd" (the last N days), or a fraction in (0, 1) (the newest share
    of interactions). By default, when a batch was appended after the older data (1% to 50% of
    the rows), the newer half of the batch is held out: the challenger learns from the older
    half, which the active model never saw, and both are scored on what came after. Otherwise
    the newest 10% of interactions are held out.
    """
    check_holdout(holdout)
    times = pd.to_datetime(times)
    if isinstance(holdout, str):
        days = float(_DAYS.match(holdout).group(1))
        return (times.max() - timedelta(days=days)).to_pydatetime(), f"the last {days:g} days"
    if holdout is not None:
        return _quantile_cut(times, float(holdout)), f"the newest {holdout:.0%} of interactions"
    if batch_start is not None:
        batch = times[times >= pd.Timestamp(batch_start)]
        low, high = BATCH_FRACTION_RANGE
        if low <= len(batch) / max(len(times), 1) <= high:
            cut = _quantile_cut(batch, 0.5)
            return cut, f"the newer half of the new batch (the batch began {batch_start:%Y-%m-%d %H:%M})"
    return _quantile_cut(times, DEFAULT_FRACTION), f"the newest {DEFAULT_FRACTION:.0%} of interactions"


def check_holdout(holdout: Any) -> None:
    """A ValidationError unless `holdout` is None, "Nd" (days) or a fraction between 0 and 1."""
    if holdout is None or (isinstance(holdout, str) and _DAYS.match(holdout)):
        return
    if isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and 0 < holdout < 1:
        return
    raise ValidationError(f"holdout must be None, 'Nd' (days) or a fraction between 0 and 1, got {holdout!r}.")


def _quantile_cut(times: pd.Series, fraction: float) -> datetime:
    return pd.Timestamp(times.quantile(1 - fraction)).to_pydatetime()


def make_holdout(frame: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, cut: datetime,
                 description: str) -> Holdout:
    """Split a snapshot's rows (user_code, item_code, time) at `cut`; ids in code order as training reads them."""
    n_users, n_items = len(user_ids), len(item_ids)
    users = frame["user_code"].to_numpy()
    items = frame["item_code"].to_numpy()
    after = (frame["time"] >= pd.Timestamp(cut)).to_numpy()

    def matrix(mask: np.ndarray) -> sps.csr_matrix:
        m = sps.csr_matrix((np.ones(int(mask.sum())), (users[mask], items[mask])), shape=(n_users, n_items))
        m.data[:] = 1.0  # repeated pairs count once
        return m

    before_m, after_m = matrix(~after), matrix(after)
    window_users = np.flatnonzero(np.diff(after_m.indptr))
    with_history = window_users[np.diff(before_m.indptr)[window_users] > 0]
    history = before_m[with_history]
    relevant = after_m[with_history] - after_m[with_history].multiply(history)
    relevant.eliminate_zeros()
    keep = np.diff(relevant.indptr) > 0
    scored = with_history[keep]
    if not len(scored):
        raise NothingToScore(f"No user is active both before and after the cut ({cut:%Y-%m-%d %H:%M}, "
                             f"{description}): a time gate has nothing to score.")
    return Holdout(
        cut=cut, description=description, n_interactions=int(after.sum()), n_window_users=len(window_users),
        n_new_users=len(window_users) - len(with_history), user_ids=user_ids[scored], item_ids=item_ids,
        history=history[keep].tocsr(), relevant=relevant[keep].tocsr(),
        activity=np.diff(before_m.indptr)[scored], train=before_m, train_user_ids=user_ids,
    )


def per_user_metrics(recommender: Any, model_user_ids: np.ndarray, model_item_ids: np.ndarray,
                     holdout: Holdout, cutoff: int) -> dict[str, np.ndarray]:
    """Each scored user's ndcg, map, recall, hit and precision @cutoff for one recommender.

    The recommender ranks in its own id space; items it does not know cannot be recommended,
    and users it does not know are ranked from their history (`get_score_cold_user`) or, if the
    algorithm cannot, get no recommendation.
    """
    n_items = len(holdout.item_ids)
    to_model_item = pd.Index(model_item_ids).get_indexer(holdout.item_ids)
    known_items = np.flatnonzero(to_model_item >= 0)
    model_user = pd.Index(model_user_ids).get_indexer(holdout.user_ids)
    n = len(holdout.user_ids)
    dcg, hits, precision_sum = np.zeros(n), np.zeros(n), np.zeros(n)
    relevant = holdout.relevant
    relevant_keys = np.sort(np.repeat(np.arange(n, dtype=np.int64), np.diff(relevant.indptr)) * n_items
                            + relevant.indices)
    for start in range(0, n, SCORE_BLOCK):
        rows = np.arange(start, min(start + SCORE_BLOCK, n))
        scores = np.full((len(rows), n_items), -np.inf, dtype=np.float64)
        known = model_user[rows] >= 0
        if known.any():
            block = np.asarray(recommender.get_score(model_user[rows][known].astype(np.int64)), dtype=np.float64)
            scores[np.ix_(np.flatnonzero(known), known_items)] = block[:, to_model_item[known_items]]
        if (~known).any():
            cold = _cold_scores(recommender, holdout.history[rows[~known]], to_model_item, len(model_item_ids))
            if cold is not None:
                scores[np.ix_(np.flatnonzero(~known), known_items)] = cold[:, to_model_item[known_items]]
        seen = holdout.history[rows]
        scores[np.repeat(np.arange(len(rows)), np.diff(seen.indptr)), seen.indices] = -np.inf
        row, column, _ = top_n(scores, cutoff)
        rank = np.arange(len(row)) - np.searchsorted(row, row) + 1
        is_hit = np.isin((row + start) * n_items + column, relevant_keys, assume_unique=False)
        row, rank = row[is_hit] + start, rank[is_hit]
        np.add.at(dcg, row, 1.0 / np.log2(rank + 1))
        np.add.at(hits, row, 1.0)
        cumulative = _running_count(row)
        np.add.at(precision_sum, row, cumulative / rank)
    n_relevant = np.diff(relevant.indptr).astype(float)
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, cutoff + 2)))
    best = np.minimum(n_relevant, cutoff).astype(int)
    return {"ndcg": dcg / ideal[best - 1], "map": precision_sum / best, "recall": hits / n_relevant,
            "hit": (hits > 0).astype(float), "precision": hits / cutoff}


def _running_count(rows: np.ndarray) -> np.ndarray:
    """1, 2, 3... within each run of equal consecutive values (the hits so far of a user's list)."""
    if not len(rows):
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    return (np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)])) + 1).astype(float)


def _cold_scores(recommender: Any, history: sps.csr_matrix, to_model_item: np.ndarray,
                 n_model_items: int) -> np.ndarray | None:
    """Scores for users the model never saw, from their history mapped into its item space."""
    known = to_model_item[history.indices] >= 0
    rows = np.repeat(np.arange(history.shape[0]), np.diff(history.indptr))[known]
    profile = sps.csr_matrix((np.ones(int(known.sum())), (rows, to_model_item[history.indices][known])),
                             shape=(history.shape[0], n_model_items))
    try:
        return np.asarray(recommender.get_score_cold_user(profile), dtype=np.float64)
    except NotImplementedError:
        return None


@dataclass
class Interval:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(old: np.ndarray | None, new: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
              level: float = 0.95) -> dict[str, Interval]:
    """Means and percentile intervals of `new`, `old` and `new - old`, resampling the same users for both."""
    rng = np.random.default_rng(seed)
    n = len(new)
    draws: dict[str, list[np.ndarray]] = {"new": [], "old": [], "difference": []}
    for start in range(0, samples, 100):  # 100 resamples at a time bound the memory
        index = rng.integers(0, n, size=(min(100, samples - start), n))
        draws["new"].append(new[index].mean(axis=1))
        if old is not None:
            draws["old"].append(old[index].mean(axis=1))
            draws["difference"].append((new[index] - old[index]).mean(axis=1))
    tail = (1 - level) / 2 * 100
    result = {}
    for name, values in draws.items():
        if values:
            stacked = np.concatenate(values)
            point = {"new": new.mean(), "old": None if old is None else old.mean(),
                     "difference": None if old is None else (new - old).mean()}[name]
            result[name] = Interval(float(point), float(np.percentile(stacked, tail)),
                                    float(np.percentile(stacked, 100 - tail)))
    return result


def segment_table(holdout: Holdout, scores: dict[str, np.ndarray], metric: str) -> pd.DataFrame:
    """Mean `metric` per activity segment (tertiles of interactions before the cut, as `compare` cuts
    them) for each scored model (columns: the roles in `scores`)."""
    rows = []
    for name, definition, mask in activity_groups(holdout.activity, "interactions before the cut"):
        rows.append({"segment": name, "definition": definition, "users": int(mask.sum()),
                     **{f"{metric} {role}": float(values[mask].mean()) for role, values in scores.items()}})
    return pd.DataFrame(rows).set_index("segment")
