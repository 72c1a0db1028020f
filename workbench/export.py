"""Deliver recommendations for production: a model's top-N for every known user, in one file.

A batch job hands the file to a key-value store or a web team: Parquet, CSV or a table in a
DuckDB file, written under a temporary name and renamed into place, so a reader never sees half
a file. Each file says which model made it: Parquet in its key-value metadata (`workbench`), a
DuckDB file in an `export_metadata` table, a CSV in a `<file>.json` beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ValidationError
from .recommend import Recommender
from .store import disk_errors, utc_now
from .version import __version__

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".duckdb": "duckdb", ".db": "duckdb"}
CHUNK_USERS = 20_000  # users per recommend_many call: bounds memory and paces the progress report


def export_recommendations(recommender: Recommender, path: str | os.PathLike, cutoff: int = 10,
                           metadata: pd.DataFrame | None = None, columns: Sequence[str] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> Path:
    """Write `recommender`'s top-`cutoff` for every user it knows to `path` (format from the suffix).

    Rows: user_id, rank, item_id, score, then the chosen `columns` of `metadata` (an item
    table keyed by item_id). `progress(done_users, all_users)` is called after each chunk.
    """
    target = Path(path)
    kind = FORMATS.get(target.suffix.lower())
    if kind is None:
        raise ValidationError(f"{target.name}: export to {', '.join(sorted(FORMATS))} (the suffix sets the format).")
    if not target.parent.is_dir():
        raise ValidationError(f"{target.parent} is not a folder: create it first.")
    extra = _metadata_columns(metadata, columns)
    info = {"model_id": recommender.model.id, "project": recommender.model.project,
            "algorithm": recommender.header.get("algorithm"), "data_fingerprint": recommender.header.get("data_fingerprint"),
            "cutoff": cutoff, "n_users": len(recommender.user_ids), "created_at": utc_now().isoformat(sep=" "),
            "workbench_version": __version__}
    temp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with disk_errors(target.parent):
        try:
            frames = _chunks(recommender, cutoff, extra, progress)
            {"parquet": _write_parquet, "csv": _write_csv, "duckdb": _write_duckdb}[kind](frames, temp, info)
            if kind == "csv":
                sidecar = target.with_name(target.name + ".json")
                _replace_text(sidecar, json.dumps(info, indent=1))
            _fsync(temp)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
            Path(f"{temp}.wal").unlink(missing_ok=True)
    return target


def read_export_info(path: str | os.PathLike) -> dict[str, Any]:
    """Which model made an exported file, when, from which data (what `export_recommendations` wrote)."""
    target = Path(path)
    kind = FORMATS.get(target.suffix.lower())
    if kind == "parquet":
        return json.loads(pq.read_schema(target).metadata[b"workbench"])
    if kind == "csv":
        return json.loads(target.with_name(target.name + ".json").read_text())
    import duckdb

    with contextlib.closing(duckdb.connect(str(target), read_only=True)) as con:
        return json.loads(con.execute("SELECT info FROM export_metadata").fetchone()[0])


def _metadata_columns(metadata: pd.DataFrame | None, columns: Sequence[str] | None) -> pd.DataFrame | None:
    if not columns:
        return None
    if metadata is None:
        raise ValidationError("Metadata columns were asked for, but the project has no item metadata.")
    wanted = list(columns)
    missing = [c for c in wanted if c not in metadata.columns]
    if missing:
        raise ValidationError(f"Item metadata has no column {', '.join(map(repr, missing))}; "
                              f"columns: {', '.join(c for c in metadata.columns if c != 'item_id')}.")
    table = metadata[["item_id", *wanted]].drop_duplicates("item_id")
    table["item_id"] = table["item_id"].astype(str)
    return table


def _chunks(recommender: Recommender, cutoff: int, extra: pd.DataFrame | None,
            progress: Callable[[int, int], None] | None):
    users = recommender.user_ids
    for start in range(0, len(users), CHUNK_USERS):
        frame = recommender.recommend_many(users[start:start + CHUNK_USERS], cutoff=cutoff)
        if extra is not None:
            keys = frame["item_id"].astype(str)
            frame = pd.concat([frame, extra.set_index("item_id").reindex(keys).reset_index(drop=True)], axis=1)
        yield frame
        if progress is not None:
            progress(min(start + CHUNK_USERS, len(users)), len(users))


def _write_parquet(frames, temp: Path, info: dict) -> None:
    writer = None
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                schema = table.schema.with_metadata({"workbench": json.dumps(info)})
                writer = pq.ParquetWriter(temp, schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
        if writer is None:  # a model with no users
            pq.write_table(pa.table({"user_id": [], "rank": [], "item_id": [], "score": []}).replace_schema_metadata(
                {"workbench": json.dumps(info)}), temp)
    finally:
        if writer is not None:
            writer.close()


def _write_csv(frames, temp: Path, info: dict) -> None:
    with open(temp, "w", newline="") as out:
        for number, frame in enumerate(frames):
            frame.to_csv(out, index=False, header=number == 0)


def _write_duckdb(frames, temp: Path, info: dict) -> None:
    import duckdb

    parts = temp.with_name(temp.name + ".parquet")
    try:
        _write_parquet(frames, parts, info)
        with contextlib.closing(duckdb.connect(str(temp))) as con:
            con.execute(f"CREATE TABLE recommendations AS SELECT * FROM read_parquet('{parts}')")
            con.execute("CREATE TABLE export_metadata (info VARCHAR)")
            con.execute("INSERT INTO export_metadata VALUES (?)", [json.dumps(info)])
            con.execute("CHECKPOINT")
    finally:
        parts.unlink(missing_ok=True)


def _replace_text(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temp.write_text(text)
    _fsync(temp)
    os.replace(temp, path)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
