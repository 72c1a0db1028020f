"""Models: the list with statistics and metrics, selected in the table itself; compare (overall, with
beyond-accuracy metrics and their definitions, and per user segment), activate, retrain and delete the
selection; download any model's signed file in one click."""

from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..errors import ValidationError
from ..retrain import retrain
from .charts import bar_chart
from .controls import section
from .dashboard import Dashboard
from .format import human_size
from .monitor import JobMonitor
from .page import anchor
from .segments import SegmentView, definitions_html, overall
from .tables import DataTable
from .training import download_link, model_card

CUTOFFS = (10, 20)
_METRIC = re.compile(r"^(?:val_)?[a-z_]+@\d+$")
METRIC_ORDER = ("ndcg", "map", "recall", "hit", "precision", "coverage", "novelty", "diversity", "popularity_bias")
# the metrics whose highest value is the best (popularity bias is neither: 0 means as popular as the users' own)
HIGHER_IS_BETTER = METRIC_ORDER[:-1]
# shown at first; the rest (sizes, every other metric, seconds) a click on "Columns" away
DEFAULT_COLUMNS = ["id", "algorithm", "configuration", "status", "active", "ndcg@10", "ndcg@20", "val_ndcg@20",
                   "trained_at", "file", "top-N"]
COMPARISON_METRICS = [f"{metric}@{cutoff}" for cutoff in CUTOFFS for metric in HIGHER_IS_BETTER]
COMPARISON_COLUMNS = ["model_id", "algorithm", "configuration",
                      *(f"{metric}@{max(CUTOFFS)}" for metric in METRIC_ORDER), "fit_seconds"]


def higher_is_better(column: str) -> bool:
    return column.removeprefix("val_").split("@")[0] in HIGHER_IS_BETTER


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns: by metric (nDCG first) and cutoff, validation metrics of tuning last."""
    def key(column: str) -> tuple:
        name, cutoff = column.removeprefix("val_").split("@")
        rank = METRIC_ORDER.index(name) if name in METRIC_ORDER else len(METRIC_ORDER)
        return (column.startswith("val_"), rank, int(cutoff))

    return sorted((str(c) for c in frame.columns if _METRIC.match(str(c))), key=key)


class ModelsDashboard(Dashboard):
    name = "models"
    title = "Models"
    subtitle = "Every trained model of the project. Tick models in the table to compare, activate, retrain or delete them."

    def __init__(self, ws: Any = None, project: Any = None, model: Any = None) -> None:
        super().__init__(ws, project, model)
        w, L = widgets, widgets.Layout
        self.table = DataTable(page_size=15, empty="No model in this project yet: train one in Tuning or Training.",
                               columns=DEFAULT_COLUMNS, html_columns={"file", "top-N"}, selectable=True, key="id")
        self.table.on_select = lambda _: self._selection_changed()
        self.selection_label = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh", layout=L(width="100px"))
        self.compare_button = w.Button(description="Compare", icon="bar-chart", button_style="primary",
                                       tooltip="score the ticked models on one shared held-out split")
        self.activate_button = w.Button(description="Activate", icon="check", tooltip="make it the project's active model")
        self.retrain_button = w.Button(description="Train again", icon="repeat",
                                       tooltip="train the ticked model's configuration on the project's latest data "
                                               "(a new model, not activated)")
        self.gated_button = w.Button(description="Retrain active", icon="shield",
                                     tooltip="retrain the active model's configuration and activate the result only if "
                                             "it beats the active model on the newest interactions (the retraining gate)")
        self.delete_button = w.Button(description="Delete", icon="trash", button_style="danger")
        self.confirm_text = w.HTML()
        self.confirm_button = w.Button(description="Yes, delete", button_style="danger", icon="trash")
        self.cancel_delete_button = w.Button(description="Keep them")
        self.confirm_box = w.HBox([self.confirm_text, self.confirm_button, self.cancel_delete_button],
                                  layout=L(align_items="center"))
        self.confirm_box.layout.display = "none"
        self.pending_delete: list[int] = []
        self.message = self.outcome()
        for button, action in ((self.refresh_button, self.refresh), (self.compare_button, self.compare),
                               (self.activate_button, self.activate), (self.retrain_button, self.retrain),
                               (self.gated_button, self.retrain_active),
                               (self.delete_button, self.ask_delete), (self.confirm_button, self.confirm_delete),
                               (self.cancel_delete_button, self.cancel_delete)):
            self.on_click(button, action, self.message)
        self.monitor = JobMonitor()
        self.monitor.on_error = self.message.error
        self.retrained = w.HTML()
        self.comparison_table = DataTable(page_size=20, empty="Tick models and press Compare.", searchable=False,
                                          columns=COMPARISON_COLUMNS, best=COMPARISON_METRICS)
        self.charts = w.Box(layout=L(display="flex", flex_flow="row wrap"))
        self.definitions = w.HTML()
        self.segments = w.Dropdown(description="By segment", layout=L(width="330px"),
                                   options=[("user activity (light, medium, heavy)", "activity"),
                                            ("new users since a date", "new_since"), ("none", "")],
                                   value="activity", style={"description_width": "80px"})
        self.since = w.Text(description="since", placeholder="e.g. 2024-06-01", layout=L(width="200px", display="none"),
                            style={"description_width": "40px"})
        self.segments.observe(lambda change: setattr(self.since.layout, "display",
                                                     "" if change["new"] == "new_since" else "none"), "value")
        self.segment_view = SegmentView()
        self.comparison: pd.DataFrame | None = None
        self.frame = pd.DataFrame()
        self.body.children = [
            self.table,
            w.HBox([self.selection_label, self.compare_button, self.segments, self.since, self.activate_button,
                    self.retrain_button, self.gated_button, self.delete_button, self.refresh_button],
                   layout=L(align_items="center", flex_flow="row wrap")),
            self.confirm_box, self.message, self.monitor, self.retrained,
            section("Comparison", self.comparison_table, self.charts, self.definitions,
                    note="Each configuration is re-fit on the training part of one shared split and scored on "
                         "the held-out part, so the numbers are comparable. The best is in green."),
            section("Comparison by user segment", self.segment_view,
                    note="The same scores for each group of users (chosen next to Compare): a model that wins on "
                         "average can lose on light or new users."),
        ]
        self.open_page()

    # --- state

    @property
    def current_model(self) -> int | None:
        return self.table.selected[0] if len(self.table.selected) == 1 else None

    def on_project_change(self) -> None:
        self.comparison_table.set_frame(pd.DataFrame())
        self.charts.children = []
        self.definitions.value = self.since.value = ""
        self.segment_view.clear()
        self.table.select()
        self.refresh()

    def refresh(self) -> None:
        if self.ws is None:
            return
        project = self.project
        if project is None:
            self.frame = pd.DataFrame()
            self.table.set_frame(pd.DataFrame())
            return
        frame = self.ws.models(project)
        datasets = self.ws.training_data_sets(project)
        self.frame = frame
        self._suggest_since(datasets)
        self.table.best = [column for column in metric_columns(frame) if higher_is_better(column)]
        self.table.set_frame(self.view(frame, dict(zip(datasets["id"].astype(int), datasets["name"]))))
        if self.wanted_model is not None:
            wanted, self.wanted_model = self.wanted_model, None
            if wanted in set(frame["id"]):
                self.table.select(wanted)
        self._selection_changed()

    def view(self, frame: pd.DataFrame, data_names: dict[int, str]) -> pd.DataFrame:
        """The Models table: the chosen columns, a download link and a link to its recommendations per model."""
        base = ["id", "algorithm", "configuration", "status", "active", "n_users", "n_items", "n_interactions"]
        if not len(frame):
            return pd.DataFrame(columns=base)
        view = frame[[c for c in base if c in frame.columns]].copy()
        if "explained_variance_ratio" in frame.columns:
            view["explained_variance"] = frame["explained_variance_ratio"]
        for column in metric_columns(frame):
            view[column] = frame[column]
        view["trained_on"] = [f"#{int(d)} {data_names.get(int(d), '')}".strip() for d in frame["data"]]
        view["train_seconds"] = frame["train_seconds"]
        view["trained_at"] = frame["trained_at"]
        view["file_size"] = [human_size(s) for s in frame["filesize"]]
        ready = frame["status"].eq("SUCCESS").tolist()
        view["file"] = [download_link(int(i), name, size) if ok else ""
                        for i, name, size, ok in zip(frame["id"], frame["basename"], frame["filesize"], ready)]
        view["top-N"] = [anchor(self.link("recommendations", int(i)), "try") if ok else ""
                       for i, ok in zip(frame["id"], ready)]
        return view

    def _suggest_since(self, datasets: pd.DataFrame) -> None:
        """For "new users since": the middle of the latest data's time span, when it has times."""
        timed = datasets.dropna(subset=["time_min", "time_max"]) if len(datasets) and "time_max" in datasets else []
        if not len(timed) or self.since.value:
            return
        first, last = pd.Timestamp(timed["time_min"].iloc[-1]), pd.Timestamp(timed["time_max"].iloc[-1])
        self.since.value = f"{first + (last - first) / 2:%Y-%m-%d}"
        self.since.tooltip = f"the data's interactions run from {first:%Y-%m-%d} to {last:%Y-%m-%d}"

    def _selection_changed(self) -> None:
        ids = self.table.selected
        self.selection_label.value = (f"<span class='wb-muted'>{len(ids)} selected: "
                                      f"{html.escape(', '.join(f'#{i}' for i in ids))}</span>" if ids else
                                      "<span class='wb-muted'>Tick models in the table:</span>")
        self.update_links()

    def selected(self, at_least: int = 1, at_most: int | None = None) -> list[int]:
        ids = [int(i) for i in self.table.selected]
        if len(ids) < at_least:
            raise ValidationError("Tick a model in the table first." if at_least == 1
                                  else f"Tick at least {at_least} models in the table.")
        if at_most is not None and len(ids) > at_most:
            raise ValidationError(f"Tick just {'one model' if at_most == 1 else f'{at_most} models'} for this.")
        return ids

    def select(self, *model_ids: int) -> None:
        self.table.select(*(int(m) for m in model_ids))

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
        self.confirm_text.value = (f"<b>Delete model{'s' if len(ids) > 1 else ''} {names} and "
                                   f"{'their files' if len(ids) > 1 else 'its file'}?</b> This cannot be undone. ")
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

    def retrain(self) -> Any:
        (model_id,) = self.selected(at_most=1)
        model = self.ws.model(model_id)
        data = self.ws.latest_training_data(model.project_id)
        new = self.ws.train(model.configuration_id, data, background=True, evaluate=True)
        self.message.info(f"Retraining configuration #{model.configuration_id} ({model.algorithm}) of model "
                          f"#{model_id} on training data #{data.id} as model #{new.id}…")
        self.retrained.value = ""
        self.retrain_button.disabled = True
        self.refresh()

        def finished(record: dict) -> None:
            self.retrain_button.disabled = False
            fresh = self.ws.model(new.id)
            self.refresh()
            links = (f"{anchor(self.link('recommendations', new.id), 'Recommendations')}")
            self.retrained.value = model_card(fresh, links)
            if record["status"] == "SUCCESS":
                self.message.success(f"Model #{new.id} retrained from model #{model_id}'s configuration.")
                self.monitor.conclude(f"<b>Produced</b>: model #{new.id} · {links} · "
                                      f"{download_link(fresh.id, fresh.basename, fresh.filesize)}")
            else:
                self.message.error(f"Retraining ended {record['status']}: {record.get('error') or ''}")

        self.monitor.watch(new.job, on_finish=finished)
        return new

    def retrain_active(self, background: bool = True) -> None:
        """`workbench.retrain.retrain` of the project on its latest data: the active model as it is against its
        configuration re-fit before the newest interactions; the report shows here."""
        project = self.project
        if project is None or project.active_model_id is None:
            raise ValidationError("Activate a model first: the gate compares a retrained model with the active one.")
        self.retrained.value = ""

        def done(outcome: Any) -> None:
            self.refresh()
            self.retrained.value = outcome._repr_html_()
            (self.message.success if outcome.activated else self.message.info)(outcome.headline() + ".")

        self.run_background(lambda: retrain(self.ws, project.id), done, outcome=self.message,
                            buttons=[self.gated_button], background=background,
                            message=f"Retraining model #{project.active_model_id}'s configuration on the latest data "
                                    "and scoring both on the newest interactions…")

    def compare(self, background: bool = True) -> None:
        ids = self.selected()
        chosen = self.frame[self.frame["id"].isin(ids)]
        not_ready = chosen[chosen["status"] != "SUCCESS"]["id"].tolist()
        if not_ready:
            raise ValidationError(f"Model #{not_ready[0]} is not trained successfully; it cannot be compared.")

        by = self.segments.value or None
        since = self.since.value.strip() if by == "new_since" else None
        if since == "":
            raise ValidationError("Type a date next to “since” (like 2024-06-01) to compare new users with the rest.")

        def done(frame: pd.DataFrame) -> None:
            self.segment_view.show(frame, f"ndcg@{max(CUTOFFS)}")
            frame = overall(frame)
            self.show_comparison(frame)
            self.refresh()
            self.table.show_columns(*(f"{m}@{c}" for m in ("ndcg", "recall") for c in CUTOFFS))
            self.message.success(f"Compared {len(ids)} model{'s' if len(ids) > 1 else ''} on one shared split: "
                                 f"the best is #{int(frame['model_id'].iloc[0])} {frame['algorithm'].iloc[0]}.")

        self.run_background(lambda: self.ws.compare(ids, cutoffs=CUTOFFS, by=by, since=since), done, self.message, [self.compare_button],
                            f"Comparing {len(ids)} models on one shared split (re-fitting each)…", background)

    def show_comparison(self, frame: pd.DataFrame) -> None:
        """The comparison table and one bar chart per metric (at the largest cutoff; the table has all),
        the best of each highlighted."""
        self.comparison = frame
        self.comparison_table.set_frame(frame)
        labels = [f"#{int(m)} {a}" for m, a in zip(frame["model_id"], frame["algorithm"])]
        cutoff = max(CUTOFFS)
        self.charts.children = [bar_chart(column, labels, frame[column].tolist(), best=higher_is_better(column))
                                for column in metric_columns(frame) if column.endswith(f"@{cutoff}")]
        self.definitions.value = definitions_html(frame.columns)
