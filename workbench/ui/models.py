"""Models: the list with statistics and metrics; compare, activate, download, retrain and delete."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..errors import ValidationError
from .common import Banner, Dashboard, DataTable, JobMonitor, bar_chart, html_table, human_size, section, set_options
from .training import model_card

CUTOFFS = (10, 20)
DOWNLOAD_LIMIT = 25 * 1024 * 1024  # larger files are exported to a path, not sent to the browser
_METRIC = re.compile(r"^(?:val_)?[a-z]+@\d+$")
BASE_COLUMNS = ["id", "algorithm", "configuration", "status", "active", "n_users", "n_items", "n_interactions"]


METRIC_ORDER = ("ndcg", "map", "recall", "hit", "precision", "coverage")


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns: validation metrics of tuning last, then by metric (nDCG first) and cutoff."""
    def key(column: str) -> tuple:
        name, cutoff = column.removeprefix("val_").split("@")
        rank = METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
        return (column.startswith("val_"), rank, int(cutoff))

    return sorted((str(c) for c in frame.columns if _METRIC.match(str(c))), key=key)


def models_view(frame: pd.DataFrame, data_names: dict[int, str]) -> pd.DataFrame:
    """The columns the Models table shows, in order."""
    if not len(frame):
        return pd.DataFrame(columns=BASE_COLUMNS)
    view = frame[[c for c in BASE_COLUMNS if c in frame.columns]].copy()
    if "explained_variance_ratio" in frame.columns:
        view["explained_variance"] = frame["explained_variance_ratio"]
    for column in metric_columns(frame):
        view[column] = frame[column]
    view["trained_on"] = [f"#{int(d)} {data_names.get(int(d), '')}".strip() for d in frame["data"]]
    view["train_seconds"] = frame["train_seconds"]
    view["trained_at"] = frame["trained_at"]
    view["file_size"] = [human_size(s) for s in frame["filesize"]]
    return view


def selection_label(row: Any) -> str:
    flags = [row.status] + (["active"] if bool(row.active) else [])
    return f"#{row.id} {row.algorithm} · {row.configuration} · {', '.join(flags)}"


class ModelsDashboard(Dashboard):
    name = "models"
    title = "Models"
    subtitle = "Every trained model of the project. Select some to compare, activate, download, retrain or delete."

    def __init__(self, ws: Any = None, project: Any = None) -> None:
        super().__init__(ws, project)
        w, L = widgets, widgets.Layout
        self.table = DataTable(page_size=15, empty="No model in this project yet: train one in Tuning or Training.")
        self.selection = w.SelectMultiple(options=[], rows=8, layout=L(width="560px"), description="Selected",
                                          style={"description_width": "70px"})
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=L(width="100px"))
        self.compare_button = w.Button(description="Compare", icon="bar-chart", button_style="primary",
                                       tooltip="evaluate the selected models on one shared held-out split")
        self.activate_button = w.Button(description="Activate", icon="check", tooltip="make it the project's active model")
        self.download_button = w.Button(description="Download", icon="download", tooltip="export the signed model file")
        self.retrain_button = w.Button(description="Retrain", icon="repeat",
                                       tooltip="train the same configuration on the project's latest data")
        self.delete_button = w.Button(description="Delete", icon="trash", button_style="danger")
        self.confirm_text = w.HTML()
        self.confirm_button = w.Button(description="Yes, delete", button_style="danger", icon="trash")
        self.cancel_delete_button = w.Button(description="Keep them")
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_button, self.cancel_delete_button],
                                  layout=L(align_items="center"))
        self.confirm_box.layout.display = "none"
        self.pending_delete: list[int] = []
        for button, action in ((self.refresh_button, self.refresh), (self.compare_button, self.compare),
                               (self.activate_button, self.activate), (self.download_button, self.download),
                               (self.retrain_button, self.retrain), (self.delete_button, self.ask_delete),
                               (self.confirm_button, self.confirm_delete), (self.cancel_delete_button, self.cancel_delete)):
            button.on_click(self.guard(lambda _, action=action: action()))
        self.message = Banner()
        self.download_link = w.HTML()
        self.monitor = JobMonitor()
        self.monitor.on_error = self.banner.error
        self.retrained = w.HTML()
        self.comparison_table = w.HTML()
        self.charts = w.Box(layout=L(display="flex", flex_flow="row wrap"))
        self.comparison: pd.DataFrame | None = None
        self.frame = pd.DataFrame()
        self.body.children = [
            self.table,
            section("Actions", self.selection,
                    w.HBox([self.compare_button, self.activate_button, self.download_button, self.retrain_button,
                            self.delete_button, self.refresh_button]),
                    self.confirm_box, self.message, self.download_link, self.monitor, self.retrained),
            section("Comparison", self.comparison_table, self.charts,
                    note="Each configuration is re-fit on the training part of one shared split and scored on "
                         "the held-out part, so the numbers are comparable."),
        ]
        self.guard(self.refresh)()  # an unreadable catalog shows as a message, not a traceback

    # --- state

    def on_project_change(self) -> None:
        self.comparison_table.value = ""
        self.charts.children = []
        self.refresh()

    def refresh(self) -> None:
        if self.ws is None:
            return
        project = self.project
        if project is None:
            self.frame = pd.DataFrame()
            self.table.set_frame(pd.DataFrame())
            set_options(self.selection, [])
            return
        frame = self.ws.models(project)
        datasets = self.ws.training_data_sets(project)
        names = dict(zip(datasets["id"].astype(int), datasets["name"]))
        self.frame = frame
        self.table.set_frame(models_view(frame, names))
        options = [(selection_label(r), int(r.id)) for r in frame.itertuples(index=False)]
        set_options(self.selection, options)

    def selected(self, at_least: int = 1, at_most: int | None = None) -> list[int]:
        ids = list(self.selection.value)
        if len(ids) < at_least:
            raise ValidationError("Select a model in the list first." if at_least == 1
                                  else f"Select at least {at_least} models.")
        if at_most is not None and len(ids) > at_most:
            raise ValidationError(f"Select just {'one model' if at_most == 1 else f'{at_most} models'} for this.")
        return ids

    def select(self, *model_ids: int) -> None:
        self.selection.value = tuple(int(m) for m in model_ids)

    # --- actions

    def activate(self) -> None:
        (model_id,) = self.selected(at_most=1)
        model = self.ws.activate(model_id)
        self.refresh()
        self.message.success(f"Model #{model.id} is now the active model of project {model.project!r}.")

    def ask_delete(self) -> None:
        ids = self.selected()
        active = [m for m in ids if bool(self.frame.loc[self.frame["id"] == m, "active"].any())]
        if active:
            raise ValidationError(f"Model #{active[0]} is the active model: activate another model before deleting it.")
        self.pending_delete = ids
        names = ", ".join(f"#{m}" for m in ids)
        self.confirm_text.value = f"<b>Delete model{'s' if len(ids) > 1 else ''} {names} and {'their files' if len(ids) > 1 else 'its file'}?</b> This cannot be undone. "
        self.confirm_box.layout.display = ""

    def cancel_delete(self) -> None:
        self.pending_delete = []
        self.confirm_box.layout.display = "none"

    def confirm_delete(self) -> None:
        ids, self.pending_delete = self.pending_delete, []
        self.confirm_box.layout.display = "none"
        deleted = []
        try:
            for model_id in ids:
                self.ws.delete_model(model_id)
                deleted.append(model_id)
        finally:
            self.refresh()
        self.message.success(f"Deleted model{'s' if len(deleted) > 1 else ''} {', '.join(f'#{m}' for m in deleted)}.")

    def download(self) -> Path:
        (model_id,) = self.selected(at_most=1)
        folder = Path(self.ws.home) / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        path = self.ws.export_model(model_id, folder)
        size = path.stat().st_size
        if size <= DOWNLOAD_LIMIT:
            data = base64.b64encode(path.read_bytes()).decode()
            link = (f"<a download='{html.escape(path.name)}' href='data:application/octet-stream;base64,{data}' "
                    f"class='wb-download'>⬇ Save {html.escape(path.name)} ({human_size(size)})</a>")
        else:
            link = "<span class='wb-muted'>(too large to send through the page: copy it from the server)</span>"
        self.download_link.value = (f"<div class='wb-card'>{link}<br><span class='wb-muted'>Exported to "
                                    f"{html.escape(str(path))}; verify with <code>ws.inspect_model_file(path)</code>."
                                    f"</span></div>")
        self.message.success(f"Model #{model_id} exported.")
        return path

    def retrain(self) -> Any:
        (model_id,) = self.selected(at_most=1)
        model = self.ws.model(model_id)
        data = self.ws.latest_training_data(model.project_id)
        new = self.ws.train(model.configuration_id, data, background=True)
        self.message.info(f"Retraining configuration #{model.configuration_id} ({model.algorithm}) of model "
                          f"#{model_id} on training data #{data.id} as model #{new.id}…")
        self.retrained.value = ""
        self.retrain_button.disabled = True
        self.refresh()

        def finished(record: dict) -> None:
            self.retrain_button.disabled = False
            fresh = self.ws.model(new.id)
            self.refresh()
            self.retrained.value = model_card(fresh)
            if record["status"] == "SUCCESS":
                self.message.success(f"Model #{new.id} retrained from model #{model_id}'s configuration.")
            else:
                self.message.error(f"Retraining ended {record['status']}: {record.get('error') or ''}")

        self.monitor.watch(new.job, on_finish=finished)
        return new

    def compare(self, background: bool = True) -> None:
        ids = self.selected()
        ok = self.frame[self.frame["id"].isin(ids)]
        not_ready = ok[ok["status"] != "SUCCESS"]["id"].tolist()
        if not_ready:
            raise ValidationError(f"Model #{not_ready[0]} is not trained successfully; it cannot be compared.")

        def work() -> pd.DataFrame:
            return self.ws.compare(ids, cutoffs=CUTOFFS)

        def done(frame: pd.DataFrame) -> None:
            self.show_comparison(frame)
            self.refresh()
            self.message.success(f"Compared {len(ids)} model{'s' if len(ids) > 1 else ''} on one shared split.")

        if background:
            self.run_background(work, done, buttons=[self.compare_button],
                                message=f"Comparing {len(ids)} models on one shared split (re-fitting each)…")
        else:
            done(work())

    def show_comparison(self, frame: pd.DataFrame) -> None:
        """The comparison table and one bar chart per metric (at the largest cutoff; the table has all)."""
        self.comparison = frame
        self.comparison_table.value = html_table(frame)
        labels = [f"#{int(m)} {a}" for m, a in zip(frame["model_id"], frame["algorithm"])]
        cutoff = max(CUTOFFS)
        charts = [bar_chart(column, labels, frame[column].tolist())
                  for column in frame.columns if str(column).endswith(f"@{cutoff}")]
        self.charts.children = charts
