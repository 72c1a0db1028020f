"""The bad-input corpus: every case gets a clear WorkbenchError naming the problem, and changes nothing.

Files live in tests/data/bad/ (small); big ones (ids of 10,000 characters, a 3 MB line) are made
at test time. For each case the catalog tables and the data/ and models/ trees are compared
before and after.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import clustered_interactions, item_table

import workbench as wb
from workbench.errors import ModelFileError, NotFoundError, ValidationError, WorkbenchError
from workbench.retrain import retrain

BAD = Path(__file__).parent / "data" / "bad"
TABLES = ("projects", "training_data", "item_metadata", "configurations", "models", "jobs", "job_logs",
          "tuning_jobs", "tuning_trials")


class Ctx:
    """What the cases act on: a workspace with projects "shop" and "other", data, metadata and a model."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = wb.open(root / "home")
        ws = self.ws
        shop = ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
        other = ws.create_project("other", user_column="user_id", item_column="item_id")
        untimed = ws.create_project("untimed", user_column="user_id", item_column="item_id")
        self.data = ws.import_training_data(shop, clustered_interactions())
        self.other_data = ws.import_training_data(other, clustered_interactions(seed=1).drop(columns="timestamp"))
        ws.import_item_metadata(shop, item_table())
        self.other_metadata = ws.import_item_metadata(other, item_table(60))
        self.other_config = ws.create_configuration(other, "TopPop")
        self.model = ws.train(ws.create_configuration(shop, "TopPop"), self.data)
        self.recommender = ws.load_model(self.model.id)
        self.untimed = untimed

    def state(self) -> dict:
        ws = self.ws
        state = ws.catalog.run(lambda con: {t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES})
        for folder in (ws.data_dir, ws.models_dir):
            state[str(folder)] = sorted(
                (str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
                for p in folder.rglob("*")
                if not p.name.startswith("workbench.sqlite") and p.relative_to(folder).parts[0] != "logs"
            )
        return state


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Ctx:
    return Ctx(tmp_path_factory.mktemp("bad"))


USED: set[str] = set()


def imp(name: str, **options):
    USED.add(name)
    return lambda c: c.ws.import_training_data("shop", str(BAD / name), **options)


def meta(name: str, **options):
    USED.add(name)
    return lambda c: c.ws.import_item_metadata("shop", str(BAD / name), **options)


def generated(name: str, text: str, **options):
    def action(c):
        path = c.root / name
        path.write_text(text)
        return c.ws.import_training_data("shop", str(path), **options)

    return action


LONG_ID = "u" * 10_000
# (case id, action, error class, fragment of its message)
CASES = [
    # -- compression, encoding, what the file really is
    ("truncated gzip", imp("truncated.csv.gz"), ValidationError, "the gzip stream is truncated or corrupt"),
    (".gz name, plain content", imp("not_gzip.csv.gz"), ValidationError, "the content is not gzip-compressed"),
    ("gzip content, no .gz name", imp("gzip_without_gz_name.csv"), ValidationError, "name does not end in .gz"),
    ("not UTF-8", imp("latin1.csv"), ValidationError, "not UTF-8 text (byte 0xe9 on line 2)"),
    ("Parquet named .csv", imp("parquet_named.csv"), ValidationError, "the name says CSV but the content looks like Parquet"),
    ("CSV named .parquet", imp("csv_named.parquet"), ValidationError, "the name says PARQUET"),
    ("empty file", imp("empty.csv"), ValidationError, "the file is empty"),
    ("blank lines only", imp("blank_lines.csv"), ValidationError, "the file is empty"),
    ("binary garbage", imp("binary_garbage.dat"), ValidationError, "content looks like binary data"),
    ("zip named .csv", imp("zip_named.csv"), ValidationError, "content looks like binary data"),
    ("no such file", imp("does_not_exist.csv"), ValidationError, "no such file"),
    ("a folder as the source", lambda c: c.ws.import_training_data("shop", str(BAD)), ValidationError, "no such file"),
    # -- delimiters, headers, columns
    ("unknown delimiter", imp("unknown_delimiter.csv"), ValidationError, "columns found: 'user_id#item_id#timestamp'"),
    ("wrong delimiter given", imp("semicolons.csv", delimiter=","), ValidationError,
     "columns found: 'user_id;item_id;timestamp'"),
    ("delimiter too long", imp("semicolons.csv", delimiter=";;;;;"), ValidationError, "delimiter must be 1 to 4 characters"),
    ("missing item column", imp("missing_item_column.csv"), ValidationError, "item column 'item_id' not found"),
    ("header only", imp("header_only.csv"), ValidationError, "no data rows (only a header line)"),
    ("no header line", imp("no_header.csv"), ValidationError, "seems to have no header line"),
    ("ragged rows", imp("ragged_rows.csv"), ValidationError, "fields"),
    ("a header of 50,000 columns", generated("wide.csv", ",".join(["user_id", "item_id", "timestamp"] + [
        f"c{k}" for k in range(49_997)]) + "\n" + ",".join(["u1", "i1", "1700000000"] + ["1"] * 49_997) + "\n"),
     ValidationError, "sources of more than 2,048 columns are refused"),
    ("a huge line", generated("huge_line.csv", "user_id,item_id,timestamp\nu1,i1," + "9" * 3_000_000 + "\n"),
     ValidationError, "Maximum line size"),
    # -- ids
    ("all user ids empty", imp("empty_user_ids.csv"), ValidationError, "no rows left after dropping 2 rows with empty values"),
    ("an empty id, rejected", imp("some_empty_ids.csv", null_ids="reject"), ValidationError,
     "1 rows have no value in column 'item_id' (first at data row 2)"),
    ("NaN ids in a DataFrame", lambda c: c.ws.import_training_data("shop", pd.DataFrame(
        {"user_id": [np.nan, np.nan], "item_id": ["i1", "i2"], "timestamp": [1, 2]})), ValidationError, "no rows left"),
    ("nan ids, rejected", imp("nan_ids.csv", null_ids="reject"), ValidationError,
     "2 rows have no value in column 'user_id' (first at data row 2)"),
    ("ids of 10k characters", generated("long_ids.csv", f"user_id,item_id,timestamp\n{LONG_ID},i1,1700000000\n"),
     ValidationError, "characters"),
    ("mixed id types", lambda c: c.ws.import_training_data("shop", pd.DataFrame(
        {"user_id": [1, "a", 2.5], "item_id": ["i1", "i2", "i3"], "timestamp": [1, 2, 3]})), ValidationError,
     "mixes value types (float, int, str)"),
    ("boolean ids", lambda c: c.ws.import_training_data("shop", pd.DataFrame(
        {"user_id": [True, False], "item_id": ["i1", "i2"], "timestamp": [1, 2]})), ValidationError,
     "holds bool values; ids must be text or integers"),
    ("fractional ids in a DataFrame", lambda c: c.ws.import_training_data("shop", pd.DataFrame(
        {"user_id": [1.5, 2.0], "item_id": ["i1", "i2"], "timestamp": [1, 2]})), ValidationError, "fractional numbers"),
    ("fractional ids in a CSV", imp("fractional_ids.csv"), ValidationError, "fractional numbers"),
    ("list ids", lambda c: c.ws.import_training_data("shop", pd.DataFrame(
        {"user_id": [[1], [2]], "item_id": ["i1", "i2"], "timestamp": [1, 2]})), ValidationError, "holds list"),
    ("JSON objects as ids", imp("json_nested_ids.json"), ValidationError, "ids must be text or integers"),
    # -- times
    ("timestamps out of range", imp("timestamp_year_99999.csv"), ValidationError, "range"),
    ("timestamps too large", imp("timestamp_too_large.csv"), ValidationError,
     "too large for unix seconds or milliseconds"),
    ("not a time", imp("timestamp_not_a_time.csv"), ValidationError, "values that are not times, e.g. 'yesterday'"),
    ("NaN timestamps", imp("timestamp_nan.csv"), ValidationError, "infinite or NaN times"),
    ("negative timestamps", imp("timestamp_negative.csv"), ValidationError, "negative"),
    ("seconds and milliseconds mixed", imp("timestamp_mixed_units.csv"), ValidationError,
     "mixes unix seconds and milliseconds: 1 values look like seconds, e.g. 1700000100 (data row 2)"),
    ("time unit on dates", lambda c: c.ws.import_training_data("shop", clustered_interactions(), time_unit="s"),
     ValidationError, "already holds dates or times"),
    # -- JSON that is not records
    ("JSON array of numbers", imp("json_not_records.json"), ValidationError, "columns found: 'json'"),
    ("JSON columns, not records", imp("json_columns_not_records.json"), ValidationError, "holds list"),
    ("broken JSON", imp("json_broken.json"), ValidationError, "Malformed JSON"),
    # -- options and queries
    ("bad null_ids option", imp("header_only.csv", null_ids="maybe"), ValidationError, "null_ids must be one of"),
    ("duplicates='last' without times", lambda c: c.ws.import_training_data(
        "untimed", clustered_interactions().drop(columns="timestamp"), duplicates="last"), ValidationError,
     "give time_column"),
    ("failing SQL", lambda c: c.ws.import_training_data("shop", "SELECT * FROM no_such_table"), ValidationError,
     "the query failed"),
    ("SQL: more than one statement", lambda c: c.ws.import_training_data(
        "shop", f"SELECT 1 AS user_id; COPY (SELECT 1) TO '{c.root / 'written.csv'}'"), ValidationError,
     "a source query must be exactly one SELECT statement, got 2 (SELECT + COPY)"),
    ("SQL: reads the signing key", lambda c: c.ws.import_training_data(
        "shop", f"SELECT content AS user_id FROM read_text('{c.ws.key_file}')"), ValidationError,
     "the query may not read"),
    ("not a source at all", lambda c: c.ws.import_training_data("shop", 42), ValidationError,
     "source must be a file path, a pandas DataFrame or a SQL query"),
    # -- item metadata
    ("metadata: an item on two rows", meta("metadata_duplicate_items.csv"), ValidationError,
     "ids on more than one row, e.g. 'i1'"),
    ("metadata: no item column", meta("metadata_missing_item_column.csv"), ValidationError, "item column 'item_id' not found"),
    ("metadata: item_id clash", meta("metadata_item_id_clash.csv", item_column="movie"), ValidationError,
     "would clash with item column 'movie'"),
    ("metadata: empty ids", meta("metadata_empty_ids.csv"), ValidationError, "1 empty ids (first at data row 2)"),
    ("metadata: header only", meta("metadata_header_only.csv"), ValidationError, "no data rows"),
    ("metadata: binary", meta("metadata_binary.csv"), ValidationError, "binary data"),
    # -- unknown users and items
    ("recommend for an unknown user", lambda c: c.recommender.recommend("nobody"), NotFoundError,
     "User 'nobody' is not in model"),
    ("profile of an unknown user", lambda c: c.recommender.profile("nobody"), NotFoundError, "'nobody' is not in model"),
    ("batch with an unknown user", lambda c: c.recommender.recommend_many(["u1", "nobody"]), NotFoundError,
     "'nobody' is not in model"),
    ("profile of unknown items", lambda c: c.recommender.recommend_for_profile(["nope1", "nope2"]), NotFoundError,
     "nope1"),
    ("cutoff 0", lambda c: c.recommender.recommend("u1", cutoff=0), ValidationError, "cutoff must be a positive whole number"),
    ("an unknown model", lambda c: c.ws.model(999), NotFoundError, "There is no model with id 999"),
    ("a model id that is no number", lambda c: c.ws.model("abc"), ValidationError, "A model id is a whole number"),
    ("an unknown project", lambda c: c.ws.import_training_data("nowhere", str(BAD / "empty.csv")), NotFoundError,
     "There is no project named 'nowhere'"),
    # -- configuration and data from different projects
    ("configuration and data of two projects", lambda c: c.ws.train(c.other_config, c.data), ValidationError,
     "belongs to project 'other' but training data"),
    ("metadata of another project", lambda c: c.ws.sample_recommendation(c.model.id, metadata=c.other_metadata),
     ValidationError, "belongs to another project"),
    ("unknown algorithm", lambda c: c.ws.create_configuration("shop", "NoSuchAlgo"), ValidationError, "RP3beta"),
    # -- names that become paths
    *[(f"project name {name!r}", (lambda n: lambda c: c.ws.create_project(n, "user_id", "item_id"))(name),
       ValidationError, "is not allowed")
      for name in ["a/b", "../escape", "..", ".hidden", "a..b", "/abs", "tab\tname", "new\nline", "nul\x00byte",
                   "bell\x07", "", " lead", "x" * 65, "名前", "back\\slash"]],
    ("project name that is not text", lambda c: c.ws.create_project(7, "user_id", "item_id"), ValidationError,
     "is not allowed"),
    ("an existing project name", lambda c: c.ws.create_project("shop", "user_id", "item_id"), ValidationError,
     "already exists"),
    ("an empty user column", lambda c: c.ws.create_project("fresh", " ", "item_id"), ValidationError,
     "user_column must be a non-empty column name"),
    ("a name with a trailing newline", lambda c: c.ws.create_project("demo\n", "user_id", "item_id"), ValidationError,
     "is not allowed"),
    ("a project name of digits", lambda c: c.ws.create_project("2024", "user_id", "item_id"), ValidationError,
     "only digits"),
    # -- ids that only look like a known one
    *[(f"user id {value!r} for text ids", (lambda v: lambda c: c.recommender.recommend(v))(value), WorkbenchError, "")
      for value in [1, 1.0, True, None]],
    ("a profile given as text", lambda c: c.recommender.recommend_for_profile("i1"), ValidationError,
     "A profile is a list of item ids"),
    # -- model files that are not files
    ("a FIFO as a model file", lambda c: c.ws.inspect_model_file(_fifo(c.root)), ModelFileError, "is a FIFO, not a model file"),
    # -- delivery and retraining options
    ("export to an unknown format", lambda c: c.ws.export_recommendations("shop", c.root / "recs.xlsx", model=c.model.id),
     ValidationError, "the suffix sets the format"),
    ("export of a project with no active model", lambda c: c.ws.export_recommendations("shop", c.root / "recs.csv"),
     NotFoundError, "no active model"),
    ("retrain with a bad holdout", lambda c: retrain(c.ws, "shop", holdout="fortnight", activate="never"),
     ValidationError, "holdout must be None"),
]


def _fifo(root: Path) -> Path:
    path = root / "model.fifo"
    if not path.exists():
        os.mkfifo(path)
    return path


def _params():
    for case in CASES:
        yield pytest.param(*case[1:4], id=case[0])


def test_the_corpus_is_big_enough():
    files = [p for p in BAD.iterdir() if p.name != "README.md"]
    assert len(files) >= 30 and sum(p.stat().st_size for p in files) < 64 * 1024
    assert len(CASES) >= 30


@pytest.mark.parametrize("action, error, fragment", list(_params()))
def test_bad_input_gets_a_clear_error_and_changes_nothing(ctx, action, error, fragment):
    before = ctx.state()
    with pytest.raises(WorkbenchError) as info:
        action(ctx)
    assert isinstance(info.value, error), f"{type(info.value).__name__}: {info.value}"
    assert fragment in str(info.value), str(info.value)
    assert ctx.state() == before


def test_the_retrain_command_refuses_names_that_become_paths(ctx, capsys):
    from workbench.cli import main

    before = ctx.state()
    for name in ("../shop", "shop/..", "a\nb"):
        assert main(["--home", str(ctx.ws.home), "retrain", "--project", name]) == 2
        assert "is not allowed" in capsys.readouterr().err
    assert ctx.state() == before and not (ctx.ws.home / "runs").exists()
    assert not (ctx.ws.data_dir / "locks").exists()


def test_every_file_in_the_corpus_is_used():
    unused = {p.name for p in BAD.iterdir() if p.name != "README.md"} - USED
    assert not unused
