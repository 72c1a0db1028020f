"""Small widgets the dashboards share: an action's outcome line, a group of checkboxes, a file chooser
that names its file, and helpers for selection widgets and sections."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import traitlets
from ipywidgets.widgets.widget_description import DescriptionWidget

from ..errors import describe_error
from .format import human_size


class Outcome(widgets.HTML):
    """The outcome of an action, shown next to its buttons: errors in red, information in blue,
    success in green; empty when clear. `html` messages may hold links (trusted text only)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = ""
        self.message = ""

    def show(self, message: str, kind: str = "info", html_message: str | None = None) -> None:
        self.kind, self.message = kind, message
        self.value = f"<div class='wb-banner-{kind}'>{html_message or html.escape(message)}</div>"

    def error(self, error: BaseException | str) -> None:
        self.show(error if isinstance(error, str) else describe_error(error), "error")

    def info(self, message: str) -> None:
        self.show(message, "info")

    def success(self, message: str, html_message: str | None = None) -> None:
        self.show(message, "success", html_message)

    def clear(self) -> None:
        self.kind, self.message, self.value = "", "", ""


class CheckboxGroup(widgets.GridBox):
    """One checkbox per option, all visible, in columns; `value` is the tuple of the checked options."""

    value = traitlets.Tuple()

    def __init__(self, options: Sequence[str], value: Sequence[str] = (), tooltips: dict[str, str] | None = None,
                 column_width: str = "190px", **kwargs: Any) -> None:
        self.boxes = {
            option: widgets.Checkbox(value=option in value, description=str(option), indent=False,
                                     tooltip=(tooltips or {}).get(option, str(option)),
                                     layout=widgets.Layout(width="auto"))
            for option in options
        }
        self._syncing = False
        for box in self.boxes.values():
            box.observe(self._box_changed, "value")
        layout = kwargs.pop("layout", widgets.Layout(grid_template_columns=f"repeat(auto-fill, minmax({column_width}, 1fr))",
                                                     width="100%"))
        super().__init__(list(self.boxes.values()), layout=layout, **kwargs)
        self.value = tuple(option for option in options if option in value)

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.boxes)

    def _box_changed(self, _: Any) -> None:
        if not self._syncing:
            self.value = tuple(option for option, box in self.boxes.items() if box.value)

    @traitlets.validate("value")
    def _valid_value(self, proposal: dict) -> tuple:
        unknown = [v for v in proposal["value"] if v not in self.boxes]
        if unknown:
            raise traitlets.TraitError(f"not an option: {', '.join(map(str, unknown))}")
        return tuple(proposal["value"])

    @traitlets.observe("value")
    def _value_changed(self, change: dict) -> None:
        self._syncing = True
        try:
            for option, box in self.boxes.items():
                box.value = option in change["new"]
        finally:
            self._syncing = False


class FileChooser(widgets.HBox):
    """A file upload button that shows the chosen file's name and size."""

    def __init__(self, accept: str, tooltip: str) -> None:
        self.upload = widgets.FileUpload(accept=accept, multiple=False, description="Choose file", tooltip=tooltip)
        self.chosen = widgets.HTML("<span class='wb-muted wb-file'>no file chosen</span>")
        self.upload.observe(lambda _: self._show(), "value")
        super().__init__([self.upload, self.chosen], layout=widgets.Layout(align_items="center"))

    @property
    def file(self) -> dict | None:
        """The chosen file (name, size, content), or None."""
        return self.upload.value[0] if self.upload.value else None

    def _show(self) -> None:
        chosen = self.file
        self.chosen.value = ("<span class='wb-muted wb-file'>no file chosen</span>" if chosen is None else
                             f"<span class='wb-file'>{html.escape(str(chosen.get('name')))} "
                             f"<span class='wb-muted'>({human_size(chosen.get('size'))})</span></span>")


def no_null_tooltips(root: widgets.Widget) -> None:
    """Give every described widget under `root` a tooltip: ipywidgets 8 writes a tooltip of None into
    the title of the widget's label, which then shows "null" when hovered."""
    if isinstance(root, DescriptionWidget) and root.tooltip is None:
        root.tooltip = ""
    for child in getattr(root, "children", ()) or ():
        no_null_tooltips(child)


def set_options(widget: widgets.Widget, options: list, value: Any = None) -> None:
    """Replace a selection widget's options, then select `value` (or keep the current one, or the first)."""
    values = [option[1] if isinstance(option, tuple) else option for option in options]
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
