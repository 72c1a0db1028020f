"""Recommendations from a loaded model: known users, new-user profiles, batches, samples, similar
items, and explanations (which of the user's own items a recommendation comes from)."""

from __future__ import annotations

import html
import random
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sps

from .algorithms import get_algorithm
from .errors import ModelFileError, NotFoundError, ValidationError
from .explanations import ItemSimilarity, because, because_text, contributions_frame
from .threads import single_threaded_blas
from .topn import FactorIndex, top_n, top_n_unseen

if TYPE_CHECKING:
    from .base import WorkspaceBase
    from .records import TrainedModel

EXPLAIN_TOP = 3  # profile items named in each recommendation's explanation ("because")


class Recommendations(list):
    """A list of `{"item_id", "score"}` dicts; `unknown_items` lists profile ids the model ignored.

    Explained recommendations (`explain=True`) also hold `"because"`: the user's own items that
    contributed most to the score, each `{"item_id", "contribution", "share"}` (share of
    `"explained_score"`, the sum of all the profile's contributions; see `Recommender.explain`).
    """

    def __init__(self, rows: Iterable[dict], unknown_items: list | None = None) -> None:
        super().__init__(rows)
        self.unknown_items = unknown_items or []

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self), columns=list(self[0]) if self else ["item_id", "score"])

    def _repr_html_(self) -> str:
        note = (f"<p>Ignored unknown items: {html.escape(str(self.unknown_items))}</p>" if self.unknown_items else "")
        frame = self.to_frame()
        if "because" in frame:
            frame["because"] = frame["because"].map(because_text)
        return note + frame.to_html(index=False)


class _IdIndex:
    """Id -> row lookup that takes ids of the model's own type only: whole numbers (an int, or its
    decimal digits as text: "42") for integer ids, text for text ids."""

    def __init__(self, ids: np.ndarray, kind: str) -> None:
        self.ids = np.asarray(ids)
        self.kind = kind
        self.integer = self.ids.dtype.kind in "iu"
        self.index = {value: position for position, value in enumerate(self.ids.tolist())}

    def get(self, value: Any) -> int | None:
        """The row of id `value` (None when the model does not know it); ValidationError when
        `value` is not an id of the model's type."""
        return self.index.get(self._key(value))

    def _key(self, value: Any) -> Any:
        if self.integer:
            if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
                return int(value)
            if isinstance(value, str) and _DECIMAL.fullmatch(value):
                return int(value)
            raise ValidationError(f"The model's {self.kind} ids are whole numbers (or their decimal digits as "
                                  f"text, like '42'); got {value!r} ({type(value).__name__}).")
        if isinstance(value, str):
            return str(value)
        raise ValidationError(f"The model's {self.kind} ids are text; got {value!r} ({type(value).__name__}): "
                              f"pass the id as a string, like {str(value)!r}.")


_DECIMAL = re.compile(r"-?[0-9]+")


class Recommender:
    """A verified, loaded model with id mappings. Made by `Workspace.load_model`."""

    def __init__(self, model: TrainedModel, header: dict, recommender: Any, user_ids: np.ndarray,
                 item_ids: np.ndarray) -> None:
        try:
            check_loaded_model(header, recommender, user_ids, item_ids)
        except ModelFileError as error:
            raise ModelFileError(f"The file of model {model.id} is refused: {error}.") from None
        self.model = model
        self.header = header
        self.recommender = recommender
        self.user_ids = np.asarray(user_ids)
        self.item_ids = np.asarray(item_ids)
        self._users = _IdIndex(self.user_ids, "user")
        self._items = _IdIndex(self.item_ids, "item")
        self.algorithm = get_algorithm(header["algorithm"])
        self._factors: FactorIndex | None | bool = False  # False: not looked at yet
        self._similarity: ItemSimilarity | None | bool = False
        self._explainer: Any = False
        self._id_arrays: dict[str, Any] = {}

    @classmethod
    def from_payload(cls, model: TrainedModel, header: dict, payload: Any) -> Recommender:
        """From a verified model file's header and unpickled payload (ModelFileError unless the
        payload holds a recommender and id arrays matching the header)."""
        if not isinstance(payload, dict) or not {"recommender", "user_ids", "item_ids"} <= set(payload):
            raise ModelFileError(f"The file of model {model.id} holds no recommender with its user and item ids.")
        return cls(model, header, payload["recommender"], payload["user_ids"], payload["item_ids"])

    def __repr__(self) -> str:
        return (f"<Recommender model {self.model.id} {self.header['algorithm']}: "
                f"{len(self.user_ids):,} users x {len(self.item_ids):,} items>")

    def _user_index(self, user_id: Any) -> int:
        index = self._users.get(user_id)
        if index is None:
            raise NotFoundError(
                f"User {user_id!r} is not in model {self.model.id}'s training data; "
                "use recommend_for_profile(item_ids) for a new user."
            )
        return index

    def _item_index(self, item_id: Any) -> int:
        index = self._items.get(item_id)
        if index is None:
            raise NotFoundError(f"Item {item_id!r} is not in model {self.model.id}'s training data.")
        return index

    def _top(self, scores: np.ndarray, cutoff: int, profile: tuple | None = None) -> list[dict]:
        """The best items of a score row; with `profile` (its item indices and values), each
        explained by the profile items that contributed most."""
        _, items, values = top_n(np.asarray(scores)[None, :], _check_cutoff(cutoff))
        rows = [{"item_id": _plain(self.item_ids[i]), "score": float(v)} for i, v in zip(items, values)]
        if profile is not None:
            parts = self._contributions(*profile, items)
            for row, (total, top) in zip(rows, because(parts, self.item_ids[profile[0]].tolist(), EXPLAIN_TOP)):
                row.update(explained_score=total, because=top)
        return rows

    def recommend(self, user_id: Any, cutoff: int = 10, explain: bool = False) -> Recommendations:
        """Top items for a user seen in training, their own items excluded. `explain=True` adds to
        each the user's items that contributed most to its score (`"because"`; see `explain`)."""
        index = self._user_index(user_id)
        scores = self.recommender.get_score_remove_seen(np.array([index], dtype=np.int64))[0]
        return Recommendations(self._top(scores, cutoff, self._training_profile(index) if explain else None))

    def similar_items(self, item_id: Any, cutoff: int = 10) -> Recommendations:
        """The items most similar to `item_id` in this model, best first: `{"item_id", "similarity"}`:
        its weights towards other items in item-item models (KNN, RP3beta, SLIM...; items it has no
        weight towards are left out), the cosine of the item factors in factor models (IALS,
        TruncatedSVD, NMF). ValidationError for models relating no items (TopPop, user KNN)."""
        index = self._item_index(item_id)
        if self.cannot_find_similar is not None:
            raise ValidationError(self.cannot_find_similar)
        _, items, values = top_n(self._similarity.row(index)[None, :], _check_cutoff(cutoff))
        return Recommendations({"item_id": _plain(self.item_ids[i]), "similarity": float(v)} for i, v in zip(items, values))

    @property
    def cannot_find_similar(self) -> str | None:
        """Why this model has no similar items (None when it has)."""
        if self._similarity is False:
            self._similarity = ItemSimilarity.of(self.recommender)
        return None if self._similarity is not None else (f"Model {self.model.id} ({self.algorithm.name}) keeps neither "
                                                          "item-item weights nor item factors: it has no similar items.")

    @property
    def cannot_explain(self) -> str | None:
        """Why this model's recommendations cannot be explained (None when they can)."""
        if self._explainer is False:
            self._explainer = self.algorithm.explainer(self.recommender)
        if self._explainer is not None:
            return None
        return f"{self.algorithm.name} recommendations cannot be explained: {self.algorithm.unexplainable}."

    def _explainer_or_error(self) -> Any:
        if self.cannot_explain is not None:
            raise ValidationError(f"Model {self.model.id}: {self.cannot_explain}")
        return self._explainer

    def _contributions(self, items: np.ndarray, values: np.ndarray, targets: Any) -> np.ndarray:
        """(targets x profile items) contributions to the targets' scores."""
        explainer = self._explainer_or_error()
        with single_threaded_blas():  # small products and solves: BLAS threads only spin (16x slower under load)
            return explainer(np.asarray(items, dtype=np.int64), np.asarray(values, dtype=np.float64),
                             np.asarray(targets, dtype=np.int64))

    def _training_profile(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.recommender.X_train_all[index]
        return row.indices, row.data

    def explain(self, item_ids: Iterable[Any], user_id: Any = None, profile: Iterable[Any] | None = None) -> pd.DataFrame:
        """How the scores of `item_ids` for a known user (or a new user's `profile` of item ids) split
        over that user's own items: columns item_id, because_item_id, contribution, share (of the
        item's explained score, the sum of its contributions: the model's score for item-item models;
        for IALS the closed-form user solve's, workbench.algorithms.explain). ValidationError for
        models whose scores do not split over a profile (`cannot_explain` says why)."""
        if (user_id is None) == (profile is None):
            raise ValidationError("explain needs either user_id (a known user) or profile (a list of item ids).")
        items, values = (self._training_profile(self._user_index(user_id)) if user_id is not None
                         else self._new_profile(profile)[0])
        if isinstance(item_ids, (str, bytes)) or not isinstance(item_ids, Iterable):
            item_ids = [item_ids]
        targets = [self._item_index(item_id) for item_id in item_ids]
        parts = self._contributions(items, values, targets)
        return contributions_frame(parts, self.item_ids[targets].tolist(), self.item_ids[items].tolist())

    def profile(self, user_id: Any) -> list:
        """The items a known user interacted with in the training data."""
        row = self.recommender.X_train_all[self._user_index(user_id)]
        return [_plain(self.item_ids[i]) for i in row.indices]

    def recommend_for_profile(self, item_ids: Iterable[Any], cutoff: int = 10, explain: bool = False) -> Recommendations:
        """Top items for a new user who interacted with `item_ids` (unknown ids ignored, reported);
        `explain=True` as for `recommend`."""
        (known, ones), unknown = self._new_profile(item_ids)
        if explain:
            self._explainer_or_error()  # says why before scoring
        profile = sps.csr_matrix((ones, known, np.array([0, len(known)])), shape=(1, len(self.item_ids)))
        try:
            scores = self.recommender.get_score_cold_user_remove_seen(profile)[0]
        except NotImplementedError:
            raise ValidationError(f"Model {self.model.id} ({self.algorithm.name}) cannot score a new user's profile "
                                  "(irspack has no cold-user scoring for it); recommend(user_id) serves known users.") from None
        return Recommendations(self._top(np.asarray(scores, dtype=np.float64), cutoff, (known, ones) if explain else None),
                               unknown_items=unknown)

    def _new_profile(self, item_ids: Iterable[Any]) -> tuple[tuple[np.ndarray, np.ndarray], list]:
        """((item indices, sorted and distinct; their values, ones), unknown ids) of a new user's profile."""
        if isinstance(item_ids, (str, bytes)) or not isinstance(item_ids, Iterable):
            raise ValidationError(f"A profile is a list of item ids, got {item_ids!r}; for one item pass [{item_ids!r}].")
        known, unknown = [], []
        for item_id in item_ids:
            index = self._items.get(item_id)
            (unknown if index is None else known).append(item_id if index is None else index)
        if not known:
            raise NotFoundError(
                f"None of the profile's items is known to model {self.model.id}: "
                f"{', '.join(map(repr, unknown[:5])) or 'the profile is empty'}."
            )
        known = np.array(sorted(set(known)), dtype=np.int64)
        return (known, np.ones(len(known))), unknown

    def recommend_many(self, user_ids: Iterable[Any] | None = None, cutoff: int = 10) -> pd.DataFrame:
        """Top items for many known users (all when None): columns user_id, rank, item_id, score."""
        cutoff = _check_cutoff(cutoff)
        indices = (np.arange(len(self.user_ids)) if user_ids is None
                   else np.array([self._user_index(u) for u in user_ids], dtype=np.int64))
        factors = self._factor_index()
        parts = (factors.top_n_many(indices, self.recommender.X_train_all, cutoff) if factors is not None
                 else top_n_unseen(self.recommender, indices, cutoff))
        users = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        items = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        return pd.DataFrame({
            "user_id": self._id_column("user", users),
            "rank": np.concatenate([p[1] for p in parts]).astype(np.int32) if parts else np.zeros(0, dtype=np.int32),
            "item_id": self._id_column("item", items),
            "score": np.concatenate([p[3] for p in parts]).astype(np.float64) if parts else np.zeros(0),
        })

    def _id_column(self, kind: str, positions: np.ndarray) -> Any:
        """`ids[positions]`; string ids are taken from a cached pandas string array, which spares
        pandas re-inferring and converting every one of the (many) repeated Python strings."""
        ids = self.user_ids if kind == "user" else self.item_ids
        if ids.dtype != object:
            return ids[positions]
        cached = self._id_arrays.get(kind)
        if cached is None:
            cached = self._id_arrays[kind] = pd.Series(ids).array
        return cached.take(positions) if isinstance(cached.dtype, pd.StringDtype) else ids[positions]

    def _factor_index(self) -> FactorIndex | None:
        if self._factors is False:
            self._factors = FactorIndex.of(self.recommender)
        return self._factors


def check_loaded_model(header: dict, recommender: Any, user_ids: Any, item_ids: Any) -> None:
    """ModelFileError unless a loaded model is what its header declares: the algorithm's class,
    and arrays whose shapes and index ranges fit n_users x n_items (the algorithm's check hook)."""
    n_users, n_items = header.get("n_users"), header.get("n_items")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (n_users, n_items)):
        raise ModelFileError(f"its header declares no valid n_users/n_items ({n_users!r}, {n_items!r})")
    try:
        algorithm = get_algorithm(header.get("algorithm"))
    except ValidationError:
        raise ModelFileError(f"its header names an unknown algorithm {header.get('algorithm')!r}") from None
    if type(recommender) is not algorithm.recommender_class:
        raise ModelFileError(f"it holds a {type(recommender).__name__}, not the {algorithm.class_name} "
                             "its header declares")
    algorithm.check(recommender, n_users, n_items)
    for kind, ids, n in (("user", user_ids, n_users), ("item", item_ids, n_items)):
        if not isinstance(ids, np.ndarray) or ids.shape != (n,):
            raise ModelFileError(f"its {kind} ids are {getattr(ids, 'shape', type(ids).__name__)}, "
                                 f"not the {n} its header declares")


def _check_cutoff(cutoff: Any) -> int:
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, np.integer)) or cutoff < 1:
        raise ValidationError(f"cutoff must be a positive whole number, got {cutoff!r}.")
    return int(cutoff)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def with_metadata(rows: list[dict], metadata: pd.DataFrame, item_column: str) -> list[dict]:
    """Join item metadata columns onto rows that have an `item_id`."""
    if metadata is None or not rows:
        return rows
    table = metadata.copy()
    table.index = table[item_column].astype(str)
    table = table.drop(columns=[item_column])
    table = table[~table.index.duplicated(keep="last")]
    enriched = []
    for row in rows:
        extra = table.loc[str(row["item_id"])].to_dict() if str(row["item_id"]) in table.index else {}
        enriched.append({**row, **{k: _plain(v) for k, v in extra.items()}})
    return enriched


def sample_recommendation(ws: WorkspaceBase, recommender: Recommender, metadata: Any = None, user_id: Any = None,
                          cutoff: int = 10, seed: int | None = None, explain: bool = False) -> dict:
    """A (random) user's profile beside their recommendations, with item metadata when given.

    `metadata`: an item-metadata record or id, a DataFrame, or True for the project's latest.
    `explain`: each recommendation names the profile items it comes from (`Recommender.recommend`).
    """
    if user_id is None:
        user_id = _plain(recommender.user_ids[random.Random(seed).randrange(len(recommender.user_ids))])
    profile = [{"item_id": item} for item in recommender.profile(user_id)]
    recommendations = list(recommender.recommend(user_id, cutoff=cutoff, explain=explain))
    frame, column = metadata_frame(ws, recommender.model, metadata)
    if frame is not None:
        profile = with_metadata(profile, frame, column)
        recommendations = with_metadata(recommendations, frame, column)
    return {"user_id": user_id, "user_profile": profile, "recommendations": recommendations}


def similar_items(ws: WorkspaceBase, recommender: Recommender, item_id: Any, cutoff: int = 10,
                  metadata: Any = None) -> Recommendations:
    """`Recommender.similar_items`, with item metadata when given (as for `sample_recommendation`)."""
    rows = recommender.similar_items(item_id, cutoff=cutoff)
    frame, column = metadata_frame(ws, recommender.model, metadata)
    return rows if frame is None else Recommendations(with_metadata(rows, frame, column))


def metadata_frame(ws: WorkspaceBase, model: TrainedModel, metadata: Any) -> tuple[pd.DataFrame | None, str | None]:
    """The item-metadata table `metadata` stands for (a record or id, a DataFrame, True for the
    project's latest, None/False for none) and its item id column."""
    if metadata is None or metadata is False:
        return None, None
    if isinstance(metadata, pd.DataFrame):
        return metadata, ws.project(model.project_id).item_column
    record = ws.latest_item_metadata(model.project_id) if metadata is True else ws.item_metadata(metadata)
    if record is None:
        raise NotFoundError(f"Project {model.project!r} has no item metadata yet.")
    if record.project_id != model.project_id:
        raise ValidationError(f"Item metadata {record.id} belongs to another project than model {model.id}.")
    return ws.item_metadata_frame(record), "item_id"  # snapshots key metadata by item_id
