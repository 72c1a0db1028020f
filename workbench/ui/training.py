"""Training: pick a configuration (tuned, saved or new from a parameter form) and data; train it live."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import pandas as pd

from .. import algorithms
from ..errors import ValidationError
from ..records import TrainedModel
from ..voila_download import download_url
from .controls import no_null_tooltips, section, set_options
from .dashboard import Dashboard
from .format import human_size, is_missing, record_card
from .monitor import JobMonitor
from .page import anchor

EXISTING, NEW = "existing", "new"
NONE = "(none)"  # a Dropdown shows nothing for the value None
DEFAULT_ALGORITHM = "IALS"


class ParamForm(widgets.VBox):
    """Inputs for one algorithm's parameters, built from its `params_schema()` with its defaults."""

    def __init__(self, algorithm: str, **kwargs: Any) -> None:
        self.algorithm = algorithms.get_algorithm(algorithm)
        self.schema = self.algorithm.params_schema()
        self.inputs: dict[str, widgets.Widget] = {}
        rows = []
        style = {"description_width": "150px"}
        layout = widgets.Layout(width="330px")
        for name, spec in self.schema.items():
            kind, default = spec["type"], spec.get("default")
            if kind == "bool":
                field = widgets.Checkbox(value=bool(default), description=name, style=style, layout=layout, indent=True)
            elif "choices" in spec:
                options = [(NONE if c is None else str(c), NONE if c is None else c) for c in spec["choices"]]
                field = widgets.Dropdown(options=options, value=NONE if default is None else default, description=name,
                                         style=style, layout=layout)
            elif kind in ("int", "float") and not spec.get("nullable") and default is not None:
                cls = widgets.IntText if kind == "int" else widgets.FloatText
                field = cls(value=default, description=name, style=style, layout=layout)
            else:
                field = widgets.Text(value="" if default is None else str(default), description=name, style=style,
                                     layout=layout, placeholder="auto" if spec.get("nullable") else "")
            self.inputs[name] = field
            hints = []
            if spec.get("help"):
                hints.append(spec["help"])
            if "min" in spec and "max" in spec:
                hints.append(f"{spec['min']} to {spec['max']}")
            elif "min" in spec:
                hints.append(f"≥ {spec['min']}")
            elif "max" in spec:
                hints.append(f"≤ {spec['max']}")
            field.tooltip = "; ".join(hints)
            rows.append(widgets.HBox([field, widgets.HTML(f"<span class='wb-muted'>{html.escape('; '.join(hints))}</span>")]))
        if not rows:
            rows.append(widgets.HTML("<span class='wb-muted'>This algorithm has no parameters.</span>"))
        super().__init__(rows, **kwargs)

    def values(self) -> dict[str, Any]:
        """The entered values (empty text = automatic/none), validated by the algorithm registry."""
        params = {}
        for name, field in self.inputs.items():
            value = field.value
            if isinstance(field, widgets.Text):
                value = value.strip() or None
            params[name] = None if value == NONE else value
        return algorithms.resolve_params(self.algorithm, params)

    def set_values(self, params: dict) -> None:
        for name, value in (params or {}).items():
            field = self.inputs.get(name)
            if field is None:
                continue
            if isinstance(field, widgets.Text):
                field.value = "" if value is None else str(value)
            else:
                field.value = NONE if value is None and isinstance(field, widgets.Dropdown) else value


def configuration_label(row: Any) -> str:
    tuned = "" if is_missing(row.tuning_job_id) else f" · tuned by job {int(row.tuning_job_id)}"
    return f"#{row.id} {row.name} · {row.algorithm}{tuned}"


def data_label(row: Any) -> str:
    return f"#{row.id} {row.name} · {int(row.n_rows):,} rows, {int(row.n_users):,} users, {int(row.n_items):,} items"


def download_link(model_id: int, basename: Any, filesize: Any) -> str:
    """A one-click link streaming a model's signed file from the dashboard server (HTML)."""
    name = html.escape(str(basename or f"{model_id}.wbm"))
    return (f"<a href='{html.escape(download_url(model_id), quote=True)}' download='{name}' class='wb-download' "
            f"title='download the signed model file'>⬇ {name} ({human_size(filesize)})</a>")


CARD_METRICS = ("ndcg@10", "ndcg@20", "recall@20", "coverage@20")  # the scores a model's card shows


def model_card(model: TrainedModel, links: str = "") -> str:
    """A trained model's record (HTML): statistics, key held-out scores, its file and `links` (HTML)."""
    metrics = model.metrics or {}
    fields = {
        "id": model.id, "status": model.status, "algorithm": model.algorithm,
        "configuration": f"#{model.configuration_id} {model.configuration}",
        "params": model.params,
        "trained on": f"training data #{model.training_data_id}",
        **{name: value for name, value in metrics.items() if name in CARD_METRICS or name.startswith("val_")},
        "users × items": f"{model.n_users or 0:,} × {model.n_items or 0:,}",
        "interactions": f"{model.n_interactions or 0:,}",
        "train_seconds": model.train_seconds,
        **(model.stats or {}),
        "file": download_link(model.id, model.basename, model.filesize) if model.status == "SUCCESS" else "",
        "trained_at": model.ins_datetime,
    }
    card = record_card(f"Model #{model.id}", fields, html_fields={"file"})
    return card + (f"<div style='margin-top:6px'>{links}</div>" if links else "")


class TrainingDashboard(Dashboard):
    name = "training"
    title = "Training"
    subtitle = "Train a configuration on a training data set into a signed model file."

    def __init__(self, ws: Any = None, project: Any = None) -> None:
        super().__init__(ws, project)
        w, L = widgets, widgets.Layout
        self.mode = w.ToggleButtons(options=[("Saved or tuned configuration", EXISTING), ("New configuration", NEW)],
                                    value=EXISTING, style={"button_width": "220px"})
        self.configuration = w.Dropdown(description="Configuration", options=[], layout=L(width="560px"),
                                        style={"description_width": "100px"})
        self.configuration_info = w.HTML()
        self.algorithm = w.Dropdown(description="Algorithm", options=algorithms.list_algorithms(),
                                    value=DEFAULT_ALGORITHM, layout=L(width="330px"), style={"description_width": "100px"})
        self.algorithm_info = w.HTML()
        self.config_name = w.Text(description="Name", placeholder="(algorithm name)", layout=L(width="330px"),
                                  style={"description_width": "100px"})
        self.form_box = w.VBox()
        self.form: ParamForm | None = None
        self.existing_box = w.VBox([self.configuration, self.configuration_info])
        self.new_box = w.VBox([w.HBox([self.algorithm, self.algorithm_info]), self.config_name, self.form_box])
        self.data = w.Dropdown(description="Training data", options=[], layout=L(width="560px"),
                               style={"description_width": "100px"})
        self.evaluate = w.Checkbox(value=True, indent=False, layout=L(width="auto"),
                                   description="Score it on a held-out split first (training takes about twice as long)")
        self.start_button = w.Button(description="Start Training", icon="play", button_style="primary",
                                     layout=L(width="160px"))
        self.message = self.outcome()
        self.on_click(self.start_button, self.start, self.message)
        self.monitor = JobMonitor()
        self.monitor.on_error = self.message.error
        self.result = w.HTML()
        self.model: TrainedModel | None = None
        self.mode.observe(self.guard(lambda _: self._show_mode()), "value")
        self.algorithm.observe(self.guard(lambda _: self._build_form()), "value")
        self.configuration.observe(self.guard(lambda _: self._show_configuration()), "value")
        self.body.children = [
            section("Configuration", self.mode, self.existing_box, self.new_box),
            section("Training data", self.data, self.evaluate),
            w.HBox([self.start_button]), self.message, self.monitor, self.result,
        ]
        self._build_form()
        self.open_page()

    @property
    def current_model(self) -> int | None:
        return self.model.id if self.model is not None else None

    def refresh(self) -> None:
        if self.ws is None:
            return
        project = self.project
        configs = self.ws.configurations(project) if project is not None else pd.DataFrame()
        datasets = self.ws.training_data_sets(project) if project is not None else pd.DataFrame()
        options = [(configuration_label(r), int(r.id)) for r in configs.iloc[::-1].itertuples(index=False)]
        set_options(self.configuration, options)
        options = [(data_label(r), int(r.id)) for r in datasets.iloc[::-1].itertuples(index=False)]
        set_options(self.data, options)
        if not len(configs) and self.mode.value == EXISTING:
            self.mode.value = NEW
        self._show_mode()
        self._show_configuration()
        if project is not None and not len(datasets):
            self.message.info("This project has no training data yet: import some in the Data dashboard.")

    def _show_mode(self) -> None:
        self.existing_box.layout.display = "" if self.mode.value == EXISTING else "none"
        self.new_box.layout.display = "" if self.mode.value == NEW else "none"

    def _show_configuration(self) -> None:
        if self.configuration.value is None:
            self.configuration_info.value = "<span class='wb-muted'>No saved configuration yet: make a new one, or tune.</span>"
            return
        config = self.ws.configuration(self.configuration.value)
        params = ", ".join(f"{k}={v}" for k, v in (config.params or {}).items()) or "defaults"
        self.configuration_info.value = f"<span class='wb-muted'>{html.escape(config.algorithm)}: {html.escape(params)}</span>"

    def _build_form(self) -> None:
        self.form = ParamForm(self.algorithm.value)
        no_null_tooltips(self.form)
        self.form_box.children = [self.form]
        self.algorithm_info.value = f"<span class='wb-muted'>{html.escape(self.form.algorithm.description)}</span>"

    # --- actions

    def chosen_configuration(self) -> Any:
        """The configuration to train: the chosen saved one, or a new one made from the form."""
        project = self.project
        if project is None:
            raise ValidationError("Create a project and import training data in the Data dashboard first.")
        if self.mode.value == EXISTING:
            if self.configuration.value is None:
                raise ValidationError("Choose a configuration, or switch to New configuration.")
            return self.ws.configuration(self.configuration.value)
        params = self.form.values()
        return self.ws.create_configuration(project, self.algorithm.value, params,
                                            name=self.config_name.value.strip() or None)

    def start(self, background: bool = True) -> Any:
        """Start training in a worker process and follow it; returns the (pending) model record."""
        self.result.value = ""
        if self.data.value is None:
            raise ValidationError("Choose training data (import some in the Data dashboard).")
        config = self.chosen_configuration()
        model = self.ws.train(config, self.data.value, background=background, evaluate=bool(self.evaluate.value))
        self.model = model
        self.message.info(f"Training model #{model.id} ({config.algorithm}, configuration #{config.id})…")
        self.start_button.disabled = True
        if self.mode.value == NEW:
            self.refresh()
        self.monitor.watch(model.job, on_finish=self._finished)
        return model

    def _finished(self, record: dict) -> None:
        self.start_button.disabled = False
        model = self.ws.model(self.model.id)
        self.model = model
        self.update_links()
        if record["status"] != "SUCCESS":
            self.result.value = model_card(model)
            self.message.error(f"Training of model #{model.id} ended {record['status']}: {record.get('error') or ''}")
            return
        links = (f"{anchor(self.link('models', model.id), 'Models')} · "
                 f"{anchor(self.link('recommendations', model.id), 'Recommendations')}")
        self.result.value = model_card(model, links)
        score = model.metrics.get("ndcg@20")
        scored = f" Held-out ndcg@20: {score:.4f}." if score is not None else ""
        self.message.success(f"Model #{model.id} is trained.{scored} See it in Models and Recommendations.")
        self.monitor.conclude(f"<b>Produced</b>: model #{model.id} ({html.escape(model.algorithm)}){html.escape(scored)} "
                              f"{links} · {download_link(model.id, model.basename, model.filesize)}")
