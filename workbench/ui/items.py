"""Items on the Recommendations dashboard: a finder (search box and matches) and the tables of
recommended items (each with why it is recommended) and of an item's similar items."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..explanations import because_text
from .format import html_table, shown_of

MAX_MATCHES = 50
BECAUSE = "because you watched"  # the column naming each recommendation's reasons
Catalog = tuple[pd.DataFrame | None, str | None, Sequence[Any]]  # metadata, its item column, the model's items


def rows_frame(rows: list[dict], with_rank: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if with_rank and len(frame):
        frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


class ItemFinder(widgets.VBox):
    """A search box (title, genre or item id) over the project's item metadata, or over the model's
    item ids when there is none, and the first MAX_MATCHES matches to pick from.

    catalog(): the metadata frame and its item column (None, None without metadata) and the model's
    item ids (used without metadata). The dashboard calls `find()` when the search or the catalog changes.
    """

    def __init__(self, catalog: Callable[[], Catalog], rows: int = 8, width: str = "360px") -> None:
        self.catalog = catalog
        layout = widgets.Layout(width=width)
        self.search = widgets.Text(description="Search", placeholder="title, genre or item id", layout=layout,
                                   style={"description_width": "60px"})
        self.matches = widgets.Select(options=[], rows=rows, layout=layout)
        self.label = widgets.HTML()
        super().__init__([self.search, self.matches, self.label])

    def find(self) -> None:
        query = self.search.value.strip().lower()
        frame, column, items = self.catalog()
        if frame is not None:
            found = frame
            if query:
                hit = np.zeros(len(frame), dtype=bool)
                for c in frame.columns:
                    if frame[c].dtype == object or str(frame[c].dtype).startswith("str"):
                        hit |= frame[c].astype(str).str.lower().str.contains(query, regex=False).to_numpy()
                found = frame[hit]
            total = len(found)
            label_column = next((c for c in ("title", "name") if c in frame.columns), None)
            found = found.head(MAX_MATCHES)
            labels = found[label_column].astype(str) if label_column else found[column].astype(str)
            matches = [(f"{label} ({item})" if label_column else label, item)
                       for item, label in zip(found[column].tolist(), labels)]
        else:
            found = [i for i in items if query in str(i).lower()] if query else list(items)
            total = len(found)
            matches = [(str(i), i) for i in found[:MAX_MATCHES]]
        if tuple(self.matches.options) != tuple(matches):  # unchanged, the user's pick stays
            self.matches.options = matches
        self.label.value = f"<span class='wb-muted'>{shown_of(len(matches), total, 'matches')}</span>"


def item_names(frame: pd.DataFrame | None, column: str | None) -> dict[str, str]:
    """Item id (as text) -> its title (or name), from the item metadata; empty without one."""
    label = next((c for c in ("title", "name") if frame is not None and c in frame.columns), None)
    if label is None:
        return {}
    return dict(zip(frame[column].astype(str), frame[label].astype(str)))


def explained(rows: list[dict], names: dict[str, str]) -> list[dict]:
    """Recommendation rows with their reasons in words, "A (41%), B (22%)", in place of the raw
    contributions (`because`, `explained_score`)."""
    out = []
    for row in rows:
        if "because" not in row:
            out.append(row)
            continue
        parts = [{**part, "item_id": str(part["item_id"])} for part in row["because"]]
        shown = {k: v for k, v in row.items() if k not in ("because", "explained_score")}
        out.append({**shown, BECAUSE: because_text(parts, names)})
    return out


def recommendations_html(title: str, rows: list[dict], names: dict[str, str], unexplained: str | None) -> str:
    """A top-N table, each item with the user's items it comes from, or one line saying why the
    model's recommendations cannot be explained."""
    why = f"<div class='wb-muted wb-unexplained'>{html.escape(unexplained)}</div>" if unexplained else ""
    return f"<b>{html.escape(title)}</b>{why}" + html_table(rows_frame(explained(rows, names)), best=["score"])


def similar_html(item_id: Any, rows: list[dict], names: dict[str, str], model_id: int) -> str:
    """An item's most similar items in a model, as a table."""
    name = names.get(str(item_id))
    about = f"{name} ({item_id})" if name else str(item_id)
    if not rows:
        return f"<span class='wb-muted'>Model #{model_id} relates no other item to {html.escape(about)}.</span>"
    return (f"<b>{len(rows)} items most similar to {html.escape(about)}</b> "
            f"<span class='wb-muted'>(model #{model_id})</span>" + html_table(rows_frame(rows), best=["similarity"]))
