"""A DataFrame as a table that fits the page: paginated, sortable, filterable, a chosen set of columns
shown (the rest a click away), long text wrapped, the best values highlighted and, optionally, a
checkbox on each row to select it."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .controls import CheckboxGroup, set_options
from .format import best_values, column_widths, format_value, plain_text, table_head, table_rows


class DataTable(widgets.VBox):
    """A DataFrame as a paginated HTML table; only one page is rendered, so thousands of rows stay fast.

    columns: the columns shown at first (None: all); the others can be opened with "Columns".
    html_columns: columns holding trusted HTML (links). best: columns whose highest value is
    highlighted. selectable: a checkbox on each row; `selected` holds the `key` values checked.
    """

    def __init__(self, frame: pd.DataFrame | None = None, page_size: int = 20, html_columns: Iterable[str] = (),
                 empty: str = "No rows yet.", searchable: bool = True, columns: Sequence[str] | None = None,
                 best: Iterable[str] = (), selectable: bool = False, key: str = "id", **kwargs: Any) -> None:
        self.page_size = page_size
        self.html_columns = set(html_columns)
        self.empty = empty
        self.default_columns = list(columns) if columns is not None else None
        self.best = list(best)
        self.selectable, self.key = selectable, key
        self.selected: list[Any] = []
        self._page_keys: list[Any] = []
        self.on_select: Callable[[list], None] | None = None
        self.frame = pd.DataFrame()
        self.view = pd.DataFrame()
        self._search_text: pd.Series | None = None
        self._best: dict[str, float] = {}
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
        self.columns_button = widgets.ToggleButton(description="Columns", icon="columns", value=False,
                                                   tooltip="choose the columns shown",
                                                   layout=widgets.Layout(width="100px", display="none"))
        self.column_picker = widgets.VBox(layout=widgets.Layout(display="none"))
        self.picker: CheckboxGroup | None = None
        self._known: tuple[str, ...] = ()  # the frame's columns the picker knows
        self._shown: tuple[str, ...] = ()  # of those, the ones on screen
        self.prev_button.on_click(lambda _: self.go(self.page - 1))
        self.next_button.on_click(lambda _: self.go(self.page + 1))
        self._quiet = False
        self.search.observe(lambda _: self._refilter(), "value")
        self.sort_by.observe(lambda _: None if self._quiet else self._refilter(), "value")
        self.descending.observe(lambda _: self._refilter(), "value")
        self.columns_button.observe(lambda change: self._toggle_picker(change["new"]), "value")
        controls = [self.prev_button, self.page_label, self.next_button, self.sort_by, self.descending]
        if searchable:
            controls.append(self.search)
        self.controls = widgets.HBox(controls, layout=widgets.Layout(align_items="center", flex_flow="row wrap"))
        self.rows_box = widgets.VBox()
        if selectable:
            self.all_box = widgets.Checkbox(value=False, indent=False, tooltip="select every row shown",
                                            layout=widgets.Layout(width="28px", min_width="28px"))
            self.all_box.observe(lambda change: self._select_all(change["new"]), "value")
            self.head_html = widgets.HTML(layout=widgets.Layout(flex="1 1 auto", min_width="0"))
            self.head_html.add_class("wb-cells")
            self.head = widgets.HBox([self.all_box, self.head_html], layout=widgets.Layout(width="100%"))
        # a checkbox and the cells of each row shown, made as rows are first needed (most tables are short)
        self.rows: list[widgets.HBox] = []
        self.row_boxes: list[widgets.Checkbox] = []
        self.row_htmls: list[widgets.HTML] = []
        super().__init__([self.html, self.rows_box, widgets.HBox([self.controls, self.columns_button],
                                                                 layout=widgets.Layout(justify_content="space-between")),
                          self.column_picker], **kwargs)
        self.set_frame(frame if frame is not None else pd.DataFrame())

    # --- the frame and the columns shown

    @property
    def n_pages(self) -> int:
        return max(1, math.ceil(len(self.view) / self.page_size))

    @property
    def shown_columns(self) -> list[str]:
        """The columns on screen, in the frame's order."""
        if self.default_columns is None:
            return list(self.frame.columns)
        return [c for c in self.frame.columns if c in self._shown]

    def set_frame(self, frame: pd.DataFrame) -> None:
        """Show `frame` (selection kept for the rows still there)."""
        self.frame = frame.reset_index(drop=True)
        self.frame.columns = [str(c) for c in self.frame.columns]
        self._search_text = None
        self._best = best_values(self.frame, self.best)
        self._track_columns()
        sortable = [c for c in self.frame.columns if c not in self.html_columns]
        options = [("(order)", "")] + [(c, c) for c in sortable]
        current = self.sort_by.value if self.sort_by.value in dict(options).values() else ""
        self._quiet = True
        try:
            set_options(self.sort_by, options, current)
        finally:
            self._quiet = False
        if self.selectable:
            keys = set(self.frame[self.key].tolist()) if self.key in self.frame.columns else set()
            self.selected = [k for k in self.selected if k in keys]
        self._refilter(keep_page=True)

    def _track_columns(self) -> None:
        """New columns of the frame are shown if they are among the defaults; the picker follows."""
        columns = tuple(self.frame.columns)
        if self.default_columns is None or columns == self._known:
            return
        self._shown = tuple(c for c in columns if c in self._shown or (c in self.default_columns and c not in self._known))
        self._known = columns
        self.columns_button.layout.display = "" if columns else "none"
        if self.picker is not None:
            self._build_picker()

    def _build_picker(self) -> None:
        """The checkboxes of the "Columns" panel (built when first opened: most pages never need them)."""
        self.picker = CheckboxGroup(self._known, self._shown, column_width="150px")
        self.picker.observe(lambda change: self.show_only(change["new"]), "value")
        self.column_picker.children = [widgets.HTML("<span class='wb-muted'>Columns shown:</span>", tooltip=""), self.picker]

    def _toggle_picker(self, open_: bool) -> None:
        if open_ and self.picker is None:
            self._build_picker()
        self.column_picker.layout.display = "" if open_ else "none"

    def show_only(self, columns: Iterable[str]) -> None:
        """Show these columns (those the frame has), hide the others."""
        wanted = set(columns)
        self._shown = tuple(c for c in self._known if c in wanted)
        if self.picker is not None and self.picker.value != self._shown:
            self.picker.value = self._shown
        self.go(self.page)

    def show_columns(self, *columns: str) -> None:
        """Show these columns too (those the frame has)."""
        self.show_only([*self._shown, *columns])

    # --- filtering, sorting, pages

    def _refilter(self, keep_page: bool = False) -> None:
        view = self.frame
        needle = self.search.value.strip().lower()
        if needle and len(view):
            if self._search_text is None:
                raw = [c in self.html_columns for c in view.columns]
                self._search_text = pd.Series(
                    [" ".join(plain_text(str(v)) if r else format_value(v) for v, r in zip(row, raw)).lower()
                     for row in view.itertuples(index=False, name=None)], index=view.index, dtype=object)
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
        shown = rows[self.shown_columns] if len(self.frame.columns) else rows
        if len(self.frame) == 0:
            self.html.value = f"<span class='wb-muted'>{html.escape(self.empty)}</span>"
        elif not self.selectable:
            self.html.value = (f"<table class='wb-table'><thead>{table_head(shown.columns)}</thead>"
                               f"<tbody>{''.join(table_rows(shown, self.html_columns, self._best))}</tbody></table>")
        else:
            self.html.value = ""
        if self.selectable:
            self._show_rows(rows, shown)
        total = len(self.view)
        span = f"{start + 1}-{start + len(rows)}" if total else "0"
        extra = f" (filtered from {len(self.frame):,})" if total != len(self.frame) else ""
        self.page_label.value = f"rows {span} of {total:,}{extra} · page {self.page + 1}/{self.n_pages}"
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.n_pages - 1
        self.controls.layout.display = "none" if len(self.frame) <= self.page_size and not self.search.value else ""

    # --- selection

    def _add_rows(self, count: int) -> None:
        """Make row widgets until there are `count`."""
        while len(self.rows) < count:
            position = len(self.rows)
            box = widgets.Checkbox(value=False, indent=False, tooltip="select this row",
                                   layout=widgets.Layout(width="28px", min_width="28px"))
            box.observe(lambda change, position=position: self._box_changed(position, change["new"]), "value")
            cell = widgets.HTML(tooltip="", layout=widgets.Layout(flex="1 1 auto", min_width="0"))
            cell.add_class("wb-cells")
            row = widgets.HBox([box, cell], layout=widgets.Layout(align_items="center", width="100%"))
            row.add_class("wb-row")
            self.row_boxes.append(box)
            self.row_htmls.append(cell)
            self.rows.append(row)
        if len(self.rows_box.children) != len(self.rows) + 1:
            self.rows_box.children = [self.head, *self.rows]

    def _show_rows(self, rows: pd.DataFrame, shown: pd.DataFrame) -> None:
        self.rows_box.layout.display = "" if len(self.frame) else "none"
        self._add_rows(len(rows))
        # Every row is a table of its own: the same widths (in characters) keep the columns aligned.
        widths = column_widths(shown, self.html_columns) if len(shown.columns) else []
        colgroup = "<colgroup>" + "".join(f"<col style='width:{w}ch'>" for w in widths) + "</colgroup>"
        fixed = f"<table class='wb-table wb-fixed' style='width:min({sum(widths)}ch, 100%)'>"
        self.head_html.value = f"{fixed}{colgroup}<thead>{table_head(shown.columns)}</thead></table>"
        lines = table_rows(shown, self.html_columns, self._best)
        keys = rows[self.key].tolist() if self.key in rows.columns else []
        self._page_keys = keys
        self._quiet = True
        try:
            for position, (row, box, cell) in enumerate(zip(self.rows, self.row_boxes, self.row_htmls)):
                visible = position < len(keys)
                row.layout.display = "" if visible else "none"
                if not visible:
                    continue
                box.value = keys[position] in self.selected
                cell.value = f"{fixed}{colgroup}<tbody>{lines[position]}</tbody></table>"
                if box.value:
                    row.add_class("wb-selected")
                else:
                    row.remove_class("wb-selected")
            every = set(self.view[self.key].tolist()) if self.key in self.view.columns else set()
            self.all_box.value = bool(every) and every <= set(self.selected)
        finally:
            self._quiet = False

    def _box_changed(self, position: int, checked: bool) -> None:
        if self._quiet or position >= len(self._page_keys):
            return
        key = self._page_keys[position]
        chosen = [k for k in self.selected if k != key] + ([key] if checked else [])
        self.select(*chosen)

    def _select_all(self, checked: bool) -> None:
        if self._quiet:
            return
        self.select(*(self.view[self.key].tolist() if checked and self.key in self.view.columns else []))

    def select(self, *keys: Any) -> None:
        """Check exactly these rows (in the frame's order) and tell `on_select`."""
        wanted = set(keys)
        order = self.frame[self.key].tolist() if self.key in self.frame.columns else []
        self.selected = [k for k in order if k in wanted]
        self.go(self.page)
        if self.on_select is not None:
            self.on_select(list(self.selected))
