"""The catalog: SQLite in WAL mode, shared by many processes without losing a write.

Voila kernels, Papermill runs, background workers and notebooks all read and write the catalog at
once. SQLite's write-ahead log lets readers run while one writer commits, and every access here is
one short transaction: `BEGIN IMMEDIATE` for writes (so two writers queue on SQLite's lock
instead of failing at commit), a plain `BEGIN` for reads, and a busy timeout after which
`CatalogBusyError` says so. Each thread keeps one idle connection between transactions (an idle
connection holds no lock); that also keeps the WAL index alive, so reads go on when the disk
fills up. DuckDB stays the engine for interaction data
(`workbench.data`); the catalog holds only records.

Paths in the catalog (snapshot folders, model files) are stored relative to the workspace home,
so a copied or moved workspace is an independent, working copy; records read back carry
absolute paths. A catalog file is created complete (schema and all) under a temporary name and
linked into place, so a catalog file that is empty or unreadable is damaged, never half-made.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from .errors import (
    CatalogBusyError,
    CatalogDamagedError,
    DiskFullError,
    NotFoundError,
    ReadOnlyWorkspaceError,
)

T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT = float(os.environ.get("WORKBENCH_LOCK_TIMEOUT", "30"))
REBUILD_HINT = "run `workbench doctor --rebuild` to rebuild it from the snapshots and model files"

_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"

# Each entry moves the schema one version forward (PRAGMA user_version); never edit an applied
# entry, append. AUTOINCREMENT: an id is never reused, so a model's file name stays its own.
MIGRATIONS: list[str] = [
    f"""
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        user_column TEXT NOT NULL,
        item_column TEXT NOT NULL,
        time_column TEXT,
        active_model_id INTEGER,
        created_at TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE TABLE training_data (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        name TEXT,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        n_rows INTEGER NOT NULL,
        n_users INTEGER NOT NULL,
        n_items INTEGER NOT NULL,
        time_min TEXT,
        time_max TEXT,
        dropped TEXT NOT NULL DEFAULT '{{}}',
        run_id TEXT,
        created_at TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE TABLE item_metadata (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        item_column TEXT NOT NULL,
        n_rows INTEGER NOT NULL,
        columns TEXT NOT NULL DEFAULT '[]',
        run_id TEXT,
        created_at TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE TABLE configurations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{{}}',
        tuning_job_id INTEGER,
        run_id TEXT,
        created_at TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        project_id INTEGER,
        status TEXT NOT NULL DEFAULT 'PENDING',
        progress REAL NOT NULL DEFAULT 0,
        step TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        host TEXT,
        process_started REAL,
        error TEXT,
        request TEXT NOT NULL DEFAULT '{{}}',
        result TEXT NOT NULL DEFAULT '{{}}',
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        run_id TEXT,
        created_at TEXT NOT NULL DEFAULT {_NOW},
        started_at TEXT,
        finished_at TEXT
    );
    CREATE TABLE job_logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL,
        logged_at TEXT NOT NULL DEFAULT {_NOW},
        level TEXT NOT NULL DEFAULT 'INFO',
        message TEXT NOT NULL
    );
    CREATE INDEX job_logs_by_job ON job_logs (job_id, id);
    CREATE TABLE tuning_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        training_data_id INTEGER NOT NULL,
        job_id INTEGER,
        n_trials INTEGER NOT NULL,
        timeout_overall REAL,
        timeout_singlestep REAL,
        algorithms TEXT NOT NULL DEFAULT '[]',
        metric TEXT NOT NULL,
        cutoff INTEGER NOT NULL,
        split TEXT NOT NULL DEFAULT '{{}}',
        seed INTEGER NOT NULL DEFAULT 0,
        n_jobs INTEGER NOT NULL DEFAULT 1,
        storage TEXT,
        study_name TEXT,
        train_after_tuning INTEGER NOT NULL DEFAULT 1,
        best_score REAL,
        best_configuration_id INTEGER,
        model_id INTEGER,
        run_id TEXT,
        created_at TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE TABLE tuning_trials (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tuning_job_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        algorithm TEXT,
        params TEXT NOT NULL DEFAULT '{{}}',
        score REAL,
        seconds REAL,
        state TEXT NOT NULL,
        worker INTEGER,
        logged_at TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE INDEX tuning_trials_by_job ON tuning_trials (tuning_job_id, number);
    CREATE TABLE models (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        configuration_id INTEGER NOT NULL,
        training_data_id INTEGER NOT NULL,
        job_id INTEGER,
        status TEXT NOT NULL DEFAULT 'PENDING',
        file TEXT,
        basename TEXT,
        filesize INTEGER,
        irspack_version TEXT,
        data_fingerprint TEXT,
        n_users INTEGER,
        n_items INTEGER,
        n_interactions INTEGER,
        train_seconds REAL,
        metrics TEXT NOT NULL DEFAULT '{{}}',
        stats TEXT NOT NULL DEFAULT '{{}}',
        run_id TEXT,
        ins_datetime TEXT NOT NULL DEFAULT {_NOW}
    );
    CREATE INDEX models_by_project ON models (project_id, id);
    """,
]

TABLES = ("projects", "training_data", "item_metadata", "configurations", "jobs", "job_logs", "tuning_jobs",
          "tuning_trials", "models")
# Rows a retrain run creates carry its run id (see `Catalog.tagged`), so a crashed run is undone by it.
RUN_TAGGED = frozenset({"training_data", "item_metadata", "configurations", "jobs", "tuning_jobs", "models"})
JSON_COLUMNS = frozenset({"dropped", "columns", "params", "request", "result", "algorithms", "split", "metrics", "stats"})
TIME_COLUMNS = frozenset({"created_at", "started_at", "finished_at", "logged_at", "ins_datetime", "time_min",
                          "time_max", "trained_at"})
BOOL_COLUMNS = frozenset({"cancel_requested", "train_after_tuning", "active"})
PATH_COLUMNS = frozenset({"path", "file", "data_loc"})

_run_tag: ContextVar[str | None] = ContextVar("workbench_run_tag", default=None)


def utc_now() -> datetime:
    """Now, as the naive UTC time every catalog timestamp is."""
    return datetime.now(UTC).replace(tzinfo=None)


def encode_value(value: Any) -> Any:
    """Dicts and lists go to the catalog as JSON text, times as ISO text, flags as 0/1."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, pd.Timestamp):
        return encode_value(value.to_pydatetime())
    if isinstance(value, Path):
        return str(value)
    return value


def _parse_time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else value


class Catalog:
    """The catalog file of one workspace. Holds no lock between calls."""

    def __init__(self, path: str | os.PathLike, home: str | os.PathLike | None = None,
                 lock_timeout: float | None = None, read_only: bool = False) -> None:
        self.path = Path(path).absolute()
        self.home = Path(home).absolute() if home is not None else self.path.parent
        self.lock_timeout = DEFAULT_LOCK_TIMEOUT if lock_timeout is None else float(lock_timeout)
        self.read_only = read_only
        self._local = threading.local()
        self._immutable = False
        if not self.path.exists():
            if read_only:
                raise ReadOnlyWorkspaceError(f"There is no catalog at {self.path}, and the workspace is read-only.")
            self._create()
        self.check()

    def __repr__(self) -> str:
        return f"Catalog({str(self.path)!r})"

    # ------------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                mode = "immutable=1" if self._immutable else "mode=ro"
                con = sqlite3.connect(f"{self.path.as_uri()}?{mode}", uri=True, timeout=self.lock_timeout,
                                      isolation_level=None, check_same_thread=False)
            else:
                con = sqlite3.connect(self.path, timeout=self.lock_timeout, isolation_level=None,
                                      check_same_thread=False)
                con.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across crashes, fsync at checkpoints
        except sqlite3.Error as error:
            raise self._translate(error) from error
        return con

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own)."""
        held = getattr(self._local, "held", None)
        if held is None or held[0] != os.getpid():
            held = self._local.held = (os.getpid(), self._connect())
        return held[1]

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        held, self._local.held = getattr(self._local, "held", None), None
        if held is not None and held[0] == os.getpid():
            held[1].close()

    def run(self, work: Callable[[sqlite3.Connection], T], write: bool = True) -> T:
        """Run `work(connection)` in one transaction: `BEGIN IMMEDIATE` when it writes."""
        if write and self.read_only:
            raise ReadOnlyWorkspaceError(
                f"The workspace {self.home} is read-only: listing, inspecting and recommending work, "
                "changes need a writable copy."
            )
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as error:
            raise self._translate(error) from error

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in one read transaction (readers never wait for writers)."""
        return self.run(work, write=False)

    @contextmanager
    def tagged(self, run_id: str) -> Iterator[None]:
        """Tag every row inserted in this context (this thread or task) into a RUN_TAGGED table with `run_id`."""
        token = _run_tag.set(run_id)
        try:
            yield
        finally:
            _run_tag.reset(token)

    def _translate(self, error: sqlite3.Error) -> Exception:
        """One clear WorkbenchError for what a user can meet: busy, damaged, read-only, full."""
        text = str(error).lower()
        if "locked" in text or "busy" in text:
            return CatalogBusyError(
                f"The catalog {self.path} stayed locked by another process for {self.lock_timeout:g} s "
                f"(set WORKBENCH_LOCK_TIMEOUT to wait longer): {error}"
            )
        if "readonly" in text or "read-only" in text:
            return ReadOnlyWorkspaceError(
                f"The workspace {self.home} is read-only ({error}): listing, inspecting and recommending work, "
                "changes need a writable copy."
            )
        if "full" in text or ("disk i/o" in text and _free_bytes(self.path.parent) < 1 << 16):
            return DiskFullError(f"No space left on the device of {self.path.parent}: nothing was changed ({error}).")
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return CatalogDamagedError(f"The catalog {self.path} is damaged ({error}): {REBUILD_HINT}.")
        if isinstance(error, sqlite3.OperationalError) and "unable to open" in text:
            return CatalogDamagedError(f"The catalog {self.path} cannot be opened ({error}).")
        return error

    # ------------------------------------------------------------------------ schema

    def _create(self) -> None:
        """Write a complete, empty catalog under a temporary name and link it into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.new-{os.getpid()}-{threading.get_ident()}")
        try:
            con = sqlite3.connect(temp, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode = WAL")
                _migrate(con)
            finally:
                con.close()
            try:
                os.link(temp, self.path)  # fails if another process created it first: theirs wins
            except FileExistsError:
                pass
        except OSError as error:
            raise _os_error(error, self.path.parent) from error
        except sqlite3.Error as error:
            raise self._translate(error) from error
        finally:
            for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
                leftover.unlink(missing_ok=True)

    def check(self) -> None:
        """Open the catalog, say clearly if it is damaged, and bring an older schema up to date."""
        try:
            size = self.path.stat().st_size
        except OSError as error:
            raise CatalogDamagedError(f"The catalog {self.path} cannot be read ({error}): {REBUILD_HINT}.") from error
        if size == 0:
            raise CatalogDamagedError(f"The catalog {self.path} is an empty file: {REBUILD_HINT}.")

        def version(con: sqlite3.Connection) -> int:
            current = con.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if current and not set(TABLES) <= tables:
                raise CatalogDamagedError(f"The catalog {self.path} lacks tables {sorted(set(TABLES) - tables)}: "
                                          f"{REBUILD_HINT}.")
            return current

        if self.read_only:
            try:
                self.read(version)
            except (CatalogDamagedError, ReadOnlyWorkspaceError, sqlite3.Error):
                # A read-only folder whose WAL catalog has no -shm file beside it: read it as immutable.
                self.close()
                self._immutable = True
        current = self.read(version)
        if current > len(MIGRATIONS):
            raise CatalogDamagedError(
                f"The catalog {self.path} has schema version {current}, newer than this workbench knows "
                f"({len(MIGRATIONS)}): upgrade the workbench."
            )
        if current < len(MIGRATIONS):
            if self.read_only:
                raise ReadOnlyWorkspaceError(f"The catalog {self.path} needs a schema upgrade, and the workspace "
                                             "is read-only: open it once from a writable place.")
            self.run(_migrate)

    @property
    def schema_version(self) -> int:
        return self.read(lambda con: con.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------------ paths

    def relative(self, path: str | os.PathLike) -> str:
        """How a path is stored: relative to the workspace home when inside it."""
        path = Path(path)
        if not path.is_absolute():
            return str(path)
        try:
            return str(path.absolute().relative_to(self.home))
        except ValueError:
            return str(path)

    def absolute(self, stored: str) -> str:
        return str(self.home / stored) if stored and not os.path.isabs(stored) else stored

    # ------------------------------------------------------------------------ rows

    def decode_row(self, columns: list[str], row: tuple) -> dict[str, Any]:
        """One catalog row as a dict: JSON parsed, times as datetimes, flags as bools, paths absolute."""
        record = dict(zip(columns, row))
        for key, value in record.items():
            if value is None:
                continue
            if key in JSON_COLUMNS and isinstance(value, str):
                record[key] = json.loads(value)
            elif key in TIME_COLUMNS:
                record[key] = _parse_time(value)
            elif key in BOOL_COLUMNS:
                record[key] = bool(value)
            elif key in PATH_COLUMNS and isinstance(value, str):
                record[key] = self.absolute(value)
        return record

    def _encode(self, column: str, value: Any) -> Any:
        if column in PATH_COLUMNS and value is not None:
            return self.relative(value)
        return encode_value(value)

    def insert_row(self, con: sqlite3.Connection, table: str, values: dict[str, Any]) -> int:
        """Insert one row inside `con`'s transaction and return its id."""
        values = dict(values)
        tag = _run_tag.get()
        if tag is not None and table in RUN_TAGGED:
            values.setdefault("run_id", tag)
        columns = list(values)
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
               "RETURNING id")
        return int(con.execute(sql, [self._encode(c, values[c]) for c in columns]).fetchone()[0])

    def update_row(self, con: sqlite3.Connection, table: str, row_id: int, values: dict[str, Any]) -> None:
        """Update one row inside `con`'s transaction."""
        assignments = ", ".join(f"{column} = ?" for column in values)
        params = [self._encode(c, v) for c, v in values.items()] + [int(row_id)]
        con.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", params)

    # Small helpers; each is one short transaction.

    def query(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        def work(con: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = con.execute(sql, [encode_value(p) for p in params])
            columns = [d[0] for d in cursor.description]
            return [self.decode_row(columns, row) for row in cursor.fetchall()]

        return self.read(work)

    def query_df(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        """A query as a DataFrame: JSON columns stay text, times and flags are typed, paths absolute."""
        def work(con: sqlite3.Connection) -> tuple[list[str], list[tuple]]:
            cursor = con.execute(sql, [encode_value(p) for p in params])
            return [d[0] for d in cursor.description], cursor.fetchall()

        columns, rows = self.read(work)
        frame = pd.DataFrame.from_records(rows, columns=columns)
        for column in columns:
            if column in TIME_COLUMNS:
                frame[column] = pd.to_datetime(frame[column], format="ISO8601")
            elif column in BOOL_COLUMNS:
                frame[column] = frame[column].fillna(0).astype(bool)
            elif column in PATH_COLUMNS:
                frame[column] = frame[column].map(lambda v: self.absolute(v) if isinstance(v, str) else v)
        return frame

    def execute(self, sql: str, params: list | tuple = ()) -> None:
        self.run(lambda con: con.execute(sql, [encode_value(p) for p in params]))

    def insert(self, table: str, values: dict[str, Any]) -> int:
        """Insert one row and return its id."""
        return self.run(lambda con: self.insert_row(con, table, values))

    def update(self, table: str, row_id: int, values: dict[str, Any]) -> None:
        self.run(lambda con: self.update_row(con, table, row_id, values))

    def get(self, table: str, row_id: int, what: str | None = None) -> dict[str, Any]:
        rows = self.query(f"SELECT * FROM {table} WHERE id = ?", [int(row_id)])
        if not rows:
            raise NotFoundError(f"There is no {what or table.rstrip('s')} with id {row_id}.")
        return rows[0]


def _migrate(con: sqlite3.Connection) -> None:
    current = con.execute("PRAGMA user_version").fetchone()[0]
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        for statement in script.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute(f"PRAGMA user_version = {version}")


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 30


def _os_error(error: OSError, folder: Path) -> Exception:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"No space left on the device of {folder}: nothing was changed.")
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyWorkspaceError(f"The folder {folder} is not writable ({error.strerror}).")
    return error


@contextmanager
def disk_errors(folder: str | os.PathLike) -> Iterator[None]:
    """Turn a full or read-only disk met while writing under `folder` into one clear WorkbenchError."""
    try:
        yield
    except OSError as error:
        translated = _os_error(error, Path(folder))
        if translated is error:
            raise
        raise translated from error
