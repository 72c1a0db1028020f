"""The workspace's folders, catalog and keys, and its plain records: projects, training data, item
metadata, configurations, and the records of models, tuning jobs and jobs.

Every layer above storage works through a `WorkspaceBase`; `workspace.Workspace` (the facade
notebooks use) adds training, tuning, the model registry and recommendations on top of it.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from . import algorithms, data, jobs, legacy_catalog
from .errors import NotFoundError, ReadOnlyWorkspaceError, ValidationError
from .layout import Layout, safe_name
from .records import Configuration, ItemMetadata, Project, TrainedModel, TrainingData, TuningJob
from .recovery import write_project_file
from .signing import ENV_VAR, KeyRing
from .store import Catalog, disk_errors


class WorkspaceBase:
    """A catalog with its snapshots, model files and signing keys, all under one home folder.

    `Workspace()` opens the embedded default (data/workbench.sqlite under the home folder);
    `Workspace("some/dir")` a home folder; `Workspace("x.sqlite")` a catalog file, with data
    and models beside it (see `layout.Layout`). A catalog of the DuckDB era
    (`workbench.duckdb`) is converted on first open. A workspace on a read-only volume (or with
    `read_only=True`) can be listed, inspected and used for recommendations; changes fail clearly.
    """

    def __init__(self, location: str | os.PathLike | None = None, lock_timeout: float | None = None,
                 read_only: bool | None = None) -> None:
        layout = Layout.of(location)
        self.layout = layout
        self.home, self.data_dir, self.catalog_path = layout.home, layout.data_dir, layout.catalog_path
        self.models_dir, self.snapshots_dir, self.key_file = layout.models_dir, layout.snapshots_dir, layout.key_file
        legacy = layout.legacy_catalog_path
        if read_only is None:
            existing = self.catalog_path if self.catalog_path.exists() else legacy
            read_only = existing.exists() and not os.access(self.data_dir, os.W_OK)
        self.read_only = bool(read_only)
        if legacy.exists() and not self.catalog_path.exists():
            if self.read_only:
                raise ReadOnlyWorkspaceError(
                    f"The catalog {legacy} is in the format of an older workbench and the workspace is read-only: "
                    "open it once from a writable place to convert it."
                )
            with disk_errors(self.data_dir):
                legacy_catalog.convert(legacy, self.catalog_path, self.home, self.snapshots_dir, self.models_dir)
        self.catalog = Catalog(self.catalog_path, home=self.home, lock_timeout=lock_timeout, read_only=self.read_only)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.catalog_path}>"

    def _repr_html_(self) -> str:
        return f"<b>{type(self).__name__}</b> {self.catalog_path}<br>" + self.projects().to_html(index=False)

    @cached_property
    def keyring(self) -> KeyRing:
        if self.read_only and not self.key_file.exists() and os.environ.get(ENV_VAR) is None:
            raise ReadOnlyWorkspaceError(
                f"The read-only workspace {self.home} has no signing key file ({self.key_file}): set {ENV_VAR} "
                "to the keys its models were signed with."
            )
        with disk_errors(self.key_file.parent):
            return KeyRing.load(self.key_file)

    def require_writable(self, action: str) -> None:
        """Refuse `action` up front in a read-only workspace, before any file is touched."""
        if self.read_only:
            raise ReadOnlyWorkspaceError(
                f"Cannot {action}: the workspace {self.home} is read-only (listing, inspecting and recommending "
                "work; changes need a writable copy)."
            )

    # Projects

    def create_project(self, name: str, user_column: str, item_column: str, time_column: str | None = None) -> Project:
        self.require_writable("create a project")
        safe_name(name, "project")
        if name.isdigit():
            raise ValidationError(f"The project name {name!r} is only digits, which reads as a project id: "
                                  "add a letter (e.g. 'p{name}').")
        for label, column in (("user_column", user_column), ("item_column", item_column)):
            if not isinstance(column, str) or not column.strip():
                raise ValidationError(f"{label} must be a non-empty column name, got {column!r}.")
        record = {"name": name, "user_column": user_column, "item_column": item_column,
                  "time_column": time_column or None}

        def work(con) -> int:
            if con.execute("SELECT id FROM projects WHERE name = ?", [name]).fetchone():
                raise ValidationError(f"A project named {name!r} already exists.")
            project_id = self.catalog.insert_row(con, "projects", record)
            with disk_errors(self.data_dir):  # inside the transaction: no file, no project
                write_project_file(self.data_dir, record)
            return project_id

        return self.project(self.catalog.run(work))

    def project(self, ref: Any) -> Project:
        """A project by record, name or id (a name made of digits is looked up as a name first)."""
        if isinstance(ref, Project):
            ref = ref.id
        if isinstance(ref, str):
            rows = self.catalog.query("SELECT * FROM projects WHERE name = ?", [ref])
            if rows:
                return Project.from_row(rows[0], self)
            if not ref.isdigit():
                names = [r["name"] for r in self.catalog.query("SELECT name FROM projects ORDER BY name")]
                raise NotFoundError(f"There is no project named {ref!r}. Projects: {', '.join(names) or 'none yet'}.")
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise ValidationError(f"A project is given by its name or id, not {ref!r}.")
        return Project.from_row(self.catalog.get("projects", int(ref), "project"), self)

    def projects(self) -> pd.DataFrame:
        return self.catalog.query_df(
            """
            SELECT p.id, p.name, p.user_column, p.item_column, p.time_column,
                   (SELECT count(*) FROM training_data t WHERE t.project_id = p.id) AS n_training_data,
                   (SELECT count(*) FROM configurations c WHERE c.project_id = p.id) AS n_configurations,
                   (SELECT count(*) FROM models m WHERE m.project_id = p.id) AS n_models,
                   p.active_model_id, p.created_at
            FROM projects p ORDER BY p.id
            """
        )

    # Data

    def import_training_data(self, project: Any, source: Any, name: str | None = None, **options: Any) -> TrainingData:
        """Import interactions (a file, DataFrame or DuckDB query) as an immutable snapshot.

        Options: delimiter, null_ids ("drop"/"reject"), duplicates ("keep"/"last"), time_unit,
        weight_column (ratings or counts kept as the snapshot's weights), columns (the source's column
        for a role where its name differs from the project's, e.g. {"user": "visitor"}).
        """
        self.require_writable("import training data")
        p = self.project(project)
        with disk_errors(self.snapshots_dir):
            snapshot = data.build_interaction_snapshot(
                source, self.snapshots_dir / p.name,
                user_column=p.user_column, item_column=p.item_column, time_column=p.time_column,
                sandbox=self.sql_sandbox(), **options,
            )
        record_id = self.catalog.insert(
            "training_data",
            {
                "project_id": p.id, "name": name or _source_name(source), "source": snapshot.source,
                "path": str(snapshot.path), "fingerprint": snapshot.fingerprint, "n_rows": snapshot.n_rows,
                "n_users": snapshot.n_users, "n_items": snapshot.n_items, "time_min": snapshot.time_min,
                "time_max": snapshot.time_max, "dropped": snapshot.dropped,
            },
        )
        return self.training_data(record_id)

    def preview(self, source: Any, n_rows: int = data.PREVIEW_ROWS, delimiter: str | None = None) -> data.Preview:
        """The first rows of a file, DataFrame or DuckDB query, with its columns and their types, read
        the way `import_training_data` reads them."""
        return data.preview(source, n_rows=n_rows, delimiter=delimiter, sandbox=self.sql_sandbox())

    def sql_sandbox(self) -> data.SqlSandbox:
        """What a DuckDB query given as a source may read: the folders in WORKBENCH_DATA_DIRS, else
        imports/ of this workspace and the current directory; never its data/ or models/ folders."""
        return data.SqlSandbox.declared(default=(self.home / "imports", Path.cwd()),
                                        private=(self.data_dir, self.models_dir))

    def training_data(self, ref: Any) -> TrainingData:
        if isinstance(ref, TrainingData):
            ref = ref.id
        return TrainingData.from_row(self.catalog.get("training_data", int(ref), "training data"), self)

    def latest_training_data(self, project: Any) -> TrainingData:
        p = self.project(project)
        rows = self.catalog.query("SELECT id FROM training_data WHERE project_id = ? ORDER BY id DESC LIMIT 1", [p.id])
        if not rows:
            raise NotFoundError(f"Project {p['name']!r} has no training data yet.")
        return self.training_data(rows[0]["id"])

    def training_data_sets(self, project: Any = None) -> pd.DataFrame:
        where, params = self.project_filter(project, "t")
        return self.catalog.query_df(
            f"SELECT t.id, p.name AS project, t.name, t.n_rows, t.n_users, t.n_items, t.time_min, t.time_max, "
            f"t.fingerprint, t.source, t.created_at FROM training_data t JOIN projects p ON p.id = t.project_id "
            f"{where} ORDER BY t.id",
            params,
        )

    def interaction_matrix(self, training_data: Any, weighting: str = "binary"):
        """`(scipy CSR, user_ids, item_ids)` of a training data snapshot; weighting: see data.interaction_matrix."""
        return data.interaction_matrix(self.training_data(training_data).path, weighting=weighting)

    def import_item_metadata(self, project: Any, source: Any, item_column: str | None = None, **options: Any) -> ItemMetadata:
        self.require_writable("import item metadata")
        p = self.project(project)
        column = item_column or p.item_column
        with disk_errors(self.snapshots_dir):
            snapshot = data.build_metadata_snapshot(source, self.snapshots_dir / p.name, item_column=column,
                                                    sandbox=self.sql_sandbox(), **options)
        record_id = self.catalog.insert(
            "item_metadata",
            {
                "project_id": p.id, "source": snapshot.source, "path": str(snapshot.path),
                "fingerprint": snapshot.fingerprint, "item_column": column, "n_rows": snapshot.n_rows,
                "columns": list(snapshot.columns),
            },
        )
        return self.item_metadata(record_id)

    def item_metadata(self, ref: Any) -> ItemMetadata:
        if isinstance(ref, ItemMetadata):
            ref = ref.id
        return ItemMetadata.from_row(self.catalog.get("item_metadata", int(ref), "item metadata"), self)

    def latest_item_metadata(self, project: Any) -> ItemMetadata | None:
        p = self.project(project)
        rows = self.catalog.query("SELECT id FROM item_metadata WHERE project_id = ? ORDER BY id DESC LIMIT 1", [p.id])
        return self.item_metadata(rows[0]["id"]) if rows else None

    def item_metadata_frame(self, metadata: Any) -> pd.DataFrame:
        return data.read_metadata(self.item_metadata(metadata).path)

    # Configurations

    def create_configuration(self, project: Any, algorithm: str, params: dict | None = None,
                             name: str | None = None, tuning_job_id: int | None = None) -> Configuration:
        self.require_writable("create a configuration")
        p = self.project(project)
        algo = algorithms.get_algorithm(algorithm)
        resolved = algorithms.resolve_params(algo, params)
        config_id = self.catalog.insert(
            "configurations",
            {"project_id": p.id, "name": name or algo.name, "algorithm": algo.name,
             "params": resolved, "tuning_job_id": tuning_job_id},
        )
        return self.configuration(config_id)

    def configuration(self, ref: Any) -> Configuration:
        if isinstance(ref, Configuration):
            ref = ref.id
        return Configuration.from_row(self.catalog.get("configurations", int(ref), "configuration"), self)

    def configurations(self, project: Any = None) -> pd.DataFrame:
        where, params = self.project_filter(project, "c")
        return self.catalog.query_df(
            f"SELECT c.id, p.name AS project, c.name, c.algorithm, c.params, c.tuning_job_id, c.created_at "
            f"FROM configurations c JOIN projects p ON p.id = c.project_id {where} ORDER BY c.id",
            params,
        )

    # Records of models, tuning jobs and jobs

    def model(self, model_id: Any) -> TrainedModel:
        """A model's record, with its configuration, data and project (a job whose process died is reaped first)."""
        jobs.reap_dead_jobs(self.catalog, self.models_dir)
        value = model_id.id if isinstance(model_id, TrainedModel) else model_id
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            raise ValidationError(f"A model id is a whole number, got {value!r}.")
        rows = self.catalog.query(
            """
            SELECT m.*, c.name AS configuration, c.algorithm, c.params, t.path AS data_loc,
                   p.name AS project, coalesce(p.active_model_id = m.id, 0) AS active
            FROM models m JOIN configurations c ON c.id = m.configuration_id
            JOIN training_data t ON t.id = m.training_data_id JOIN projects p ON p.id = m.project_id
            WHERE m.id = ?
            """,
            [int(value)],
        )
        if not rows:
            raise NotFoundError(f"There is no model with id {int(value)}.")
        return TrainedModel.from_row(rows[0], self)

    def tuning_job(self, tuning_job_id: Any) -> TuningJob:
        """A tuning job's record, with its job's status and error, its trials, its best algorithm and what
        the search skipped (once it has finished)."""
        tuning_id = int(tuning_job_id.id if isinstance(tuning_job_id, TuningJob) else tuning_job_id)
        record = self.catalog.get("tuning_jobs", tuning_id, "tuning job")
        job = self.catalog.get("jobs", record["job_id"], "job") if record["job_id"] else {}
        record["status"] = job.get("status")
        record["error"] = job.get("error")
        record["skipped"] = (job.get("result") or {}).get("skipped", [])
        record["trials"] = self.trials(tuning_id)
        best = record["best_configuration_id"]
        record["best_algorithm"] = self.configuration(best).algorithm if best else None
        return TuningJob.from_row(record, self)

    def trials(self, tuning_job_id: int) -> pd.DataFrame:
        """A tuning job's trials: number, algorithm, params, score, seconds, state, worker."""
        frame = self.catalog.query_df(
            "SELECT number, algorithm, params, score, seconds, state, worker FROM tuning_trials "
            "WHERE tuning_job_id = ? ORDER BY logged_at, number",
            [int(tuning_job_id)],
        )
        frame["params"] = frame["params"].map(lambda text: json.loads(text) if text else {})
        return frame

    def job(self, job_id: int) -> jobs.Job:
        self.catalog.get("jobs", int(job_id), "job")
        return jobs.Job(self, int(job_id))

    def task_log(self, model: Any = None, job: Any = None, tuning_job: Any = None) -> pd.DataFrame:
        """The log lines of a job, given the job or the model or tuning job it produced."""
        if model is not None:
            job = self.model(model).job_id
        elif tuning_job is not None:
            job = self.tuning_job(tuning_job).job_id
        if job is None:
            raise ValidationError("task_log needs model=, tuning_job= or job=.")
        return jobs.task_log(self.catalog, int(getattr(job, "id", job)))

    def project_filter(self, project: Any, alias: str) -> tuple[str, list]:
        """SQL `WHERE` text and parameters keeping the rows of one project (all rows for None)."""
        if project is None:
            return "", []
        return f"WHERE {alias}.project_id = ?", [self.project(project).id]


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)) and not data.is_sql_query(str(source)):
        return Path(source).name
    return "DataFrame" if isinstance(source, pd.DataFrame) else "SQL query"
