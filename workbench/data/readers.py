"""The readers of each kind of source: a DataFrame, a DuckDB query, JSON and Parquet files.

Each returns a `Source`: its column names and a way to read some of them as an Arrow table.
Delimited text is read by workbench.data.delimited; workbench.data.sources picks the reader.
"""

from __future__ import annotations

import gzip
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workbench.errors import ValidationError

from .engine import Session, identifiers, limit_clause, literal, struct, wrap_error
from .sandbox import SqlSandbox, check_select

SAMPLE_BYTES = 1 << 16  # how much of a file is read to tell what it holds and how it is written
MAX_COLUMNS = 2048  # wider sources are refused before DuckDB spends seconds or minutes describing them
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_FLOAT_TYPES = ("FLOAT", "REAL", "DOUBLE")


@dataclass
class Source:
    """An opened source: its columns, and how to read some of them as an Arrow table."""

    description: str
    columns: list
    fetch_columns: Callable[[list, dict, int | None], pa.Table]  # (names, {name: duckdb type}, row limit) -> table
    types: dict  # detected duckdb type of each column, for sources read with explicit types
    empty_hint: str = ""

    def require(self, wanted: dict) -> None:
        """Check that each role's column ({role: name}) is there; the error lists what is."""
        for role, name in wanted.items():
            if name not in self.columns:
                hint = ""
                if self.columns and all(re.fullmatch(r"column\d+", c) for c in self.columns):
                    hint = " (the file seems to have no header line, so DuckDB named the columns column0, column1, ...)"
                elif len(self.columns) == 1 and re.search(r"[,;\t|]", self.columns[0]):
                    hint = (" (its lines have different numbers of fields, so they could not be split into "
                            "columns: look for ragged rows or give delimiter=)")
                raise ValidationError(
                    f"{self.description}: {role} column {name!r} not found; columns found: "
                    f"{', '.join(map(repr, self.columns)) or 'none'}{hint}"
                )

    def fetch(self, names: list, for_ids: list, limit: int | None = None) -> pa.Table:
        """Read `names` (the first `limit` rows, or all) with the detected types; if a value later in
        the file does not fit them, read as text (number columns stay numbers if every value is one)."""
        typed = {n: self.types[n] for n in names if n in self.types}
        for name in set(for_ids) & set(typed):
            kind = typed[name].upper()
            if kind.startswith(("STRUCT", "MAP", "LIST", "UNION")) or kind.endswith("]"):
                shape = "list" if kind.startswith("LIST") or kind.endswith("]") else "object"
                raise ValidationError(
                    f"{self.description}: column {name!r} holds {shape} values ({typed[name]}); "
                    "ids must be text or integers"
                )
            typed[name] = ("BIGINT" if kind in _INTEGER_TYPES
                           else "DOUBLE" if kind in _FLOAT_TYPES or kind.startswith("DECIMAL") else "VARCHAR")
        try:
            return self.fetch_columns(names, typed, limit)
        except duckdb.Error as error:
            if all(t == "VARCHAR" for t in typed.values()):
                raise wrap_error(self.description, error) from None
        try:
            table = self.fetch_columns(names, dict.fromkeys(typed, "VARCHAR"), limit)
        except duckdb.Error as error:
            raise wrap_error(self.description, error) from None
        for name, kind in typed.items():
            if kind in ("BIGINT", "DOUBLE"):
                column = table.column(name)
                if name in for_ids:  # "nan" among number ids is a missing id
                    column = pc.if_else(pc.equal(pc.utf8_lower(column), "nan"), pa.scalar(None, column.type), column)
                try:
                    target = pa.int64() if kind == "BIGINT" else pa.float64()
                    table = table.set_column(names.index(name), name, pc.cast(column, target))
                except pa.ArrowInvalid:
                    pass
        return table


def check_width(n_columns: int, src: str, at_least: bool = False, hint: str = "is this the right source?") -> None:
    """Refuse a source of more than MAX_COLUMNS columns (`at_least`: `n_columns` counts only some)."""
    if n_columns > MAX_COLUMNS:
        raise ValidationError(
            f"{src}: {'at least ' if at_least else ''}{n_columns:,} columns; sources of more than "
            f"{MAX_COLUMNS:,} columns are refused ({hint})"
        )


def open_dataframe(df: pd.DataFrame) -> Source:
    def fetch(names, _types, limit):
        frame = df[names] if limit is None else df[names].head(limit)
        frame.columns = range(len(names))  # tolerate duplicate or non-string labels elsewhere in df
        arrays = []
        for pos, name in enumerate(names):
            try:
                arrays.append(pa.array(frame[pos]) if frame[pos].dtype != object else _object_column(frame[pos]))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise ValidationError(f"DataFrame: column {name!r} cannot be used: {error}") from None
        return pa.table(arrays, names=[str(n) for n in names])

    return Source("DataFrame", list(df.columns), fetch, {})


def _object_column(series: pd.Series) -> pa.Array:
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        kinds = sorted({type(v).__name__ for v in series.dropna()})
        raise pa.ArrowTypeError(f"it mixes value types ({', '.join(kinds)})") from None


def open_sql(query: str, session: Session, sandbox: SqlSandbox) -> Source:
    """A DuckDB query, checked to be one SELECT and run in `sandbox` on a connection of its own."""
    description = f"SQL: {query}"
    check_select(query, description)
    scratch = session.scratch() / "sql"
    scratch.mkdir()
    con = session.close_later(sandbox.connect(scratch))

    def failed(error: duckdb.Error) -> ValidationError:
        return sandbox.refusal(description, error) or wrap_error(description, error, "the query failed")

    try:
        relation = con.sql(query)
        columns = relation.columns
    except duckdb.Error as error:
        raise failed(error) from None

    def fetch(names, _types, limit):
        selected = relation.select(identifiers(names))
        try:
            return (selected if limit is None else selected.limit(limit)).to_arrow_table()
        except duckdb.Error as error:
            raise failed(error) from None

    return Source(description, columns, fetch, {})


def open_json(path: Path, con, src: str) -> Source:
    reader = f"read_json({literal(str(path))}, format='auto'"
    try:
        described = con.sql(f"DESCRIBE SELECT * FROM {reader})").fetchall()
    except duckdb.Error as error:
        raise wrap_error(src, error) from None
    types = {row[0]: row[1] for row in described}

    def fetch(names, typed, limit):
        spec = {name: typed.get(name, types[name]) for name in names}
        return con.sql(f"SELECT {identifiers(names)} FROM {reader}, columns={struct(spec)}){limit_clause(limit)}").to_arrow_table()

    return Source(src, list(types), fetch, types)


def open_parquet(path: Path, gzipped: bool, session: Session, src: str) -> Source:
    if gzipped:  # DuckDB cannot read gzipped Parquet: decompress to the session's scratch directory
        plain = session.scratch() / "source.parquet"
        try:
            with gzip.open(path, "rb") as fin, open(plain, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            raise ValidationError(f"{src}: the gzip stream is truncated or corrupt") from None
        path = plain
    try:
        check_width(pq.read_metadata(path).num_columns, src)
    except (pa.ArrowException, OSError):
        pass  # DuckDB says what is wrong with the file
    reader = f"read_parquet({literal(str(path))})"
    con = session.con
    try:
        columns = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    except duckdb.Error as error:
        raise wrap_error(src, error) from None

    def fetch(names, _types, limit):
        try:
            return con.sql(f"SELECT {identifiers(names)} FROM {reader}{limit_clause(limit)}").to_arrow_table()
        except duckdb.Error as error:
            raise wrap_error(src, error) from None

    return Source(src, columns, fetch, {})
