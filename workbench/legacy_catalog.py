"""Convert a catalog of the DuckDB era (`workbench.duckdb`) to the SQLite catalog, once, atomically.

The first process to open an old workspace converts it under an exclusive lock: every row is
copied with its id into a new SQLite file written under a temporary name, the copy is checked
table by table (row count and ids), and only then is it linked into place. The old file is kept
beside it, renamed `workbench.duckdb.pre-sqlite`, so nothing is lost if anything goes wrong.
Absolute paths of the old catalog become relative to the workspace home, found by the layout
(`.../snapshots/<project>/...`, `.../models/<project>/...`), so a workspace moved before its
conversion still finds its files.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from .errors import CatalogBusyError, CatalogDamagedError
from .polling import StillWaiting, poll_until
from .store import MIGRATIONS, PATH_COLUMNS, TABLES, Catalog, encode_value

LEGACY_SUFFIX = ".pre-sqlite"
_SEQUENCES = {"project_ids": "projects", "training_data_ids": "training_data", "item_metadata_ids": "item_metadata",
              "configuration_ids": "configurations", "tuning_job_ids": "tuning_jobs", "model_ids": "models",
              "job_ids": "jobs", "log_ids": "job_logs", "trial_ids": "tuning_trials"}


def convert(legacy: Path, target: Path, home: Path, snapshots_dir: Path, models_dir: Path,
            timeout: float = 30.0) -> None:
    """Write the SQLite catalog `target` from the DuckDB catalog `legacy` (no-op if `target` exists)."""
    lock_path = target.with_name(f".{target.name}.convert.lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() or not legacy.exists():
            return
        rows, sequences = _read_legacy(legacy, timeout)
        places = {"path": snapshots_dir, "file": models_dir}
        temp = target.with_name(f".{target.name}.converting-{os.getpid()}")
        temp.unlink(missing_ok=True)
        try:
            _write(temp, rows, sequences, home, places)
            _verify(temp, rows)
            os.link(temp, target)
        finally:
            for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
                leftover.unlink(missing_ok=True)
        os.replace(legacy, legacy.with_name(legacy.name + LEGACY_SUFFIX))
        wal = legacy.with_name(legacy.name + ".wal")
        if wal.exists():
            os.replace(wal, wal.with_name(legacy.name + LEGACY_SUFFIX + ".wal"))


def _read_legacy(legacy: Path, timeout: float) -> tuple[dict[str, tuple[list[str], list[tuple]]], dict[str, int]]:
    """Every row of every catalog table, and the last id each table's sequence handed out."""
    import duckdb

    def connect():
        try:
            return duckdb.connect(str(legacy), read_only=True)
        except duckdb.Error as error:
            if "lock" not in str(error).lower():
                raise CatalogDamagedError(f"The old catalog {legacy} cannot be read for conversion ({error}).") from error
            return None

    try:
        con = poll_until(connect, timeout)
    except StillWaiting:
        raise CatalogBusyError(f"The old catalog {legacy} stayed locked by another process: stop the "
                               "workbench processes of the old version, then open it again.") from None
    try:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        rows = {}
        for table in TABLES:
            if table in present:
                cursor = con.execute(f"SELECT * FROM {table} ORDER BY id")
                rows[table] = ([d[0] for d in cursor.description], cursor.fetchall())
        sequences = {_SEQUENCES[name]: int(last) for name, last in con.execute(
            "SELECT sequence_name, last_value FROM duckdb_sequences()").fetchall()
            if name in _SEQUENCES and last is not None}
        return rows, sequences
    finally:
        con.close()


def _relocate(value: str, home: Path, folder: Path, marker: str) -> str:
    """An old absolute path as a path relative to `home`, by the workspace layout if it moved."""
    path = Path(value)
    if not path.is_absolute():
        return value
    try:
        return str(path.relative_to(home))
    except ValueError:
        pass
    parts = path.parts
    if marker in parts:
        tail = parts[len(parts) - parts[::-1].index(marker):]
        try:
            return str(folder.joinpath(*tail).relative_to(home))
        except ValueError:
            return str(folder.joinpath(*tail))
    return value


def _write(temp: Path, rows: dict, sequences: dict[str, int], home: Path, places: dict[str, Path]) -> None:
    con = sqlite3.connect(temp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("BEGIN")
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        for table, (columns, values) in rows.items():
            known = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            keep = [i for i, c in enumerate(columns) if c in known]
            names = [columns[i] for i in keep]
            sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
            for row in values:
                out = []
                for i in keep:
                    value, column = row[i], columns[i]
                    if column in PATH_COLUMNS and isinstance(value, str):
                        marker = "snapshots" if column == "path" else "models"
                        value = _relocate(value, home, places[column], marker)
                    out.append(encode_value(value))
                con.execute(sql, out)
        for table, last in sequences.items():  # ids of deleted rows are never handed out again
            con.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", [last, table])
            con.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS "
                        "(SELECT 1 FROM sqlite_sequence WHERE name = ?)", [table, last, table])
        con.execute("COMMIT")
    finally:
        con.close()


def _verify(temp: Path, rows: dict) -> None:
    con = sqlite3.connect(temp)
    try:
        for table, (columns, values) in rows.items():
            ids = [r[0] for r in con.execute(f"SELECT id FROM {table} ORDER BY id")]
            expected = [row[columns.index("id")] for row in values]
            if ids != expected:
                raise CatalogDamagedError(f"Converting the old catalog's {table} table did not verify "
                                          f"({len(ids)} rows copied of {len(expected)}); the old catalog is unchanged.")
    finally:
        con.close()
    Catalog(temp)  # opens, checks the schema


__all__ = ["LEGACY_SUFFIX", "convert"]
