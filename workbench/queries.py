"""Telling a DuckDB query from a file path, without importing the data stack (the CLI checks arguments with it)."""

from __future__ import annotations

import os
import re

_SQL_START = re.compile(r"\s*(select|with|from)(?=[\s(*])", re.IGNORECASE)  # not "with.csv"


def is_sql_query(source) -> bool:
    """Whether `source` is a DuckDB query rather than a file path: text that is no file and starts
    like a query (SELECT, WITH, FROM), or holds white space and parses as SQL (ATTACH ..., COPY ...:
    queries that an import then refuses)."""
    if not isinstance(source, str) or os.path.isfile(source):
        return False
    if _SQL_START.match(source):
        return True
    if not re.search(r"\S\s+\S", source):
        return False
    import duckdb

    try:
        return bool(duckdb.extract_statements(source))
    except duckdb.Error:
        return False
