"""Tuning: search algorithms and parameters on a held-out split, live, and train the best."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .. import algorithms
from ..evaluation import SCHEMES
from ..tuning import METRICS
from .common import Banner, Dashboard, DataTable, JobMonitor, line_chart, section, set_options
from .training import data_label


def best_so_far(trials: pd.DataFrame) -> tuple[list[int], list[float], list[int], list[float]]:
    """(x, best-so-far) of the completed trials in the order they ended, and (x, score) of each."""
    done = trials[trials["state"].astype(str).str.upper().eq("COMPLETE") & trials["score"].notna()] if len(trials) else trials
    if not len(done):
        return [], [], [], []
    x = list(range(1, len(done) + 1))
    scores = [float(s) for s in done["score"]]
    best = list(np.maximum.accumulate(scores))
    return x, best, x, scores


class TuningDashboard(Dashboard):
    name = "tuning"
    title = "Tuning"
    subtitle = "Optuna search across algorithms on a held-out split; the best configuration is trained on all the data."

    def __init__(self, ws: Any = None, project: Any = None) -> None:
        super().__init__(ws, project)
        w, L = widgets, widgets.Layout
        wide = {"description_width": "120px"}
        self.data = w.Dropdown(description="Training data", options=[], layout=L(width="560px"), style=wide)
        self.algorithms = w.SelectMultiple(description="Algorithms", options=algorithms.list_algorithms(),
                                           value=list(algorithms.DEFAULT_PORTFOLIO), rows=8,
                                           layout=L(width="340px"), style=wide)
        self.n_trials = w.BoundedIntText(description="Trials", value=20, min=1, max=10000, layout=L(width="220px"), style=wide)
        self.timeout = w.BoundedIntText(description="Time budget (s)", value=300, min=0, max=7 * 24 * 3600,
                                        layout=L(width="220px"), style=wide)
        self.metric = w.Dropdown(description="Metric", options=list(METRICS), value="ndcg", layout=L(width="220px"), style=wide)
        self.cutoff = w.BoundedIntText(description="Cutoff", value=20, min=1, max=1000, layout=L(width="220px"), style=wide)
        self.scheme = w.Dropdown(description="Split", options=list(SCHEMES), value="random", layout=L(width="220px"), style=wide)
        self.heldout = w.BoundedFloatText(description="Held-out ratio", value=0.2, min=0.01, max=0.99, step=0.05,
                                          layout=L(width="220px"), style=wide)
        self.val_users = w.BoundedFloatText(description="Validation users", value=0.2, min=0.01, max=1.0, step=0.05,
                                            layout=L(width="220px"), style=wide)
        self.train_after = w.Checkbox(description="Train the best configuration afterwards", value=True, indent=False)
        self.start_button = w.Button(description="Start tuning", icon="play", button_style="primary", layout=L(width="160px"))
        self.start_button.on_click(self.guard(lambda _: self.start()))
        self.message = Banner()
        self.monitor = JobMonitor(interval=0.7)
        self.monitor.on_error = self.banner.error
        self.figure, self.best_line, self.trial_points = line_chart("Best so far", "completed trial", "score")
        self.trials_table = DataTable(page_size=10, empty="No trials yet.")
        self.outcome = w.HTML()
        self.history = DataTable(page_size=5, empty="No tuning job in this project yet.")
        self.tuning_job: Any = None
        self.n_trials_seen = 0
        self.body.children = [
            section("Search", w.HBox([
                w.VBox([self.data, self.algorithms]),
                w.VBox([self.n_trials, self.timeout, self.metric, self.cutoff]),
                w.VBox([self.scheme, self.heldout, self.val_users]),
            ]), self.train_after, w.HBox([self.start_button])),
            self.message, self.monitor,
            w.HBox([self.figure, w.VBox([self.outcome], layout=L(margin="30px 0 0 10px"))]),
            section("Trials", self.trials_table),
            section("Earlier tuning jobs", self.history),
        ]
        self.guard(self.refresh)()  # an unreadable catalog shows as a message, not a traceback


    def refresh(self) -> None:
        if self.ws is None:
            return
        project = self.project
        datasets = self.ws.training_data_sets(project) if project is not None else pd.DataFrame()
        options = [(data_label(r), int(r.id)) for r in datasets.iloc[::-1].itertuples(index=False)]
        set_options(self.data, options)
        history = self.ws.tuning_jobs(project) if project is not None else pd.DataFrame()
        self.history.set_frame(history)
        if not self.monitor.running:
            if len(history):
                self.show_job(int(history["id"].iloc[0]))
            else:
                self.tuning_job = None
                self.outcome.value = ""
                self.best_line.x, self.best_line.y, self.trial_points.x, self.trial_points.y = [], [], [], []
                self.trials_table.set_frame(pd.DataFrame())

    def split(self) -> dict:
        return {"scheme": self.scheme.value, "heldout_ratio": float(self.heldout.value),
                "val_user_ratio": float(self.val_users.value)}

    def start(self, background: bool = True) -> Any:
        self.message.clear()
        self.outcome.value = ""
        if self.data.value is None:
            self.message.error("Choose training data (import some in the Data dashboard).")
            return None
        if not self.algorithms.value:
            self.message.error("Choose at least one algorithm.")
            return None
        try:
            job = self.ws.tune(
                self.data.value, algorithms=list(self.algorithms.value), n_trials=int(self.n_trials.value),
                timeout=float(self.timeout.value) or None, metric=self.metric.value, cutoff=int(self.cutoff.value),
                split=self.split(), train_after_tuning=bool(self.train_after.value), background=background,
            )
        except Exception as error:
            self.message.error(error)
            return None
        self.tuning_job = job
        self.n_trials_seen = -1
        self.best_line.x, self.best_line.y, self.trial_points.x, self.trial_points.y = [], [], [], []
        self.trials_table.set_frame(pd.DataFrame())
        self.start_button.disabled = True
        self.message.info(f"Tuning job #{job.id} started: {self.n_trials.value} trials of "
                          f"{', '.join(self.algorithms.value)}.")
        self.monitor.watch(job.job, on_finish=self._finished, on_tick=self._tick)
        return job

    def _tick(self, _record: dict | None = None) -> None:
        trials = self.ws.tuning_job(self.tuning_job.id).trials
        if len(trials) == self.n_trials_seen:
            return
        self.n_trials_seen = len(trials)
        x, best, px, scores = best_so_far(trials)
        with self.figure.hold_sync():
            self.trial_points.x, self.trial_points.y = px, scores
            self.best_line.x, self.best_line.y = x, best
        shown = trials.copy()
        if len(shown):
            shown["params"] = shown["params"].map(lambda p: ", ".join(f"{k}={_short(v)}" for k, v in (p or {}).items()))
            shown = shown.iloc[::-1]
        self.trials_table.set_frame(shown)

    def _finished(self, record: dict) -> None:
        self.start_button.disabled = False
        self.show_job(self.tuning_job.id)
        self.refresh()
        job = self.tuning_job
        if record["status"] != "SUCCESS":
            self.message.error(f"Tuning job #{job.id} ended {record['status']}: {record.get('error') or ''}")
            return
        self.message.success(f"Tuning job #{job.id} finished"
                             + (f"; model #{job.model_id} trained with the best configuration." if job.model_id else "."))

    def show_job(self, tuning_job_id: int) -> Any:
        """Show a tuning job's trials, best-so-far chart and outcome (the latest one when the page opens)."""
        job = self.ws.tuning_job(tuning_job_id)
        self.tuning_job = job
        self.n_trials_seen = -1
        self._tick()
        if job.status != "SUCCESS" or job.best_score is None:
            self.outcome.value = (f"<div class='wb-card'>Tuning job #{job.id}: {html.escape(str(job.status))}"
                                  + (f"<br>{html.escape(job.error)}" if job.error else "") + "</div>")
            return job
        lines = [f"<b>Tuning job #{job.id}</b>",
                 f"<b>Best</b>: {html.escape(str(job.best_algorithm))} "
                 f"{html.escape(job.metric)}@{job.cutoff} = {job.best_score:.4f}",
                 f"configuration #{job.best_configuration_id} (in the <a href='training.ipynb'>Training</a> list)"]
        if job.model_id:
            lines.append(f"trained as <b>model #{job.model_id}</b>: <a href='models.ipynb'>Models</a> · "
                         f"<a href='recommendations.ipynb'>Recommendations</a>")
        self.outcome.value = "<div class='wb-card'>" + "<br>".join(lines) + "</div>"
        return job


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return json.dumps(value) if not isinstance(value, str) else value
