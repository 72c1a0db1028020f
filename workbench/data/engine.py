"""DuckDB plumbing shared by the readers: a per-import session, SQL text helpers, readable errors."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import duckdb

from workbench.errors import ValidationError


class Session:
    """A connection of its own to this module's in-memory DuckDB, and a scratch directory; both removed on exit.

    Opening a database costs about 20 ms, a cursor on it almost nothing.
    """

    _database: tuple[int, duckdb.DuckDBPyConnection] | None = None

    def __enter__(self) -> Session:
        if Session._database is None or Session._database[0] != os.getpid():  # not inherited through fork
            Session._database = (os.getpid(), duckdb.connect(":memory:"))
        self.con = Session._database[1].cursor()
        # Text times without a zone are UTC, whatever the machine's zone.
        self.con.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
        self._scratch = None
        self._connections = [self.con]
        return self

    def close_later(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """`con`, closed with the session."""
        self._connections.append(con)
        return con

    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="workbench-import-")
        return Path(self._scratch.name)

    def __exit__(self, *exc) -> None:
        for con in self._connections:
            con.close()
        if self._scratch is not None:
            self._scratch.cleanup()


def wrap_error(description: str, error: duckdb.Error, failed: str = "could not be read") -> ValidationError:
    """A ValidationError naming the source, with the useful lines of a DuckDB error."""
    text = str(error)
    if "Invalid unicode" in text or "not utf-8" in text.lower():
        line = re.search(r"Line: (\d+)", text)
        return ValidationError(f"{description}: not UTF-8 text{f' (line {line.group(1)})' if line else ''}; save the file as UTF-8")
    if "GZIP" in text.upper() and ("end" in text.lower() or "corrupt" in text.lower()):
        return ValidationError(f"{description}: the gzip stream is truncated or corrupt")
    lines = [
        re.sub(r"^[A-Za-z ]*Error: ", "", line).strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("Possible Solution", "Original Line", "  "))
    ]
    return ValidationError(f"{description}: {failed}: {'; '.join(lines[:3])}")


def literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def identifiers(names: list) -> str:
    return ", ".join(identifier(n) for n in names)


def limit_clause(limit: int | None) -> str:
    return "" if limit is None else f" LIMIT {int(limit)}"


def options(values: dict) -> str:
    """Keyword arguments of a DuckDB table function, each after a comma."""
    def value(v):
        return str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int) else literal(v)

    return "".join(f", {k}={value(v)}" for k, v in values.items())


def struct(types: dict) -> str:
    """A DuckDB struct literal {'name': 'TYPE', ...} (the `columns=` argument of the readers)."""
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in types.items()) + "}"
