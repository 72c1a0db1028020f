"""What a retrain did, ready to display: the data, the gate's scores with their intervals, the decision."""

from __future__ import annotations

import contextlib
import html
import io
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..records import TrainedModel, TrainingData, TuningJob
from .gate import Interval


@dataclass
class RetrainOutcome:
    """A retrain's result: data statistics, the gate (old vs new on the newest interactions), decision, models."""

    project: str
    mode: str                       # what ran: "retrain" or "retune"
    requested_mode: str
    policy: str                     # activate=...
    tolerance: float
    metric: str                     # the gate's metric, e.g. "ndcg@20"
    decision: str                   # "activated" or "kept"
    reason: str
    new_score: float | None
    old_score: float | None
    intervals: dict[str, Interval]  # "new", "old", "difference": mean and 95% interval over users
    gate: dict                      # how the gate held out data: the cut, the window, counts
    statistics: pd.DataFrame        # previous data, imported batch, new data
    changes: dict                   # rows/users/items added vs the previous data
    comparison: pd.DataFrame        # one row per model: every metric on the gate's users
    segments: pd.DataFrame | None   # the gate metric per activity segment (light, medium, heavy users)
    training_data: TrainingData
    previous_data: TrainingData | None
    new_model: TrainedModel
    old_model: TrainedModel | None
    tuning_job: TuningJob | None
    active_model_id: int | None     # after the run
    seconds: float
    notes: list[str] = field(default_factory=list)
    export: str | None = None       # where the active model's recommendations were written

    @property
    def activated(self) -> bool:
        return self.decision == "activated"

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest (what the `workbench retrain` command prints)."""
        return {
            "project": self.project, "mode": self.mode, "requested_mode": self.requested_mode,
            "policy": self.policy, "tolerance": self.tolerance, "decision": self.decision,
            "activated": self.activated, "reason": self.reason, "metric": self.metric,
            "new_score": _json_float(self.new_score), "old_score": _json_float(self.old_score),
            "intervals": {k: [_json_float(v.mean), _json_float(v.low), _json_float(v.high)]
                          for k, v in self.intervals.items()},
            "gate": self.gate, "new_model_id": self.new_model.id,
            "old_model_id": self.old_model.id if self.old_model else None,
            "active_model_id": self.active_model_id, "training_data_id": self.training_data.id,
            "previous_training_data_id": self.previous_data.id if self.previous_data else None,
            "tuning_job_id": self.tuning_job.id if self.tuning_job else None,
            "changes": self.changes, "seconds": round(self.seconds, 2), "notes": list(self.notes),
            "export": self.export,
        }

    def headline(self) -> str:
        """One line: what was decided, with the scores."""
        scores = f"{self.metric} new {fmt(self.new_score)}"
        if self.old_model is not None:
            scores += f" vs active {fmt(self.old_score)}"
        verb = "activated" if self.activated else "kept the active model; registered"
        if not self.activated and self.old_model is None:
            verb = "registered (no active model)"
        return f"{self.project}: {verb} model {self.new_model.id} ({self.mode}; {scores})"

    def gate_lines(self) -> list[str]:
        """The gate in plain lines: the window held out, both scores and their difference with intervals."""
        if "cut" in self.gate:
            lines = [f"held out: {self.gate['window']}, from {self.gate['cut']}: "
                     f"{self.gate['held_out_interactions']:,} interactions of {self.gate['window_users']:,} users; "
                     f"{self.gate['scored_users']:,} users scored (active before and after the cut)"
                     + (f", {self.gate['new_users_not_scored']:,} new users not scored (no earlier profile)"
                        if self.gate["new_users_not_scored"] else "")]
        else:
            lines = [f"held out: {self.gate.get('window', 'a random split')}"]
        for role, label in (("old", "active model, as it is"), ("new", "new model"), ("difference", "new - active")):
            if role in self.intervals:
                lines.append(f"{label}: {self.metric} {self.intervals[role]} (95% interval over users)")
        return lines

    def decision_view(self):
        """The gate and the decision, as Markdown for a notebook."""
        from IPython.display import Markdown

        active = f"model {self.active_model_id}" if self.active_model_id is not None else "none"
        lines = [f"### {'Activated' if self.activated else 'Not activated'}: model {self.new_model.id}",
                 f"**Why:** {self.reason}", ""]
        lines += [f"- {line}" for line in self.gate_lines()]
        lines += [
            f"- mode: `{self.mode}`" + (f" (asked: `{self.requested_mode}`)" if self.mode != self.requested_mode else ""),
            f"- policy: `activate={self.policy!r}`, tolerance {self.tolerance:g} on `{self.metric}`",
            f"- active model now: {active}",
        ] + [f"- note: {note}" for note in self.notes]
        if self.export:
            lines.append(f"- recommendations exported to `{self.export}`")
        return Markdown("\n".join(lines))

    def chart(self):
        """Old vs new on the gate's users: an SVG bar chart of every metric at the cutoff."""
        from IPython.display import SVG

        return SVG(data=comparison_svg(self.comparison, self.metric))

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.activated else "#9a6700"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in [*self.gate_lines(), *self.notes])
        return (
            f"<b>Retrain of {html.escape(self.project)}</b>: "
            f"<span style='color:{colour};font-weight:bold'>{html.escape(self.decision)}</span> "
            f"model {self.new_model.id}<br>{html.escape(self.reason)}"
            + (f"<ul>{notes}</ul>" if notes else "")
        )

    def _repr_json_(self) -> dict:
        return self.summary()

    def __repr__(self) -> str:
        return f"<RetrainOutcome {self.headline()}>"


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def fmt(value: float | None) -> str:
    """A score for people: four decimals, '-' when there is none."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.4f}"


def comparison_svg(comparison: pd.DataFrame, gate_metric: str | None = None, width: int = 640) -> str:
    """A horizontal grouped bar chart (SVG text) of every metric at the cutoff, one bar per model,
    with the gate metric's 95% interval drawn as a whisker when the frame has `low`/`high` columns."""
    cutoff = gate_metric.split("@", 1)[1] if gate_metric and "@" in gate_metric else None
    metrics = [c for c in comparison.columns if "@" in str(c) and (cutoff is None or str(c).endswith(f"@{cutoff}"))]
    colours = {"active (old)": "#8c959f", "new": "#0969da"}
    models = [(str(r.get("role", "model")), f"{r.get('role', 'model')}: model {r['model_id']} ({r['algorithm']})")
              for _, r in comparison.iterrows()]
    values = comparison[metrics].astype(float) if metrics else pd.DataFrame()
    top = max(float(values.max().max()) if len(values) else 0.0,
              float(comparison["high"].max()) if "high" in comparison and comparison["high"].notna().any() else 0.0,
              1e-9)
    bar, gap, label_w, value_w = 14, 10, 140, 60
    plot_w = width - label_w - value_w
    legend_h = 22 * len(models) + 8
    height = legend_h + len(metrics) * (len(models) * bar + gap) + 10
    esc = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">']
    for i, (role, label) in enumerate(models):
        y = 6 + 22 * i
        parts.append(f'<rect x="{label_w}" y="{y}" width="12" height="12" fill="{colours.get(role, "#6e7781")}"/>'
                     f'<text x="{label_w + 18}" y="{y + 11}">{esc(label)}</text>')
    y = legend_h
    for metric in metrics:
        group_h = len(models) * bar
        weight = "bold" if metric == gate_metric else "normal"
        name = f"{metric} (gate)" if metric == gate_metric else metric
        parts.append(f'<text x="{label_w - 8}" y="{y + group_h / 2 + 4}" text-anchor="end" '
                     f'font-weight="{weight}">{esc(str(name))}</text>')
        for j, (role, _) in enumerate(models):
            value = float(values[metric].iloc[j])
            w = 0.0 if not math.isfinite(value) else max(plot_w * value / top, 0.0)
            parts.append(f'<rect x="{label_w}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 2}" '
                         f'fill="{colours.get(role, "#6e7781")}"/>'
                         f'<text x="{label_w + w + 4:.1f}" y="{y + j * bar + bar - 4}">{fmt(value)}</text>')
            if metric == gate_metric and "low" in comparison and pd.notna(comparison["low"].iloc[j]):
                x0 = label_w + plot_w * float(comparison["low"].iloc[j]) / top
                x1 = label_w + plot_w * float(comparison["high"].iloc[j]) / top
                mid = y + j * bar + (bar - 2) / 2
                parts.append(f'<line x1="{x0:.1f}" y1="{mid:.1f}" x2="{x1:.1f}" y2="{mid:.1f}" stroke="#24292f"/>')
        y += group_h + gap
    parts.append("</svg>")
    return "".join(parts)


_PROGRESS = re.compile(r"█|\|[█-]{8,}\||\d+\.\d+% \[\d+/\d+")


class _DropProgressBars(io.TextIOBase):
    """A stdout that passes everything through except console progress bars (irspack's fastprogress)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self._dropping = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if _PROGRESS.search(text) or (self._dropping and not text.strip()):
            self._dropping = True
        else:
            self._dropping = False
            self.target.write(text)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


@contextlib.contextmanager
def quiet_progress():
    """Keep irspack's console progress bars out of the report."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(_DropProgressBars(sys.stdout)):
        warnings.filterwarnings("ignore", message="Couldn't import ipywidgets")
        yield
