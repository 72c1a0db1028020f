"""Data: create projects, import interactions (upload, path or SQL) and item metadata."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..data import is_sql_query
from ..errors import ValidationError
from .controls import FileChooser, section
from .dashboard import Dashboard
from .files import UPLOADS, data_folders, data_path, save_upload
from .format import html_table
from .page import anchor
from .tables import DataTable

AUTO = "auto"  # a Dropdown shows nothing for the value None, so "auto" stands for it
NONE = "(none)"
DELIMITERS = [("auto", AUTO), ("comma ,", ","), ("tab", "\t"), ("semicolon ;", ";"), ("pipe |", "|"), ("::", "::")]
INTERACTION_FILES = ".csv,.tsv,.dat,.txt,.gz,.parquet,.pq,.json,.ndjson,.jsonl"
METADATA_FILES = ".csv,.tsv,.gz,.parquet,.json,.ndjson,.jsonl"
DATA_COLUMNS = ["id", "name", "n_rows", "n_users", "n_items", "per_user", "density", "time_min", "time_max",
                "source", "fingerprint", "created_at"]


def _auto(value: str | None) -> str | None:
    return None if value in (None, AUTO) else value


def column_mapping(mapping: dict[str, str | None], target: dict[str, str | None]) -> dict[str, str]:
    """The `columns=` option of an import: the chosen source column (`mapping`) of each role the
    project uses (`target`: role -> the project's column), where the two differ."""
    roles = [role for role in ("user", "item", "time") if target.get(role)]
    missing = [target[role] for role in roles if not mapping.get(role)]
    if missing:
        raise ValidationError(f"Choose the source column for {', '.join(map(repr, missing))}.")
    return {role: mapping[role] for role in roles if mapping[role] != target[role]}


class DataDashboard(Dashboard):
    name = "data"
    title = "Data"
    subtitle = "Projects, interaction logs and item metadata."

    def __init__(self, ws: Any = None, project: Any = None) -> None:
        super().__init__(ws, project)
        w, L = widgets, widgets.Layout
        narrow = {"description_width": "90px"}
        # new project: the first thing a new user does, so above everything else
        self.new_name = w.Text(description="Name", placeholder="movies", layout=L(width="220px"),
                               style={"description_width": "50px"})
        self.new_user = w.Text(description="User column", value="user_id", layout=L(width="220px"), style=narrow)
        self.new_item = w.Text(description="Item column", value="item_id", layout=L(width="220px"), style=narrow)
        self.new_time = w.Text(description="Time column", value="", placeholder="optional", layout=L(width="220px"),
                               style=narrow)
        self.create_button = w.Button(description="Create project", icon="plus", button_style="primary")
        self.project_message = self.outcome()
        self.on_click(self.create_button, self.create_project, self.project_message)
        self.intro.children = [section(
            "New project", w.HBox([self.new_name, self.new_user, self.new_item, self.new_time, self.create_button],
                                  layout=L(flex_flow="row wrap", align_items="center")),
            self.project_message, note="The names of the user, item and (optional) time columns of its data.")]
        self.project_info = w.HTML()

        # training data source
        self.upload = FileChooser(INTERACTION_FILES, tooltip="Choose a CSV, TSV, Parquet or JSON file to upload")
        self.path = w.Text(placeholder="imports/ratings.csv (CSV, TSV, ::, Parquet, JSON, NDJSON, .gz)",
                           layout=L(width="560px"))
        self.folders_note = w.HTML()
        self.sql = w.Textarea(placeholder="SELECT user_id, item_id, ts FROM read_parquet('imports/logs/*.parquet')",
                              layout=L(width="560px", height="70px"))
        self.source_tabs = w.Tab(children=[w.VBox([self.upload]), w.VBox([self.path, self.folders_note]),
                                           w.VBox([self.sql])])
        for i, label in enumerate(("Upload", "Path", "SQL query")):
            self.source_tabs.set_title(i, label)
        self.source_tabs.selected_index = 0
        self.data_name = w.Text(description="Name", placeholder="(file name)", layout=L(width="300px"))
        self.delimiter = w.Dropdown(description="Delimiter", options=DELIMITERS, value=AUTO, layout=L(width="220px"))
        self.null_ids = w.Dropdown(description="Empty ids", options=["drop", "reject"], value="drop", layout=L(width="220px"))
        self.duplicates = w.Dropdown(description="Duplicates", options=["keep", "last"], value="keep", layout=L(width="220px"))
        self.time_unit = w.Dropdown(description="Time unit", options=[("auto", AUTO), ("seconds", "s"), ("milliseconds", "ms")],
                                    value=AUTO, layout=L(width="220px"))
        self.map_user = w.Dropdown(description="user ←", options=[NONE], layout=L(width="260px"))
        self.map_item = w.Dropdown(description="item ←", options=[NONE], layout=L(width="260px"))
        self.map_time = w.Dropdown(description="time ←", options=[NONE], layout=L(width="260px"))
        self.mapping_box = w.VBox([w.HTML("<b>Column mapping</b> <span class='wb-muted'>(source column for each "
                                          "of the project's columns)</span>"),
                                   w.HBox([self.map_user, self.map_item, self.map_time])])
        self.mapping_box.layout.display = "none"
        self.preview_button = w.Button(description="Preview", icon="eye")
        self.import_button = w.Button(description="Import", icon="upload", button_style="primary")
        self.import_message = self.outcome()
        self.on_click(self.preview_button, self.preview, self.import_message)
        self.on_click(self.import_button, self.import_data, self.import_message)
        self.preview_html = w.HTML(layout=L(max_width="100%"))
        self.preview_frame = pd.DataFrame()
        import_box = w.VBox([
            self.source_tabs,
            w.HBox([self.data_name, self.delimiter]),
            w.HBox([self.null_ids, self.duplicates, self.time_unit]),
            w.HBox([self.preview_button, self.import_button]),
            self.import_message, self.mapping_box, self.preview_html,
        ])

        # item metadata
        self.meta_upload = FileChooser(METADATA_FILES, tooltip="Choose the item table (CSV, Parquet or JSON) to upload")
        self.meta_path = w.Text(placeholder="or a path: imports/items.csv", layout=L(width="420px"))
        self.meta_item_column = w.Text(description="Item column", layout=L(width="260px"), style=narrow)
        self.meta_button = w.Button(description="Import metadata", icon="upload", button_style="primary")
        self.meta_message = self.outcome()
        self.on_click(self.meta_button, self.import_metadata, self.meta_message)
        self.meta_info = w.HTML(layout=L(max_width="100%"))
        meta_box = w.VBox([w.HBox([self.meta_upload, self.meta_path]), w.HBox([self.meta_item_column, self.meta_button]),
                           self.meta_message, self.meta_info])

        self.table = DataTable(page_size=15, empty="No training data in this project yet.",
                               columns=["id", "name", "n_rows", "n_users", "n_items", "per_user", "time_max", "source"])
        self.body.children = [
            self.project_info,
            section("Import training data", import_box,
                    note="Upload a file, give the path of a file in a folder for data, or write a DuckDB query. "
                         "Preview shows the first rows."),
            section("Training data", self.table),
            section("Item metadata", meta_box, note="One row per item: titles, genres... shown beside recommendations."),
        ]
        self.open_page()

    # --- state

    def refresh(self) -> None:
        if self.ws is None:
            return
        folders = ", ".join(f"<code>{html.escape(str(f))}</code>" for f in data_folders(self.ws))
        self.folders_note.value = (f"<span class='wb-muted'>Files in {folders} (never the workspace's data/ or "
                                   f"models/); uploads go to <code>{html.escape(str(UPLOADS))}/</code>. Relative "
                                   f"paths start at <code>{html.escape(str(self.ws.home))}</code>.</span>")
        project = self.project
        if project is None:
            self.project_info.value = "<span class='wb-muted'>No project yet: create one above.</span>"
            self.table.set_frame(pd.DataFrame())
            self.meta_info.value = ""
            return
        self.project_info.value = (
            f"<span class='wb-muted'>Columns of project <b>{html.escape(project.name)}</b>: user "
            f"<code>{html.escape(project.user_column)}</code>, item <code>{html.escape(project.item_column)}</code>"
            + (f", time <code>{html.escape(project.time_column)}</code>" if project.time_column else ", no time")
            + "</span>"
        )
        self.meta_item_column.value = project.item_column
        frame = self.ws.training_data_sets(project)
        if len(frame):
            frame = frame.assign(
                per_user=(frame["n_rows"] / frame["n_users"].clip(lower=1)).round(1),
                density=frame["n_rows"] / (frame["n_users"] * frame["n_items"]).clip(lower=1),
            )[DATA_COLUMNS].iloc[::-1]
            frame["fingerprint"] = frame["fingerprint"].str[:12]
        self.table.set_frame(frame)
        self._show_metadata()

    def _show_metadata(self) -> None:
        record = self.ws.latest_item_metadata(self.project)
        if record is None:
            self.meta_info.value = "<span class='wb-muted'>No item metadata yet.</span>"
            return
        frame = self.ws.item_metadata_frame(record)
        self.meta_info.value = (
            f"<div>Latest: <b>#{record.id}</b> {record.n_rows:,} items, columns "
            f"{html.escape(', '.join(map(str, record.columns)))} <span class='wb-muted'>from "
            f"{html.escape(str(record.source))}</span></div>" + html_table(frame, max_rows=5, noun="items")
        )

    # --- actions

    def create_project(self) -> Any:
        project = self.ws.create_project(self.new_name.value.strip(), self.new_user.value.strip(),
                                         self.new_item.value.strip(), self.new_time.value.strip() or None)
        self.refresh_projects(select=project.id)
        self.refresh()
        self.update_links()
        self.project_message.success(f"Created project {project.name!r}: now import its training data below.")
        return project

    def _source(self) -> tuple[str, str]:
        """(what to read, a default name): a saved upload, a file in a data folder, or a query."""
        tab = self.source_tabs.selected_index
        if tab == 0:
            chosen = self.upload.file
            if chosen is None:
                raise ValidationError("Choose a file to upload first.")
            return str(save_upload(self.ws, chosen)), str(chosen.get("name"))
        if tab == 1:
            text = self.path.value.strip()
            if not text:
                raise ValidationError("Give the path of a file in a folder for data first.")
            path = data_path(self.ws, text)
            return str(path), path.name
        text = self.sql.value.strip()
        if not text:
            raise ValidationError("Write a SQL query first.")
        if not is_sql_query(text):
            raise ValidationError("A query starts with SELECT, WITH or FROM.")
        return text, "SQL query"

    def preview(self) -> pd.DataFrame | None:
        self.preview_html.value = ""
        source, _ = self._source()
        frame = self.ws.preview(source, delimiter=_auto(self.delimiter.value)).rows
        self.preview_frame = frame
        self.preview_html.value = (f"<div class='wb-muted'>First {len(frame)} rows, {len(frame.columns)} columns</div>"
                                   + html_table(frame))
        self._offer_mapping(list(map(str, frame.columns)))
        return frame

    def _offer_mapping(self, columns: list[str]) -> None:
        project = self.project
        if project is None:
            return
        for dropdown, wanted in ((self.map_user, project.user_column), (self.map_item, project.item_column),
                                 (self.map_time, project.time_column)):
            dropdown.options = [NONE] + columns
            dropdown.value = wanted if wanted in columns else NONE
            dropdown.disabled = wanted is None
        self.mapping_box.layout.display = ""

    def _mapping(self) -> dict[str, str | None]:
        value = lambda d: None if d.value in (None, NONE) else d.value  # noqa: E731
        return {"user": value(self.map_user), "item": value(self.map_item), "time": value(self.map_time)}

    def import_data(self, background: bool = True) -> None:
        project = self.project
        if project is None:
            raise ValidationError("Create or choose a project first.")
        source, default_name = self._source()
        columns = None
        if self.mapping_box.layout.display != "none":
            target = {"user": project.user_column, "item": project.item_column, "time": project.time_column}
            columns = column_mapping(self._mapping(), target) or None
        options = {"delimiter": _auto(self.delimiter.value), "null_ids": self.null_ids.value,
                   "duplicates": self.duplicates.value, "time_unit": _auto(self.time_unit.value), "columns": columns}
        options = {k: v for k, v in options.items() if v is not None}
        name = self.data_name.value.strip() or default_name

        def done(record: Any) -> None:
            self.refresh()
            self.import_message.success(
                f"Imported training data #{record.id} {record.name!r}: {record.n_rows:,} interactions, "
                f"{record.n_users:,} users, {record.n_items:,} items. Next: tune or train on it.",
                html_message=(f"Imported training data #{record.id} {html.escape(repr(record.name))}: "
                              f"{record.n_rows:,} interactions, {record.n_users:,} users, {record.n_items:,} items. "
                              f"Next: {anchor(self.link('tuning'), 'Tuning')} or "
                              f"{anchor(self.link('training'), 'Training')}."))

        self.run_background(lambda: self.ws.import_training_data(project, source, name=name, **options), done,
                            self.import_message, [self.import_button, self.preview_button], "Importing…", background)

    def import_metadata(self, background: bool = True) -> None:
        project = self.project
        if project is None:
            raise ValidationError("Create or choose a project first.")
        if self.meta_upload.file is not None:
            source = str(save_upload(self.ws, self.meta_upload.file))
        elif self.meta_path.value.strip():
            source = str(data_path(self.ws, self.meta_path.value))
        else:
            raise ValidationError("Choose a file to upload or give a path first.")
        column = self.meta_item_column.value.strip() or None

        def done(record: Any) -> None:
            self._show_metadata()
            self.meta_message.success(f"Imported item metadata #{record.id}: {record.n_rows:,} items.")

        self.run_background(lambda: self.ws.import_item_metadata(project, source, item_column=column), done,
                            self.meta_message, [self.meta_button], "Importing…", background)
