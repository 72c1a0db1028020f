"""The DuckDB catalog: schema, migrations, short-lived connections, retries on lock conflicts.

DuckDB lets one process at a time hold a database file open (readers included), while Voila
kernels, Papermill runs and background jobs all share the catalog. So every access here is one
short transaction on a connection opened and closed around it, retried with backoff while
another process holds the file, and failing with `CatalogBusyError` after a bounded wait.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from .errors import CatalogBusyError, NotFoundError

T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT = float(os.environ.get("WORKBENCH_LOCK_TIMEOUT", "30"))

# Each entry moves the schema one version forward; never edit an applied entry, append.
MIGRATIONS: list[str] = [
    """
    CREATE SEQUENCE project_ids START 1;
    CREATE SEQUENCE training_data_ids START 1;
    CREATE SEQUENCE item_metadata_ids START 1;
    CREATE SEQUENCE configuration_ids START 1;
    CREATE SEQUENCE tuning_job_ids START 1;
    CREATE SEQUENCE model_ids START 1;
    CREATE SEQUENCE job_ids START 1;
    CREATE SEQUENCE log_ids START 1;
    CREATE SEQUENCE trial_ids START 1;
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY DEFAULT nextval('project_ids'),
        name VARCHAR NOT NULL UNIQUE,
        user_column VARCHAR NOT NULL,
        item_column VARCHAR NOT NULL,
        time_column VARCHAR,
        active_model_id INTEGER,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE training_data (
        id INTEGER PRIMARY KEY DEFAULT nextval('training_data_ids'),
        project_id INTEGER NOT NULL,
        name VARCHAR,
        source VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL,
        n_users INTEGER NOT NULL,
        n_items INTEGER NOT NULL,
        time_min TIMESTAMP,
        time_max TIMESTAMP,
        dropped VARCHAR NOT NULL DEFAULT '{}',
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE item_metadata (
        id INTEGER PRIMARY KEY DEFAULT nextval('item_metadata_ids'),
        project_id INTEGER NOT NULL,
        source VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        item_column VARCHAR NOT NULL,
        n_rows BIGINT NOT NULL,
        columns VARCHAR NOT NULL DEFAULT '[]',
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE configurations (
        id INTEGER PRIMARY KEY DEFAULT nextval('configuration_ids'),
        project_id INTEGER NOT NULL,
        name VARCHAR NOT NULL,
        algorithm VARCHAR NOT NULL,
        params VARCHAR NOT NULL DEFAULT '{}',
        tuning_job_id INTEGER,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY DEFAULT nextval('job_ids'),
        kind VARCHAR NOT NULL,
        project_id INTEGER,
        status VARCHAR NOT NULL DEFAULT 'PENDING',
        progress DOUBLE NOT NULL DEFAULT 0,
        step VARCHAR NOT NULL DEFAULT '',
        pid INTEGER,
        host VARCHAR,
        process_started DOUBLE,
        error VARCHAR,
        request VARCHAR NOT NULL DEFAULT '{}',
        result VARCHAR NOT NULL DEFAULT '{}',
        cancel_requested BOOLEAN NOT NULL DEFAULT false,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        started_at TIMESTAMP,
        finished_at TIMESTAMP
    );
    CREATE TABLE job_logs (
        id BIGINT PRIMARY KEY DEFAULT nextval('log_ids'),
        job_id INTEGER NOT NULL,
        logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        level VARCHAR NOT NULL DEFAULT 'INFO',
        message VARCHAR NOT NULL
    );
    CREATE TABLE tuning_jobs (
        id INTEGER PRIMARY KEY DEFAULT nextval('tuning_job_ids'),
        project_id INTEGER NOT NULL,
        training_data_id INTEGER NOT NULL,
        job_id INTEGER,
        n_trials INTEGER NOT NULL,
        timeout_overall DOUBLE,
        timeout_singlestep DOUBLE,
        algorithms VARCHAR NOT NULL DEFAULT '[]',
        metric VARCHAR NOT NULL,
        cutoff INTEGER NOT NULL,
        split VARCHAR NOT NULL DEFAULT '{}',
        seed INTEGER NOT NULL DEFAULT 0,
        n_jobs INTEGER NOT NULL DEFAULT 1,
        storage VARCHAR,
        study_name VARCHAR,
        train_after_tuning BOOLEAN NOT NULL DEFAULT true,
        best_score DOUBLE,
        best_configuration_id INTEGER,
        model_id INTEGER,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE tuning_trials (
        id BIGINT PRIMARY KEY DEFAULT nextval('trial_ids'),
        tuning_job_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        algorithm VARCHAR,
        params VARCHAR NOT NULL DEFAULT '{}',
        score DOUBLE,
        seconds DOUBLE,
        state VARCHAR NOT NULL,
        worker INTEGER,
        logged_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE models (
        id INTEGER PRIMARY KEY DEFAULT nextval('model_ids'),
        project_id INTEGER NOT NULL,
        configuration_id INTEGER NOT NULL,
        training_data_id INTEGER NOT NULL,
        job_id INTEGER,
        status VARCHAR NOT NULL DEFAULT 'PENDING',
        file VARCHAR,
        basename VARCHAR,
        filesize BIGINT,
        irspack_version VARCHAR,
        data_fingerprint VARCHAR,
        n_users INTEGER,
        n_items INTEGER,
        n_interactions BIGINT,
        train_seconds DOUBLE,
        metrics VARCHAR NOT NULL DEFAULT '{}',
        stats VARCHAR NOT NULL DEFAULT '{}',
        ins_datetime TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    """,
]

JSON_COLUMNS = frozenset(
    {"dropped", "columns", "params", "request", "result", "algorithms", "split",
     "metrics", "stats"}
)


def _is_lock_conflict(error: Exception) -> bool:
    text = str(error).lower()
    return (
        "could not set lock" in text
        or "conflicting lock" in text
        or "database is locked" in text
        or ("transactioncontext" in text and "conflict" in text)
        or "write-write conflict" in text
    )


def decode_row(columns: list[str], row: tuple) -> dict[str, Any]:
    """One catalog row as a dict, with JSON text columns parsed."""
    record = dict(zip(columns, row))
    for key in JSON_COLUMNS.intersection(record):
        if isinstance(record[key], str):
            record[key] = json.loads(record[key])
    return record


def encode_value(value: Any) -> Any:
    """Dicts and lists go to the catalog as JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


class Catalog:
    """The catalog file. Holds no connection between calls."""

    def __init__(self, path: str | os.PathLike, lock_timeout: float | None = None) -> None:
        self.path = Path(path)
        self.lock_timeout = DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run(self._migrate)

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    def run(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `work(connection)` in one transaction, retrying while the file is locked."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            held = getattr(self._local, "connection", None)
            connection = held or self._open(deadline)
            try:
                connection.execute("BEGIN TRANSACTION")
                result = work(connection)
                connection.execute("COMMIT")
                return result
            except duckdb.Error as error:
                _rollback(connection)
                if not _is_lock_conflict(error):
                    raise
                delay = self._wait_or_give_up(error, deadline, delay)
            except BaseException:
                _rollback(connection)
                raise
            finally:
                if held is None:
                    connection.close()

    @contextmanager
    def session(self) -> Iterator[None]:
        """Let a short burst of `run` calls in this thread share one connection.

        Opening a DuckDB file costs about 20 ms, so a burst of small transactions (a job's
        start, its end) shares one. Keep the body short: while it runs, other processes wait.
        Never hold a session across a long computation.
        """
        if getattr(self._local, "connection", None) is not None:
            yield
            return
        self._local.connection = self._open(time.monotonic() + self.lock_timeout)
        try:
            yield
        finally:
            connection, self._local.connection = self._local.connection, None
            connection.close()

    def _open(self, deadline: float) -> duckdb.DuckDBPyConnection:
        """Connect, waiting with backoff while another process holds the file."""
        delay = 0.005
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.Error as error:
                if not _is_lock_conflict(error):
                    raise
                delay = self._wait_or_give_up(error, deadline, delay)

    def _wait_or_give_up(self, error: Exception, deadline: float, delay: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CatalogBusyError(
                f"The catalog {self.path} stayed locked by another process for "
                f"{self.lock_timeout:g} s (set WORKBENCH_LOCK_TIMEOUT to wait longer): {error}"
            ) from error
        time.sleep(min(remaining, delay * (0.5 + random.random())))
        return min(delay * 2, 0.25)

    # Small helpers over `run`; every one is a single short transaction.

    def query(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        def work(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cursor = con.execute(sql, list(params))
            columns = [d[0] for d in cursor.description]
            return [decode_row(columns, row) for row in cursor.fetchall()]

        return self.run(work)

    def query_df(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        return self.run(lambda con: con.execute(sql, list(params)).fetchdf())

    def execute(self, sql: str, params: list | tuple = ()) -> None:
        self.run(lambda con: con.execute(sql, list(params)))

    def insert(self, table: str, values: dict[str, Any]) -> int:
        """Insert one row and return its id."""
        return self.run(lambda con: insert_row(con, table, values))

    def update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        self.run(lambda con: update_row(con, table, row_id, values))

    def get(self, table: str, row_id: int, what: str | None = None) -> dict[str, Any]:
        rows = self.query(f"SELECT * FROM {table} WHERE id = ?", [int(row_id)])
        if not rows:
            raise NotFoundError(f"There is no {what or table.rstrip('s')} with id {row_id}.")
        return rows[0]

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for version, statement in enumerate(MIGRATIONS[current:], start=current + 1):
            con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?)", [version])

    @property
    def schema_version(self) -> int:
        return self.run(lambda con: con.execute("SELECT max(version) FROM schema_version").fetchone()[0])


def insert_row(con: duckdb.DuckDBPyConnection, table: str, values: dict[str, Any]) -> int:
    columns = list(values)
    placeholders = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id"
    return int(con.execute(sql, [encode_value(values[c]) for c in columns]).fetchone()[0])


def update_row(con: duckdb.DuckDBPyConnection, table: str, row_id: int, values: dict[str, Any]) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    params = [encode_value(v) for v in values.values()] + [int(row_id)]
    con.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", params)


def _rollback(connection: duckdb.DuckDBPyConnection) -> None:
    try:
        connection.execute("ROLLBACK")
    except duckdb.Error:
        pass
