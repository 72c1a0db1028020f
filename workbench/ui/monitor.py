"""Following a catalog job from a dashboard: a progress bar, a status line in words and a log that
keeps its newest line in view, polled in a thread; it ends with what the job produced."""

from __future__ import annotations

import html
import sys
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from ..errors import describe_error

FINISHED = ("SUCCESS", "FAILURE", "CANCELLED")


def status_line(record: dict) -> str:
    """The job's state for people: what it is doing, or how it ended."""
    status = record["status"]
    if status == "PENDING":
        return "Waiting for a worker process to start…"
    if status == "RUNNING":
        step = f" · {html.escape(record['step'])}" if record.get("step") else ""
        return f"Running · {float(record.get('progress') or 0):.0%}{step}"
    took = _seconds(record)
    ended = f" after {took:.0f} s" if took is not None else ""
    if status == "SUCCESS":
        return f"<b>Finished</b>{ended}."
    if status == "CANCELLED":
        return f"<b>Cancelled</b>{ended}."
    return f"<b>Failed</b>{ended}: <span style='color:#b00'>{html.escape(record.get('error') or 'no reason given')}</span>"


def _seconds(record: dict) -> float | None:
    try:
        return (pd.Timestamp(record["finished_at"]) - pd.Timestamp(record["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def log_line(row: Any) -> str:
    """`12:03:04 Trial 3: IALS ndcg@20 0.1234 in 1.2 s (...)`; the level only when it is not INFO."""
    stamp = pd.Timestamp(row.logged_at).strftime("%H:%M:%S")
    level = "" if row.level == "INFO" else f"{row.level}: "
    return f"{stamp} {level}{row.message}"


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
        self.log_view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.conclusion = widgets.HTML()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_log_id = 0
        self._on_finish: Callable[[dict], None] | None = None
        self._on_tick: Callable[[dict], None] | None = None
        self.on_error: Callable[[BaseException], None] | None = None
        super().__init__([widgets.HBox([self.progress, self.cancel_button]), self.status, self.log_view,
                          self.conclusion], **kwargs)
        self.layout.display = "none"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return bool(self.record) and self.record["status"] in FINISHED

    def watch(self, job: Any, on_finish: Callable[[dict], None] | None = None,
              on_tick: Callable[[dict], None] | None = None, background: bool = True) -> None:
        """Follow `job` (a workbench Job) until it ends; `on_finish(record)` runs once at the end."""
        self.stop()
        self.job, self.record, self.lines, self._last_log_id = job, None, [], 0
        self._on_finish, self._on_tick = on_finish, on_tick
        self.layout.display = ""
        self.progress.value, self.progress.bar_style = 0.0, "info"
        self.log_view.value = self.conclusion.value = ""
        self.status.value = "Starting…"
        self.cancel_button.disabled = False
        self.cancel_button.layout.visibility = "visible"
        self._stop = threading.Event()
        if background:
            self._thread = threading.Thread(target=self._run, name=f"job-monitor-{job.id}", daemon=True)
            self._thread.start()
        else:
            self._run()

    def conclude(self, html_text: str) -> None:
        """The last line under the log: what the job produced, with links (trusted HTML)."""
        self.conclusion.value = f"<div class='wb-card'>{html_text}</div>" if html_text else ""

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
        status = record["status"]
        self.progress.value = 1.0 if status == "SUCCESS" else float(record.get("progress") or 0.0)
        self.progress.bar_style = {"SUCCESS": "success", "FAILURE": "danger", "CANCELLED": "warning"}.get(status, "info")
        self.status.value = status_line(record)
        new = self.job.log(after_id=self._last_log_id)
        if len(new):
            self._last_log_id = int(new["id"].iloc[-1])
            self.lines += [log_line(row) for row in new.itertuples(index=False) if row.level != "DEBUG"]
            self.lines = self.lines[-self.max_log_lines:]
            # A column-reverse box starts scrolled to its end and stays there: the newest line is in view.
            self.log_view.value = ("<div class='wb-log-box'><pre class='wb-log'>" + html.escape("\n".join(self.lines))
                                   + "</pre></div>")
        done = status in FINISHED
        self.cancel_button.disabled = done
        self.cancel_button.layout.visibility = "hidden" if done else "visible"
        if self._on_tick is not None:
            self._on_tick(record)
        return done

    def _cancel(self, _: Any = None) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.value += " · cancel requested"
