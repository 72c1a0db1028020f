"""DuckDB queries given as sources: one SELECT, reading only the folders declared for data.

Each query here did harm before the sandbox (wrote a file, read the signing key, attached the
catalog). The workspace's home is the current directory, as under `make run`.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from conftest import clustered_interactions

import workbench as wb
from workbench import data
from workbench.errors import ValidationError
from workbench.retrain import retrain

ROWS = "SELECT 'u1' AS user_id, 'i1' AS item_id, TIMESTAMP '2024-01-01' AS timestamp"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A workspace (project "shop", one import, a signing key) whose home is the current directory."""
    monkeypatch.delenv(data.DATA_DIRS_VARIABLE, raising=False)
    ws = wb.open(tmp_path / "home")
    ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
    ws.import_training_data("shop", clustered_interactions(n_users=40, n_items=30, per_user=4))
    _ = ws.keyring  # writes data/signing.key
    (ws.home / "imports").mkdir()
    clustered_interactions(n_users=20, n_items=10, per_user=3, seed=2).to_csv(ws.home / "imports" / "new.csv", index=False)
    monkeypatch.chdir(ws.home)
    return ws


def state(ws) -> tuple:
    files = sorted(str(p.relative_to(ws.home)) for p in ws.home.rglob("*") if not {"logs", "locks"} & set(p.parts))
    return ws.training_data_sets().to_json(date_format="iso"), ws.projects().to_json(date_format="iso"), files


def refused(ws, source, *fragments, what="interactions") -> str:
    before = state(ws)
    with pytest.raises(ValidationError) as error:
        if what == "interactions":
            ws.import_training_data("shop", source)
        elif what == "metadata":
            ws.import_item_metadata("shop", source)
        else:
            ws.preview(source)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, message
    assert state(ws) == before
    return message


def test_a_query_reads_a_csv_in_an_allowed_folder(home):
    record = home.import_training_data("shop", "SELECT * FROM 'imports/new.csv'")
    assert record.n_users == 20 and record.source == "SQL: SELECT * FROM 'imports/new.csv'"
    assert home.preview(f"FROM read_csv('{home.home / 'imports' / 'new.csv'}')", n_rows=2).columns == [
        "user_id", "item_id", "timestamp"]
    (home.home / "exports").mkdir()  # any other folder of the current directory, but data/ and models/
    (home.home / "imports" / "new.csv").rename(home.home / "exports" / "new.csv")
    assert home.import_training_data("shop", "SELECT * FROM read_csv('exports/*.csv')").n_users == 20


@pytest.mark.parametrize("statement", [
    "COPY (SELECT 42) TO '{target}'",
    "COPY (SELECT * FROM read_text('data/signing.key')) TO '{target}'",
    "EXPORT DATABASE '{folder}'",
])
def test_only_one_select_runs_and_nothing_is_written(home, statement):
    target = home.home / "imports" / "written.csv"
    query = f"{ROWS}; " + statement.format(target=target, folder=home.home / "imports" / "dump")
    message = refused(home, query, "a source query must be exactly one SELECT statement, got 2")
    assert "SELECT + " in message
    refused(home, statement.format(target=target, folder=home.home / "imports" / "dump"), "exactly one SELECT")
    assert not target.exists() and not (home.home / "imports" / "dump").exists()


def test_the_signing_key_and_the_catalog_cannot_be_read(home):
    key = (home.data_dir / "signing.key").read_text().strip()
    for path in ("data/signing.key", str(home.data_dir / "signing.key"), "imports/../data/signing.key",
                 "./data/../data/signing.key"):
        query = f"SELECT content AS user_id, 'i' AS item_id, now() AS timestamp FROM read_text('{path}')"
        for what in ("interactions", "metadata", "preview"):
            message = refused(home, query, "the query may not read", "WORKBENCH_DATA_DIRS", what=what)
            assert key not in message and key[-20:] not in message
    refused(home, f"SELECT * FROM read_csv('{home.catalog_path}')", "may not read")
    refused(home, "SELECT * FROM glob('data/*')", "may not read")
    refused(home, "SELECT * FROM read_text('models/**')", "may not read")
    refused(home, "SELECT * FROM read_text('/etc/passwd')", "may not read")


def test_attach_and_settings_are_refused(home):
    catalog = home.catalog_path
    refused(home, f"ATTACH '{catalog}' AS cat", "exactly one SELECT statement, got 1 (ATTACH)")
    refused(home, f"{ROWS}; ATTACH '{catalog}' AS cat; UPDATE cat.projects SET active_model_id = 999",
            "got 3 (SELECT + ATTACH + UPDATE)")
    refused(home, "SET enable_external_access = true", "got 1 (SET)")
    refused(home, f"SET enable_external_access = true; {ROWS}", "got 2 (SET + SELECT)")
    refused(home, "INSTALL httpfs", "exactly one SELECT")
    refused(home, "SELECT * FROM read_csv('https://example.com/ratings.csv')", "may not read")
    assert home.project("shop").active_model_id is None


def test_the_connection_itself_is_locked(home, tmp_path):
    """Behind the one-SELECT check: settings, files outside the folders and Python variables are out of reach."""
    sandbox = home.sql_sandbox()
    (tmp_path / "spill").mkdir()
    con = sandbox.connect(tmp_path / "spill")
    secret_frame = pd.DataFrame({"key": ["secret"]})  # noqa: F841 (what a replacement scan would find)
    try:
        for statement in ("SET enable_external_access = true", "SET allowed_directories = ['/']",
                          "RESET lock_configuration", "SET autoload_known_extensions = true"):
            with pytest.raises(duckdb.Error, match="locked"):
                con.execute(statement)
        for statement in (f"ATTACH '{home.catalog_path}' AS cat", "SELECT * FROM read_text('data/signing.key')",
                          "SELECT * FROM read_text('imports/../data/signing.key')"):
            with pytest.raises(duckdb.PermissionException):
                con.execute(statement)
        with pytest.raises(duckdb.CatalogException):
            con.execute("SELECT * FROM secret_frame")
        assert con.execute("SELECT count(*) FROM 'imports/new.csv'").fetchone()[0] == 60
    finally:
        con.close()


def test_declared_folders_replace_the_default(home, tmp_path, monkeypatch):
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    clustered_interactions(n_users=15, n_items=10, per_user=3).to_csv(elsewhere / "x.csv", index=False)
    monkeypatch.setenv(data.DATA_DIRS_VARIABLE, os.pathsep.join([str(elsewhere), str(tmp_path / "missing")]))
    assert home.import_training_data("shop", f"SELECT * FROM '{elsewhere / 'x.csv'}'").n_users == 15
    refused(home, "SELECT * FROM 'imports/new.csv'", "may not read", str(elsewhere))
    monkeypatch.setenv(data.DATA_DIRS_VARIABLE, str(tmp_path))  # holds the workspace: data/ and models/ stay out
    assert home.import_training_data("shop", "SELECT * FROM 'imports/new.csv'").n_users == 20
    refused(home, "SELECT * FROM read_text('data/signing.key')", "may not read")


def test_readable_folders_carve_out_the_private_ones(tmp_path):
    root = tmp_path / "root"
    for folder in ("data/snapshots", "models", "exports", "notebooks"):
        (root / folder).mkdir(parents=True)
    (root / "top.csv").write_text("a\n")
    (root / "link-to-data").symlink_to(root / "data")
    sandbox = data.SqlSandbox((root, root / "exports", root / "data" / "snapshots"), (root / "data", root / "models"))
    folders, files = sandbox.readable()
    assert folders == [f"{root / 'exports'}/", f"{root / 'notebooks'}/"]
    assert files == [str(root / "top.csv")]
    assert data.SqlSandbox((root / "exports",), (root / "data",)).readable() == ([f"{root / 'exports'}/"], [])


def test_file_paths_are_not_restricted(home, tmp_path):
    """A path is the user's explicit choice: read as before, wherever it is."""
    path = tmp_path / "elsewhere.csv"
    clustered_interactions(n_users=12, n_items=10, per_user=3).to_csv(path, index=False)
    assert home.import_training_data("shop", str(path)).n_users == 12


def test_retrain_runs_new_data_queries_in_the_sandbox(home):
    model = home.train(home.create_configuration("shop", "TopPop"), home.latest_training_data("shop"))
    home.activate(model.id)
    before = state(home)
    stealing = "SELECT content AS user_id, 'i1' AS item_id, now() AS timestamp FROM read_text('data/signing.key')"
    for append in (True, False):  # appending reads the batch through the data layer, replacing through the workspace
        with pytest.raises(ValidationError, match="the query may not read"):
            retrain(home, "shop", stealing, append=append)
        with pytest.raises(ValidationError, match="exactly one SELECT"):
            retrain(home, "shop", f"{ROWS}; COPY (SELECT 1) TO 'imports/x.csv'", append=append)
    assert state(home) == before and not Path("imports/x.csv").exists()
    outcome = retrain(home, "shop", "SELECT * FROM 'imports/new.csv'", activate="never")
    assert outcome.statistics.loc["new batch"]["n_users"] == 20


def test_cli_retrain_runs_new_data_queries_in_the_sandbox(home, capsys):
    from workbench.cli import main

    model = home.train(home.create_configuration("shop", "TopPop"), home.latest_training_data("shop"))
    home.activate(model.id)
    query = "SELECT content AS user_id, 'i1' AS item_id, now() AS timestamp FROM read_text('data/signing.key')"
    code = main(["--home", str(home.home), "retrain", "--project", "shop", "-p", "new_data", query])
    err = capsys.readouterr().err
    assert code == 1 and "the query may not read" in err, err
    assert (home.data_dir / "signing.key").read_text().strip() not in err
    assert home.active_model("shop").id == model.id and len(home.models("shop")) == 1
