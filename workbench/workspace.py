"""The notebook-facing API: one object over the catalog, the snapshots and the model files.

    import workbench as wb
    ws = wb.open()                       # the embedded default, data/workbench.sqlite, created if absent
    p = ws.create_project("movies", user_column="user_id", item_column="item_id", time_column="timestamp")

`Workspace` is `base.WorkspaceBase` (folders, catalog, keys, plain records) plus training, tuning,
comparison, the model registry and recommendations, each delegated to its module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import comparison, export, insight, models, recommend, training, tuning
from .base import WorkspaceBase
from .errors import NotFoundError, ValidationError
from .evaluation import SplitConfig
from .records import TrainedModel, TuningJob
from .signing import inspect_model_file


class Workspace(WorkspaceBase):
    """A workspace: `wb.open()`. See `base.WorkspaceBase` for its folders, projects, data and configurations."""

    # Training and models

    def train(self, configuration: Any, training_data: Any, background: bool = False,
              evaluate: bool = False) -> TrainedModel:
        """Train a configuration on a training data set; `background=True` returns at once.

        evaluate: first fit it on the training part of the data's default held-out split (the one
        `compare` uses by default) and record its scores (ndcg@10, recall@20...) in the model's
        `metrics`, then train on all the data; training takes about twice as long.
        """
        return training.train(self, configuration, training_data, background=background, evaluate=evaluate)

    def models(self, project: Any = None) -> pd.DataFrame:
        return models.list_models(self, project)

    def delete_model(self, model_id: Any, force: bool = False) -> None:
        models.delete_model(self, model_id, force=force)

    def activate(self, model_id: Any) -> TrainedModel:
        return models.activate(self, model_id)

    def active_model(self, project: Any) -> TrainedModel | None:
        return models.active_model(self, project)

    def export_model(self, model_id: Any, dest: str | os.PathLike) -> Path:
        return models.export_model(self, model_id, dest)

    def inspect_model_file(self, path: str | os.PathLike) -> dict:
        """Verify a model file's signature and return its header, never unpickling it."""
        return inspect_model_file(Path(path), self.keyring)

    def load_model(self, model_id: Any) -> recommend.Recommender:
        return models.load_model(self, model_id)

    def sample_recommendation(self, model_id: Any, metadata: Any = None, user_id: Any = None,
                              cutoff: int = 10, seed: int | None = None, explain: bool = False) -> dict:
        """A (random) user's profile beside their top-N, with item metadata (a record or id, a DataFrame,
        or True for the project's latest); `explain=True`: each recommendation names the user's items
        it comes from (`Recommender.recommend`)."""
        return recommend.sample_recommendation(self, self.load_model(model_id), metadata=metadata, user_id=user_id,
                                               cutoff=cutoff, seed=seed, explain=explain)

    def similar_items(self, model_id: Any, item_id: Any, cutoff: int = 10, metadata: Any = None) -> recommend.Recommendations:
        """The items most similar to `item_id` in a model, best first, with item metadata when given (a
        record or id, a DataFrame, or True for the project's latest). Item-item weights for KNN,
        RP3beta and SLIM models, the cosine of item factors for IALS, SVD and NMF; a ValidationError
        saying why for models that relate no items (TopPop, user KNN)."""
        return recommend.similar_items(self, self.load_model(model_id), item_id, cutoff=cutoff, metadata=metadata)

    def load_active(self, project: Any) -> models.ActiveModel:
        """The project's active model for a long-lived process: each call serves the model active
        at that moment, loading a newly activated one first (no restart needed)."""
        return models.ActiveModel(self, project)

    def export_recommendations(self, project: Any, path: str | os.PathLike, cutoff: int = 10,
                               columns: Sequence[str] | None = None, model: Any = None,
                               progress: Callable[[int, int], None] | None = None) -> Path:
        """Write a model's top-`cutoff` for every user it knows to a .parquet, .csv or .duckdb file.

        project: whose active model (or `model`, an id of the project) to export. columns: item
        metadata columns to add (from the project's latest item metadata). The file is written
        under a temporary name and renamed, and records the model id, data fingerprint and time
        (`export.read_export_info`). progress(done_users, all_users) follows the work.
        """
        p = self.project(project)
        chosen = self.model(model) if model is not None else self.active_model(p)
        if chosen is None:
            raise NotFoundError(f"Project {p.name!r} has no active model to export; activate one or pass model=.")
        if chosen.project_id != p.id:
            raise ValidationError(f"Model {chosen.id} belongs to another project than {p.name!r}.")
        metadata = None
        if columns:
            record = self.latest_item_metadata(p)
            metadata = self.item_metadata_frame(record) if record is not None else None
        return export.export_recommendations(self.load_model(chosen.id), path, cutoff=cutoff, metadata=metadata,
                                             columns=columns, progress=progress)

    # Tuning and evaluation

    def tune(self, training_data: Any, algorithms: Sequence[str] | None = None, n_trials: int = 40,
             timeout: float | None = None, per_trial_timeout: float | None = None, metric: str = "ndcg",
             cutoff: int = 20, split: SplitConfig | dict | None = None, train_after_tuning: bool = True,
             n_jobs: int = 1, storage: str | None = None, seed: int = 0, background: bool = False,
             memory_limit: int | str | None = None, search_weighting: bool = False,
             sample_users: int | None = None) -> TuningJob:
        """Search the best configuration across algorithms on a held-out split; train it on all the data.

        training_data: the data set (record or id). algorithms: names to search (default: the
        portfolio). n_trials, timeout, per_trial_timeout: the budget (seconds). metric, cutoff: what
        the search maximises (ndcg, map, recall, hit, precision @ cutoff). split: the held-out
        split (`evaluation.SplitConfig` or its dict; default: random users, half their items).
        train_after_tuning: train the best configuration on all the data (the tuning job's
        `model_id`). n_jobs: worker processes joined to one Optuna study (0: this process only
        coordinates workers started with `workbench tune-worker`); storage: an Optuna storage URL
        other machines can join. seed: the split's and the sampler's seed. background: return at
        once; `job.wait()` or `job.follow()`. memory_limit: the most memory a trial may need (bytes
        or text like "6GB"; default WORKBENCH_MEMORY_LIMIT, else half the available memory): a
        trial estimated to need more, or to overrun the timeout, is skipped (state SKIPPED in
        `trials`, the reason in `skipped` and the log). search_weighting: also search how
        interactions are weighted (binary, log1p confidence, threshold) when they carry weights.
        sample_users: tune on a random sample of that many users (large data sets).
        """
        return tuning.tune(self, training_data, algorithms=algorithms, n_trials=n_trials, timeout=timeout,
                           per_trial_timeout=per_trial_timeout, metric=metric, cutoff=cutoff, split=split,
                           train_after_tuning=train_after_tuning, n_jobs=n_jobs, storage=storage, seed=seed,
                           background=background, memory_limit=memory_limit, search_weighting=search_weighting,
                           sample_users=sample_users)

    def tuning_jobs(self, project: Any = None) -> pd.DataFrame:
        """One row per tuning job (of a project, or of all), newest first."""
        return tuning.list_tuning_jobs(self, project)

    def tuning_insight(self, tuning_job_id: Any, min_trials: int = insight.MIN_TRIALS) -> insight.TuningInsight:
        """What a tuning job found out: which parameters mattered for each algorithm (Optuna's fANOVA
        importance over its completed trials; algorithms with fewer than `min_trials` are listed in
        `notes` with the reason) and each algorithm's best score against its number of trials.
        Works on a running job too (the trials so far)."""
        return insight.tuning_insight(self, tuning_job_id, min_trials=min_trials)

    def compare(self, model_ids: Sequence[Any], training_data: Any = None, cutoffs: Sequence[int] = (10, 20),
                split: SplitConfig | dict | None = None, metadata: Any = None, category_column: str = "genres",
                by: str | None = None, since: Any = None) -> pd.DataFrame:
        """Score models on one shared held-out split of one data set; one row per model, best first.

        model_ids: models of one project. training_data: the data to split (default: the first
        model's). cutoffs: the @k of every metric. split: as for `tune`. Each configuration is
        re-fit on the split's training part, so no model is scored on interactions it saw; the
        metrics are saved on the model records. Besides accuracy: coverage, popularity_bias,
        novelty, and with `metadata` (a record or id, a DataFrame, or True for the project's
        latest) diversity over the categories in `category_column` ("A|B" lists); their
        definitions are `workbench.evaluation.METRIC_DEFINITIONS`.
        by: None; "activity" (light, medium and heavy users: tertiles of training interactions);
        "new_since" with since= a date (users whose first interaction is on or after it, and the
        rest). With by, one row per model and segment ("all" first): segment, definition, n_users.
        """
        self.require_writable("compare models (their metrics are saved)")
        return comparison.compare(self, model_ids, training_data=training_data, cutoffs=cutoffs, split=split,
                                  metadata=metadata, category_column=category_column, by=by, since=since)


def open_workspace(location: str | os.PathLike | None = None, lock_timeout: float | None = None,
                   read_only: bool | None = None) -> Workspace:
    """Open (creating if absent) a workspace: the embedded default, a home folder, or a catalog file.

    read_only: None detects a read-only folder; True opens any workspace for reading only.
    """
    return Workspace(location, lock_timeout=lock_timeout, read_only=read_only)
