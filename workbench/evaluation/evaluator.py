"""Scoring a learnt recommender on a split's validation users with irspack's metric core."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sps
from irspack import Evaluator

from ..algorithms import algorithm_of
from ..errors import ValidationError
from ..threads import default_n_threads
from .metrics import DEFAULT_METRICS, METRICS, check_cutoff

if TYPE_CHECKING:
    from .split import Split


SCORE_BLOCK_BYTES = 64 << 20  # a block of dense float64 scores (users x items) stays below this


def score_block_users(n_items: int) -> int:
    """Users scored per block: 512, fewer on large catalogues (200k items: 41) so that one block of
    scores stays within SCORE_BLOCK_BYTES."""
    return int(min(512, max(16, SCORE_BLOCK_BYTES // (8 * max(int(n_items), 1)))))


class ValidationEvaluator(Evaluator):
    """An irspack :class:`~irspack.Evaluator` whose ground-truth rows belong to arbitrary (not
    necessarily contiguous) rows of the training matrix.

    irspack's own evaluator needs the validation users to be one contiguous block of rows
    (``offset``); this one scores ``user_indices`` with ``model.get_score`` and feeds the blocks
    to irspack's metric core, masking the users' training interactions. It works with
    irspack's ``learn_with_optimizer`` and ``get_target_score`` like the base class.
    """

    def __init__(
        self,
        ground_truth: sps.csr_matrix,
        user_indices: np.ndarray,
        train_rows: sps.csr_matrix,
        cutoff: int = 20,
        target_metric: str = "ndcg",
        n_threads: int | None = None,
        mb_size: int | None = None,
    ) -> None:
        super().__init__(
            ground_truth,
            offset=0,
            cutoff=cutoff,
            target_metric=target_metric,
            masked_interactions=train_rows,
            n_threads=default_n_threads() if n_threads is None else n_threads,
            mb_size=score_block_users(ground_truth.shape[1]) if mb_size is None else mb_size,
        )
        self.user_indices = np.asarray(user_indices, dtype=np.int64)

    def _score_chunks(self, model: Any) -> Iterable[np.ndarray]:
        if self.n_items != model.n_items:
            raise ValidationError(
                f"the model has {model.n_items} items but the split has {self.n_items}"
            )
        if len(self.user_indices) and int(self.user_indices.max()) >= model.n_users:
            raise ValidationError(
                f"the model has {model.n_users} users, fewer than the split's user space"
            )
        score = model.get_score
        W = _similarity(model)
        if W is not None:
            X = model.X_train_all

            def score(idx: np.ndarray) -> np.ndarray:
                return X[idx].astype(W.dtype, copy=False) @ W

        for start in range(0, len(self.user_indices), self.mb_size):
            idx = self.user_indices[start : start + self.mb_size]
            scores = score(idx)
            if sps.issparse(scores):
                scores = scores.toarray()
            scores = np.asarray(scores)
            if scores.dtype not in (np.float32, np.float64):
                scores = scores.astype(np.float64)
            yield scores

    def get_scores(self, model: Any, cutoffs: list[int]) -> dict[str, float]:  # type: ignore[override]
        return self.get_scores_from_score_chunks(self._score_chunks(model), list(cutoffs))

    def get_score(self, model: Any) -> dict[str, float]:  # type: ignore[override]
        suffix = f"@{self.cutoff}"
        return {
            k[: -len(suffix)]: v for k, v in self.get_scores(model, [self.cutoff]).items()
        }


DENSE_SIMILARITY_MAX_CELLS = 1 << 24  # 16.8M cells (128 MB in float64): about 4,000 items


def _similarity(model: Any) -> Any:
    """The item-item weights of a similarity recommender (whose scores are ``X[u] @ W``, its
    ``item_weights`` hook) in the form that scores fastest, or None for any other model (scored by
    its own ``get_score``). Dense, in ``W``'s precision: several times faster than scipy's sparse x
    sparse product (whose output is nearly dense anyway) and, for a float32 ``W`` (DenseSLIM),
    than upcasting ``W`` for every block; a sparse ``W`` is made dense (C-ordered: scipy copies
    an F-ordered operand for every block, 22 MB at ml-100k's 1,651 items) up to
    ``DENSE_SIMILARITY_MAX_CELLS``, else CSR, once per evaluation (irspack's ``get_score``
    converts its CSC ``W`` for every block: 2 s a block of 41 users at 200,000 items)."""
    algorithm = algorithm_of(model)
    W = None if algorithm is None else algorithm.item_weights(model)
    if W is None:
        return None
    if sps.issparse(W):
        return W.toarray(order="C") if W.shape[0] * W.shape[1] <= DENSE_SIMILARITY_MAX_CELLS else W.tocsr()
    W = np.asarray(W)
    return W if W.dtype in (np.float32, np.float64) else None


def evaluate(
    recommender: Any,
    split: Split,
    cutoffs: Sequence[int] = (10, 20),
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_threads: int | None = None,
) -> dict[str, float]:
    """Score a learnt recommender on the split's validation users.

    Returns ``{"ndcg@10": ..., "coverage@10": ..., ...}``; ``coverage`` is catalog coverage: the
    share of all items recommended to at least one validation user within the cutoff.
    """
    if isinstance(cutoffs, int):
        cutoffs = (cutoffs,)
    cuts = [check_cutoff(c) for c in cutoffs]
    if not cuts:
        raise ValidationError("give at least one cutoff")
    if isinstance(metrics, str):
        metrics = (metrics,)
    unknown = [m for m in metrics if str(m).lower() not in METRICS]
    if unknown:
        raise ValidationError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; valid metrics: {', '.join(METRICS)}"
        )
    shape = getattr(recommender, "X_train_all", None)
    if shape is None:
        raise ValidationError("evaluate needs an irspack recommender")
    if recommender.X_train_all.shape != split.X_train.shape:
        raise ValidationError(
            f"the recommender was built on a {recommender.X_train_all.shape} matrix, "
            f"the split is {split.X_train.shape}"
        )
    if recommender.X_train_all.nnz != split.X_train.nnz:
        raise ValidationError(
            "evaluate a recommender built on split.X_train: this one was built on "
            f"{recommender.X_train_all.nnz:,} interactions, the split trains on "
            f"{split.X_train.nnz:,} (scoring a model that saw the held-out items would leak)"
        )
    ev = split.evaluator(cutoff=max(cuts), n_threads=n_threads)
    raw = ev.get_scores(recommender, cuts)
    out: dict[str, float] = {}
    for c in cuts:
        for m in metrics:
            m = str(m).lower()
            out[f"{m}@{c}"] = float(raw[f"{METRICS[m]}@{c}"])
    return out
