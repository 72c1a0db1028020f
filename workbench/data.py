"""Import interaction and item-metadata files into immutable Parquet snapshots, and read them back.

DuckDB reads every file, except that a plain CSV/TSV file in a simple dialect is parsed by Arrow's
faster CSV reader (see _arrow_csv_options; DuckDB still sniffs it, and reads it on any error).
A snapshot of interactions is a directory named after the sha256 of its canonical content, holding
interactions.parquet (rows sorted by user_code, item_code, time),
users.parquet and items.parquet (the ids in code order) and snapshot.json (its statistics).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import scipy.sparse as sp

# coo_tocsr is a stable counting sort by row and csr_sort_indices sorts each row by column: together
# they order 10M rows by (user_code, item_code) about 3x faster than numpy's argsort of a 64-bit key.
from scipy.sparse import _sparsetools

from workbench.errors import NotFoundError, ValidationError

INFO_FILE = "snapshot.json"
_FORMAT_VERSION = 1
_SAMPLE_BYTES = 1 << 16
_EPOCH = datetime(1970, 1, 1)
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".dat": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".ndjson": "json", ".jsonl": "json",
}
_DELIMITERS = ("::", "||", "\t", ",", ";", "|")  # multi-character ones first
_SNIFF_ROWS = 2048
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_FLOAT_TYPES = ("FLOAT", "REAL", "DOUBLE")
_SQL_START = re.compile(r"\s*(select|with|from)\b", re.IGNORECASE)
MAX_ID_CHARACTERS = 1024
LATEST_TIME_US = 4_102_444_800_000_000  # 2100-01-01 UTC

_UNIT_US = {"s": 1_000_000, "ms": 1_000}
# Chosen for write speed and for reading the two code columns fast (see bench/bench_import.py):
# sorted user codes shrink to almost nothing, item codes and times hardly compress, and the
# dictionary indices of sorted user ids compress well enough with lz4. zstd of item ids would
# cost 40 ms at 10M rows to save 6% of their 20 MB.
_PARQUET_OPTIONS = dict(
    compression={"user_id": "lz4", "item_id": "none", "user_code": "zstd", "item_code": "none", "time": "none"},
    use_dictionary=["user_id", "item_id"],
    write_statistics=["user_code", "item_code", "time"],  # statistics of dictionary columns are slow to write
    dictionary_pagesize_limit=1 << 28,  # keeps large id dictionaries dictionary-encoded
    row_group_size=1 << 23,  # every row group repeats the whole id dictionaries
    store_schema=False,  # id columns read back as plain strings or integers, not as categoricals
)


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


@dataclass(frozen=True)
class MetadataSnapshot:
    """An imported item-metadata table: one row per item, keyed by item_id."""

    path: Path
    fingerprint: str
    n_rows: int
    columns: tuple
    source: str


# ---------------------------------------------------------------------------------------------
# Public API


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
) -> InteractionSnapshot:
    """Validate `source` (file path, DataFrame or DuckDB SELECT) and snapshot it under `dest_root`.

    null_ids: "drop" (counted in `dropped`) or "reject" rows missing a user, item or time.
    duplicates: "keep" every row, or "last": keep only the latest row of each (user, item) pair.
    time_unit: "s" or "ms" for numeric times; by default guessed from their magnitude.
    """
    _check_choice("null_ids", null_ids, ("drop", "reject"))
    _check_choice("duplicates", duplicates, ("keep", "last"))
    _check_choice("time_unit", time_unit, (None, "s", "ms"))
    if duplicates == "last" and time_column is None:
        raise ValidationError("duplicates='last' keeps the latest row of each pair by time: give time_column")
    wanted = {"user": user_column, "item": item_column}
    if time_column is not None:
        wanted["time"] = time_column
    with _Session() as session:
        inp = _open(source, session, delimiter)
        src = inp.description
        inp.require(wanted)
        table = inp.fetch(list(wanted.values()), for_ids=[user_column, item_column])
        if table.num_rows == 0:
            raise ValidationError(f"{src}: no data rows{inp.empty_hint}")
        users, utype = _ids(table.column(0), src, user_column)
        items, itype = _ids(table.column(1), src, item_column)
        columns = {"u": users, "i": items}
        if time_column is not None:
            columns["t"] = _epoch_us(table.column(2), session.con, src, time_column, time_unit)
        del table
        missing = None
        for col in columns.values():
            if col.null_count:
                nulls = col.is_null()
                missing = nulls if missing is None else pc.or_(missing, nulls)
        n_missing = 0 if missing is None else pc.sum(missing).as_py()
        if n_missing:
            if null_ids == "reject":
                names = [n for n, c in zip(wanted.values(), columns.values()) if c.null_count]
                first = pc.index(missing, True).as_py() + 1
                raise ValidationError(
                    f"{src}: {n_missing} rows have no value in column {' / '.join(map(repr, names))} "
                    f"(first at data row {first}); pass null_ids='drop' to skip them"
                )
            keep = pc.invert(missing)
            columns = {k: c.filter(keep) for k, c in columns.items()}
            if len(columns["u"]) == 0:
                raise ValidationError(f"{src}: no rows left after dropping {n_missing} rows with empty values")
    with ThreadPoolExecutor(2) as pool:  # pyarrow, numpy, scipy's sparsetools and hashlib release the GIL
        parallel = pool if len(columns["u"]) >= _PARALLEL_ROWS else None
        (user_ids, ucodes), (item_ids, icodes) = _encode_columns([columns["u"], columns["i"]], parallel)
        t = columns["t"].to_numpy() if time_column is not None else None
        del columns
        dropped = {"null_ids": n_missing}
        ucodes, icodes, t, dropped["duplicates"] = _sort_rows(
            ucodes, icodes, t, len(user_ids), len(item_ids), duplicates, parallel)
        id_types = {"user": utype, "item": itype}
        info = {
            "format_version": _FORMAT_VERSION,
            "fingerprint": None,
            "n_rows": len(ucodes),
            "n_users": len(user_ids),
            "n_items": len(item_ids),
            "time_min": None if t is None else _us_to_datetime(int(t.min())).isoformat(),
            "time_max": None if t is None else _us_to_datetime(int(t.max())).isoformat(),
            "source": src,
            "dropped": dropped,
            "id_types": id_types,
        }

        def write_rows(tmp: Path) -> None:
            inter = {
                "user_id": pa.DictionaryArray.from_arrays(pa.array(ucodes), user_ids),
                "item_id": pa.DictionaryArray.from_arrays(pa.array(icodes), item_ids),
                "user_code": ucodes,
                "item_code": icodes,
            }
            if t is not None:
                inter["time"] = pa.array(t.view("datetime64[us]"))
            pq.write_table(pa.table(inter), tmp / "interactions.parquet", **_PARQUET_OPTIONS)

        def write_rest(tmp: Path) -> None:
            pq.write_table(pa.table({"user_id": user_ids}), tmp / "users.parquet", compression="zstd")
            pq.write_table(pa.table({"item_id": item_ids}), tmp / "items.parquet", compression="zstd")
            (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))

        def fingerprint() -> str:
            info["fingerprint"] = _fingerprint(user_ids, item_ids, ucodes, icodes, t, id_types)
            return info["fingerprint"]

        path = _publish(Path(dest_root), fingerprint, write_rows, write_rest, pool)
    return _snapshot_from_info(path, info)


def build_metadata_snapshot(source, dest_root, *, item_column: str, delimiter: str | None = None) -> MetadataSnapshot:
    """Snapshot an item-metadata table (one row per item) to <dest_root>/<fingerprint>.parquet.

    The item column is renamed item_id, put first, and rows are sorted by it.
    """
    with _Session() as session:
        inp = _open(source, session, delimiter)
        inp.require({"item": item_column})
        table = inp.fetch(inp.columns, for_ids=[item_column])
    src = inp.description
    if table.num_rows == 0:
        raise ValidationError(f"{src}: no data rows{inp.empty_hint}")
    others = [c for c in inp.columns if c != item_column]
    if "item_id" in others:
        raise ValidationError(f"{src}: column 'item_id' would clash with item column {item_column!r}: rename one")
    ids, _ = _ids(table.column(item_column), src, item_column)
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
    table = pa.table([_canonical(ids)] + [_canonical(table.column(c)) for c in others], names=["item_id"] + others)
    table = table.take(pc.sort_indices(table, sort_keys=[("item_id", "ascending")])).combine_chunks()
    digest = hashlib.sha256()
    for field, column in zip(table.schema, table.columns):
        digest.update(json.dumps([field.name, str(field.type), column.to_pylist()], default=str).encode())
    fingerprint = digest.hexdigest()
    dest = Path(dest_root)
    path = dest / f"{fingerprint}.parquet"
    if not path.exists():
        dest.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=dest)
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    return MetadataSnapshot(path, fingerprint, table.num_rows, tuple(table.column_names), src)


def interaction_matrix(snapshot_path) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The user x item CSR matrix (1.0 per distinct pair, float64 as irspack uses), user ids, item ids."""
    path = Path(snapshot_path)
    codes = pq.read_table(path / "interactions.parquet", columns=["user_code", "item_code"])
    users = _read_ids(path / "users.parquet")
    items = _read_ids(path / "items.parquet")
    u = codes.column(0).to_numpy()
    i = codes.column(1).to_numpy()
    first = np.empty(len(u), dtype=bool)  # first row of each (user, item) pair; rows are sorted
    first[:1] = True
    np.not_equal(i[1:], i[:-1], out=first[1:])
    first[1:] |= u[1:] != u[:-1]
    if not first.all():
        u, i = u[first], i[first]
    index = np.int32 if len(i) < 2**31 else np.int64
    indices = i.astype(index, copy=not i.flags.writeable)  # scipy may sort or deduplicate in place
    indptr = np.searchsorted(u, np.arange(len(users) + 1, dtype=u.dtype)).astype(index)
    matrix = sp.csr_matrix((np.ones(len(i)), indices, indptr), shape=(len(users), len(items)), copy=False)
    matrix.has_sorted_indices = True
    return matrix, users, items


def read_interactions(snapshot_path) -> pd.DataFrame:
    """All rows: user_id, item_id, user_code, item_code and time if present, sorted by code and time."""
    return pq.read_table(Path(snapshot_path) / "interactions.parquet").to_pandas()


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


# ---------------------------------------------------------------------------------------------
# Reading sources


@dataclass
class _Input:
    description: str
    columns: list
    fetch_columns: Callable[[list, dict], pa.Table]  # (names, {name: duckdb type}) -> table
    types: dict  # detected duckdb type of each column, for sources read with explicit types
    empty_hint: str = ""

    def require(self, wanted: dict) -> None:
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

    def fetch(self, names: list, for_ids: list) -> pa.Table:
        """Read `names` with the detected types; if a value later in the file does not fit them, read as text."""
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
            return self.fetch_columns(names, typed)
        except duckdb.Error as error:
            if all(t == "VARCHAR" for t in typed.values()):
                raise _wrap(self.description, error) from None
        try:
            table = self.fetch_columns(names, dict.fromkeys(typed, "VARCHAR"))
        except duckdb.Error as error:
            raise _wrap(self.description, error) from None
        for name, kind in typed.items():  # number columns stay numbers if every value is one
            if kind in ("BIGINT", "DOUBLE"):
                try:
                    target = pa.int64() if kind == "BIGINT" else pa.float64()
                    table = table.set_column(names.index(name), name, pc.cast(table.column(name), target))
                except pa.ArrowInvalid:
                    pass
        return table


def is_sql_query(source) -> bool:
    """Whether `source` is a DuckDB query (SELECT/WITH/FROM ...) rather than a file path."""
    return isinstance(source, str) and bool(_SQL_START.match(source)) and not os.path.isfile(source)


def _open(source, session: _Session, delimiter: str | None) -> _Input:
    if delimiter is not None and (not isinstance(delimiter, str) or not 1 <= len(delimiter.encode()) <= 4):
        raise ValidationError(f"delimiter must be 1 to 4 characters, got {delimiter!r}")
    if isinstance(source, pd.DataFrame):
        return _open_dataframe(source)
    if is_sql_query(source):
        return _open_sql(source.strip(), session.con)
    if isinstance(source, (str, os.PathLike)):
        return _open_file(Path(source), session, delimiter)
    raise ValidationError(f"source must be a file path, a pandas DataFrame or a SQL query, not {type(source).__name__}")


def _open_dataframe(df: pd.DataFrame) -> _Input:
    def fetch(names, _types):
        frame = df[names]
        frame.columns = range(len(names))  # tolerate duplicate or non-string labels elsewhere in df
        arrays = []
        for pos, name in enumerate(names):
            try:
                arrays.append(pa.array(frame[pos]) if frame[pos].dtype != object else _object_column(frame[pos]))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise ValidationError(f"DataFrame: column {name!r} cannot be used: {error}") from None
        return pa.table(arrays, names=[str(n) for n in names])

    return _Input("DataFrame", list(df.columns), fetch, {})


def _object_column(series: pd.Series) -> pa.Array:
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        kinds = sorted({type(v).__name__ for v in series.dropna()})
        raise pa.ArrowTypeError(f"it mixes value types ({', '.join(kinds)})") from None


def _open_sql(query: str, con) -> _Input:
    description = f"SQL: {query}"
    try:
        relation = con.sql(query)
        columns = relation.columns
    except duckdb.Error as error:
        raise _wrap(description, error, "the query failed") from None

    def fetch(names, _types):
        return relation.select(", ".join(_ident(n) for n in names)).to_arrow_table()

    return _Input(description, columns, _guard(description, fetch, "the query failed"), {})


def _guard(description, fetch, failed="could not be read"):
    def guarded(names, types):
        try:
            return fetch(names, types)
        except duckdb.Error as error:
            raise _wrap(description, error, failed) from None

    return guarded


def _open_file(path: Path, session: _Session, delimiter: str | None) -> _Input:
    src = str(path)
    if not path.is_file():
        raise ValidationError(f"{src}: no such file")
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = suffixes[-1:] == [".gz"]
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    if gzipped != compressed:
        raise ValidationError(
            f"{src}: the name ends in .gz but the content is not gzip-compressed" if gzipped
            else f"{src}: the content is gzip-compressed but the name does not end in .gz"
        )
    head = _read_head(path, gzipped, src)
    if not head.strip():
        raise ValidationError(f"{src}: the file is empty")
    found = _content_kind(head)
    named = suffixes[:-1] if gzipped else suffixes
    kind = _EXTENSIONS.get(named[-1] if named else "") or {"parquet": "parquet", "json": "json"}.get(found, "csv")
    if found != {"csv": "text", "json": "json", "parquet": "parquet"}[kind]:
        raise ValidationError(f"{src}: the name says {kind.upper()} but the content looks like {_describe(found)}")
    if kind == "parquet":
        return _open_parquet(path, gzipped, session, src)
    _check_utf8(head, src)
    if kind == "json":
        return _open_json(path, session.con, src)
    return _open_csv(path, gzipped, head, session.con, src, delimiter)


def _read_head(path: Path, gzipped: bool, src: str) -> bytes:
    try:
        if gzipped:
            with gzip.open(path, "rb") as f:
                return f.read(_SAMPLE_BYTES)
        with open(path, "rb") as f:
            return f.read(_SAMPLE_BYTES)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise ValidationError(f"{src}: the gzip stream is truncated or corrupt") from None


def _content_kind(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    if b"\x00" in head[:4096]:
        return "binary"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if text[:1] in (b"[", b"{") else "text"


def _describe(kind: str) -> str:
    return {"parquet": "Parquet", "binary": "binary data", "json": "JSON", "text": "delimited text (CSV)"}[kind]


def _check_utf8(head: bytes, src: str) -> None:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _SAMPLE_BYTES)
    except UnicodeDecodeError as error:
        line = head[: error.start].count(b"\n") + 1
        raise ValidationError(
            f"{src}: not UTF-8 text (byte 0x{head[error.start]:02x} on line {line}); save the file as UTF-8"
        ) from None


def _detect_delimiter(head: bytes) -> str | None:
    """The delimiter found the same number of times on every sampled line (the most often, if several).

    None when none is consistent (e.g. quoted fields holding delimiters): DuckDB's sniffer decides then.
    """
    pieces = head.split(b"\n", 200)  # the first 200 lines, then the rest in one piece
    lines = b"\n".join(pieces[:200]).decode("utf-8", "replace").splitlines()[:200]
    if len(pieces) <= 200 and len(head) == _SAMPLE_BYTES:
        lines = lines[:-1]  # the sample ends inside its last line
    lines = [line for line in lines if line.strip()]
    best, best_count = None, 0
    for delim in _DELIMITERS:
        counts = {line.count(delim) for line in lines}
        if len(counts) == 1 and (count := counts.pop()) > best_count:
            if len(delim) > 1:
                return delim
            best, best_count = delim, count
    return best


def _open_csv(path: Path, gzipped: bool, head: bytes, con, src: str, delimiter: str | None) -> _Input:
    delim = delimiter or _detect_delimiter(head)
    options = {"compression": "gzip" if gzipped else "none"}
    if delim:
        options["delim"] = delim
    if b'"' not in head and b"'" not in head and head.count(b"\n") > _SNIFF_ROWS:
        options.update(quote="", escape="")  # what the sniffer finds for these rows, in half its time
    try:
        sniffed = con.execute(
            f"SELECT Delimiter, Quote, Escape, SkipRows, HasHeader, Columns, DateFormat, TimestampFormat "
            f"FROM sniff_csv({_lit(str(path))}, sample_size={_SNIFF_ROWS}{_options(options)})"
        ).fetchall()[0]
    except duckdb.Error as error:
        raise _wrap(src, error) from None
    delim, quote, escape, skip, header, columns, date_format, ts_format = sniffed
    quote = "" if quote == "(empty)" else quote
    escape = quote if escape == "(empty)" else escape  # RFC 4180 doubles quotes inside quoted fields
    options.update(auto_detect=False, header=header, delim=delim, skip=skip, quote=quote, escape=escape)
    if date_format:
        options["dateformat"] = date_format
    if ts_format:
        options["timestampformat"] = ts_format
    types = {c["name"]: c["type"] for c in columns}
    empty_hint = " (only a header line)" if header and b"\n" not in head.strip() else ""

    fast = _arrow_csv_options(path, gzipped, options, list(types))

    def fetch(names, typed):
        nonlocal fast
        spec = {name: typed.get(name, "VARCHAR") for name in types}
        if fast is not None and all(spec[n] in _ARROW_CSV_TYPES for n in names):
            read, parse = fast
            convert = pa_csv.ConvertOptions(
                column_types={n: _ARROW_CSV_TYPES[spec[n]] for n in names}, include_columns=list(names),
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
            )
            try:
                return pa_csv.read_csv(path, read_options=read, parse_options=parse, convert_options=convert)
            except (pa.ArrowException, ValueError, OSError):
                fast = None  # DuckDB reads it, or says what is wrong with it
        sql = (
            f"SELECT {', '.join(_ident(n) for n in names)} FROM read_csv({_lit(str(path))}"
            f"{_options(options)}, columns={_struct(spec)})"
        )
        return con.sql(sql).to_arrow_table()

    return _Input(src, list(types), fetch, types, empty_hint)


# DuckDB types of CSV columns that Arrow's CSV reader parses the same way.
_ARROW_CSV_TYPES = {"BIGINT": pa.int64(), "DOUBLE": pa.float64(), "VARCHAR": pa.string()}


def _arrow_csv_options(path: Path, gzipped: bool, options: dict, columns: list):
    """Arrow CSV read and parse options equivalent to DuckDB's sniffed dialect, or None.

    Arrow's multi-threaded CSV reader takes about half the CPU time of DuckDB's for a large file
    (and converts to Arrow as it goes), and a third of its wall time for a small one (ml-100k's
    u.data: 7 ms against 23 ms). It is used only for a plain file in a dialect both read the same
    way (one-byte delimiter, '"' or no quoting, quotes escaped by doubling) and only for BIGINT,
    DOUBLE and VARCHAR columns (see _open_csv); a file it does not read without error is read by
    DuckDB, which also gives the error message.
    """
    delim, quote, escape = options["delim"], options["quote"], options["escape"]
    if (gzipped or len(delim.encode()) != 1 or delim in "\r\n\""
            or quote not in ('"', "") or escape not in (quote, "") or len(set(columns)) != len(columns)):
        return None
    # blocks are parsed in parallel: a small file in several blocks, a large one in blocks of 4 MiB
    block_size = min(1 << 22, max(1 << 18, path.stat().st_size // 8))
    read = pa_csv.ReadOptions(
        column_names=columns, skip_rows=options["skip"] + bool(options["header"]), block_size=block_size)
    parse = pa_csv.ParseOptions(
        delimiter=delim, quote_char=quote or False, double_quote=bool(quote), escape_char=False,
        newlines_in_values=bool(quote), ignore_empty_lines=True,
    )
    return read, parse


def _open_json(path: Path, con, src: str) -> _Input:
    try:
        described = con.sql(f"DESCRIBE SELECT * FROM read_json({_lit(str(path))}, format='auto')").fetchall()
    except duckdb.Error as error:
        raise _wrap(src, error) from None
    types = {row[0]: row[1] for row in described}

    def fetch(names, typed):
        spec = {name: typed.get(name, types[name]) for name in names}
        sql = f"SELECT {', '.join(_ident(n) for n in names)} FROM read_json({_lit(str(path))}, format='auto', columns={_struct(spec)})"
        return con.sql(sql).to_arrow_table()

    return _Input(src, list(types), fetch, types)


def _open_parquet(path: Path, gzipped: bool, session: _Session, src: str) -> _Input:
    if gzipped:  # DuckDB cannot read gzipped Parquet: decompress to the session's scratch directory
        plain = session.scratch() / "source.parquet"
        try:
            with gzip.open(path, "rb") as fin, open(plain, "wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            raise ValidationError(f"{src}: the gzip stream is truncated or corrupt") from None
        path = plain
    reader = f"read_parquet({_lit(str(path))})"
    con = session.con
    try:
        columns = [row[0] for row in con.sql(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
    except duckdb.Error as error:
        raise _wrap(src, error) from None

    def fetch(names, _types):
        return con.sql(f"SELECT {', '.join(_ident(n) for n in names)} FROM {reader}").to_arrow_table()

    return _Input(src, columns, _guard(src, fetch), {})


# ---------------------------------------------------------------------------------------------
# Normalizing columns


def _plain(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Decoded dictionaries, string views as large strings."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string_view(col.type):
        col = col.cast(pa.large_string())
    return col


def _canonical(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """One type per kind of value, so that CSV and Parquet copies of a table compare equal."""
    col = _plain(col)
    kind = col.type
    if pa.types.is_integer(kind) and kind != pa.uint64():
        return col.cast(pa.int64())
    if pa.types.is_floating(kind):
        return col.cast(pa.float64())
    if pa.types.is_string(kind):
        return col.cast(pa.large_string())
    if pa.types.is_timestamp(kind):
        return col.cast(pa.timestamp("us", kind.tz), safe=False)
    return col


def _ids(col: pa.ChunkedArray, src: str, name: str) -> tuple[pa.ChunkedArray, str]:
    """Ids as int64 ("integer") or text ("string")."""
    col = _plain(col)
    kind = col.type
    if pa.types.is_integer(kind):
        try:
            return col.cast(pa.int64()), "integer"
        except pa.ArrowInvalid:
            raise ValidationError(f"{src}: column {name!r} has integer ids too large for 64 bits") from None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # A character takes at least one byte: count characters only when some id has too many bytes.
        longest = max((_longest_bytes(chunk) for chunk in col.chunks), default=0)
        if longest > MAX_ID_CHARACTERS:
            longest = pc.max(pc.utf8_length(col)).as_py() or 0
        if longest > MAX_ID_CHARACTERS:
            raise ValidationError(
                f"{src}: column {name!r} has an id of {longest:,} characters; ids may have at most "
                f"{MAX_ID_CHARACTERS:,} characters (is this the right column?)"
            )
        return col, "string"
    if pa.types.is_floating(kind):  # e.g. a pandas integer column that holds NaN
        values = col.to_numpy()
        finite = values[~np.isnan(values)]
        if np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2**63):
            return col.cast(pa.int64(), safe=False), "integer"
        raise ValidationError(f"{src}: column {name!r} holds fractional numbers; ids must be text or integers")
    raise ValidationError(f"{src}: column {name!r} holds {kind} values; ids must be text or integers")


def _longest_bytes(chunk: pa.Array) -> int:
    """The byte length of the longest value of a string or large_string array (nulls count as empty)."""
    if len(chunk) == 0:
        return 0
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(chunk.buffers()[1], dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
    return int(np.diff(offsets).max())


def _epoch_us(col: pa.ChunkedArray, con, src: str, name: str, unit: str | None) -> pa.ChunkedArray:
    """Times as int64 microseconds since 1970-01-01 UTC (nulls stay null), between 1970 and 2100."""
    us = _parse_times(col, con, src, name, unit)
    bounds = pc.min_max(us)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is not None and low < 0:
        raise ValidationError(
            f"{src}: column {name!r} has times before 1970-01-01 (negative unix times); interaction times "
            "must lie between 1970 and 2100"
        )
    if high is not None and high >= LATEST_TIME_US:
        raise ValidationError(
            f"{src}: column {name!r} has times after 2100-01-01, out of range; interaction times must lie "
            "between 1970 and 2100"
        )
    return us


def _parse_times(col: pa.ChunkedArray, con, src: str, name: str, unit: str | None) -> pa.ChunkedArray:
    col = _plain(col)
    kind = col.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if unit is not None:
            raise ValidationError(f"{src}: column {name!r} already holds dates or times; time_unit applies to numbers")
        target = pa.timestamp("us", kind.tz if pa.types.is_timestamp(kind) else None)
        return col.cast(target, safe=False).cast(pa.int64())
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _numeric_times(col, src, name, unit)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ValidationError(f"{src}: column {name!r} holds {kind} values, not times")
    con.register("_times", pa.table({"t": col}))
    parsed = con.sql(
        "SELECT TRY_CAST(t AS DOUBLE) AS number, epoch_us(TRY_CAST(t AS TIMESTAMPTZ)) AS us FROM _times"
    ).to_arrow_table()
    numbers, stamps = parsed.column("number"), parsed.column("us")
    numeric = unit is not None or numbers.null_count <= stamps.null_count  # the reading that fits more values
    chosen = numbers if numeric else stamps
    if chosen.null_count != col.null_count:
        bad = pc.and_(chosen.is_null(), col.is_valid()).to_numpy(zero_copy_only=False)
        examples = list(dict.fromkeys(col.filter(pa.array(bad)).to_pylist()))[:3]
        expected = f"numbers (time_unit={unit!r})" if unit else (
            "unix seconds or milliseconds" if numeric else "ISO 8601 text like 2024-01-31 or 2024-01-31T12:00:00"
        )
        raise ValidationError(
            f"{src}: column {name!r} has {int(bad.sum())} values that are not times, e.g. "
            f"{', '.join(map(repr, examples))} (first at data row {int(np.argmax(bad)) + 1}); expected {expected}"
        )
    return _numeric_times(numbers, src, name, unit) if numeric else stamps


def _numeric_times(col: pa.ChunkedArray, src: str, name: str, unit: str | None) -> pa.ChunkedArray:
    if pa.types.is_floating(col.type) and not pc.all(pc.is_finite(col)).as_py():
        raise ValidationError(f"{src}: column {name!r} has infinite or NaN times")
    bounds = pc.min_max(col)
    biggest = max(abs(bounds["min"].as_py() or 0), abs(bounds["max"].as_py() or 0))
    if unit is None:
        if biggest >= 1e14:
            raise ValidationError(
                f"{src}: column {name!r} has numbers up to {biggest:.0f}, too large for unix seconds or "
                "milliseconds; convert them to one of those"
            )
        unit = "s" if biggest < 1e11 else "ms"
    elif biggest * _UNIT_US[unit] >= 2**63:
        raise ValidationError(f"{src}: column {name!r} has numbers up to {biggest:.0f}, out of range as {unit}")
    values = (pc.fill_null(col, 0) if col.null_count else col).to_numpy()
    if pa.types.is_integer(col.type):
        us = np.multiply(values, _UNIT_US[unit], dtype=np.int64)
    else:
        us = np.rint(values * _UNIT_US[unit]).astype(np.int64)
    mask = None if col.null_count == 0 else pc.is_null(col).to_numpy(zero_copy_only=False)
    return pa.chunked_array([pa.array(us, mask=mask)])


_PARALLEL_ROWS = 1 << 18  # below this many rows, threads cost more than they save


def _encode_columns(columns: list, pool: ThreadPoolExecutor | None) -> list:
    """_encode of each column; long columns in parts on `pool`, so that both cores work until the end.

    Hashing ids costs most for the column with more distinct values (usually the users): splitting
    each column in two parts, rather than giving each column a thread, keeps the load even.
    """
    dense = [_encode_dense_integers(col) for col in columns]
    if pool is None:
        return [d or _encode(col) for d, col in zip(dense, columns)]
    jobs = []  # (column number, part)
    for number, col in enumerate(columns):
        if dense[number]:
            continue
        n = len(col)
        parts = 2 if n >= _PARALLEL_ROWS else 1
        bounds = [n * k // parts for k in range(parts + 1)]
        jobs += [(number, col.slice(bounds[k], bounds[k + 1] - bounds[k])) for k in range(parts)]
    encoded = list(pool.map(lambda job: _dictionary_encode(job[1]), jobs))
    results = []
    for number in range(len(columns)):
        mine = [e for (j, _), e in zip(jobs, encoded) if j == number]
        results.append(dense[number] or _merge_encoded(mine, pool))
    return results


_DENSE_SLOTS_PER_ROW = 4  # integer ids spread over at most this many values per row take _encode_dense_integers


def _encode_dense_integers(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray] | None:
    """_encode of integer ids that fill much of their range, by marking them in a table over it.

    Linear and cache-friendly where hashing is not: lastfm-2k's artist ids in 0.4 ms against 2.9 ms.
    None for text ids, or integers too sparse in their range (e.g. hashes) for a table.
    """
    if not pa.types.is_int64(col.type) or len(col) == 0:
        return None
    low, high = pc.min_max(col).values()
    slots = high.as_py() - low.as_py() + 1
    if slots > _DENSE_SLOTS_PER_ROW * len(col) + (1 << 16):
        return None
    offsets = col.to_numpy() - low.as_py()  # below the slot count: fits in int64
    present = np.zeros(slots, dtype=bool)
    present[offsets] = True
    rank = np.cumsum(present, dtype=np.int32) - 1
    return pa.array(np.flatnonzero(present) + low.as_py()), rank[offsets]


def _dictionary_encode(col: pa.ChunkedArray) -> pa.DictionaryArray:
    return pc.dictionary_encode(col).combine_chunks()


def _encode(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The distinct values in sorted order, and each row's rank among them as int32."""
    return _merge_encoded([_dictionary_encode(col)], None)


def _merge_encoded(parts: list, pool: ThreadPoolExecutor | None) -> tuple[pa.Array, np.ndarray]:
    """One sorted dictionary for dictionary-encoded parts of a column, and each row's rank in it."""
    if len(parts) == 1:
        dictionary = parts[0].dictionary
        where = [np.arange(len(dictionary), dtype=np.int32)]
    else:  # the parts' dictionaries overlap: encode them again, together
        together = pc.dictionary_encode(pa.concat_arrays([p.dictionary for p in parts]))
        dictionary = together.dictionary
        positions = together.indices.to_numpy()
        bounds = np.cumsum([0] + [len(p.dictionary) for p in parts])
        where = [positions[bounds[k] : bounds[k + 1]] for k in range(len(parts))]
    order = pc.sort_indices(dictionary)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order.to_numpy()] = np.arange(len(order), dtype=np.int32)
    values = dictionary.take(order)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())

    def codes(k):
        return rank[where[k]][parts[k].indices.to_numpy()]

    chunks = list(pool.map(codes, range(len(parts)))) if pool is not None and len(parts) > 1 else [
        codes(k) for k in range(len(parts))]
    return values, chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _sort_rows(ucodes, icodes, t, n_users, n_items, duplicates, pool=None):
    """Rows ordered by (user, item, time), with duplicate pairs kept or reduced to their latest row.

    Without a thread pool, two counting sorts (by item, then stably by user) order the rows in
    linear time: ml-100k in 1 ms against 3 ms for sorting each user's items. With one, the rows are
    grouped by user and the items of the first and second half of the users are sorted in parallel,
    which needs less memory at 10M rows (scipy's sparsetools release the GIL).
    """
    n = len(ucodes)
    index = np.int32 if n < 2**31 else np.int64
    ucodes, icodes = ucodes.astype(index, copy=False), icodes.astype(index, copy=False)
    values = np.zeros(n, dtype=np.int8) if t is None else t  # the times travel with their rows
    indptr, items, times = np.empty(n_users + 1, dtype=index), np.empty(n, dtype=index), np.empty_like(values)
    if pool is None:
        by_item, item_users, item_times = np.empty(n_items + 1, dtype=index), np.empty(n, dtype=index), np.empty_like(values)
        _sparsetools.coo_tocsr(n_items, n_users, n, icodes, ucodes, values, by_item, item_users, item_times)
        _sparsetools.csr_tocsc(n_items, n_users, by_item, item_users, item_times, indptr, items, times)
    else:
        _sparsetools.coo_tocsr(n_users, n_items, n, ucodes, icodes, values, indptr, items, times)
        half = int(np.searchsorted(indptr, indptr[-1] // 2))  # users [0, half) hold about half the rows

        def sort_users(first, last):
            start, stop = indptr[first], indptr[last]
            _sparsetools.csr_sort_indices(last - first, indptr[first : last + 1] - start, items[start:stop], times[start:stop])

        list(pool.map(sort_users, (0, half), (half, n_users)))
    users = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(indptr))
    items = items.astype(np.int32, copy=False)
    same = np.zeros(n + 1, dtype=bool)  # same[k]: row k has the pair of row k - 1; same[n] stays False
    np.equal(users[1:], users[:-1], out=same[1:n])
    same[1:n] &= items[1:] == items[:-1]
    n_dropped = 0
    if t is not None and same.any():  # order the times of each repeated pair (a dozen times faster than a lexsort)
        rows = np.flatnonzero(same[:n] | same[1:])  # rows of pairs seen more than once
        repeated = times[rows]
        starts = np.flatnonzero(~same[rows]).astype(index)
        _sparsetools.csr_sort_indices(len(starts), np.append(starts, index(len(rows))), repeated, np.zeros(len(rows), np.int8))
        times[rows] = repeated
        if duplicates == "last":
            keep = ~same[1:]  # the last row of each pair
            n_dropped = n - int(np.count_nonzero(keep))
            users, items, times = users[keep], items[keep], times[keep]
    return users, items, (None if t is None else times), n_dropped


# ---------------------------------------------------------------------------------------------
# Snapshot files


def _fingerprint(user_ids, item_ids, ucodes, icodes, t, id_types) -> str:
    digest = hashlib.sha256(json.dumps({"v": _FORMAT_VERSION, "ids": id_types, "time": t is not None}).encode())
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
    return digest.hexdigest()


def _publish(dest_root: Path, name: Callable[[], str], write_rows: Callable[[Path], None],
             write_rest: Callable[[Path], None], pool: ThreadPoolExecutor | None = None) -> Path:
    """Write a snapshot directory atomically: into a temporary directory beside it, then rename.

    With a thread pool, the rows are written while `name()` (the fingerprint) is computed: on the
    rare import of content already snapshotted, that write is thrown away.
    """
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest_root))
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
    )


def _read_ids(path: Path) -> np.ndarray:
    return pq.read_table(path).column(0).to_numpy()


def _us_to_datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# ---------------------------------------------------------------------------------------------
# DuckDB helpers


class _Session:
    """A connection of its own to this module's in-memory DuckDB, and a scratch directory; both removed on exit.

    Opening a database costs about 20 ms, a cursor on it almost nothing.
    """

    _database: tuple[int, duckdb.DuckDBPyConnection] | None = None

    def __enter__(self) -> _Session:
        if _Session._database is None or _Session._database[0] != os.getpid():  # not inherited through fork
            _Session._database = (os.getpid(), duckdb.connect(":memory:"))
        self.con = _Session._database[1].cursor()
        # Text times without a zone are UTC, whatever the machine's zone.
        self.con.execute("SET enable_progress_bar = false; SET TimeZone = 'UTC'")
        self._scratch = None
        return self

    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="workbench-import-")
        return Path(self._scratch.name)

    def __exit__(self, *exc) -> None:
        self.con.close()
        if self._scratch is not None:
            self._scratch.cleanup()


def _wrap(description: str, error: duckdb.Error, failed: str = "could not be read") -> ValidationError:
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


def _check_choice(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _options(options: dict) -> str:
    def value(v):
        return str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, int) else _lit(v)

    return "".join(f", {k}={value(v)}" for k, v in options.items())


def _struct(types: dict) -> str:
    return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in types.items()) + "}"
