"""A workspace's files: old catalogs converted, copies independent, a lost catalog rebuilt,
read-only volumes readable, a full disk refused cleanly, digit names unambiguous.

Each test compares the catalog and the files before and after what it does.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from conftest import clustered_interactions, item_table

import workbench as wb
from workbench import doctor
from workbench.errors import CatalogDamagedError, DiskFullError, ReadOnlyWorkspaceError, ValidationError
from workbench.recovery import rebuild
from workbench.store import TABLES

LEGACY_SCHEMA = Path(__file__).parent / "data" / "legacy_duckdb_catalog.sql"


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` and the sha256 of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def catalog_rows(ws) -> dict:
    return {t: ws.catalog.query(f"SELECT * FROM {t} ORDER BY id") for t in TABLES}


@pytest.fixture
def filled(tmp_path):
    """A workspace with data, metadata, two trained models (one active) and a tuning job."""
    ws = wb.open(tmp_path / "home")
    project = ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
    data = ws.import_training_data(project, clustered_interactions())
    ws.import_item_metadata(project, item_table())
    first = ws.train(ws.create_configuration(project, "TopPop"), data)
    second = ws.train(ws.create_configuration(project, "IALS", {"n_components": 8}), data)
    ws.activate(second.id)
    return ws, first, second


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------- old catalogs

def write_legacy_catalog(ws, path: Path, home_in_paths: Path, skipped_model_ids: int = 2) -> None:
    """The workspace's catalog as the DuckDB era wrote it: absolute paths under `home_in_paths`."""
    con = duckdb.connect(str(path))
    con.execute(LEGACY_SCHEMA.read_text())
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)")
    for table in TABLES:
        rows = ws.catalog.query(f"SELECT * FROM {table} ORDER BY id")
        legacy_columns = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        for row in rows:
            row = {k: v for k, v in row.items() if k in legacy_columns}
            for key in ("path", "file"):
                if row.get(key):
                    row[key] = str(home_in_paths / Path(row[key]).relative_to(ws.home))
            values = [ws.catalog._encode(k, v) if k not in ("path", "file") else v for k, v in row.items()]
            con.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", values)
    last = max(r["id"] for r in ws.catalog.query("SELECT id FROM models"))
    con.execute(f"SELECT nextval('model_ids') FROM range({last + skipped_model_ids})")  # ids handed out, then deleted
    con.close()


@pytest.mark.parametrize("moved", [False, True], ids=["in-place", "moved-before-conversion"])
def test_an_old_duckdb_catalog_is_converted_on_first_open(filled, tmp_path, moved):
    ws, first, second = filled
    before = catalog_rows(ws)
    legacy = ws.data_dir / "workbench.duckdb"
    write_legacy_catalog(ws, legacy, tmp_path / "elsewhere" if moved else ws.home)
    for leftover in ws.data_dir.glob("workbench.sqlite*"):
        leftover.unlink()
    files = tree(ws.models_dir) | tree(ws.snapshots_dir)

    converted = wb.open(ws.home)
    assert not legacy.exists() and (ws.data_dir / "workbench.duckdb.pre-sqlite").exists()  # kept beside it
    after = catalog_rows(converted)
    for table in TABLES:
        assert [r["id"] for r in after[table]] == [r["id"] for r in before[table]], table
    assert [(m["file"], m["status"], m["n_users"]) for m in after["models"]] == \
        [(m["file"], m["status"], m["n_users"]) for m in before["models"]]
    assert after["projects"][0]["active_model_id"] == second.id
    assert converted.load_model(second.id).recommend("u1", cutoff=3)
    assert tree(ws.models_dir) | tree(ws.snapshots_dir) == files
    third = converted.train(converted.configuration(first.configuration_id), converted.latest_training_data("shop"))
    assert third.id == second.id + 3  # the two ids the old catalog had handed out are never reused


def test_a_damaged_old_catalog_is_left_as_it_is(tmp_path):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    legacy = home / "data" / "workbench.duckdb"
    legacy.write_bytes(b"not a duckdb file" * 100)
    with pytest.raises(CatalogDamagedError, match="cannot be read for conversion"):
        wb.open(home)
    assert legacy.read_bytes() == b"not a duckdb file" * 100 and not (home / "data" / "workbench.sqlite").exists()


# --------------------------------------------------------------------- copies are independent

def test_a_copied_workspace_is_an_independent_working_copy(filled, tmp_path):
    ws, first, second = filled
    original = tree(ws.home)
    copy_home = tmp_path / "copy"
    shutil.copytree(ws.home, copy_home, symlinks=True)
    copy = wb.open(copy_home)
    assert copy.model(first.id).file == str(copy_home / "models" / "shop" / f"{first.id}.wbm")
    assert copy.load_model(second.id).recommend("u1", cutoff=3)
    report = doctor.check(copy, repair=True, stale_after=0)
    assert report.ok and not report.findings  # nothing quarantined, no snapshot removed
    copy.delete_model(first.id)
    assert not Path(copy.model(second.id).file).with_name(f"{first.id}.wbm").exists()
    assert tree(ws.home) == original  # the original lost nothing
    assert ws.load_model(first.id).recommend("u1", cutoff=3)


# ------------------------------------------------------------------- a lost catalog, rebuilt

DAMAGES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:1500]),
    "zeroed": lambda p: p.write_bytes(b"\0" * p.stat().st_size),
    "garbage-header": lambda p: p.write_bytes(b"GARBAGE!" * 8 + p.read_bytes()[64:]),
    "empty": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_catalog_is_named_clearly_and_rebuilt_from_the_files(filled, damage):
    ws, first, second = filled
    before = catalog_rows(ws)
    catalog = ws.catalog_path
    with sqlite3.connect(catalog) as con:  # fold the WAL into the file, as a clean shutdown does
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in catalog.parent.glob("workbench.sqlite-*"):
        side.unlink()
    files = tree(ws.models_dir) | tree(ws.snapshots_dir)
    DAMAGES[damage](catalog)

    if damage != "deleted":
        with pytest.raises(CatalogDamagedError, match="doctor --rebuild"):
            wb.open(ws.home)
        for command in (["info"], ["doctor"], ["demo", "--if-empty"]):
            result = run_cli(*command, home=ws.home)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert result.stderr.count("\n") == 1 and str(catalog) in result.stderr and "--rebuild" in result.stderr

    result = run_cli("doctor", "--rebuild", home=ws.home)
    assert result.returncode == 0, result.stderr
    assert "NOT RECOVERED" in result.stdout and "jobs" in result.stdout
    rebuilt = wb.open(ws.home)
    after = catalog_rows(rebuilt)
    assert [(p["name"], p["user_column"], p["item_column"], p["time_column"], p["active_model_id"])
            for p in after["projects"]] == [("shop", "user_id", "item_id", "timestamp", second.id)]
    assert [m["id"] for m in after["models"]] == [first.id, second.id]
    for old, new in zip(before["models"], after["models"]):
        for key in ("file", "basename", "filesize", "data_fingerprint", "n_users", "n_items", "n_interactions"):
            assert new[key] == old[key], key
    assert [c["algorithm"] for c in after["configurations"]] == ["TopPop", "IALS"]
    assert [(d["fingerprint"], d["n_rows"]) for d in after["training_data"]] == \
        [(d["fingerprint"], d["n_rows"]) for d in before["training_data"]]
    assert [m["n_rows"] for m in after["item_metadata"]] == [m["n_rows"] for m in before["item_metadata"]]
    assert rebuilt.load_model(second.id).recommend("u1", cutoff=3)
    assert tree(ws.models_dir) | tree(ws.snapshots_dir) == files  # the files were only read
    if damage != "deleted":
        assert len(list(catalog.parent.glob("workbench.sqlite.damaged-*Z"))) == 1  # kept, never deleted


def test_a_readable_catalog_is_only_rebuilt_when_forced(filled):
    ws, _, _ = filled
    with pytest.raises(wb.WorkbenchError, match="nothing to rebuild"):
        rebuild(ws.home)
    assert rebuild(ws.home, force=True).recovered["models"] == 2


# ------------------------------------------------------------------- read-only and full disks

@contextmanager
def mounted(kind: str, target: Path, source: Path | None = None, size: str = "4m"):
    """A tmpfs of `size`, or a read-only bind mount of `source`, at `target`; skip where mounts are not allowed."""
    target.mkdir(parents=True, exist_ok=True)
    if kind == "tmpfs":
        commands = [["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)]]
    else:
        commands = [["mount", "--bind", str(source), str(target)], ["mount", "-o", "remount,bind,ro", str(target)]]
    for command in commands:
        if shutil.which(command[0]) is None or subprocess.run(command, capture_output=True).returncode:
            subprocess.run(["umount", str(target)], capture_output=True)
            pytest.skip(f"cannot {' '.join(command)} here")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def check_read_only_use(ws, first, second) -> None:
    assert ws.read_only
    assert list(ws.models("shop")["id"]) == [second.id, first.id]
    assert len(ws.projects()) == 1 and len(ws.training_data_sets()) == 1
    assert ws.inspect_model_file(ws.model(second.id).file)["model_id"] == second.id
    assert ws.load_model(second.id).recommend("u1", cutoff=3)
    assert ws.sample_recommendation(second.id, seed=1)["recommendations"]
    for change in (lambda: ws.create_project("other", user_column="u", item_column="i"),
                   lambda: ws.import_training_data("shop", clustered_interactions(seed=3)),
                   lambda: ws.train(ws.configuration(first.configuration_id), 1),
                   lambda: ws.activate(first.id),
                   lambda: ws.delete_model(first.id)):
        with pytest.raises(ReadOnlyWorkspaceError, match="read-only"):
            change()


def test_a_workspace_opened_read_only_serves_reads_and_refuses_changes(filled):
    ws, first, second = filled
    before, files = catalog_rows(ws), tree(ws.home)
    check_read_only_use(wb.open(ws.home, read_only=True), first, second)
    assert catalog_rows(ws) == before and tree(ws.home) == files


def test_a_workspace_on_a_read_only_volume_is_detected_and_usable(filled, tmp_path):
    ws, first, second = filled
    with sqlite3.connect(ws.catalog_path) as con:  # as a cleanly closed catalog is: no -wal, no -shm
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ws.data_dir.glob("workbench.sqlite-*"):
        side.unlink()
    files = tree(ws.home)
    with mounted("ro", tmp_path / "ro", source=ws.home) as volume:
        check_read_only_use(wb.open(volume), first, second)
    assert tree(ws.home) == files


def test_a_full_disk_is_a_clear_error_that_changes_nothing(tmp_path):
    with mounted("tmpfs", tmp_path / "small", size="3m") as volume:
        ws = wb.open(volume / "home")
        project = ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
        filler = volume / "filler"
        with open(filler, "wb") as out:  # fill the volume to the last block
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        before, files = catalog_rows(ws), tree(ws.home)
        with pytest.raises(DiskFullError, match="No space left") as error:
            ws.import_training_data(project, clustered_interactions(n_users=2000, per_user=30))
        assert str(ws.home) in str(error.value)
        with pytest.raises(DiskFullError, match="No space left"):
            ws.create_project("another", user_column="u", item_column="i")
        assert catalog_rows(ws) == before and tree(ws.home) == files
        filler.unlink()
        assert ws.import_training_data(project, clustered_interactions()).n_rows > 0  # space again: it works


# ------------------------------------------------------------------------------- names

def test_a_project_name_of_digits_is_refused_and_a_name_always_wins_over_an_id(workspace):
    with pytest.raises(ValidationError, match="only digits"):
        workspace.create_project("2024", user_column="u", item_column="i")
    first = workspace.create_project("alpha", user_column="u", item_column="i")
    second = workspace.create_project("beta", user_column="u", item_column="i")
    third = workspace.create_project("gamma", user_column="u", item_column="i")
    # A digit name from an older catalog: looked up as a name, never as the project with that id.
    workspace.catalog.execute("UPDATE projects SET name = ? WHERE id = ?", [str(second.id), first.id])
    assert workspace.project(str(second.id)).id == first.id and workspace.project(second.id).name == "beta"
    assert workspace.project(str(third.id)).id == third.id  # digits that are no project's name: the id
    for bad in ("demo\n", "demo/x", "..", "", " demo"):
        with pytest.raises(ValidationError, match="not allowed"):
            workspace.create_project(bad, user_column="u", item_column="i")
