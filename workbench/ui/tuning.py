"""Tuning: search algorithms and parameters on a held-out split, live, and train the best; then what
mattered (each algorithm's best score against its trials, the parameters' importances)."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import ipywidgets as widgets
import pandas as pd

from .. import algorithms
from ..errors import ValidationError
from ..evaluation import SCHEMES
from ..tuning import METRICS
from .charts import BestSoFarChart
from .controls import CheckboxGroup, section, set_options
from .dashboard import Dashboard
from .format import is_missing
from .importance import TuningInsightView
from .monitor import FINISHED, JobMonitor
from .page import anchor
from .tables import DataTable
from .training import data_label

TRIAL_COLUMNS = ["trial", "algorithm", "score", "seconds", "state", "params"]


def completed(trials: pd.DataFrame) -> pd.DataFrame:
    """The completed trials (with a score), in the order they ended."""
    if not len(trials):
        return trials
    return trials[trials["state"].astype(str).str.upper().eq("COMPLETE") & trials["score"].notna()]


def trials_view(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials table: newest first, numbered from 1, parameters in words."""
    if not len(trials):
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    view = trials.assign(trial=trials["number"] + 1,
                         params=trials["params"].map(lambda p: ", ".join(f"{k}={_short(v)}" for k, v in (p or {}).items())),
                         state=trials["state"].map(lambda s: {"PRUNED": "stopped early", "FAIL": "failed",
                                                              "COMPLETE": "complete"}.get(str(s).upper(), str(s))))
    return view[TRIAL_COLUMNS].iloc[::-1]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return json.dumps(value) if not isinstance(value, str) else value


class TuningDashboard(Dashboard):
    name = "tuning"
    title = "Tuning"
    subtitle = "Optuna search across algorithms on a held-out split; the best configuration is trained on all the data."

    def __init__(self, ws: Any = None, project: Any = None) -> None:
        super().__init__(ws, project)
        w, L = widgets, widgets.Layout
        wide = {"description_width": "120px"}
        self.data = w.Dropdown(description="Training data", options=[], layout=L(width="560px"), style=wide)
        names = algorithms.list_algorithms()
        self.algorithms = CheckboxGroup(names, algorithms.DEFAULT_PORTFOLIO,
                                        tooltips={n: algorithms.get_algorithm(n).description for n in names})
        self.default_set_button = w.Button(description="Default set", layout=L(width="110px"),
                                           tooltip="the algorithms searched by default")
        self.all_button = w.Button(description="All", layout=L(width="70px"))
        self.none_button = w.Button(description="None", layout=L(width="70px"))
        self.default_set_button.on_click(lambda _: setattr(self.algorithms, "value", tuple(algorithms.DEFAULT_PORTFOLIO)))
        self.all_button.on_click(lambda _: setattr(self.algorithms, "value", self.algorithms.options))
        self.none_button.on_click(lambda _: setattr(self.algorithms, "value", ()))
        self.algorithm_count = w.HTML()
        self.algorithms.observe(lambda _: self._count_algorithms(), "value")
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
        self.message = self.outcome()
        self.on_click(self.start_button, self.start, self.message)
        self.monitor = JobMonitor(interval=0.7)
        self.monitor.on_error = self.message.error
        self.chart = BestSoFarChart()
        self.trials_table = DataTable(page_size=10, empty="No trials yet.", best=["score"])
        self.outcome_card = w.HTML()
        self.history = DataTable(page_size=5, empty="No tuning job in this project yet.", html_columns={"model"},
                                 best=["best_score"])
        self.insight = TuningInsightView()
        self.insight_message = self.outcome()
        self._insights: dict[int, Any] = {}  # tuning job id -> its insight, for jobs that have ended
        self.tuning_job: Any = None
        self.n_trials_seen = 0
        self.body.children = [
            section("Search", self.data,
                    w.HBox([w.HTML("<b>Algorithms</b>"), self.algorithm_count, self.default_set_button, self.all_button,
                            self.none_button], layout=L(align_items="center")),
                    self.algorithms,
                    w.HBox([w.VBox([self.n_trials, self.timeout]), w.VBox([self.metric, self.cutoff]),
                            w.VBox([self.scheme, self.heldout, self.val_users])], layout=L(flex_flow="row wrap")),
                    self.train_after, w.HBox([self.start_button]), self.message),
            self.monitor,
            w.HBox([self.chart.figure, w.VBox([self.outcome_card], layout=L(margin="30px 0 0 10px", flex="1 1 auto"))]),
            section("What mattered", self.insight_message, self.insight,
                    note="Each algorithm's best score against its number of trials, and which of its parameters "
                         "changed the score most (Optuna's fANOVA importance over its completed trials)."),
            section("Trials", self.trials_table),
            section("Earlier tuning jobs", self.history),
        ]
        self._count_algorithms()
        self.open_page()

    def _count_algorithms(self) -> None:
        chosen, total = len(self.algorithms.value), len(self.algorithms.options)
        self.algorithm_count.value = f"<span class='wb-muted'>{chosen} of {total} chosen</span>"

    @property
    def current_model(self) -> int | None:
        return getattr(self.tuning_job, "model_id", None)

    def refresh(self) -> None:
        if self.ws is None:
            return
        project = self.project
        datasets = self.ws.training_data_sets(project) if project is not None else pd.DataFrame()
        options = [(data_label(r), int(r.id)) for r in datasets.iloc[::-1].itertuples(index=False)]
        set_options(self.data, options)
        history = self.ws.tuning_jobs(project) if project is not None else pd.DataFrame()
        self.history.set_frame(self._history_view(history))
        if not self.monitor.running:
            if len(history):
                self.show_job(int(history["id"].iloc[0]))
            else:
                self.tuning_job = None
                self.outcome_card.value = ""
                self.insight.say("No tuning job in this project yet.")
                self.chart.show([])
                self.trials_table.set_frame(trials_view(pd.DataFrame()))

    def _history_view(self, history: pd.DataFrame) -> pd.DataFrame:
        if not len(history):
            return history
        model = [("" if is_missing(m) else anchor(self.link("models", int(m)), f"#{int(m)}")) for m in history["model_id"]]
        return history.assign(model=model, trials=[f"{d} of {n}" for d, n in zip(history["trials_done"], history["n_trials"])])[
            ["id", "status", "trials", "metric", "cutoff", "best_score", "best_algorithm", "model", "created_at"]]

    def split(self) -> dict:
        return {"scheme": self.scheme.value, "heldout_ratio": float(self.heldout.value),
                "val_user_ratio": float(self.val_users.value)}

    def start(self, background: bool = True) -> Any:
        """Start a tuning job in a worker process and follow it (the dashboard's Start button)."""
        if self.data.value is None:
            raise ValidationError("Choose training data (import some in the Data dashboard).")
        if not self.algorithms.value:
            raise ValidationError("Choose at least one algorithm.")
        job = self.ws.tune(
            self.data.value, algorithms=list(self.algorithms.value), n_trials=int(self.n_trials.value),
            timeout=float(self.timeout.value) or None, metric=self.metric.value, cutoff=int(self.cutoff.value),
            split=self.split(), train_after_tuning=bool(self.train_after.value), background=background,
        )
        self.tuning_job = job
        self.n_trials_seen = -1
        self.outcome_card.value = ""
        self.insight.say("Shown when the job has finished.")
        self.chart.show([])
        self.trials_table.set_frame(trials_view(pd.DataFrame()))
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
        done = completed(trials)
        best = str(done.loc[done["score"].idxmax(), "algorithm"]) if len(done) else ""
        self.chart.show(done["score"].astype(float).tolist() if len(done) else [], label=best)
        self.trials_table.set_frame(trials_view(trials))

    def _finished(self, record: dict) -> None:
        self.start_button.disabled = False
        job = self.show_job(self.tuning_job.id)
        self.refresh()
        self.update_links()
        if record["status"] != "SUCCESS":
            self.message.error(f"Tuning job #{job.id} ended {record['status']}: {record.get('error') or ''}")
            return
        self.message.success(f"Tuning job #{job.id} finished"
                             + (f"; model #{job.model_id} trained with the best configuration." if job.model_id else "."))
        self.monitor.conclude(self._produced(job))

    def _produced(self, job: Any) -> str:
        """What a finished tuning job produced, with links (HTML)."""
        made = [f"configuration #{job.best_configuration_id} ({anchor(self.link('training'), 'Training')})"]
        if job.model_id:
            made.append(f"model #{job.model_id} ({anchor(self.link('models', job.model_id), 'Models')} · "
                        f"{anchor(self.link('recommendations', job.model_id), 'Recommendations')})")
        return (f"<b>Produced</b>: {' and '.join(made)}. Best: {html.escape(str(job.best_algorithm))} "
                f"{html.escape(job.metric)}@{job.cutoff} = {job.best_score:.4f}.")

    def show_job(self, tuning_job_id: int) -> Any:
        """Show a tuning job's trials, best-so-far chart and outcome (the latest one when the page opens)."""
        job = self.ws.tuning_job(tuning_job_id)
        self.tuning_job = job
        self.n_trials_seen = -1
        self._tick()
        self.show_insight(job)
        if job.status != "SUCCESS" or job.best_score is None:
            self.outcome_card.value = (f"<div class='wb-card'>Tuning job #{job.id}: {html.escape(str(job.status))}"
                                       + (f"<br>{html.escape(job.error)}" if job.error else "") + "</div>")
            return job
        lines = [f"<b>Tuning job #{job.id}</b>",
                 f"<b>Best</b>: {html.escape(str(job.best_algorithm))} "
                 f"{html.escape(job.metric)}@{job.cutoff} = {job.best_score:.4f}",
                 f"configuration #{job.best_configuration_id} (in the {anchor(self.link('training'), 'Training')} list)"]
        if job.model_id:
            lines.append(f"trained as <b>model #{job.model_id}</b>: {anchor(self.link('models', job.model_id), 'Models')}"
                         f" · {anchor(self.link('recommendations', job.model_id), 'Recommendations')}")
        self.outcome_card.value = "<div class='wb-card'>" + "<br>".join(lines) + "</div>"
        return job

    def show_insight(self, job: Any, background: bool = True) -> None:
        """What mattered in a tuning job, worked out in the background (it reads the job's split)."""
        if job.trials is None or job.trials.empty:
            self.insight.say(f"Tuning job #{job.id} has no finished trial ({job.status}).")
            return
        if job.id in self._insights:  # a job that has ended: its insight does not change
            self.insight.show(self._insights[job.id])
            return
        self.insight.say(f"Working out what mattered in tuning job #{job.id}…")

        def done(insight: Any) -> None:
            if job.status in FINISHED:
                self._insights[job.id] = insight
            if self.tuning_job is not None and self.tuning_job.id == insight.tuning_job_id:  # still the job shown
                self.insight.show(insight)

        self.run_background(lambda: self.ws.tuning_insight(job.id), done, self.insight_message, background=background)
