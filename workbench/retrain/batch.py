"""A retrain's new data: imported on its own, or appended to the latest training data, with statistics."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import data
from ..records import Project, TrainingData

if TYPE_CHECKING:
    from ..workspace import Workspace

IMPORT_OPTIONS = ("delimiter", "null_ids", "duplicates", "time_unit", "weight_column")


def _snapshot_ids(path: str | os.PathLike, kind: str) -> pa.Array:
    return pq.read_table(Path(path) / f"{kind}.parquet").column(0).combine_chunks()


def _count_unseen(path: str | os.PathLike, previous: str | os.PathLike | None, kind: str) -> int | None:
    """How many users (items) of one snapshot are absent from another."""
    if previous is None:
        return None
    ids, known = _snapshot_ids(path, kind), _snapshot_ids(previous, kind)
    if ids.type != known.type:
        ids, known = ids.cast(pa.string()), known.cast(pa.string())
    return int(len(ids) - pc.sum(pc.is_in(ids, value_set=known)).as_py()) if len(ids) else 0


def stats_row(label: str, record_id: int | None, snapshot: Any, previous_path: Any) -> dict:
    """One line of the report's data table: sizes, times, and users and items new against the previous data."""
    return {
        "data": label, "training_data_id": record_id, "n_rows": int(snapshot.n_rows),
        "n_users": int(snapshot.n_users), "n_items": int(snapshot.n_items), "time_min": snapshot.time_min,
        "time_max": snapshot.time_max, "users_not_in_previous": _count_unseen(snapshot.path, previous_path, "users"),
        "items_not_in_previous": _count_unseen(snapshot.path, previous_path, "items"),
    }


def import_new_data(ws: Workspace, project: Project, source: Any, base: TrainingData | None,
                    previous: TrainingData | None, options: dict) -> tuple[TrainingData, dict, datetime | None]:
    """Import `source`, appended to `base` when given.

    Returns the new record, the batch's statistics (with `already_present`: appended rows that
    were in `base` already, same user, item and time, or same pair without times) and the
    batch's earliest time (the start of the period the active model never saw). `duplicates=`
    applies to the combined rows.
    """
    previous_path = previous.path if previous is not None else None
    if base is None:
        record = ws.import_training_data(project, source, **options)
        return record, stats_row("new batch", None, record, previous_path), record.time_min
    columns = {"user_id": project.user_column, "item_id": project.item_column}
    if project.time_column:
        columns["time"] = project.time_column
    with tempfile.TemporaryDirectory(prefix=".retrain-batch-", dir=ws.data_dir) as scratch:
        batch = data.build_interaction_snapshot(
            source, scratch, user_column=project.user_column, item_column=project.item_column,
            time_column=project.time_column, sandbox=ws.sql_sandbox(), **options,
        )
        batch_stats = stats_row("new batch", None, batch, previous_path)
        new_rows = data.read_interactions(batch.path)
        old_rows = data.read_interactions(base.path)
    if "weight" in new_rows.columns and "weight" in old_rows.columns:
        columns["weight"] = "weight"
    wanted = [c for c in columns if c in new_rows.columns and c in old_rows.columns]
    old_rows, new_rows = old_rows[wanted], new_rows[wanted]
    for column in ("user_id", "item_id"):
        if old_rows[column].dtype != new_rows[column].dtype:  # e.g. integer ids before, text ids now
            old_rows[column] = old_rows[column].astype(str)
            new_rows[column] = new_rows[column].astype(str)
    key = [c for c in ("user_id", "item_id", "time") if c in wanted]
    present = new_rows[key].merge(old_rows[key].drop_duplicates(), on=key, how="left", indicator=True)
    batch_stats["already_present"] = int((present["_merge"] == "both").sum())
    combined = pd.concat([old_rows, new_rows], ignore_index=True).rename(columns=columns)
    del old_rows, new_rows
    final_options = {k: v for k, v in options.items() if k == "duplicates"}
    if "weight" in columns:
        final_options["weight_column"] = "weight"
    record = ws.import_training_data(project, combined, name=f"{_short_source(batch.source)} + training data {base.id}",
                                     **final_options)
    ws.catalog.update("training_data", record.id, {"source": f"training data {base.id} + {batch.source}"})
    return ws.training_data(record.id), batch_stats, batch.time_min


def _short_source(source: str, limit: int = 60) -> str:
    text = str(source)
    if not text.startswith("SQL:"):
        text = Path(text).name or text
    return text if len(text) <= limit else text[: limit - 1] + "…"
