"""Widgets every dashboard shares: error banner, paginated tables, job monitor, charts, navigation.

Rules the dashboards follow (they matter under Voila):
- every callback goes through :meth:`Dashboard.guard`, so an error becomes a visible message,
  never a traceback;
- anything slow runs in a background thread (:meth:`Dashboard.run_background`) or as a catalog
  job polled by :class:`JobMonitor`; Voila kernels send widget updates from threads fine;
- things updated from callbacks are widgets (HTML, Output), never ``display(display_id=...)``.
"""

from __future__ import annotations

import html
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..errors import WorkbenchError

DASHBOARDS = (
    ("home", "Home"),
    ("data", "Data"),
    ("tuning", "Tuning"),
    ("training", "Training"),
    ("models", "Models"),
    ("recommendations", "Recommendations"),
)

STYLE = """
<style>
.wb-nav a { margin-right: 14px; text-decoration: none; color: #1565c0; font-weight: 500; }
.wb-nav a.wb-current { color: #111; border-bottom: 2px solid #1565c0; }
.wb-title { font-size: 20px; font-weight: 600; margin: 6px 0 2px 0; }
.wb-sub { color: #555; margin-bottom: 6px; }
table.wb-table { border-collapse: collapse; font-size: 13px; margin: 4px 0; }
table.wb-table th { background: #f0f3f7; text-align: left; padding: 4px 8px; border-bottom: 1px solid #ccd; white-space: nowrap; }
table.wb-table td { padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; max-width: 360px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.wb-scroll { overflow-x: auto; max-width: 100%; }
.wb-card table.wb-table td { white-space: normal; max-width: 640px; word-break: break-word; }
table.wb-table tr:hover td { background: #fafbff; }
.wb-banner-error { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0; padding: 6px 10px; border-radius: 4px; }
.wb-banner-info { background: #e8f1fb; color: #0d3c61; border: 1px solid #b8d4f0; padding: 6px 10px; border-radius: 4px; }
.wb-banner-success { background: #e9f6ec; color: #1e4620; border: 1px solid #b7dfbf; padding: 6px 10px; border-radius: 4px; }
.wb-card { border: 1px solid #dde; border-radius: 6px; padding: 8px 12px; background: #fcfcff; }
.wb-log { font-family: monospace; font-size: 12px; white-space: pre-wrap; margin: 0; }
.wb-muted { color: #777; }
.widget-html-content a, .wb-card a, table.wb-table a { color: #1565c0; text-decoration: none; }
.widget-html-content a:hover { text-decoration: underline; }
</style>
"""


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------


def describe_error(error: BaseException) -> str:
    """One line for the page: the message of our own errors, type and message of others."""
    if isinstance(error, WorkbenchError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return isinstance(value, float) and math.isnan(value)
    except TypeError:
        return False


def format_value(value: Any) -> str:
    """A short, readable text for a table cell."""
    if is_missing(value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "✓" if value else ""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def human_size(size: Any) -> str:
    if is_missing(size):
        return ""
    size = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def esc(value: Any) -> str:
    return html.escape(format_value(value))


def html_table(frame: pd.DataFrame, html_columns: Iterable[str] = (), max_rows: int | None = None) -> str:
    """A DataFrame as a compact HTML table; `html_columns` hold trusted HTML (links)."""
    raw = set(html_columns)
    if max_rows is not None:
        frame = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        cells = "".join(
            f"<td>{value if columns[i] in raw else esc(value)}</td>" for i, value in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return (f"<div class='wb-scroll'><table class='wb-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def record_card(title: str, fields: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{esc(v)}</td></tr>" for k, v in fields.items()
    )
    return f"<div class='wb-card'><b>{html.escape(title)}</b><table class='wb-table'>{rows}</table></div>"


def nav_bar(current: str) -> widgets.HTML:
    links = "".join(
        f"<a href='{name}.ipynb' class='{'wb-current' if name == current else ''}'>{label}</a>"
        for name, label in DASHBOARDS
    )
    return widgets.HTML(STYLE + f"<div class='wb-nav'>{links}</div>")


# --------------------------------------------------------------------------------------------
# banner
# --------------------------------------------------------------------------------------------


class Banner(widgets.HTML):
    """A message line: errors in red, information in blue, success in green; empty when clear."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = ""
        self.message = ""

    def show(self, message: str, kind: str = "info") -> None:
        self.kind, self.message = kind, message
        self.value = f"<div class='wb-banner-{kind}'>{html.escape(message)}</div>"

    def error(self, error: BaseException | str) -> None:
        self.show(error if isinstance(error, str) else describe_error(error), "error")

    def info(self, message: str) -> None:
        self.show(message, "info")

    def success(self, message: str) -> None:
        self.show(message, "success")

    def clear(self) -> None:
        self.kind, self.message, self.value = "", "", ""


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


class DataTable(widgets.VBox):
    """A DataFrame as a paginated, sortable, filterable HTML table.

    Only one page is rendered, so thousands of rows stay fast; filtering and sorting work on the
    whole frame in pandas.
    """

    def __init__(self, frame: pd.DataFrame | None = None, page_size: int = 20, html_columns: Iterable[str] = (),
                 empty: str = "No rows yet.", searchable: bool = True, **kwargs: Any) -> None:
        self.page_size = page_size
        self.html_columns = set(html_columns)
        self.empty = empty
        self.frame = pd.DataFrame()
        self.view = pd.DataFrame()
        self._search_text: pd.Series | None = None
        self.page = 0
        self.html = widgets.HTML()
        self.search = widgets.Text(placeholder="filter rows", layout=widgets.Layout(width="200px"))
        self.sort_by = widgets.Dropdown(options=[("(order)", "")], value="", description="Sort",
                                        layout=widgets.Layout(width="230px"))
        self.descending = widgets.ToggleButton(value=True, description="desc", layout=widgets.Layout(width="60px"),
                                               tooltip="sort descending")
        self.prev_button = widgets.Button(description="◀", layout=widgets.Layout(width="40px"), tooltip="previous page")
        self.next_button = widgets.Button(description="▶", layout=widgets.Layout(width="40px"), tooltip="next page")
        self.page_label = widgets.Label()
        self.prev_button.on_click(lambda _: self.go(self.page - 1))
        self.next_button.on_click(lambda _: self.go(self.page + 1))
        self._quiet = False
        self.search.observe(lambda _: self._refilter(), "value")
        self.sort_by.observe(lambda _: None if self._quiet else self._refilter(), "value")
        self.descending.observe(lambda _: self._refilter(), "value")
        controls = [self.prev_button, self.page_label, self.next_button, self.sort_by, self.descending]
        if searchable:
            controls.append(self.search)
        self.controls = widgets.HBox(controls, layout=widgets.Layout(align_items="center"))
        super().__init__([self.html, self.controls], **kwargs)
        self.set_frame(frame if frame is not None else pd.DataFrame())

    @property
    def n_pages(self) -> int:
        return max(1, math.ceil(len(self.view) / self.page_size))

    def set_frame(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        self._search_text = None
        sortable = [c for c in self.frame.columns if c not in self.html_columns]
        options = [("(order)", "")] + [(str(c), str(c)) for c in sortable]
        current = self.sort_by.value if self.sort_by.value in dict(options).values() else ""
        self._quiet = True
        try:
            set_options(self.sort_by, options, current)
        finally:
            self._quiet = False
        self._refilter(keep_page=True)

    def _refilter(self, keep_page: bool = False) -> None:
        view = self.frame
        needle = self.search.value.strip().lower()
        if needle and len(view):
            if self._search_text is None:
                self._search_text = pd.Series(
                    [" ".join(format_value(v) for v in row).lower() for row in view.itertuples(index=False, name=None)],
                    index=view.index, dtype=object)
            view = view[np.array([needle in text for text in self._search_text], dtype=bool)]
        column = self.sort_by.value
        if column and column in view.columns and len(view):
            try:
                view = view.sort_values(column, ascending=not self.descending.value, kind="stable", na_position="last")
            except TypeError:
                view = view.iloc[view[column].astype(str).argsort(kind="stable")]
        self.view = view
        self.go(self.page if keep_page else 0)

    def go(self, page: int) -> None:
        self.page = min(max(page, 0), self.n_pages - 1)
        start = self.page * self.page_size
        rows = self.view.iloc[start:start + self.page_size]
        if len(self.frame) == 0:
            self.html.value = f"<span class='wb-muted'>{html.escape(self.empty)}</span>"
        else:
            self.html.value = html_table(rows, self.html_columns)
        total = len(self.view)
        shown = f"{start + 1}-{start + len(rows)}" if total else "0"
        extra = f" (of {len(self.frame):,})" if total != len(self.frame) else ""
        self.page_label.value = f"rows {shown} of {total:,}{extra} · page {self.page + 1}/{self.n_pages}"
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.n_pages - 1
        self.controls.layout.display = "none" if len(self.frame) <= self.page_size and not self.search.value else ""


# --------------------------------------------------------------------------------------------
# charts (bqplot: ipywidgets-native, renders under Voila 0.5 + ipywidgets 8)
# --------------------------------------------------------------------------------------------


def line_chart(title: str, x_label: str, y_label: str, width: str = "520px", height: str = "280px"):
    """An empty line + points chart; returns (figure, lines, scatter). Set `.x`/`.y` to update."""
    import bqplot as bq

    x_scale, y_scale = bq.LinearScale(), bq.LinearScale()
    lines = bq.Lines(x=[], y=[], scales={"x": x_scale, "y": y_scale}, colors=["#1565c0"], stroke_width=2,
                     interpolation="step-after")
    scatter = bq.Scatter(x=[], y=[], scales={"x": x_scale, "y": y_scale}, colors=["#9e9e9e"], default_size=16,
                         opacities=[0.7])
    figure = bq.Figure(
        marks=[scatter, lines], title=title,
        axes=[bq.Axis(scale=x_scale, label=x_label, tick_format="d"),
              bq.Axis(scale=y_scale, label=y_label, orientation="vertical", tick_format=".3f")],
        layout=widgets.Layout(width=width, height=height), fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 20},
    )
    return figure, lines, scatter


PALETTE = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#9e9d24", "#4e342e"]


def bar_chart(title: str, labels: Sequence[str], values: Sequence[Any], width: str = "300px", height: str = "240px"):
    """Bars of one metric across models, one colour per model.

    (bqplot 0.12 draws nothing for 2-D `y` (grouped bars) nor for a LinearScale with only `min`
    set, under Voila 0.5 + ipywidgets 8, so: one series, both scale bounds given.)
    """
    import bqplot as bq

    y = np.array([0.0 if is_missing(v) else float(v) for v in values], dtype=float)
    top = float(y.max()) * 1.1 if len(y) and y.max() > 0 else 1.0
    x_scale, y_scale = bq.OrdinalScale(), bq.LinearScale(min=0.0, max=top)
    bars = bq.Bars(x=list(labels), y=y, scales={"x": x_scale, "y": y_scale}, colors=PALETTE[: max(len(y), 1)],
                   color_mode="element", padding=0.25)
    figure = bq.Figure(
        marks=[bars], title=title,
        axes=[bq.Axis(scale=x_scale), bq.Axis(scale=y_scale, orientation="vertical", tick_format=".2f", num_ticks=4)],
        layout=widgets.Layout(width=width, height=height), fig_margin={"top": 40, "bottom": 30, "left": 50, "right": 10},
    )
    return figure


# --------------------------------------------------------------------------------------------
# job monitor
# --------------------------------------------------------------------------------------------


class JobMonitor(widgets.VBox):
    """A progress bar, status line and log view polled from a catalog job in a thread."""

    def __init__(self, interval: float = 0.5, max_log_lines: int = 300, **kwargs: Any) -> None:
        self.interval = interval
        self.max_log_lines = max_log_lines
        self.job = None
        self.record: dict | None = None
        self.lines: list[str] = []
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                              layout=widgets.Layout(width="420px"))
        self.status = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="warning",
                                            disabled=True, layout=widgets.Layout(width="100px"))
        self.cancel_button.on_click(self._cancel)
        self.log_view = widgets.HTML(layout=widgets.Layout(max_height="220px", overflow="auto", border="1px solid #eee",
                                                      width="100%"))
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_log_id = 0
        self._on_finish: Callable[[dict], None] | None = None
        self._on_tick: Callable[[dict], None] | None = None
        self.on_error: Callable[[BaseException], None] | None = None
        super().__init__([widgets.HBox([self.progress, self.cancel_button]), self.status, self.log_view], **kwargs)
        self.layout.display = "none"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return bool(self.record) and self.record["status"] in ("SUCCESS", "FAILURE", "CANCELLED")

    def watch(self, job: Any, on_finish: Callable[[dict], None] | None = None,
              on_tick: Callable[[dict], None] | None = None, background: bool = True) -> None:
        """Follow `job` (a workbench Job) until it ends; `on_finish(record)` runs once at the end."""
        self.stop()
        self.job, self.record, self.lines, self._last_log_id = job, None, [], 0
        self._on_finish, self._on_tick = on_finish, on_tick
        self.layout.display = ""
        self.progress.value, self.progress.bar_style = 0.0, "info"
        self.log_view.value = ""
        self.status.value = f"Job {job.id}: starting…"
        self.cancel_button.disabled = False
        self.cancel_button.layout.visibility = "visible"
        self._stop = threading.Event()
        if background:
            self._thread = threading.Thread(target=self._run, name=f"job-monitor-{job.id}", daemon=True)
            self._thread.start()
        else:
            self._run()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the monitor to see the job end (tests); True if it did."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            try:
                if self.poll_once():
                    break
            except Exception as error:  # keep polling: the catalog may be busy for a moment
                self.status.value = f"<span class='wb-muted'>{html.escape(describe_error(error))} (retrying)</span>"
            stop.wait(self.interval)
        if self.finished and self._on_finish is not None and not stop.is_set():
            try:
                self._on_finish(self.record)
            except Exception as error:
                if self.on_error is not None:
                    self.on_error(error)
                else:
                    print(describe_error(error), file=sys.stderr)

    def poll_once(self) -> bool:
        """Read the job's status and new log lines into the widgets; True once it has ended."""
        record = self.job.record
        self.record = record
        fraction = float(record.get("progress") or 0.0)
        status = record["status"]
        self.progress.value = 1.0 if status == "SUCCESS" else fraction
        self.progress.bar_style = {"SUCCESS": "success", "FAILURE": "danger", "CANCELLED": "warning"}.get(status, "info")
        text = f"<b>Job {record['id']}</b> ({html.escape(record['kind'])}): {status} · {fraction:.0%}"
        if record.get("step"):
            text += f" · {html.escape(record['step'])}"
        if record.get("error"):
            text += f"<br><span style='color:#b00'>{html.escape(record['error'])}</span>"
        self.status.value = text
        new = self.job.log(after_id=self._last_log_id)
        if len(new):
            self._last_log_id = int(new["id"].iloc[-1])
            for row in new.itertuples(index=False):
                if row.level == "DEBUG":
                    continue
                stamp = pd.Timestamp(row.logged_at).strftime("%H:%M:%S")
                self.lines.append(f"{stamp} {row.level:<7} {row.message}")
            self.lines = self.lines[-self.max_log_lines:]
            self.log_view.value = "<pre class='wb-log'>" + html.escape("\n".join(self.lines)) + "</pre>"
        done = status in ("SUCCESS", "FAILURE", "CANCELLED")
        self.cancel_button.disabled = done
        self.cancel_button.layout.visibility = "hidden" if done else "visible"
        if self._on_tick is not None:
            self._on_tick(record)
        return done

    def _cancel(self, _: Any = None) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.value += " · cancel requested"


# --------------------------------------------------------------------------------------------
# the dashboard base
# --------------------------------------------------------------------------------------------


class Dashboard(widgets.VBox):
    """A dashboard: navigation, title, message banner, project choice and helpers for actions."""

    name = "home"
    title = "Rec Workbench"
    subtitle = ""

    def __init__(self, ws: Any = None, project: Any = None, with_project: bool = True) -> None:
        self.banner = Banner()
        self._quiet = False
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        header = widgets.HTML(
            f"<div class='wb-title'>{html.escape(self.title)}</div>"
            + (f"<div class='wb-sub'>{html.escape(self.subtitle)}</div>" if self.subtitle else "")
        )
        self.project_picker = widgets.Dropdown(description="Project", options=[],
                                               layout=widgets.Layout(width="320px"))
        self.body = widgets.VBox()
        top = [nav_bar(self.name), header, self.banner]
        if with_project:
            top.append(self.project_picker)
        super().__init__(top + [self.body], layout=widgets.Layout(padding="4px 12px"))
        self.ws = ws
        if self.ws is None:
            try:
                import workbench as wb

                self.ws = wb.open()
            except Exception as error:
                self.banner.error(error)
                return
        self.refresh_projects(project)
        self.project_picker.observe(self.guard(lambda _: None if self._quiet else self.on_project_change()), "value")
        # Voila's preheated kernels build the dashboard before anyone asks for the page: reload the
        # catalog when the page first shows it (the front end counts views in `_view_count`).
        self._built_at = time.monotonic()
        self._view_count = 0
        self.observe(self.guard(self._first_view), "_view_count")

    def _first_view(self, change: dict) -> None:
        if not (change["old"] or 0) and (change["new"] or 0) and time.monotonic() - self._built_at > 1.0:
            self.reload()

    def reload(self) -> None:
        """Re-read the projects and the dashboard's lists from the catalog."""
        self.refresh_projects()
        self.refresh()

    # --- projects

    @property
    def project(self) -> Any:
        """The chosen project's record, or None."""
        if self.project_picker.value is None or self.ws is None:
            return None
        return self.ws.project(self.project_picker.value)

    def refresh_projects(self, select: Any = None) -> None:
        if self.ws is None:
            return
        try:
            projects = self.ws.projects()
        except Exception as error:
            self.banner.error(error)
            return
        options = [(name, int(pid)) for pid, name in zip(projects["id"], projects["name"])]
        wanted = None
        if select is not None:
            for label, pid in options:
                if select in (label, pid) or getattr(select, "id", None) == pid:
                    wanted = pid
        if wanted is None:
            current = self.project_picker.value
            wanted = current if current in [pid for _, pid in options] else (options[0][1] if options else None)
        self._quiet = True
        try:
            set_options(self.project_picker, options, wanted)
        finally:
            self._quiet = False

    def refresh(self) -> None:
        """Re-read what the dashboard shows from the catalog."""

    def on_project_change(self) -> None:
        """Called when the project choice changes: refresh what depends on it."""
        self.refresh()

    # --- running actions

    def guard(self, action: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback so that an error shows in the banner, never as a traceback."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return action(*args, **kwargs)
            except Exception as error:
                self.banner.error(error)
                return None

        return guarded

    def run_background(self, work: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                       buttons: Sequence[widgets.Button] = (), message: str | None = None) -> threading.Thread:
        """Run `work()` in a thread (the page stays responsive), then `on_done(result)`; errors go to the banner."""
        if message:
            self.banner.info(message)
        for button in buttons:
            button.disabled = True

        def run() -> None:
            try:
                result = work()
                if message and self.banner.message == message:
                    self.banner.clear()
                if on_done is not None:
                    on_done(result)
            except Exception as error:
                self.banner.error(error)
            finally:
                for button in buttons:
                    button.disabled = False
                with self._lock:
                    self._busy -= 1

        with self._lock:
            self._busy += 1
        thread = threading.Thread(target=run, daemon=True, name=f"{self.name}-action")
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def monitors(self) -> list[JobMonitor]:
        return [value for value in vars(self).values() if isinstance(value, JobMonitor)]

    def wait(self, timeout: float = 120.0) -> None:
        """Wait until background actions and watched jobs have finished (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while True:
            threads = [t for t in self._threads if t.is_alive()]
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            for monitor in self.monitors():
                monitor.join(max(0.0, deadline - time.monotonic()))
            if not any(t.is_alive() for t in self._threads) and not any(m.running for m in self.monitors()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: still busy after {timeout} s")


def set_options(widget: widgets.Widget, options: list, value: Any = None) -> None:
    """Replace a selection widget's options, then select `value` (or keep the current one, or the first)."""
    values = [option[1] if isinstance(option, tuple) else option for option in options]
    multiple = isinstance(widget, widgets.SelectMultiple)
    if multiple:
        wanted = tuple(v for v in (value if value is not None else widget.value) if v in values)
        widget.value = ()
        widget.options = options
        widget.value = wanted
        return
    if value not in values:
        value = widget.value if widget.value in values else (values[0] if values else None)
    if tuple(widget.options) != tuple(options):
        widget.options = options
    if widget.value != value:
        widget.value = value


def section(title: str, *children: widgets.Widget, note: str = "") -> widgets.VBox:
    head = f"<h4 style='margin:12px 0 4px 0'>{html.escape(title)}</h4>"
    if note:
        head += f"<div class='wb-muted' style='margin-bottom:4px'>{html.escape(note)}</div>"
    return widgets.VBox([widgets.HTML(head), *children])

