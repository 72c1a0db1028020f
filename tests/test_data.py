"""Importing interaction and metadata files into snapshots, and reading them back."""

import gzip
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench import data
from workbench.data import delimited, encode, engine
from workbench.errors import NotFoundError, ValidationError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COLUMNS = dict(user_column="user", item_column="item", time_column="ts")


def shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real datasets live in ../shared/data)")
    return path


def interactions(n=400, n_users=30, n_items=50, seed=0) -> pd.DataFrame:
    """Rows in random order with string ids, unix-second times and some repeated pairs."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "user": [f"u{x}" for x in rng.integers(0, n_users, n)],
        "item": [f"i{x}" for x in rng.integers(0, n_items, n)],
        "ts": rng.integers(1_500_000_000, 1_600_000_000, n),
        "rating": rng.integers(1, 6, n),
    })
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` in the format its name says (.csv .tsv .dat(::) .parquet .json .ndjson, optionally .gz)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".parquet"):
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        content = buffer.getvalue().to_pybytes()
    elif name.endswith(".json"):
        content = json.dumps(frame.to_dict(orient="records")).encode()
    elif name.endswith(".ndjson"):
        content = "".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")).encode()
    else:
        sep = {".csv": ",", ".tsv": "\t", ".dat": "::"}[Path(name).suffix]
        cells = frame.astype(object).where(frame.notna(), "").astype(str)
        lines = [sep.join(frame.columns)] + [sep.join(row) for row in cells.itertuples(index=False)]
        content = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def entries(root: Path) -> list:
    return sorted(os.listdir(root)) if root.exists() else []


@pytest.fixture
def frame():
    return interactions()


@pytest.fixture
def reference(frame, tmp_path):
    return data.build_interaction_snapshot(frame, tmp_path / "ref", **COLUMNS)


FORMATS = ["a.csv", "a.tsv", "a.dat", "a.parquet", "a.json", "a.ndjson"]


@pytest.mark.parametrize("name", FORMATS + [f + ".gz" for f in FORMATS])
def test_every_format_gives_the_same_snapshot(name, frame, reference, tmp_path):
    path = write(frame, tmp_path / name)
    snap = data.build_interaction_snapshot(path, tmp_path / "snaps", **COLUMNS)
    assert snap.fingerprint == reference.fingerprint
    assert snap.source == str(path)
    assert (snap.n_rows, snap.n_users, snap.n_items) == (len(frame), frame.user.nunique(), frame.item.nunique())
    X, users, items = data.interaction_matrix(snap.path)
    X_ref, users_ref, items_ref = data.interaction_matrix(reference.path)
    assert (X != X_ref).nnz == 0
    assert list(users) == list(users_ref) and list(items) == list(items_ref)


def test_row_order_does_not_change_the_fingerprint(frame, reference, tmp_path):
    shuffled = frame.sample(frac=1.0, random_state=3)
    snap = data.build_interaction_snapshot(shuffled, tmp_path / "s", **COLUMNS)
    assert snap.fingerprint == reference.fingerprint
    other = data.build_interaction_snapshot(frame.iloc[1:], tmp_path / "s", **COLUMNS)
    assert other.fingerprint != reference.fingerprint


def test_sql_source(frame, reference, tmp_path):
    path = write(frame, tmp_path / "a.csv")
    sandbox = data.SqlSandbox((tmp_path,))
    snap = data.build_interaction_snapshot(f"  select * FROM read_csv('{path}')", tmp_path / "s", **COLUMNS, sandbox=sandbox)
    assert snap.fingerprint == reference.fingerprint
    assert snap.source.startswith("SQL: select")
    with pytest.raises(ValidationError, match=r"SQL: SELECT \* FROM nowhere: the query failed: .*nowhere"):
        data.build_interaction_snapshot("SELECT * FROM nowhere", tmp_path / "s", **COLUMNS)


def test_snapshot_layout_and_info(reference, frame):
    assert sorted(os.listdir(reference.path)) == ["interactions.parquet", "items.parquet", "snapshot.json", "users.parquet"]
    assert reference.path.name == reference.fingerprint and len(reference.fingerprint) == 64
    assert data.snapshot_info(reference.path) == reference
    assert reference.id_types == {"user": "string", "item": "string"}
    assert reference.time_min == datetime.fromtimestamp(frame.ts.min(), UTC).replace(tzinfo=None)
    assert reference.time_max == datetime.fromtimestamp(frame.ts.max(), UTC).replace(tzinfo=None)
    assert reference.dropped == {"null_ids": 0, "duplicates": 0}
    schema = pq.read_schema(reference.path / "interactions.parquet")
    assert schema.names == ["user_id", "item_id", "user_code", "item_code", "time"]
    assert str(schema.field("user_code").type) == "int32" and str(schema.field("time").type) == "timestamp[us]"
    with pytest.raises(NotFoundError):
        data.snapshot_info(reference.path.parent / "nope")


def test_read_interactions_is_sorted_and_consistent(reference, frame):
    rows = data.read_interactions(reference.path)
    assert list(rows.columns) == ["user_id", "item_id", "user_code", "item_code", "time"]
    assert len(rows) == len(frame)
    keys = list(zip(rows.user_code, rows.item_code, rows.time))
    assert keys == sorted(keys)
    users = sorted(frame.user.unique())
    assert list(rows.user_id) == [users[c] for c in rows.user_code]
    expected = sorted(zip(frame.user, frame.item, pd.to_datetime(frame.ts, unit="s")))
    assert sorted(zip(rows.user_id, rows.item_id, rows.time)) == expected


def test_matrix_matches_a_naive_construction(reference, frame):
    X, users, items = data.interaction_matrix(reference.path)
    assert list(users) == sorted(frame.user.unique()) and list(items) == sorted(frame.item.unique())
    dense = np.zeros((len(users), len(items)))
    for user, item in zip(frame.user, frame.item):
        dense[list(users).index(user), list(items).index(item)] = 1.0
    assert X.dtype == np.float64 and X.has_sorted_indices
    assert np.array_equal(X.toarray(), dense)
    assert X.nnz == len(frame[["user", "item"]].drop_duplicates())


def test_integer_ids_stay_integers(tmp_path):
    frame = pd.DataFrame({"user": [3, 1, 20, 3], "item": [7, 7, 100, 5]})
    path = write(frame, tmp_path / "ints.csv")
    snap = data.build_interaction_snapshot(path, tmp_path / "s", user_column="user", item_column="item")
    assert snap.id_types == {"user": "integer", "item": "integer"}
    assert snap.time_min is None
    X, users, items = data.interaction_matrix(snap.path)
    assert users.dtype == np.int64 and list(users) == [1, 3, 20]  # numeric order, not text order
    assert list(items) == [5, 7, 100]
    rows = data.read_interactions(snap.path)
    assert rows.user_id.dtype == np.int64 and "time" not in rows.columns
    parquet = write(frame.astype("int32"), tmp_path / "ints.parquet")
    assert data.build_interaction_snapshot(parquet, tmp_path / "s", user_column="user", item_column="item").fingerprint == snap.fingerprint


@pytest.mark.parametrize("spread", [1, 2**56], ids=["dense range", "sparse range"])
def test_integer_ids_in_a_table_or_hashed_give_the_same_snapshot(spread, tmp_path, monkeypatch):
    """Integer ids that fill their range are encoded through a table over it, others by hashing: same content."""
    rng = np.random.default_rng(1)
    users = rng.integers(-50, 50, 3000) * spread
    frame = pd.DataFrame({"user": users, "item": rng.integers(2**40, 2**40 + 300, 3000), "ts": rng.integers(0, 10**9, 3000)})
    assert (encode.encode_dense_integers(pa.chunked_array([users])) is not None) == (spread == 1)
    snap = data.build_interaction_snapshot(frame, tmp_path / "a", **COLUMNS)
    monkeypatch.setattr(encode, "DENSE_SLOTS_PER_ROW", -(2**40))  # no column qualifies for the table
    hashed = data.build_interaction_snapshot(frame, tmp_path / "b", **COLUMNS)
    assert snap.fingerprint == hashed.fingerprint
    X, user_ids, item_ids = data.interaction_matrix(snap.path)
    assert list(user_ids) == sorted(set(users)) and list(item_ids) == sorted(set(frame.item))
    assert X.nnz == len(frame[["user", "item"]].drop_duplicates())


def test_ids_that_are_not_all_integers_are_text(tmp_path):
    users = list(range(3000)) + ["x7"]  # the odd one is far beyond DuckDB's type-sniffing sample
    path = write(pd.DataFrame({"user": users, "item": 1}), tmp_path / "mixed.csv")
    snap = data.build_interaction_snapshot(path, tmp_path / "s", user_column="user", item_column="item")
    assert snap.id_types == {"user": "string", "item": "integer"}
    assert "x7" in list(data.interaction_matrix(snap.path)[1])
    path = write(pd.DataFrame({"user": ["007", "7"], "item": [1, 2]}), tmp_path / "zeros.csv")
    _, users, _ = data.interaction_matrix(data.build_interaction_snapshot(path, tmp_path / "s", user_column="user", item_column="item").path)
    assert list(users) == ["007", "7"]


def test_reimport_reuses_the_snapshot(frame, tmp_path):
    dest = tmp_path / "s"
    first = data.build_interaction_snapshot(frame, dest, **COLUMNS)
    stamp = (first.path / "interactions.parquet").stat().st_mtime_ns
    again = data.build_interaction_snapshot(write(frame, tmp_path / "a.csv"), dest, **COLUMNS)
    assert again.path == first.path and again.source.endswith("a.csv")
    assert (first.path / "interactions.parquet").stat().st_mtime_ns == stamp
    assert entries(dest) == [first.fingerprint]  # no temporary directories left behind


# Time parsing


@pytest.mark.parametrize(
    "values, unit",
    [
        (["2024-01-02 03:04:05", "2024-01-03T00:00:00Z", "2024-01-03 02:00:00+02:00", "2024-01-04"], None),
        ([1704164645, 1704240000, 1704240000, 1704326400], None),
        ([1704164645000, 1704240000000, 1704240000000, 1704326400000], None),
        ([1704164645.0, 1704240000.0, 1704240000.0, 1704326400.0], "s"),
        ([1704164645000, 1704240000000, 1704240000000, 1704326400000], "ms"),
    ],
)
def test_times_are_recognized(values, unit, tmp_path):
    frame = pd.DataFrame({"user": ["a", "b", "c", "d"], "item": ["x", "x", "y", "y"], "ts": values})
    path = write(frame, tmp_path / "t.csv")
    snap = data.build_interaction_snapshot(path, tmp_path / "s", **COLUMNS, time_unit=unit)
    times = data.read_interactions(snap.path).sort_values("user_id").time
    expected = pd.to_datetime(["2024-01-02 03:04:05", "2024-01-03 00:00:00", "2024-01-03 00:00:00", "2024-01-04 00:00:00"])
    assert list(times) == list(expected)


def test_text_times_are_utc_whatever_the_local_zone(tmp_path):
    query = (
        "SELECT * FROM (VALUES ('a', 'x', '2024-01-01 00:00:00'), ('b', 'y', '2024-01-02T00:00:00+01:00')) "
        "AS t(user, item, ts)"
    )
    with engine.Session() as session:  # as if the machine's zone were New York
        database = engine.Session._database[1]
        zone = session.con.sql("SELECT current_setting('TimeZone')").fetchall()[0][0]
    database.execute("SET GLOBAL TimeZone = 'America/New_York'")
    try:
        snap = data.build_interaction_snapshot(query, tmp_path / "s", **COLUMNS)
    finally:
        database.execute(f"SET GLOBAL TimeZone = '{zone}'")
    assert (snap.time_min, snap.time_max) == (datetime(2024, 1, 1), datetime(2024, 1, 1, 23))


def test_dataframe_datetimes_with_time_zones(tmp_path):
    frame = pd.DataFrame({
        "user": ["a", "b"], "item": ["x", "y"],
        "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:00"]).tz_localize("Europe/Paris"),
    })
    snap = data.build_interaction_snapshot(frame, tmp_path / "s", **COLUMNS)
    assert snap.time_min == datetime(2024, 1, 1, 9, 0) and snap.time_max == datetime(2024, 1, 2, 9, 0)


def test_bad_times_are_reported(tmp_path):
    frame = interactions(n=3000).astype({"ts": str})
    frame.loc[2500, "ts"] = "yesterday"  # beyond the type-sniffing sample
    frame.loc[2600, "ts"] = "2024-13-45"
    path = write(frame, tmp_path / "t.csv")
    dest = tmp_path / "s"
    with pytest.raises(ValidationError) as error:
        data.build_interaction_snapshot(path, dest, **COLUMNS)
    message = str(error.value)
    assert str(path) in message and "'ts'" in message and "2 values that are not times" in message
    assert "'yesterday', '2024-13-45'" in message and "data row 2501" in message
    assert "expected unix seconds or milliseconds" in message
    with pytest.raises(ValidationError, match="too large for unix seconds or milliseconds"):
        data.build_interaction_snapshot(pd.DataFrame({"user": [1], "item": [1], "ts": [10**16]}), dest, **COLUMNS)
    with pytest.raises(ValidationError, match="time_unit must be one of"):
        data.build_interaction_snapshot(path, dest, **COLUMNS, time_unit="days")
    assert entries(dest) == []


# Nulls and duplicates


def test_null_ids_are_dropped_and_counted_or_rejected(frame, tmp_path):
    frame = frame.astype({"user": object})
    frame.loc[[5, 9, 17], "user"] = None
    frame.loc[9, "item"] = None
    path = write(frame, tmp_path / "n.csv")
    snap = data.build_interaction_snapshot(path, tmp_path / "s", **COLUMNS)
    assert snap.dropped["null_ids"] == 3 and snap.n_rows == len(frame) - 3
    dest = tmp_path / "r"
    with pytest.raises(ValidationError) as error:
        data.build_interaction_snapshot(path, dest, **COLUMNS, null_ids="reject")
    message = str(error.value)
    assert str(path) in message and "3 rows have no value in column 'user' / 'item'" in message
    assert "first at data row 6" in message
    assert entries(dest) == []


@pytest.mark.parametrize("where", ["csv sample", "csv beyond the sample", "parquet", "dataframe"])
def test_nan_in_number_ids_is_a_missing_id(where, tmp_path):
    """Never user -9223372036854775808: NaN ids are dropped and counted, or refused."""
    users = [1, 2, float("nan"), 3, float("nan")] if where != "csv beyond the sample" else list(range(3000)) + ["nan", "NaN"]
    frame = pd.DataFrame({"user": users, "item": 7})
    if where == "parquet":
        source = write(frame, tmp_path / "n.parquet")
    elif where == "dataframe":
        source = frame
    else:
        source = tmp_path / "n.csv"
        source.write_text("user,item\n" + "".join(f"{'nan' if u != u else u},7\n" for u in users))
        if where == "csv sample":
            source.write_text(source.read_text().replace("nan,7\n", "NaN,7\n", 1))
    snap = data.build_interaction_snapshot(source, tmp_path / "s", user_column="user", item_column="item")
    assert snap.dropped["null_ids"] == 2 and snap.n_rows == len(users) - 2
    assert snap.id_types["user"] == "integer" and data.interaction_matrix(snap.path)[1].min() >= 0
    assert_rejected(source, tmp_path / "r", "2 rows have no value in column 'user'", user_column="user",
                    item_column="item", time_column=None, null_ids="reject")
    assert_rejected(pd.DataFrame({"user": [1.0, float("inf")], "item": 7}), tmp_path / "r", "holds infinite numbers",
                    user_column="user", item_column="item", time_column=None)


def test_seconds_and_milliseconds_mixed_are_refused_unless_a_unit_is_given(tmp_path):
    ms = 1_704_067_200_000  # 2024-01-01 in milliseconds
    frame = pd.DataFrame({"user": ["a", "b", "c"], "item": "x", "ts": [ms, ms // 1000 + 60, ms + 1000]})
    message = assert_rejected(frame, tmp_path / "s", "column 'ts' mixes unix seconds and milliseconds",
                              "1 values look like seconds, e.g. 1704067260 (data row 2)", "give time_unit=")
    path = write(frame, tmp_path / "t.csv")
    assert assert_rejected(path, tmp_path / "s") == message.replace("DataFrame", str(path))
    as_ms = data.build_interaction_snapshot(path, tmp_path / "s", **COLUMNS, time_unit="ms")
    assert as_ms.time_min == datetime(1970, 1, 20, 17, 21, 7, 260000)  # what the user asked for
    tiny = frame.assign(ts=[ms, 0, 86_400_000])  # values of 1970 in both units are no sign of seconds
    assert data.build_interaction_snapshot(tiny, tmp_path / "s", **COLUMNS).time_min == datetime(1970, 1, 1)


def test_sources_of_too_many_columns_are_refused(tmp_path):
    names = ["user", "item"] + [f"c{k}" for k in range(3000)]
    csv = tmp_path / "wide.csv"
    csv.write_text(",".join(names) + "\n" + ",".join(["1"] * len(names)) + "\n")
    assert_rejected(csv, tmp_path / "s", "wide.csv: 3,002 columns; sources of more than 2,048 columns are refused",
                    "is the delimiter right?", time_column=None)
    parquet = tmp_path / "wide.parquet"
    pq.write_table(pa.table({n: [1] for n in names}), parquet)
    assert_rejected(parquet, tmp_path / "s", "wide.parquet: 3,002 columns", time_column=None)
    with pytest.raises(ValidationError, match="3,002 columns"):
        data.build_metadata_snapshot(csv, tmp_path / "m", item_column="item")
    query = "SELECT " + ", ".join(f"1 AS {n}" for n in names)
    assert_rejected(query, tmp_path / "s", "3,002 columns", time_column=None)
    wide_text = ",".join(names[:2] + [f"a_long_column_name_{k:06d}" for k in range(6000)])  # longer than the sample
    csv.write_text(wide_text + "\n" + ",".join(["1"] * 6002) + "\n")
    assert_rejected(csv, tmp_path / "s", "wide.csv: at least ", "columns are refused", time_column=None)


def test_duplicate_policies(tmp_path):
    frame = pd.DataFrame({
        "user": ["a", "a", "a", "b", "b", "a"],
        "item": ["x", "x", "y", "x", "x", "x"],
        "ts": [30, 10, 5, 7, 7, 20],
    })
    keep = data.build_interaction_snapshot(frame, tmp_path / "s", **COLUMNS)
    assert keep.n_rows == 6 and keep.dropped["duplicates"] == 0
    rows = data.read_interactions(keep.path)
    assert list(rows.time.astype("int64") // 10**6) == [10, 20, 30, 5, 7, 7]  # times ordered within a pair
    X, _, _ = data.interaction_matrix(keep.path)
    assert X.nnz == 3 and X.sum() == 3.0
    last = data.build_interaction_snapshot(frame, tmp_path / "s", **COLUMNS, duplicates="last")
    assert last.n_rows == 3 and last.dropped["duplicates"] == 3
    rows = data.read_interactions(last.path)
    assert list(rows.time.astype("int64") // 10**6) == [30, 5, 7]
    with pytest.raises(ValidationError, match="give time_column"):
        data.build_interaction_snapshot(frame, tmp_path / "s", user_column="user", item_column="item", duplicates="last")


# Files that cannot be used


def assert_rejected(source, dest: Path, *fragments: str, **options):
    before = entries(dest)
    with pytest.raises(ValidationError) as error:
        data.build_interaction_snapshot(source, dest, **{**COLUMNS, **options})
    for fragment in fragments:
        assert fragment in str(error.value)
    assert entries(dest) == before
    return str(error.value)


def test_missing_columns_are_listed(frame, reference, tmp_path):
    path = write(frame, tmp_path / "a.csv")
    dest = reference.path.parent  # holds a snapshot already: nothing may be added
    assert_rejected(path, dest, str(path), "user column 'uid' not found", "columns found: 'user', 'item', 'ts', 'rating'",
                    user_column="uid")
    assert_rejected(path, dest, "time column 'when' not found", time_column="when")
    assert_rejected(frame, dest, "DataFrame: item column 'product' not found", item_column="product")


def test_file_without_header_gets_a_hint(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t5\t881250949\n3\t4\t3\t881250950\n")
    assert_rejected(path, tmp_path / "s", "user column 'user' not found", "'column0'", "no header line")
    snap = data.build_interaction_snapshot(path, tmp_path / "s", user_column="column0", item_column="column1", time_column="column3")
    assert snap.n_rows == 2


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"user,item,ts\n", "no data rows (only a header line)"),
        (b"", "the file is empty"),
        (b"user,item,ts\nu1,i1,1\nu\xff2,i2,2\n", "not UTF-8 text (byte 0xff on line 3)"),
        (b"PAR1 not really", "the name says CSV but the content looks like Parquet"),
        (b"\x00\x01\x02binary", "looks like binary data"),
    ],
)
def test_unusable_csv_files(content, fragment, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    assert_rejected(path, tmp_path / "s", str(path), fragment)


def test_invalid_utf8_far_into_the_file(frame, tmp_path):
    path = tmp_path / "late.csv"
    rows = "".join(f"u{k},i{k},{1_500_000_000 + k},1\n" for k in range(20000))
    path.write_bytes(b"user,item,ts,rating\n" + rows.encode() + b"caf\xe9,i1,1500000000,1\n")
    assert_rejected(path, tmp_path / "s", str(path), "not UTF-8 text")


def test_content_that_does_not_match_the_extension(frame, tmp_path):
    csv_named_parquet = tmp_path / "a.parquet"
    csv_named_parquet.write_bytes(write(frame, tmp_path / "a.csv").read_bytes())
    assert_rejected(csv_named_parquet, tmp_path / "s", "the name says PARQUET but the content looks like delimited text")
    parquet_named_csv = tmp_path / "b.csv"
    parquet_named_csv.write_bytes(write(frame, tmp_path / "b.parquet").read_bytes())
    assert_rejected(parquet_named_csv, tmp_path / "s", "the name says CSV but the content looks like Parquet")
    not_gzip = tmp_path / "c.csv.gz"
    not_gzip.write_bytes(b"user,item\na,b\n")
    assert_rejected(not_gzip, tmp_path / "s", "the name ends in .gz but the content is not gzip-compressed")
    assert_rejected(tmp_path / "missing.csv", tmp_path / "s", "no such file")


@pytest.mark.parametrize("size", [300, 30000])
def test_truncated_gzip(size, tmp_path):
    full = write(interactions(n=size), tmp_path / "a.csv.gz").read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(full[: len(full) * 2 // 3])
    assert_rejected(path, tmp_path / "s", str(path), "gzip stream is truncated or corrupt")


def test_duckdb_errors_become_validation_errors(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("user,item,ts\n" + "u1,i1,1\n" * 3000 + "u2,i2,2,extra,fields\n")
    message = assert_rejected(path, tmp_path / "s", str(path), "could not be read")
    assert "Traceback" not in message


def test_bad_parameters(frame, tmp_path):
    assert_rejected(frame, tmp_path / "s", "null_ids must be one of 'drop', 'reject'", null_ids="keep")
    assert_rejected(frame, tmp_path / "s", "duplicates must be one of", duplicates="first")
    assert_rejected(frame, tmp_path / "s", "delimiter must be 1 to 4 characters", delimiter="-----")
    assert_rejected(42, tmp_path / "s", "source must be a file path, a pandas DataFrame or a SQL query")
    mixed = pd.DataFrame({"user": ["a", 1], "item": ["x", "y"], "ts": [1, 2]})
    assert_rejected(mixed, tmp_path / "s", "DataFrame: column 'user' cannot be used", "mixes value types (int, str)")


def test_explicit_delimiter(frame, reference, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("user;;item;;ts;;rating\n" + "".join(f"{r.user};;{r.item};;{r.ts};;{r.rating}\n" for r in frame.itertuples()))
    snap = data.build_interaction_snapshot(path, tmp_path / "s", **COLUMNS, delimiter=";;")
    assert snap.fingerprint == reference.fingerprint


# Preview and column mapping: the same reader as an import


@pytest.mark.parametrize("name", ["a.csv", "a.dat", "a.parquet.gz", "a.ndjson", "with.csv"])
def test_preview_reads_the_first_rows_as_an_import_does(name, frame, tmp_path):
    path = write(frame, tmp_path / name)
    shown = data.preview(path, n_rows=5)
    assert shown.source == str(path) and shown.columns == ["user", "item", "ts", "rating"]
    assert shown.types["user"] == "string" and shown.types["ts"] == "int64"
    assert shown.rows.to_dict("records") == frame.head(5).to_dict("records")
    assert len(data.preview(str(path)).rows) == data.PREVIEW_ROWS


def test_preview_of_queries_frames_and_what_cannot_be_read(frame, tmp_path):
    path = write(frame, tmp_path / "a.csv")
    query = f"SELECT user AS visitor, ts FROM read_csv('{path}') ORDER BY ts"
    shown = data.preview(query, n_rows=3, sandbox=data.SqlSandbox((tmp_path,)))
    assert shown.columns == ["visitor", "ts"] and shown.source.startswith("SQL: SELECT user AS visitor")
    assert list(shown.rows.ts) == sorted(frame.ts)[:3]
    assert data.preview(frame, n_rows=2).rows.equals(frame.head(2))
    with pytest.raises(ValidationError, match="with.csv: no such file"):  # a file name, not a WITH query
        data.preview(tmp_path / "with.csv")
    with pytest.raises(ValidationError, match="with.csv: no such file"):
        data.preview(str(tmp_path / "with.csv"))
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        (tmp_path / "latin1.csv").write_bytes(b"user,item\ncaf\xe9,1\n")
        data.preview(tmp_path / "latin1.csv")
    with pytest.raises(ValidationError, match="n_rows must be a positive whole number"):
        data.preview(frame, n_rows=0)


def test_column_mapping_reads_through_the_same_reader(frame, reference, tmp_path):
    renamed = frame.rename(columns={"user": "visitor", "item": "product", "ts": "when"})
    mapping = {"user": "visitor", "item": "product", "time": "when"}
    for name in ("a.csv", "a.dat", "a.parquet.gz", "a.json"):  # sniffed delimiters, gzipped Parquet, JSON
        path = write(renamed, tmp_path / name)
        snap = data.build_interaction_snapshot(path, tmp_path / "s", **COLUMNS, columns=mapping)
        assert snap.fingerprint == reference.fingerprint, name
    partly = data.build_interaction_snapshot(frame.rename(columns={"item": "product"}), tmp_path / "s", **COLUMNS,
                                             columns={"item": "product"})
    assert partly.fingerprint == reference.fingerprint
    assert_rejected(frame, tmp_path / "t", "item column 'product' not found", columns={"item": "product"})
    assert_rejected(frame, tmp_path / "t", "columns maps 'rating': the roles are 'user', 'item', 'time', 'weight'",
                    columns={"rating": "rating"})
    assert_rejected(frame, tmp_path / "t", "columns maps 'time', but this import has no time column",
                    time_column=None, columns={"time": "ts"})
    assert_rejected(frame, tmp_path / "t", "columns['user'] must be a column name", columns={"user": None})


def test_ids_beyond_the_sniffed_sample_in_a_mapped_column_stay_text(tmp_path):
    """The type fallback applies to mapped columns too (the dashboard's old reader lost it)."""
    path = write(pd.DataFrame({"visitor": list(range(3000)) + ["x7"], "product": 1}), tmp_path / "mixed.csv")
    snap = data.build_interaction_snapshot(path, tmp_path / "s", user_column="user", item_column="item",
                                           columns={"user": "visitor", "item": "product"})
    assert snap.id_types == {"user": "string", "item": "integer"} and snap.n_users == 3001


# Item metadata


def test_metadata_snapshot(tmp_path):
    items = pd.DataFrame({"movie": ["m2", "m1", "m3"], "title": ["B", "A", "C"], "year": [1999, 2001, 1987]})
    csv = tmp_path / "items.csv"
    items.to_csv(csv, index=False)
    snap = data.build_metadata_snapshot(csv, tmp_path / "meta", item_column="movie")
    assert snap.path == tmp_path / "meta" / f"{snap.fingerprint}.parquet"
    assert snap.columns == ("item_id", "title", "year") and snap.n_rows == 3
    table = data.read_metadata(snap.path)
    assert list(table.item_id) == ["m1", "m2", "m3"] and list(table.year) == [2001, 1999, 1987]
    parquet = data.build_metadata_snapshot(items.astype({"year": "int32"}), tmp_path / "meta", item_column="movie")
    assert parquet.fingerprint == snap.fingerprint and entries(tmp_path / "meta") == [snap.path.name]
    dest = tmp_path / "other"
    with pytest.raises(ValidationError, match=r"column 'movie' has 1 ids on more than one row, e\.g\. 'm1' \(2 rows\)"):
        data.build_metadata_snapshot(pd.concat([items, items.iloc[[1]]]), dest, item_column="movie")
    with pytest.raises(ValidationError, match=r"items.csv: item column 'id' not found; columns found: 'movie', 'title', 'year'"):
        data.build_metadata_snapshot(csv, dest, item_column="id")
    assert entries(dest) == []


# Real data sets (skipped when ../shared/data is absent)


def test_movielens_100k(tmp_path):
    path = shared("ml-100k", "u.data")
    snap = data.build_interaction_snapshot(path, tmp_path, user_column="column0", item_column="column1", time_column="column3")
    assert (snap.n_rows, snap.n_users, snap.n_items) == (100_000, 943, 1682)
    assert snap.id_types == {"user": "integer", "item": "integer"}
    assert snap.time_min.year == 1997 and snap.time_max.year == 1998
    X, users, items = data.interaction_matrix(snap.path)
    assert X.shape == (943, 1682) and X.nnz == 100_000 and users[0] == 1 and items[-1] == 1682
    # snapshots keep their fingerprints from one version to the next (tuning workers compare them)
    assert snap.fingerprint == "62af30e4b9fa44317c58a32be05b540ae48f6535204ad8cb429ab3319dcc353b"


def test_lastfm_2k(tmp_path):
    snap = data.build_interaction_snapshot(shared("lastfm-2k", "user_artists.dat"), tmp_path, user_column="userID", item_column="artistID")
    assert (snap.n_rows, snap.n_users, snap.n_items) == (92_834, 1892, 17_632)
    assert snap.fingerprint == "f88d1d0d76921f57e99257def7685e464f5e2bdb69c2f0de1a4a4530f8aeedf7"
    meta = data.build_metadata_snapshot(shared("lastfm-2k", "artists.dat"), tmp_path, item_column="id")
    assert meta.n_rows == 17_632 and meta.columns == ("item_id", "name", "url", "pictureURL")


@pytest.mark.parametrize("name", ["a.csv", "a.tsv", "a.dat", "a.csv.gz"])
def test_arrow_csv_reader_and_parallel_steps_give_the_same_snapshot(name, frame, reference, tmp_path, monkeypatch):
    """Plain files take Arrow's CSV reader, large ones the threaded encode: same content as a DataFrame."""
    monkeypatch.setattr(encode, "PARALLEL_ROWS", 2)
    snap = data.build_interaction_snapshot(write(frame, tmp_path / name), tmp_path / "s", **COLUMNS)
    assert snap.fingerprint == reference.fingerprint
    last = data.build_interaction_snapshot(frame, tmp_path / "ref", duplicates="last", **COLUMNS)
    monkeypatch.setattr(encode, "PARALLEL_ROWS", 1 << 30)
    assert data.build_interaction_snapshot(frame, tmp_path / "ref2", duplicates="last", **COLUMNS).fingerprint == last.fingerprint


def test_arrow_csv_reader_reads_like_duckdb(tmp_path, monkeypatch):
    """Quoted fields, empty and quoted-empty ids, blank lines, spaces: both readers give the same rows."""
    text = ('user,item,ts\nu1,i1,1700000000\n\n"u,2",i2,1700000001\nu3,,1700000002\n"",i4,1700000003\n'
            ' u5 ,"i ""5""",1700000004\nu6,i6,\n')
    path = tmp_path / "q.csv"
    path.write_text(text)
    with monkeypatch.context() as duckdb_only:
        duckdb_only.setattr(delimited, "_arrow_csv_options", lambda *args: None)
        slow = data.build_interaction_snapshot(path, tmp_path / "a", **COLUMNS)
    fast = data.build_interaction_snapshot(path, tmp_path / "b", **COLUMNS)
    assert (fast.fingerprint, fast.dropped, fast.n_rows) == (slow.fingerprint, slow.dropped, slow.n_rows)
    assert list(data.read_interactions(fast.path).user_id) == list(data.read_interactions(slow.path).user_id)
    path.write_text("user,item,ts\nu1,i1,1700000000\nu2,i2,1700000001,9\n")  # a ragged row: DuckDB's error
    with pytest.raises(ValidationError) as error:
        data.build_interaction_snapshot(path, tmp_path / "b", **COLUMNS)
    monkeypatch.setattr(delimited, "_arrow_csv_options", lambda *args: None)
    with pytest.raises(ValidationError) as expected:
        data.build_interaction_snapshot(path, tmp_path / "a", **COLUMNS)
    assert str(error.value) == str(expected.value)


# Interaction weights (ratings, play counts)


def test_weights_are_kept_and_summed_on_request(frame, reference, tmp_path):
    weighted = data.build_interaction_snapshot(frame, tmp_path / "s", **COLUMNS, weight_column="rating")
    assert weighted.weighted and not reference.weighted and weighted.fingerprint != reference.fingerprint
    assert data.snapshot_info(weighted.path) == weighted
    assert "weighted" not in json.loads((reference.path / "snapshot.json").read_text())  # unweighted: as before
    assert "weight" not in pq.read_schema(reference.path / "interactions.parquet").names
    rows = data.read_interactions(weighted.path)
    assert list(rows.columns) == ["user_id", "item_id", "user_code", "item_code", "time", "weight"]
    assert sorted(zip(rows.user_id, rows.item_id, rows.weight)) == sorted(zip(frame.user, frame.item, frame.rating.astype(float)))

    binary, users, items = data.interaction_matrix(weighted.path)
    assert (binary != data.interaction_matrix(reference.path)[0]).nnz == 0  # binary by default, weights or not
    raw, _, _ = data.interaction_matrix(weighted.path, weighting="raw")
    count, _, _ = data.interaction_matrix(weighted.path, weighting="count")
    sums = frame.groupby(["user", "item"]).rating.agg(["sum", "size"])
    for (user, item), (total, size) in sums.iterrows():
        u, i = list(users).index(user), list(items).index(item)
        assert raw[u, i] == total and count[u, i] == size and binary[u, i] == 1.0
    assert raw.nnz == count.nnz == binary.nnz == len(sums) and raw.has_sorted_indices
    assert np.array_equal((raw >= 4).astype(float).toarray(), (raw.toarray() >= 4).astype(float))  # a threshold above
    raw.data = np.log1p(raw.data)  # a confidence transform above, on a matrix of its own
    assert data.interaction_matrix(weighted.path, weighting="raw")[0].sum() == frame.rating.sum()
    assert np.array_equal(data.interaction_matrix(reference.path, weighting="count")[0].toarray(), count.toarray())
    with pytest.raises(ValidationError, match="has no weights"):
        data.interaction_matrix(reference.path, weighting="raw")
    with pytest.raises(ValidationError, match="weighting must be one of 'binary', 'count', 'raw'"):
        data.interaction_matrix(reference.path, weighting="log")


@pytest.mark.parametrize("timed", [True, False])
def test_weighted_snapshots_do_not_depend_on_row_order_or_reader(timed, tmp_path, monkeypatch):
    """Repeated pairs with different weights: the same content whatever the order, file or sort path."""
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"user": rng.integers(0, 20, 2000), "item": rng.integers(0, 15, 2000),
                          "ts": rng.integers(1_600_000_000, 1_600_000_050, 2000), "w": rng.integers(0, 4, 2000) / 2})
    options = dict(COLUMNS, weight_column="w") if timed else dict(user_column="user", item_column="item", weight_column="w")
    snap = data.build_interaction_snapshot(frame, tmp_path / "a", **options)
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert data.build_interaction_snapshot(shuffled, tmp_path / "b", **options).fingerprint == snap.fingerprint
    assert data.build_interaction_snapshot(write(shuffled, tmp_path / "w.csv"), tmp_path / "c", **options).fingerprint == snap.fingerprint
    monkeypatch.setattr(encode, "PARALLEL_ROWS", 2)
    assert data.build_interaction_snapshot(shuffled, tmp_path / "d", **options).fingerprint == snap.fingerprint
    rows = data.read_interactions(snap.path)
    keys = list(zip(rows.user_code, rows.item_code, *([rows.time] if timed else []), rows.weight))
    assert keys == sorted(keys)
    if timed:
        last = data.build_interaction_snapshot(shuffled, tmp_path / "e", **options, duplicates="last")
        kept = data.read_interactions(last.path)
        latest = frame.sort_values(["ts", "w"]).groupby(["user", "item"]).tail(1)
        assert sorted(zip(kept.user_id, kept.item_id, kept.weight)) == sorted(zip(latest.user, latest.item, latest.w))


def test_bad_weights(frame, tmp_path):
    frame = frame.astype({"rating": float})
    frame.loc[[3, 8], "rating"] = np.nan  # missing weights: dropped and counted like missing ids
    snap = data.build_interaction_snapshot(frame, tmp_path / "s", **COLUMNS, weight_column="rating")
    assert snap.dropped["null_ids"] == 2 and snap.n_rows == len(frame) - 2
    assert_rejected(frame, tmp_path / "r", "2 rows have no value in column 'rating' (first at data row 4)",
                    weight_column="rating", null_ids="reject")
    assert_rejected(frame.assign(rating=-frame.rating.fillna(1)), tmp_path / "r", "column 'rating' holds negative weights",
                    "(data row 1)", weight_column="rating")
    assert_rejected(frame.assign(rating=np.inf), tmp_path / "r", "holds infinite weights", weight_column="rating")
    assert_rejected(frame.assign(rating=True), tmp_path / "r", "holds bool values; weights must be numbers",
                    weight_column="rating")
    assert_rejected(frame, tmp_path / "r", "weight column 'stars' not found", weight_column="stars")
    longer = pd.concat([frame] * 8, ignore_index=True)  # the text is beyond the sniffed sample
    longer["rating"] = ["4"] * (len(longer) - 1) + ["lots"]
    assert_rejected(write(longer, tmp_path / "t.csv"), tmp_path / "r", "column 'rating' holds values that are not "
                    f"numbers, e.g. 'lots' (data row {len(longer)})", weight_column="rating")


def test_workspace_passes_weights_through(workspace, project):
    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "x", "y"], "stars": [5, 3, 4],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    record = workspace.import_training_data(project, frame, weight_column="stars")
    X, users, items = workspace.interaction_matrix(record, weighting="raw")
    assert X.toarray().tolist() == [[8.0, 0.0], [0.0, 4.0]] and list(users) == ["a", "b"]
    assert workspace.interaction_matrix(record)[0].toarray().tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_lastfm_play_counts_and_movielens_ratings_as_weights(tmp_path):
    plays = data.build_interaction_snapshot(shared("lastfm-2k", "user_artists.dat"), tmp_path, user_column="userID",
                                            item_column="artistID", weight_column="weight")
    counts = pd.read_csv(shared("lastfm-2k", "user_artists.dat"), sep="\t")
    X, users, items = data.interaction_matrix(plays.path, weighting="raw")
    assert X.nnz == 92_834 and X.sum() == counts.weight.sum()
    assert X[np.searchsorted(users, 2), np.searchsorted(items, 51)] == 13_883
    ratings = data.build_interaction_snapshot(shared("ml-100k", "u.data"), tmp_path, user_column="column0",
                                              item_column="column1", time_column="column3", weight_column="column2")
    table = pd.read_csv(shared("ml-100k", "u.data"), sep="\t", names=["user", "item", "rating", "ts"])
    R, users, items = data.interaction_matrix(ratings.path, weighting="raw")
    assert R.nnz == 100_000 and R.sum() == table.rating.sum() and R.max() == 5.0
    assert (R >= 4).nnz == (table.rating >= 4).sum()  # "rating >= 4 counts as positive"
    first = table.iloc[0]
    assert R[np.searchsorted(users, first["user"]), np.searchsorted(items, first["item"])] == first["rating"]


def test_imports_allocate_through_the_system_allocator_and_leave_the_default_pool_as_it_was(tmp_path, monkeypatch):
    from workbench import memory

    monkeypatch.delenv(memory.POOL_VARIABLE, raising=False)
    before = pa.default_memory_pool().backend_name
    seen = []
    real_enter = engine.Session.__enter__

    def watching_enter(self):
        seen.append(pa.default_memory_pool().backend_name)
        return real_enter(self)

    monkeypatch.setattr(engine.Session, "__enter__", watching_enter)
    csv = tmp_path / "log.csv"
    csv.write_text("user,item\nu1,i1\nu2,i2\n")
    data.build_interaction_snapshot(csv, tmp_path / "snap", user_column="user", item_column="item")
    assert seen == ["system"]
    assert pa.default_memory_pool().backend_name == before
    with memory.system_allocator(), memory.system_allocator():  # nested (or concurrent) imports
        assert pa.default_memory_pool().backend_name == "system"
    assert pa.default_memory_pool().backend_name == before


def test_a_pool_the_user_chose_is_kept_during_imports(monkeypatch):
    from workbench import memory

    monkeypatch.setenv(memory.POOL_VARIABLE, "mimalloc")
    before = pa.default_memory_pool().backend_name
    with memory.system_allocator():
        assert pa.default_memory_pool().backend_name == before
