"""Charts (bqplot: ipywidgets-native, renders under Voila 0.5 + ipywidgets 8): axes from 0, whole
numbers on count axes, the best highlighted.

bqplot 0.12 draws nothing for 2-D `y` (grouped bars) nor for a LinearScale with only `min` set,
under Voila 0.5 + ipywidgets 8: so one series per chart, and both bounds of every scale given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from .format import is_missing

BEST = "#2e7d32"
OTHERS = "#90a4ae"
LINE = "#1565c0"
MAX_TICKS = 10


def whole_ticks(low: int, high: int) -> list[int]:
    """At most MAX_TICKS whole numbers from `low` to `high`, evenly stepped."""
    step = max(1, int(np.ceil((high - low) / MAX_TICKS)))
    return list(range(low, high + 1, step))


def upper_bound(values: Sequence[float]) -> float:
    """A y-axis top a little above the highest value (1 when there is none)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return max(finite) * 1.1 if finite and max(finite) > 0 else 1.0


class BestSoFarChart:
    """Each completed trial's score (grey points), the best so far (a step line) and the best trial
    (a green diamond); x: trials 0..n in whole numbers, y from 0."""

    def __init__(self, title: str = "Best so far", x_label: str = "completed trial", y_label: str = "score",
                 width: str = "520px", height: str = "280px") -> None:
        import bqplot as bq

        # (no padding: the points would otherwise push the axes below 0)
        self.x_scale = bq.LinearScale(min=0.0, max=5.0, allow_padding=False)
        self.y_scale = bq.LinearScale(min=0.0, max=1.0, allow_padding=False)
        scales = {"x": self.x_scale, "y": self.y_scale}
        self.line = bq.Lines(x=[], y=[], scales=scales, colors=[LINE], stroke_width=2, interpolation="step-after")
        self.points = bq.Scatter(x=[], y=[], scales=scales, colors=["#9e9e9e"], default_size=16, opacities=[0.7])
        self.best_point = bq.Scatter(x=[], y=[], scales=scales, colors=[BEST], marker="diamond", default_size=90)
        self.x_axis = bq.Axis(scale=self.x_scale, label=x_label, tick_format="d", tick_values=whole_ticks(0, 5))
        self.title = title
        self.figure = bq.Figure(
            marks=[self.points, self.line, self.best_point], title=title,
            axes=[self.x_axis, bq.Axis(scale=self.y_scale, label=y_label, orientation="vertical", tick_format=".2f")],
            layout=widgets.Layout(width=width, height=height),
            fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 20},
        )

    def show(self, scores: Sequence[float], label: str = "") -> None:
        """Plot the completed trials' scores in the order they ended; `label` names the best one."""
        scores = [float(s) for s in scores]
        x = list(range(1, len(scores) + 1))
        best = list(np.maximum.accumulate(scores)) if scores else []
        top = int(np.argmax(scores)) if scores else None
        right = max(len(scores) + 1, 5)  # a trial's mark never sits on the frame
        with self.figure.hold_sync():
            self.x_scale.max = float(right)
            self.x_axis.tick_values = whole_ticks(0, right)
            self.y_scale.max = upper_bound(scores)
            self.points.x, self.points.y = x, scores
            self.line.x, self.line.y = x, best
            self.best_point.x, self.best_point.y = ([x[top]], [scores[top]]) if top is not None else ([], [])
            self.figure.title = (f"{self.title}: {scores[top]:.4f} (trial {x[top]}{f', {label}' if label else ''})"
                                 if top is not None else self.title)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[Any], best: bool = True, width: str = "300px",
              height: str = "240px"):
    """Bars of one metric across models from 0 (or below, for a negative value); with `best`, the highest
    in green (named in the title)."""
    import bqplot as bq

    y = np.array([0.0 if is_missing(v) else float(v) for v in values], dtype=float)
    best = int(np.argmax(y)) if len(y) and best else None
    x_scale = bq.OrdinalScale()
    low = min(0.0, float(y.min()) * 1.1) if len(y) else 0.0  # below 0 only for a metric that goes there
    y_scale = bq.LinearScale(min=low, max=upper_bound(list(y)), allow_padding=False)
    # one colour per bar through a colour scale (a `colors` list per element draws every bar in the first)
    shade = bq.ColorScale(colors=[OTHERS, BEST], min=0.0, max=1.0)
    bars = bq.Bars(x=list(labels), y=y, color=[1.0 if i == best else 0.0 for i in range(len(y))],
                   scales={"x": x_scale, "y": y_scale, "color": shade}, padding=0.25)
    named = f"{title} · best {labels[best]}" if best is not None and y[best] > 0 else title
    return bq.Figure(
        marks=[bars], title=named,
        axes=[bq.Axis(scale=x_scale), bq.Axis(scale=y_scale, orientation="vertical", tick_format=".2f", num_ticks=4)],
        layout=widgets.Layout(width=width, height=height), fig_margin={"top": 40, "bottom": 30, "left": 50, "right": 10},
    )
