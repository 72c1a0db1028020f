"""Catalog records as small typed objects: `model.id`, `model.status`, and an HTML view in notebooks."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from .jobs import Job


@dataclass(kw_only=True, eq=False)
class Record:
    """One catalog row. Made by the workspace; `from_row` keeps the fields the type declares."""

    id: int
    _workspace: Any = field(default=None, repr=False)
    kind: ClassVar[str] = "record"

    @classmethod
    def from_row(cls, row: dict[str, Any], workspace: Any = None) -> Record:
        names = {f.name for f in fields(cls)} - {"_workspace"}
        return cls(**{name: row.get(name) for name in names}, _workspace=workspace)

    def as_dict(self) -> dict[str, Any]:
        """The record's fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def __repr__(self) -> str:
        label = getattr(self, "name", None) or getattr(self, "basename", None) or ""
        return f"<{type(self).__name__} {self.id}{' ' + str(label) if label else ''}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(key)}</th>"
            f"<td style='text-align:left'>{html.escape(_short(value))}</td></tr>"
            for key, value in self.as_dict().items()
        )
        return f"<b>{type(self).__name__} {self.id}</b><table>{rows}</table>"


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(kw_only=True, eq=False, repr=False)
class Project(Record):
    kind: ClassVar[str] = "project"
    name: str
    user_column: str
    item_column: str
    time_column: str | None = None
    active_model_id: int | None = None
    created_at: datetime | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class TrainingData(Record):
    kind: ClassVar[str] = "training data"
    project_id: int
    name: str | None = None
    source: str = ""
    path: str = ""
    fingerprint: str = ""
    n_rows: int = 0
    n_users: int = 0
    n_items: int = 0
    time_min: datetime | None = None
    time_max: datetime | None = None
    dropped: dict = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class ItemMetadata(Record):
    kind: ClassVar[str] = "item metadata"
    project_id: int
    source: str = ""
    path: str = ""
    fingerprint: str = ""
    item_column: str = ""
    n_rows: int = 0
    columns: list = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class Configuration(Record):
    kind: ClassVar[str] = "configuration"
    project_id: int
    name: str
    algorithm: str
    params: dict = field(default_factory=dict)
    tuning_job_id: int | None = None
    created_at: datetime | None = None


@dataclass(kw_only=True, eq=False, repr=False)
class _WithJob(Record):
    job_id: int | None = None

    @property
    def job(self) -> Job:
        from .jobs import Job

        return Job(self._workspace, self.job_id)


@dataclass(kw_only=True, eq=False, repr=False)
class TrainedModel(_WithJob):
    """A trained model: the fields of the seed's REST records plus training statistics."""

    kind: ClassVar[str] = "model"
    project_id: int
    configuration_id: int
    training_data_id: int
    status: str = "PENDING"
    file: str | None = None
    basename: str | None = None
    filesize: int | None = None
    irspack_version: str | None = None
    data_fingerprint: str | None = None
    n_users: int | None = None
    n_items: int | None = None
    n_interactions: int | None = None
    train_seconds: float | None = None
    metrics: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    ins_datetime: datetime | None = None
    configuration: str | None = None  # the configuration's name
    algorithm: str | None = None
    params: dict = field(default_factory=dict)
    data_loc: str | None = None  # the training data's snapshot folder
    project: str | None = None  # the project's name
    active: bool = False

    def refresh(self) -> TrainedModel:
        return self._workspace.model(self.id)

    def wait(self, timeout: float | None = None) -> TrainedModel:
        """Wait for the training job to end; return the fresh record (raises on failure)."""
        self.job.wait(timeout)
        return self.refresh()


@dataclass(kw_only=True, eq=False, repr=False)
class TuningJob(_WithJob):
    kind: ClassVar[str] = "tuning job"
    project_id: int
    training_data_id: int
    n_trials: int = 0
    timeout_overall: float | None = None
    timeout_singlestep: float | None = None
    algorithms: list = field(default_factory=list)
    metric: str = "ndcg"
    cutoff: int = 20
    split: dict = field(default_factory=dict)
    seed: int = 0
    n_jobs: int = 1
    storage: str | None = None
    study_name: str | None = None
    train_after_tuning: bool = True
    best_score: float | None = None
    best_configuration_id: int | None = None
    model_id: int | None = None
    created_at: datetime | None = None
    status: str | None = None  # the job's
    error: str | None = None
    trials: pd.DataFrame | None = None
    best_algorithm: str | None = None
    skipped: list = field(default_factory=list)  # algorithms left out and trials skipped: why, and the estimate

    def refresh(self) -> TuningJob:
        return self._workspace.tuning_job(self.id)

    def wait(self, timeout: float | None = None) -> TuningJob:
        self.job.wait(timeout)
        return self.refresh()
