"""Compare trained models fairly: every configuration re-fit and scored on one shared held-out split."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from .algorithms import build_recommender
from .errors import ValidationError
from .evaluation import SplitConfig, evaluate
from .training import fit
from .tuning import split_for

if TYPE_CHECKING:
    from .base import WorkspaceBase


def compare(ws: "WorkspaceBase", model_ids: Sequence[Any], training_data: Any = None,
            cutoffs: Sequence[int] = (10, 20), split: SplitConfig | dict | None = None) -> pd.DataFrame:
    """Evaluate models on one shared held-out split of one data set; one row per model, best first.

    Each model's configuration is re-fit on the split's training part, so every model is scored
    on interactions it never saw, whatever data it was trained on. The metrics are saved on the
    model records (the Models list shows them).
    """
    models = [ws.model(m) for m in model_ids]
    if not models:
        raise ValidationError("compare needs at least one model id.")
    projects = {m.project_id for m in models}
    if len(projects) > 1:
        raise ValidationError(f"Models {[m.id for m in models]} belong to different projects; compare within one.")
    dataset = ws.training_data(training_data if training_data is not None else models[0].training_data_id)
    if dataset.project_id not in projects:
        raise ValidationError(f"Training data {dataset.id} belongs to another project than the models.")
    the_split = split_for(ws, dataset, split)
    rows = []
    for model in models:
        recommender = build_recommender(model.algorithm, the_split.X_train, model.params)
        started = time.perf_counter()
        fit(recommender)
        fit_seconds = time.perf_counter() - started
        metrics = evaluate(recommender, the_split, cutoffs=tuple(cutoffs))
        ws.catalog.update("models", model.id, {"metrics": {**model.metrics, **metrics}})
        rows.append({"model_id": model.id, "algorithm": model.algorithm, "configuration": model.configuration,
                     **metrics, "fit_seconds": fit_seconds})
    frame = pd.DataFrame(rows)
    key = f"ndcg@{max(cutoffs)}"
    return frame.sort_values(key, ascending=False, kind="stable").reset_index(drop=True) if key in frame else frame
