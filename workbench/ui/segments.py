"""The Models dashboard's comparison beyond one average: each model's score per user segment (light,
medium and heavy users; new users since a date), and what the beyond-accuracy metrics mean."""

from __future__ import annotations

import html
from collections.abc import Iterable

import ipywidgets as widgets
import pandas as pd

from ..evaluation.beyond import METRIC_DEFINITIONS
from .charts import bar_chart
from .format import format_value, html_table

SEGMENT_COLUMNS = ("segment", "definition", "n_users")


def overall(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a comparison over every validation user (a per-segment frame's "all" rows)."""
    if "segment" not in frame.columns:
        return frame
    return frame[frame["segment"] == "all"].drop(columns=list(SEGMENT_COLUMNS)).reset_index(drop=True)


def definitions_html(columns: Iterable[str]) -> str:
    """The one-line definition of each beyond-accuracy metric among `columns` ("coverage@20"...)."""
    present = {str(c).split("@")[0] for c in columns}
    lines = [f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>"
             for name, text in METRIC_DEFINITIONS.items() if name in present]
    return f"<ul class='wb-definitions' style='margin:4px 0'>{''.join(lines)}</ul>" if lines else ""


def model_label(model_id: int, algorithm: str) -> str:
    return f"#{int(model_id)} {algorithm}"


class SegmentView(widgets.VBox):
    """One metric of each model per user segment: a table (models x segments, the best of each
    segment in green), who wins each segment in words, and one bar chart per segment."""

    def __init__(self) -> None:
        self.summary = widgets.HTML()
        self.charts = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        self.frame: pd.DataFrame | None = None
        super().__init__([self.summary, self.charts])

    def clear(self) -> None:
        self.frame, self.summary.value, self.charts.children = None, "", []

    def show(self, frame: pd.DataFrame, metric: str) -> None:
        """`frame`: a comparison by segment (one row per model and segment, "all" first)."""
        if "segment" not in frame.columns:
            self.clear()
            return
        self.frame = frame
        labels = frame.drop_duplicates("model_id")
        labels = [model_label(m, a) for m, a in zip(labels["model_id"], labels["algorithm"])]
        segments = frame.drop_duplicates("segment")[["segment", "definition", "n_users"]]
        table = frame.assign(model=[model_label(m, a) for m, a in zip(frame["model_id"], frame["algorithm"])]) \
            .pivot(index="model", columns="segment", values=metric).reindex(index=labels, columns=segments["segment"])
        table.columns.name = None
        winners = {segment: str(table[segment].idxmax()) for segment in table.columns if table[segment].notna().any()}
        overall_best = winners.get("all")
        who = " · ".join(
            f"{html.escape(segment)}: <b>{html.escape(model)}</b>"
            + (" <span style='color:#b26a00'>(not the best overall)</span>" if model != overall_best else "")
            for segment, model in winners.items())
        legend = " · ".join(f"<b>{html.escape(s)}</b>: {html.escape(d)} ({int(n):,} users)"
                            for s, d, n in segments.itertuples(index=False))
        self.summary.value = (f"<div><b>{html.escape(metric)} by user segment</b>, best per segment: {who}</div>"
                              f"<div class='wb-muted'>{legend}</div>"
                              + html_table(table.reset_index(), best=list(table.columns)))
        self.charts.children = [
            bar_chart(f"{segment} ({format_value(int(n))} users)", labels, table[segment].tolist())
            for segment, n in zip(segments["segment"], segments["n_users"])
        ]
