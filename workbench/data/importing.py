"""Importing: a source's columns read, validated, normalised, encoded and published as a snapshot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import ValidationError, check_choice
from workbench.memory import system_allocator

from . import encode
from .engine import Session
from .normalise import canonical, epoch_us, normalise_ids, normalise_weights
from .sandbox import SqlSandbox
from .snapshots import InteractionSnapshot, MetadataSnapshot, write_interactions, write_metadata
from .sources import open_source


@system_allocator()
def build_interaction_snapshot(
    source,
    dest_root,
    *,
    user_column: str,
    item_column: str,
    time_column: str | None = None,
    delimiter: str | None = None,
    null_ids: str = "drop",
    duplicates: str = "keep",
    time_unit: str | None = None,
    weight_column: str | None = None,
    columns: dict | None = None,
    sandbox: SqlSandbox | None = None,
) -> InteractionSnapshot:
    """Validate `source` (file path, DataFrame or DuckDB SELECT) and snapshot it under `dest_root`.

    user_column, item_column, time_column: the columns holding each role (time_column None: no times).
    weight_column: a column of numbers >= 0 (ratings, play counts) kept as the snapshot's `weight`.
    columns: the source's column for some of these roles where its names differ, e.g.
    {"user": "visitor", "item": "product"} (a column mapping).
    sandbox: what a DuckDB query may read (default: WORKBENCH_DATA_DIRS, else the current directory).

    null_ids: "drop" (counted in `dropped`) or "reject" rows missing a user, item, time or weight.
    duplicates: "keep" every row, or "last": keep only the latest row of each (user, item) pair.
    time_unit: "s" or "ms" for numeric times; by default guessed from their magnitude.
    """
    check_choice("null_ids", null_ids, ("drop", "reject"))
    check_choice("duplicates", duplicates, ("keep", "last"))
    check_choice("time_unit", time_unit, (None, "s", "ms"))
    if duplicates == "last" and time_column is None:
        raise ValidationError("duplicates='last' keeps the latest row of each pair by time: give time_column")
    wanted = _roles({"user": user_column, "item": item_column, "time": time_column, "weight": weight_column}, columns)
    user_column, item_column = wanted["user"], wanted["item"]
    with Session() as session:
        inp = open_source(source, session, delimiter, sandbox)
        src = inp.description
        inp.require(wanted)
        table = inp.fetch(list(wanted.values()), for_ids=[user_column, item_column])
        if table.num_rows == 0:
            raise ValidationError(f"{src}: no data rows{inp.empty_hint}")
        read = dict(zip(wanted, table.columns))
        del table
        users, utype = normalise_ids(read["user"], src, user_column)
        items, itype = normalise_ids(read["item"], src, item_column)
        columns = {"user": users, "item": items}
        if "time" in wanted:
            columns["time"] = epoch_us(read["time"], session.con, src, wanted["time"], time_unit)
        if "weight" in wanted:
            columns["weight"] = normalise_weights(read["weight"], src, wanted["weight"])
        del read
        columns, n_missing = _drop_missing(columns, wanted, src, null_ids)
    with ThreadPoolExecutor(2) as pool:  # pyarrow, numpy, scipy's sparsetools and hashlib release the GIL
        parallel = pool if len(columns["user"]) >= encode.PARALLEL_ROWS else None
        (user_ids, ucodes), (item_ids, icodes) = encode.encode_columns([columns["user"], columns["item"]], parallel)
        t, w = (columns[role].to_numpy() if role in columns else None for role in ("time", "weight"))
        del columns
        dropped = {"null_ids": n_missing}
        ucodes, icodes, t, w, dropped["duplicates"] = encode.sort_rows(
            ucodes, icodes, t, len(user_ids), len(item_ids), duplicates, parallel, w)
        return write_interactions(dest_root, user_ids, item_ids, ucodes, icodes, t, src, dropped,
                                  {"user": utype, "item": itype}, pool, w)


def _roles(names: dict, columns: dict | None) -> dict:
    """{role: source column} for the roles in use: `names` ({role: name or None}) with `columns` mapped over it."""
    wanted = {role: name for role, name in names.items() if name is not None}
    for role, name in (columns or {}).items():
        if role not in names:
            raise ValidationError(f"columns maps {role!r}: the roles are {', '.join(map(repr, names))}")
        if role not in wanted:
            raise ValidationError(f"columns maps {role!r}, but this import has no {role} column")
        if not isinstance(name, str) or not name:
            raise ValidationError(f"columns[{role!r}] must be a column name, got {name!r}")
        wanted[role] = name
    return wanted


def _drop_missing(columns: dict, wanted: dict, src: str, null_ids: str) -> tuple[dict, int]:
    """The rows with a value in every column ({role: column}), and how many were dropped (or a
    ValidationError if rejected)."""
    missing = None
    for col in columns.values():
        if col.null_count:
            nulls = col.is_null()
            missing = nulls if missing is None else pc.or_(missing, nulls)
    n_missing = 0 if missing is None else pc.sum(missing).as_py()
    if not n_missing:
        return columns, 0
    if null_ids == "reject":
        names = [wanted[role] for role, col in columns.items() if col.null_count]
        first = pc.index(missing, True).as_py() + 1
        raise ValidationError(
            f"{src}: {n_missing} rows have no value in column {' / '.join(map(repr, names))} "
            f"(first at data row {first}); pass null_ids='drop' to skip them"
        )
    keep = pc.invert(missing)
    columns = {k: c.filter(keep) for k, c in columns.items()}
    if len(columns["user"]) == 0:
        raise ValidationError(f"{src}: no rows left after dropping {n_missing} rows with empty values")
    return columns, n_missing


@system_allocator()
def build_metadata_snapshot(source, dest_root, *, item_column: str, delimiter: str | None = None,
                            sandbox: SqlSandbox | None = None) -> MetadataSnapshot:
    """Snapshot an item-metadata table (one row per item) to <dest_root>/<fingerprint>.parquet.

    The item column is renamed item_id, put first, and rows are sorted by it. sandbox: as for
    build_interaction_snapshot.
    """
    with Session() as session:
        inp = open_source(source, session, delimiter, sandbox)
        inp.require({"item": item_column})
        table = inp.fetch(inp.columns, for_ids=[item_column])
    src = inp.description
    if table.num_rows == 0:
        raise ValidationError(f"{src}: no data rows{inp.empty_hint}")
    others = [c for c in inp.columns if c != item_column]
    if "item_id" in others:
        raise ValidationError(f"{src}: column 'item_id' would clash with item column {item_column!r}: rename one")
    ids, _ = normalise_ids(table.column(item_column), src, item_column)
    if ids.null_count:
        first = int(np.argmax(ids.is_null().to_numpy(zero_copy_only=False))) + 1
        raise ValidationError(f"{src}: column {item_column!r} has {ids.null_count} empty ids (first at data row {first})")
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        example = repeated[0].as_py()
        raise ValidationError(
            f"{src}: column {item_column!r} has {len(repeated)} ids on more than one row, "
            f"e.g. {example['values']!r} ({example['counts']} rows); metadata needs one row per item"
        )
    table = pa.table([canonical(ids)] + [canonical(table.column(c)) for c in others], names=["item_id"] + others)
    table = table.take(pc.sort_indices(table, sort_keys=[("item_id", "ascending")])).combine_chunks()
    return write_metadata(dest_root, table, src)
