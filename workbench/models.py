"""The model registry: list, delete, activate, export and load trained models."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ModelFileError, NotFoundError, ValidationError
from .jobs import SUCCESS, reap_dead_jobs
from .recommend import Recommender
from .records import TrainedModel
from .recovery import write_active_model
from .signing import read_model_file

if TYPE_CHECKING:
    from .base import WorkspaceBase

_cache: dict[str, tuple[tuple, Recommender]] = {}
_cache_lock = threading.Lock()


def list_models(ws: WorkspaceBase, project: Any = None) -> pd.DataFrame:
    """One row per trained model, newest first, with its key statistics and metrics."""
    reap_dead_jobs(ws.catalog, ws.models_dir)
    where, params = ws.project_filter(project, "m")
    frame = ws.catalog.query_df(
        f"""
        SELECT m.id, p.name AS project, c.algorithm, c.name AS configuration, m.configuration_id,
               m.training_data_id AS data, m.status, coalesce(p.active_model_id = m.id, false) AS active,
               m.n_users, m.n_items, m.n_interactions, m.train_seconds, m.metrics, m.stats,
               m.ins_datetime AS trained_at, m.filesize, m.basename
        FROM models m JOIN configurations c ON c.id = m.configuration_id JOIN projects p ON p.id = m.project_id
        {where} ORDER BY m.id DESC
        """,
        params,
    )
    return _flatten_json_columns(frame)


def _flatten_json_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Spread the metrics and stats JSON into columns (ndcg@20, explained_variance_ratio, ...)."""
    extra = pd.DataFrame(
        [{**json.loads(m or "{}"), **json.loads(s or "{}")} for m, s in zip(frame["metrics"], frame["stats"])],
        index=frame.index,
    )
    frame = frame.drop(columns=["metrics", "stats"])
    return pd.concat([frame, extra], axis=1) if len(extra.columns) else frame


def active_model(ws: WorkspaceBase, project: Any) -> TrainedModel | None:
    active_id = ws.project(project).active_model_id
    return ws.model(active_id) if active_id is not None else None


def activate(ws: WorkspaceBase, ref: Any) -> TrainedModel:
    """Make a successfully trained model its project's active model (the deployment slot)."""
    model = ws.model(ref)
    if model.status != SUCCESS:
        raise ValidationError(f"Model {model.id} is {model.status}; only a SUCCESS model can be activated.")
    ws.catalog.execute("UPDATE projects SET active_model_id = ? WHERE id = ?", [model.id, model.project_id])
    write_active_model(ws.data_dir, model.project, model.id)
    return ws.model(model.id)


def delete_model(ws: WorkspaceBase, ref: Any, force: bool = False) -> None:
    """Delete a model's record and file. The active model needs `force=True`."""
    model = ws.model(ref)
    if model.active and not force:
        raise ValidationError(
            f"Model {model.id} is the active model of project {model.project!r}: activate another "
            "model first, or pass force=True to delete it and leave the project without an active model."
        )
    if model.status in ("PENDING", "RUNNING"):
        raise ValidationError(f"Model {model.id} is still {model.status}; wait for its job or cancel it first.")

    def work(con) -> None:
        con.execute("UPDATE projects SET active_model_id = NULL WHERE active_model_id = ?", [model.id])
        con.execute("DELETE FROM models WHERE id = ?", [model.id])

    ws.catalog.run(work)
    if model.active:
        write_active_model(ws.data_dir, model.project, None)
    if model.file:
        Path(model.file).unlink(missing_ok=True)
        forget_cached(model.file)


def export_model(ws: WorkspaceBase, ref: Any, dest: str | os.PathLike) -> Path:
    """Copy the signed model file to `dest` (a folder or a file path)."""
    model = _successful(ws, ref)
    target = Path(dest)
    if target.is_dir():
        target = target / model.basename
    shutil.copyfile(model.file, target)
    return target


def _successful(ws: WorkspaceBase, ref: Any) -> TrainedModel:
    model = ws.model(ref)
    if model.status != SUCCESS or not model.file:
        raise ValidationError(f"Model {model.id} is {model.status} and has no model file.")
    if not Path(model.file).exists():
        raise ModelFileError(f"The file of model {model.id} is missing: {model.file}.")
    return model


def load_model(ws: WorkspaceBase, ref: Any) -> Recommender:
    """Verify the model's file and load it; cached per process until the file changes."""
    model = _successful(ws, ref)
    path = str(model.file)
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    with _cache_lock:
        cached = _cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    header, payload = read_model_file(Path(path), ws.keyring)
    if header.get("model_id") != model.id:  # a validly signed file, but another model's
        raise ModelFileError(
            f"The file of model {model.id} ({path}) holds model {header.get('model_id')!r}: it was replaced; "
            "run `workbench doctor`."
        )
    recommender = Recommender.from_payload(model, header, payload)
    with _cache_lock:
        _cache[path] = (stamp, recommender)
    return recommender


class ActiveModel:
    """A project's active model as it is now, for long-lived processes (a dashboard kernel, a service).

    Each call first reads which model is active (one indexed catalog read) and loads a newly
    activated one before answering, so an activation elsewhere is picked up without a restart.
    Every `Recommender` method is available: `recommend`, `recommend_for_profile`, `recommend_many`...
    """

    def __init__(self, ws: WorkspaceBase, project: Any) -> None:
        self._ws = ws
        self._project = ws.project(project)
        self._current: Recommender | None = None

    def current(self) -> Recommender:
        """The loaded active model, reloaded if another model was activated since the last call."""
        rows = self._ws.catalog.query("SELECT active_model_id FROM projects WHERE id = ?", [self._project.id])
        active = rows[0]["active_model_id"] if rows else None
        if active is None:
            raise NotFoundError(f"Project {self._project.name!r} has no active model.")
        if self._current is None or self._current.model.id != active:
            self._current = load_model(self._ws, active)
        return self._current

    @property
    def model_id(self) -> int:
        return self.current().model.id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.current(), name)

    def __repr__(self) -> str:
        return f"<ActiveModel of project {self._project.name!r}>"


def forget_cached(path: str) -> None:
    """Drop a model file's loaded recommender from this process's cache."""
    with _cache_lock:
        _cache.pop(str(path), None)
