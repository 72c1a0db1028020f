"""The Tuning dashboard's insight into a tuning job: each algorithm's best score against its number
of trials, and which parameters mattered (Optuna's importances), or why an algorithm has none."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from .charts import bar_chart
from .format import html_table


def trials(count: int) -> str:
    return f"{int(count)} trial{'' if int(count) == 1 else 's'}"


class TuningInsightView(widgets.VBox):
    """Shows a `workbench.insight.TuningInsight`: a table and a chart of each algorithm's best score
    and trial count, one importance chart per algorithm that has importances, and notes in words
    for those that have none."""

    def __init__(self) -> None:
        self.tuning_job_id: int | None = None
        self.summary = widgets.HTML()
        self.notes = widgets.HTML()
        self.charts = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        super().__init__([self.summary, self.notes, self.charts])

    def say(self, text: str) -> None:
        """No insight to show, and why."""
        self.summary.value = f"<span class='wb-muted'>{html.escape(text)}</span>"
        self.notes.value, self.charts.children = "", []

    def show(self, insight: Any) -> None:
        self.tuning_job_id = insight.tuning_job_id
        table = insight.by_algorithm.assign(best_trial=insight.by_algorithm["best_trial"] + 1).rename(columns={
            "n_trials": "trials", "n_complete": "completed", "best_score": f"best {insight.metric}",
            "best_trial": "best trial"})
        self.summary.value = (f"<b>Tuning job #{insight.tuning_job_id}: best {html.escape(insight.metric)} of each "
                              "algorithm and its number of trials</b>"
                              + html_table(table, best=[f"best {insight.metric}"]))
        self.notes.value = "".join(
            f"<div class='wb-banner-info'>No parameter importances for {html.escape(algorithm)}: "
            f"{html.escape(note)}.</div>" for algorithm, note in insight.notes.items())
        rows = insight.by_algorithm
        charts = [bar_chart(f"best {insight.metric}", [f"{a} ({trials(n)})" for a, n in zip(rows["algorithm"], rows["n_trials"])],
                            rows["best_score"].tolist(), width="420px")]
        for algorithm, group in insight.importances.groupby("algorithm", sort=False):
            charts.append(bar_chart(f"{algorithm} importance ({trials(group['n_trials'].iloc[0])})",
                                    group["parameter"].tolist(), group["importance"].tolist(), width="420px"))
        self.charts.children = charts
