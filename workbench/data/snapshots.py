"""Snapshot files: the format, the fingerprint, atomic publishing, and reading snapshots back.

A snapshot of interactions is a directory named after the sha256 of its canonical content, holding
interactions.parquet (rows sorted by user_code, item_code, time), users.parquet and items.parquet
(the ids in code order) and snapshot.json (its statistics). A snapshot of item metadata is one
Parquet file, <fingerprint>.parquet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from workbench.errors import NotFoundError, ValidationError, check_choice
from workbench.memory import without_numpy_hugepages

INFO_FILE = "snapshot.json"
ROWS_FILE, USERS_FILE, ITEMS_FILE = "interactions.parquet", "users.parquet", "items.parquet"
SNAPSHOT_FILES = (ROWS_FILE, USERS_FILE, ITEMS_FILE, INFO_FILE)  # what a complete interaction snapshot holds
FORMAT_VERSION = 1
WEIGHTINGS = ("binary", "count", "raw")  # what interaction_matrix puts in each (user, item) cell
_EPOCH = datetime(1970, 1, 1)
# Chosen for write speed and for reading the two code columns fast (see bench/bench_import.py):
# sorted user codes shrink to almost nothing, item codes and times hardly compress, and the
# dictionary indices of sorted user ids compress well enough with lz4. zstd of item ids would
# cost 40 ms at 10M rows to save 6% of their 20 MB.
_PARQUET_OPTIONS = dict(
    compression={"user_id": "lz4", "item_id": "none", "user_code": "zstd", "item_code": "none", "time": "none",
                 "weight": "zstd"},
    use_dictionary=["user_id", "item_id"],
    write_statistics=["user_code", "item_code", "time"],  # statistics of dictionary columns are slow to write
    dictionary_pagesize_limit=1 << 28,  # keeps large id dictionaries dictionary-encoded
    row_group_size=1 << 23,  # every row group repeats the whole id dictionaries
    store_schema=False,  # id columns read back as plain strings or integers, not as categoricals
)

TEMP_PREFIX = ".tmp-"  # an unfinished snapshot (file or folder) is hidden under this prefix until renamed


@dataclass(frozen=True)
class InteractionSnapshot:
    """An imported interaction log: where it is and what it holds."""

    path: Path
    fingerprint: str
    n_rows: int
    n_users: int
    n_items: int
    time_min: datetime | None
    time_max: datetime | None
    source: str
    dropped: dict
    id_types: dict
    weighted: bool = False  # interactions.parquet has a `weight` column


@dataclass(frozen=True)
class MetadataSnapshot:
    """An imported item-metadata table: one row per item, keyed by item_id."""

    path: Path
    fingerprint: str
    n_rows: int
    columns: tuple
    source: str


def write_interactions(dest_root: Path, user_ids: pa.Array, item_ids: pa.Array, ucodes: np.ndarray,
                       icodes: np.ndarray, t: np.ndarray | None, source: str, dropped: dict, id_types: dict,
                       pool: ThreadPoolExecutor | None = None, w: np.ndarray | None = None) -> InteractionSnapshot:
    """Publish sorted, encoded rows as a snapshot under `dest_root` (kept as it is if already there).

    user_ids, item_ids: the ids in code order; ucodes, icodes: each row's codes; t: each row's time
    in microseconds since 1970, or None; w: each row's weight (float64), or None.
    """
    info = {
        "format_version": FORMAT_VERSION,
        "fingerprint": None,
        "n_rows": len(ucodes),
        "n_users": len(user_ids),
        "n_items": len(item_ids),
        "time_min": None if t is None else _us_to_datetime(int(t.min())).isoformat(),
        "time_max": None if t is None else _us_to_datetime(int(t.max())).isoformat(),
        "source": source,
        "dropped": dropped,
        "id_types": id_types,
    }
    if w is not None:  # absent otherwise: snapshots written before weights read the same
        info["weighted"] = True

    def write_rows(tmp: Path) -> None:
        inter = {
            "user_id": pa.DictionaryArray.from_arrays(pa.array(ucodes), user_ids),
            "item_id": pa.DictionaryArray.from_arrays(pa.array(icodes), item_ids),
            "user_code": ucodes,
            "item_code": icodes,
        }
        if t is not None:
            inter["time"] = pa.array(t.view("datetime64[us]"))
        if w is not None:
            inter["weight"] = w
        pq.write_table(pa.table(inter), tmp / ROWS_FILE, **_PARQUET_OPTIONS)

    def write_rest(tmp: Path) -> None:
        pq.write_table(pa.table({"user_id": user_ids}), tmp / USERS_FILE, compression="zstd")
        pq.write_table(pa.table({"item_id": item_ids}), tmp / ITEMS_FILE, compression="zstd")
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))

    def name() -> str:
        info["fingerprint"] = _fingerprint(user_ids, item_ids, ucodes, icodes, t, id_types, w)
        return info["fingerprint"]

    path = _publish(Path(dest_root), name, write_rows, write_rest, pool)
    return _snapshot_from_info(path, info)


def write_metadata(dest_root: Path, table: pa.Table, source: str) -> MetadataSnapshot:
    """Publish an item-metadata table (item_id first, sorted by it) as <dest_root>/<fingerprint>.parquet."""
    digest = hashlib.sha256()
    for field, column in zip(table.schema, table.columns):
        digest.update(json.dumps([field.name, str(field.type), column.to_pylist()], default=str).encode())
    fingerprint = digest.hexdigest()
    dest = Path(dest_root)
    path = dest / f"{fingerprint}.parquet"
    if not path.exists():
        dest.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".parquet", dir=dest)
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    return MetadataSnapshot(path, fingerprint, table.num_rows, tuple(table.column_names), source)


def _fingerprint(user_ids, item_ids, ucodes, icodes, t, id_types, w=None) -> str:
    header = {"v": FORMAT_VERSION, "ids": id_types, "time": t is not None}
    if w is not None:  # unweighted snapshots keep the fingerprints they had before weights
        header["weight"] = True
    digest = hashlib.sha256(json.dumps(header).encode())
    for ids in (user_ids, item_ids):
        if pa.types.is_integer(ids.type):
            digest.update(np.ascontiguousarray(ids.to_numpy(), dtype="<i8"))
        else:
            wide = ids.cast(pa.large_string())
            offsets = np.frombuffer(wide.buffers()[1], dtype="<i8")[wide.offset : wide.offset + len(wide) + 1]
            digest.update(np.diff(offsets))
            digest.update(memoryview(wide.buffers()[2])[offsets[0] : offsets[-1]])
    digest.update(np.ascontiguousarray(ucodes, dtype="<i4"))
    digest.update(np.ascontiguousarray(icodes, dtype="<i4"))
    if t is not None:
        digest.update(np.ascontiguousarray(t, dtype="<i8"))
    if w is not None:
        digest.update(np.ascontiguousarray(w, dtype="<f8"))
    return digest.hexdigest()


def _publish(dest_root: Path, name: Callable[[], str], write_rows: Callable[[Path], None],
             write_rest: Callable[[Path], None], pool: ThreadPoolExecutor | None = None) -> Path:
    """Write a snapshot directory atomically: into a temporary directory beside it, then rename.

    With a thread pool, the rows are written while `name()` (the fingerprint) is computed: on the
    rare import of content already snapshotted, that write is thrown away.
    """
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=dest_root))
    writing = None
    final = None
    try:
        if pool is not None:
            writing = pool.submit(write_rows, tmp)
        final = dest_root / name()
        if final.is_dir():
            if writing is not None:
                writing.exception()
            shutil.rmtree(tmp, ignore_errors=True)
            return final
        if writing is None:
            write_rows(tmp)
        write_rest(tmp)
        if writing is not None:
            writing.result()
        os.rename(tmp, final)
    except OSError:
        if writing is not None:
            writing.exception()  # let it finish before removing what it writes
        shutil.rmtree(tmp, ignore_errors=True)
        if final is None or not final.is_dir():  # not a concurrent import of the same content
            raise
    except BaseException:
        if writing is not None:
            writing.exception()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _snapshot_from_info(path: Path, info: dict) -> InteractionSnapshot:
    def when(text):
        return None if text is None else datetime.fromisoformat(text)

    return InteractionSnapshot(
        path=path, fingerprint=info["fingerprint"], n_rows=info["n_rows"], n_users=info["n_users"],
        n_items=info["n_items"], time_min=when(info["time_min"]), time_max=when(info["time_max"]),
        source=info["source"], dropped=dict(info["dropped"]), id_types=dict(info["id_types"]),
        weighted=info.get("weighted", False),
    )


def _read_ids(path: Path) -> np.ndarray:
    return pq.read_table(path).column(0).to_numpy()


def _pair_starts(u: np.ndarray, i: np.ndarray) -> np.ndarray | None:
    """For rows sorted by (user, item): True on the first row of each pair; None if every row is
    (no pair repeats: the rows are the matrix's cells as they are)."""
    first = np.ones(len(u), dtype=bool)
    np.not_equal(i[1:], i[:-1], out=first[1:])
    first[1:] |= u[1:] != u[:-1]
    return None if first.all() else first


def _us_to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# Reading back


@without_numpy_hugepages()
def interaction_matrix(snapshot_path, weighting: str = "binary") -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The user x item CSR matrix (float64, as irspack uses), the user ids and the item ids.

    Each (user, item) pair seen holds, by `weighting`: "binary" 1.0; "count" its number of rows;
    "raw" the sum of its rows' weights (a snapshot imported with weight_column). Transforms such as
    log1p confidence or a rating threshold apply to these.
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    path = Path(snapshot_path)
    rows = path / ROWS_FILE
    columns = ["user_code", "item_code"]
    if weighting == "raw":
        if "weight" not in pq.read_schema(rows).names:
            raise ValidationError(f"{path}: this snapshot has no weights (it was imported without weight_column), "
                                  "so weighting='raw' cannot apply")
        columns.append("weight")
    table = pq.read_table(rows, columns=columns)
    users = _read_ids(path / USERS_FILE)
    items = _read_ids(path / ITEMS_FILE)
    u = table.column(0).to_numpy()
    i = table.column(1).to_numpy()
    first = _pair_starts(u, i)
    if weighting == "raw":
        w = table.column(2).to_numpy()
        values = w.copy() if first is None else np.add.reduceat(w, np.flatnonzero(first))  # Arrow's buffers are read-only
    elif weighting == "count" and first is not None:
        values = np.diff(np.append(np.flatnonzero(first), len(u))).astype(np.float64)
    else:
        values = np.ones(len(u) if first is None else int(np.count_nonzero(first)))
    index = np.int32 if len(values) < 2**31 else np.int64
    # scipy may sort or deduplicate indices in place: they must not be Arrow's read-only buffer
    indices = i.astype(index, copy=not i.flags.writeable) if first is None else i[first].astype(index, copy=False)
    indptr = np.searchsorted(u if first is None else u[first], np.arange(len(users) + 1, dtype=u.dtype)).astype(index)
    del first
    matrix = sp.csr_matrix((values, indices, indptr), shape=(len(users), len(items)), copy=False)
    matrix.has_sorted_indices = True
    del table, u, i
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps the columns read (0.8 GB at 100M rows) otherwise
    return matrix, users, items


def read_interactions(snapshot_path) -> pd.DataFrame:
    """All rows: user_id, item_id, user_code, item_code, then time and weight if present, sorted by
    codes, time and weight."""
    return pq.read_table(Path(snapshot_path) / ROWS_FILE).to_pandas()


def read_metadata(path) -> pd.DataFrame:
    """The item-metadata table of a metadata snapshot."""
    return pq.read_table(path).to_pandas()


def snapshot_info(snapshot_path) -> InteractionSnapshot:
    """The statistics of an interaction snapshot, as recorded when it was first written."""
    path = Path(snapshot_path)
    try:
        info = json.loads((path / INFO_FILE).read_text())
    except FileNotFoundError:
        raise NotFoundError(f"{path}: not an interaction snapshot (no {INFO_FILE})") from None
    return _snapshot_from_info(path, info)
