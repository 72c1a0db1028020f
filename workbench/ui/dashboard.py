"""The dashboard base: navigation, the project (from the page's address), outcomes next to their
actions, and work in the background.

Rules the dashboards follow (they matter under Voila):
- every button runs through :meth:`Dashboard.on_click`: the page's earlier outcomes are cleared, and
  the action's outcome, error included, shows next to its buttons, never as a traceback;
- anything slow runs in a background thread (:meth:`Dashboard.run_background`) or as a catalog job
  followed by a :class:`~workbench.ui.monitor.JobMonitor`; Voila kernels send widget updates from
  threads fine;
- things updated from callbacks are widgets (HTML, Output), never ``display(display_id=...)``;
- a subclass builds its widgets, then calls :meth:`Dashboard.open_page`.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from .controls import Outcome, no_null_tooltips, set_options
from .monitor import JobMonitor
from .page import NavBar, page_link, request_now, when_requested


class Dashboard(widgets.VBox):
    """A dashboard: navigation, title, page message, project choice and helpers for actions.

    project, model: what the page opens on (a name or id); by default what its address says
    (`?project=movies&model=12`), else the first project.
    """

    name = "home"
    title = "Rec Workbench"
    subtitle = ""

    def __init__(self, ws: Any = None, project: Any = None, model: Any = None, with_project: bool = True) -> None:
        self.banner = Outcome()  # about the page as a whole (an unreadable catalog, an unknown project)
        self.outcomes: list[Outcome] = [self.banner]
        self._quiet = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()
        self.nav = NavBar(self.name)
        header = widgets.HTML(
            f"<div class='wb-title'>{html.escape(self.title)}</div>"
            + (f"<div class='wb-sub'>{html.escape(self.subtitle)}</div>" if self.subtitle else "")
        )
        self.project_picker = widgets.Dropdown(description="Project", options=[], layout=widgets.Layout(width="320px"))
        self.intro = widgets.VBox()  # what a dashboard shows above the project choice
        self.body = widgets.VBox()
        top = [self.nav, header, self.banner, self.intro] + ([self.project_picker] if with_project else [])
        super().__init__(top + [self.body], layout=widgets.Layout(padding="4px 12px"))
        self._follow_request = project is None and model is None
        asked = request_now() if self._follow_request else None
        if asked:
            project, model = asked.get("project"), asked.get("model")
        self.wanted_model = _as_id(model)
        self._requested = asked is not None
        self.ws = ws
        if self.ws is None:
            try:
                import workbench as wb

                self.ws = wb.open()
            except Exception as error:
                self.banner.error(error)
                return
        self.refresh_projects(project)
        self.project_picker.observe(self.guard(lambda _: None if self._quiet else self._project_changed()), "value")
        # Without word of the request (outside Voila), reload when the page first shows the dashboard
        # (the front end counts views in `_view_count`), in case it was built long before.
        self._built_at = time.monotonic()
        self._view_count = 0
        self.observe(self.guard(self._first_view), "_view_count")

    def open_page(self) -> None:
        """Show the catalog's state; in a preheated Voila kernel, switch to what the page asks once one takes it."""
        no_null_tooltips(self)
        self.guard(self.refresh)()  # an unreadable catalog shows as a message, not a traceback
        self.update_links()
        if self._follow_request and self.ws is not None and not self._requested:
            when_requested(self.guard(self.open_request))

    def open_request(self, parameters: dict[str, str]) -> None:
        """Show what the page's address asks for (project, model), re-read from the catalog."""
        with self._lock:
            self._requested = True
            self.wanted_model = _as_id(parameters.get("model"))
            self.refresh_projects(parameters.get("project"))
            self.refresh()
            self.update_links()

    def _first_view(self, change: dict) -> None:
        if (not (change["old"] or 0) and (change["new"] or 0) and not self._requested
                and time.monotonic() - self._built_at > 1.0):
            self.reload()

    def reload(self) -> None:
        """Re-read the projects and the dashboard's lists from the catalog."""
        with self._lock:
            self.refresh_projects()
            self.refresh()
            self.update_links()

    # --- projects and links

    @property
    def project(self) -> Any:
        """The chosen project's record, or None."""
        if self.project_picker.value is None or self.ws is None:
            return None
        return self.ws.project(self.project_picker.value)

    @property
    def project_name(self) -> str | None:
        return self.project_picker.label if self.project_picker.value is not None else None

    @property
    def current_model(self) -> int | None:
        """The model the page is about (carried by the links to Models and Recommendations), if any."""
        return None

    def link(self, name: str, model: int | None = None) -> str:
        """The address of dashboard `name` for this page's project (and `model`)."""
        return page_link(name, self.project_name, model)

    def update_links(self) -> None:
        self.nav.show(self.project_name, self.current_model)

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
                if select in (label, pid, str(pid)) or getattr(select, "id", None) == pid:
                    wanted = pid
            if wanted is None and options:
                self.banner.error(f"There is no project {select!r}: showing {options[0][0]!r}. Choose one below.")
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

    def _project_changed(self) -> None:
        self.clear_outcomes()
        self.on_project_change()
        self.update_links()

    # --- running actions

    def outcome(self) -> Outcome:
        """A new outcome line, cleared with the page's others when the next action starts."""
        line = Outcome()
        self.outcomes.append(line)
        return line

    def clear_outcomes(self) -> None:
        for line in self.outcomes:
            line.clear()

    def on_click(self, button: widgets.Button, action: Callable[[], Any], outcome: Outcome) -> None:
        """Run `action()` when `button` is clicked, after clearing the page's earlier outcomes; an
        error shows in `outcome`, next to the button."""

        def clicked(_: Any) -> None:
            self.clear_outcomes()
            try:
                action()
            except Exception as error:
                outcome.error(error)

        button.on_click(clicked)

    def guard(self, action: Callable[..., Any], outcome: Outcome | None = None) -> Callable[..., Any]:
        """Wrap a callback so that an error shows in `outcome` (the page's message), never as a traceback."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return action(*args, **kwargs)
            except Exception as error:
                (outcome or self.banner).error(error)
                return None

        return guarded

    def run_background(self, work: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
                       outcome: Outcome | None = None, buttons: Sequence[widgets.Button] = (),
                       message: str | None = None, background: bool = True) -> threading.Thread | None:
        """Run `work()` in a thread (the page stays responsive), then `on_done(result)`; `message` shows in
        `outcome` meanwhile, and an error replaces it. `background=False` runs it here (tests)."""
        outcome = outcome or self.banner
        if message:
            outcome.info(message)
        for button in buttons:
            button.disabled = True

        def run() -> None:
            try:
                result = work()
                if message and outcome.message == message:
                    outcome.clear()
                if on_done is not None:
                    on_done(result)
            except Exception as error:
                outcome.error(error)
            finally:
                for button in buttons:
                    button.disabled = False

        if not background:
            run()
            return None
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
            for thread in [t for t in self._threads if t.is_alive()]:
                thread.join(max(0.0, deadline - time.monotonic()))
            for monitor in self.monitors():
                monitor.join(max(0.0, deadline - time.monotonic()))
            if not any(t.is_alive() for t in self._threads) and not any(m.running for m in self.monitors()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: still busy after {timeout} s")


def _as_id(value: Any) -> int | None:
    """A model id from the page's address ("12"), or None."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
