"""Text and HTML for the dashboards: cell values, sizes, errors, tables and record cards."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

_TAG = re.compile(r"<[^>]*>")
WIDEST = 20  # characters a column of a fixed-layout table takes before its text wraps


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
    if isinstance(value, (pd.Timestamp, datetime)):
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


def plain_text(cell_html: str) -> str:
    """The text of a trusted HTML cell (its tags dropped), for widths and filtering."""
    return html.unescape(_TAG.sub("", cell_html))


def shown_of(shown: int, total: int, noun: str) -> str:
    """"30 of 232 items" when a list is cut, "232 items" when it is whole."""
    return f"{shown:,} of {total:,} {noun}" if shown < total else f"{total:,} {noun}"


def best_values(frame: pd.DataFrame, columns: Iterable[str]) -> dict[str, float]:
    """The highest value of each of `columns` that holds numbers."""
    found = {}
    for column in columns:
        if column in frame.columns and len(frame):
            values = pd.to_numeric(frame[column], errors="coerce")
            if values.notna().any():
                found[column] = float(values.max())
    return found


def _is_best(value: Any, column: str, best: dict[str, float]) -> bool:
    if column not in best or is_missing(value) or isinstance(value, str):
        return False
    try:
        return float(value) == best[column]
    except (TypeError, ValueError):
        return False


def text_width(text: str) -> float:
    """About how many `ch` (widths of a digit) `text` takes in a sans-serif font: capitals are wider."""
    return sum(1.2 if c.isupper() else 0.9 if c.isalpha() else 1.0 for c in text)


def column_widths(frame: pd.DataFrame, html_columns: Iterable[str] = (), cap: int = WIDEST) -> list[int]:
    """Widths in `ch` for a fixed-layout table: each column fits its longest word (header included)
    and, up to `cap`, its longest text; longer text wraps."""
    raw = set(html_columns)
    widths = []
    for column in frame.columns:
        texts = [str(column)] + [plain_text(str(v)) if column in raw else format_value(v) for v in frame[column]]
        word = max(text_width(w) for text in texts for w in (text.split() or [""]))
        widths.append(math.ceil(max(word, min(max(text_width(t) for t in texts), cap))) + 2)
    return widths


def table_rows(frame: pd.DataFrame, html_columns: Iterable[str] = (), best: dict[str, float] | None = None) -> list[str]:
    """The <tr> of each row; cells holding their column's `best` value are highlighted."""
    raw, best = set(html_columns), best or {}
    columns = list(frame.columns)
    rows = []
    for row in frame.itertuples(index=False, name=None):
        cells = "".join(
            f"<td{' class=wb-best' if _is_best(value, columns[i], best) else ''}>"
            f"{value if columns[i] in raw else esc(value)}</td>"
            for i, value in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    return rows


def table_head(columns: Iterable[Any]) -> str:
    return "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr>"


def html_table(frame: pd.DataFrame, html_columns: Iterable[str] = (), max_rows: int | None = None,
               best: Iterable[str] = (), noun: str = "rows") -> str:
    """A DataFrame as a compact HTML table that wraps long text to fit the page.

    `html_columns` hold trusted HTML (links); the highest value of each `best` column is
    highlighted; a table cut at `max_rows` says so ("30 of 232 items").
    """
    total, top = len(frame), best_values(frame, best)
    if max_rows is not None and total > max_rows:
        frame = frame.head(max_rows)
    cut = f"<div class='wb-muted'>{shown_of(len(frame), total, noun)} shown</div>" if len(frame) < total else ""
    rows = table_rows(frame, html_columns, top)
    return (f"{cut}<table class='wb-table'><thead>{table_head(frame.columns)}</thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def record_card(title: str, fields: dict[str, Any], html_fields: Iterable[str] = ()) -> str:
    """A record as a two-column card; `html_fields` hold trusted HTML."""
    raw = set(html_fields)
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{v if k in raw else esc(v)}</td></tr>" for k, v in fields.items()
    )
    return f"<div class='wb-card'><b>{html.escape(title)}</b><table class='wb-table'>{rows}</table></div>"
