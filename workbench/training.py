"""Train one configuration on one training data set into a signed model file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import irspack
from irspack import BaseRecommenderWithEarlyStopping

from . import algorithms, data, jobs
from .errors import ValidationError
from .evaluation import SplitConfig
from .evaluation import evaluate as score_on_split
from .memory import without_numpy_hugepages
from .records import TrainedModel
from .signing import write_model_file
from .splits import split_for
from .store import disk_errors, utc_now
from .version import __version__

if TYPE_CHECKING:
    from .base import WorkspaceBase

MODEL_SUFFIX = ".wbm"
EVALUATION_CUTOFFS = (10, 20)  # the cutoffs of the scores `evaluate=True` records (compare's default too)


def train(ws: WorkspaceBase, configuration: Any, training_data: Any, background: bool = False,
          evaluate: bool = False) -> TrainedModel:
    """Record a model and its job, then train it here or in a worker process.

    `evaluate`: first fit the configuration on the training part of the default held-out split
    (the one `compare` uses by default) and record its scores in the model's `metrics`.
    """
    config = ws.configuration(configuration)
    dataset = ws.training_data(training_data)
    if config.project_id != dataset.project_id:
        raise ValidationError(
            f"Configuration {config.id} belongs to project {ws.project(config.project_id).name!r} "
            f"but training data {dataset.id} to project {ws.project(dataset.project_id).name!r}: "
            "train with data of the configuration's own project."
        )
    model_id, job_id = create_model_record(ws, config, dataset, evaluate=evaluate)
    if background:
        jobs.start_worker(ws.catalog, job_id)
    else:
        jobs.run_job(ws.catalog, job_id, lambda job, reporter: run_training_job(ws, job, reporter))
    return ws.model(model_id)


def create_model_record(ws: WorkspaceBase, config: dict, dataset: dict, tuning_job_id: int | None = None,
                        evaluate: bool = False) -> tuple[int, int]:
    """Insert a PENDING model and its training job in one transaction."""
    catalog = ws.catalog

    def work(con) -> tuple[int, int]:
        job_id = catalog.insert_row(con, "jobs", {"kind": "train", "project_id": config.project_id, "request": {}})
        model_id = catalog.insert_row(
            con, "models",
            {"project_id": config.project_id, "configuration_id": config.id,
             "training_data_id": dataset.id, "job_id": job_id},
        )
        catalog.update_row(con, "jobs", job_id, {"request": {"model_id": model_id, "tuning_job_id": tuning_job_id,
                                                          "evaluate": bool(evaluate)}})
        return model_id, job_id

    return ws.catalog.run(work)


def run_training_job(ws: WorkspaceBase, job: dict, reporter: jobs.Reporter) -> dict:
    request = job["request"]
    return train_model(ws, request["model_id"], reporter, evaluate=bool(request.get("evaluate")))


def fit(recommender: irspack.BaseRecommender, reporter: jobs.Reporter | None = None,
        span: tuple[float, float] = (0.1, 0.9)) -> None:
    """Learn (`algorithms.learn`: irspack's or a leaner fit of the same model); iterative algorithms
    run epoch by epoch (progress within `span`, cancel, no console bar)."""
    if not isinstance(recommender, BaseRecommenderWithEarlyStopping):
        algorithms.learn(recommender)
        return
    recommender.start_learning()
    n_epochs = recommender.train_epochs
    for epoch in range(n_epochs):
        recommender.run_epoch()
        if reporter is not None:
            reporter.progress(span[0] + (span[1] - span[0]) * (epoch + 1) / n_epochs, f"epoch {epoch + 1}/{n_epochs}")
            reporter.check_cancelled()


def held_out_scores(ws: WorkspaceBase, dataset: Any, algorithm: algorithms.Algorithm, params: dict,
                    reporter: jobs.Reporter) -> dict[str, float]:
    """Fit on the training part of the data's default held-out split and score on the rest."""
    reporter.progress(0.03, "scoring on a held-out split", force=True)
    split = split_for(ws, dataset, SplitConfig())
    recommender = algorithms.build_recommender(algorithm, split.X_train, params)
    fit(recommender, reporter, span=(0.05, 0.45))
    scores = score_on_split(recommender, split, cutoffs=EVALUATION_CUTOFFS)
    cutoff = max(EVALUATION_CUTOFFS)
    reporter.log(f"Held-out score: ndcg@{cutoff} {scores[f'ndcg@{cutoff}']:.4f}, recall@{cutoff} "
                 f"{scores[f'recall@{cutoff}']:.4f} ({split.n_heldout:,} hidden interactions of "
                 f"{split.n_val_users:,} users).")
    return scores


@without_numpy_hugepages()
def train_model(ws: WorkspaceBase, model_id: int, reporter: jobs.Reporter, evaluate: bool = False) -> dict:
    """Train the model record's configuration on its data and write the signed file (after scoring
    it on a held-out split when `evaluate`)."""
    model = ws.catalog.get("models", model_id, "model")
    config = ws.configuration(model["configuration_id"])
    dataset = ws.training_data(model["training_data_id"])
    project = ws.project(model["project_id"])
    ws.catalog.update("models", model_id, {"status": jobs.RUNNING})
    described = ", ".join(f"{k}={v}" for k, v in (config.params or {}).items()) or "default parameters"
    reporter.log(f"Training {config.algorithm} ({described}) on training data #{dataset.id}: {dataset.n_users:,} users, "
                 f"{dataset.n_items:,} items, {dataset.n_rows:,} interactions.")
    reporter.progress(0.02, "reading data", force=True)
    algorithm = algorithms.get_algorithm(config.algorithm)
    params = algorithms.resolve_params(algorithm, config.params)
    metrics = held_out_scores(ws, dataset, algorithm, params, reporter) if evaluate else None
    weights = "raw" if data.snapshot_info(dataset.path).weighted else "count"
    X, user_ids, item_ids = data.interaction_matrix(
        dataset.path, weighting=weights if algorithms.weighting.uses_weights(params) else "binary")
    recommender = algorithms.build_recommender(algorithm, X, params)  # applies the configuration's weighting
    X = recommender.X_train_all  # irspack keeps its own copy: let the one read go (1.2 GB at 100M interactions)

    span = (0.5, 0.9) if evaluate else (0.1, 0.9)
    reporter.progress(span[0], "learning on all the data", force=True)
    started = time.perf_counter()
    fit(recommender, reporter, span)
    train_seconds = time.perf_counter() - started
    stats = algorithm.statistics(recommender)

    trained_at = utc_now()
    header = {
        "model_id": model_id, "project": project.name, "algorithm": algorithm.name, "params": params,
        "columns": {"user": project.user_column, "item": project.item_column, "time": project.time_column},
        "configuration_id": config.id, "training_data_id": dataset.id,
        "data_fingerprint": dataset.fingerprint, "n_users": int(X.shape[0]), "n_items": int(X.shape[1]),
        "n_interactions": int(X.nnz), "train_seconds": train_seconds, "stats": stats,
        "irspack_version": irspack.__version__, "workbench_version": __version__,
        "trained_at": trained_at.isoformat(),
    }
    path = ws.models_dir / project.name / f"{model_id}{MODEL_SUFFIX}"
    payload = {"recommender": recommender, "user_ids": user_ids, "item_ids": item_ids}
    with disk_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        filesize = write_model_file(path, header, payload, ws.keyring, check_allowlist=True)
    try:
        learned = "".join(f", {name.replace('_', ' ')} {value:.4g}" for name, value in stats.items()
                          if isinstance(value, (int, float)))
        reporter.log(f"Learned in {train_seconds:.2f} s on all the data{learned}.")
        scores = {"metrics": {**(model["metrics"] or {}), **metrics}} if metrics is not None else {}
        ws.catalog.update(
            "models", model_id,
            {**scores, "status": jobs.SUCCESS, "file": str(path), "basename": path.name, "filesize": filesize,
             "irspack_version": irspack.__version__, "data_fingerprint": dataset.fingerprint,
             "n_users": int(X.shape[0]), "n_items": int(X.shape[1]), "n_interactions": int(X.nnz),
             "train_seconds": train_seconds, "stats": stats, "ins_datetime": trained_at},
        )
        reporter.log(f"Model #{model_id} written to {path.name}, signed ({filesize:,} bytes).")
    except BaseException:
        Path(path).unlink(missing_ok=True)  # never leave a file without its record
        raise
    return {"model_id": model_id}
