"""Opening a source: a file (what it really holds, checked against its name), a DataFrame or a DuckDB
query; and a preview of its first rows, read the way an import reads them."""

from __future__ import annotations

import codecs
import gzip
import html
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from workbench.errors import ValidationError
from workbench.queries import is_sql_query

from .delimited import open_csv
from .engine import Session
from .readers import SAMPLE_BYTES, Source, check_width, open_dataframe, open_json, open_parquet, open_sql
from .sandbox import SqlSandbox

EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".dat": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".ndjson": "json", ".jsonl": "json",
}
PREVIEW_ROWS = 20


def open_source(source, session: Session, delimiter: str | None, sandbox: SqlSandbox | None = None) -> Source:
    """Open a file path, a pandas DataFrame or a DuckDB query; nothing is read beyond what tells its columns.

    A query runs in `sandbox` (default: SqlSandbox.declared(), the folders in WORKBENCH_DATA_DIRS or
    the current directory).
    """
    if delimiter is not None and (not isinstance(delimiter, str) or not 1 <= len(delimiter.encode()) <= 4):
        raise ValidationError(f"delimiter must be 1 to 4 characters, got {delimiter!r}")
    if isinstance(source, pd.DataFrame):
        return open_dataframe(source)
    if is_sql_query(source):
        opened = open_sql(source.strip(), session, sandbox or SqlSandbox.declared())
    elif isinstance(source, (str, os.PathLike)):
        opened = _open_file(Path(source), session, delimiter)
    else:
        raise ValidationError(f"source must be a file path, a pandas DataFrame or a SQL query, not {type(source).__name__}")
    check_width(len(opened.columns), opened.description)
    return opened


def _open_file(path: Path, session: Session, delimiter: str | None) -> Source:
    src = str(path)
    kind, gzipped, head = _file_kind(path, src)
    if kind == "parquet":
        return open_parquet(path, gzipped, session, src)
    _check_utf8(head, src)
    if kind == "json":
        return open_json(path, session.con, src)
    return open_csv(path, gzipped, head, session.con, src, delimiter)


@dataclass(frozen=True)
class Preview:
    """The first rows of a source as an import reads them: its columns and the type of each."""

    source: str  # how messages name the source
    columns: list
    types: dict  # column -> the Arrow type its values are read as
    rows: pd.DataFrame

    def _repr_html_(self) -> str:
        return f"<b>{html.escape(self.source)}</b>: {len(self.columns)} columns<br>" + self.rows.to_html(index=False)


def preview(source, n_rows: int = PREVIEW_ROWS, delimiter: str | None = None,
            sandbox: SqlSandbox | None = None) -> Preview:
    """The first `n_rows` of a file path, DataFrame or DuckDB query, opened and typed as an import does
    (a query runs in `sandbox`, see open_source)."""
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise ValidationError(f"n_rows must be a positive whole number, got {n_rows!r}")
    with Session() as session:
        inp = open_source(source, session, delimiter, sandbox)
        table = inp.fetch(list(inp.columns), for_ids=[], limit=n_rows)
    types = {field.name: str(field.type) for field in table.schema}
    return Preview(inp.description, list(inp.columns), types, table.to_pandas())


def _file_kind(path: Path, src: str) -> tuple[str, bool, bytes]:
    """("csv" | "json" | "parquet", gzipped, the first bytes): the name's kind, checked against the content."""
    if not path.is_file():
        raise ValidationError(f"{src}: no such file")
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = suffixes[-1:] == [".gz"]
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    if gzipped != compressed:
        raise ValidationError(
            f"{src}: the name ends in .gz but the content is not gzip-compressed" if gzipped
            else f"{src}: the content is gzip-compressed but the name does not end in .gz"
        )
    head = _read_head(path, gzipped, src)
    if not head.strip():
        raise ValidationError(f"{src}: the file is empty")
    found = _content_kind(head)
    named = suffixes[:-1] if gzipped else suffixes
    kind = EXTENSIONS.get(named[-1] if named else "") or {"parquet": "parquet", "json": "json"}.get(found, "csv")
    if found != {"csv": "text", "json": "json", "parquet": "parquet"}[kind]:
        raise ValidationError(f"{src}: the name says {kind.upper()} but the content looks like {_describe(found)}")
    return kind, gzipped, head


def _read_head(path: Path, gzipped: bool, src: str) -> bytes:
    try:
        if gzipped:
            with gzip.open(path, "rb") as f:
                return f.read(SAMPLE_BYTES)
        with open(path, "rb") as f:
            return f.read(SAMPLE_BYTES)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise ValidationError(f"{src}: the gzip stream is truncated or corrupt") from None


def _content_kind(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    if b"\x00" in head[:4096]:
        return "binary"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if text[:1] in (b"[", b"{") else "text"


def _describe(kind: str) -> str:
    return {"parquet": "Parquet", "binary": "binary data", "json": "JSON", "text": "delimited text (CSV)"}[kind]


def _check_utf8(head: bytes, src: str) -> None:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < SAMPLE_BYTES)
    except UnicodeDecodeError as error:
        line = head[: error.start].count(b"\n") + 1
        raise ValidationError(
            f"{src}: not UTF-8 text (byte 0x{head[error.start]:02x} on line {line}); save the file as UTF-8"
        ) from None


