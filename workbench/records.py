"""Catalog records as friendly objects: dicts with attribute access and an HTML view."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Job
    from .workspace import Workspace


class Record(dict):
    """One catalog row. Keys are readable as attributes: `model.n_users`."""

    kind = "record"

    def __init__(self, values: dict[str, Any], workspace: "Workspace | None" = None) -> None:
        super().__init__(values)
        self._workspace = workspace

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}") from None

    def __repr__(self) -> str:
        label = self.get("name") or self.get("basename") or ""
        return f"<{type(self).__name__} {self.get('id')} {label}>".replace("  ", " ")

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td style='text-align:left'>{html.escape(_short(v))}</td></tr>"
            for k, v in self.items()
        )
        return f"<b>{type(self).__name__} {self.get('id')}</b><table>{rows}</table>"


def _short(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Project(Record):
    kind = "project"


class TrainingData(Record):
    kind = "training data"


class ItemMetadata(Record):
    kind = "item metadata"


class Configuration(Record):
    kind = "configuration"


class _WithJob(Record):
    @property
    def job(self) -> "Job":
        from .jobs import Job

        return Job(self._workspace, self["job_id"])


class TrainedModel(_WithJob):
    kind = "model"

    def refresh(self) -> "TrainedModel":
        return self._workspace.get_model(self["id"])

    def wait(self, timeout: float | None = None) -> "TrainedModel":
        """Wait for the training job to end; return the fresh record (raises on failure)."""
        self.job.wait(timeout)
        return self.refresh()


class TuningJob(_WithJob):
    kind = "tuning job"

    def refresh(self) -> "TuningJob":
        return self._workspace.get_tuning_job(self["id"])

    def wait(self, timeout: float | None = None) -> "TuningJob":
        self.job.wait(timeout)
        return self.refresh()
