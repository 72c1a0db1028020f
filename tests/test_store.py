"""The catalog: migrations, records, and many processes sharing one file."""

import multiprocessing as mp

import duckdb
import pytest

from workbench.errors import CatalogBusyError, NotFoundError
from workbench.store import MIGRATIONS, Catalog


def test_new_catalog_is_migrated_to_the_latest_schema(tmp_path):
    catalog = Catalog(tmp_path / "c.duckdb")
    assert catalog.schema_version == len(MIGRATIONS)
    # Opening again applies nothing twice.
    assert Catalog(tmp_path / "c.duckdb").schema_version == len(MIGRATIONS)


def test_insert_get_update_round_trip_json_columns(tmp_path):
    catalog = Catalog(tmp_path / "c.duckdb")
    pid = catalog.insert("projects", {"name": "p", "user_column": "u", "item_column": "i"})
    cid = catalog.insert(
        "configurations",
        {"project_id": pid, "name": "c", "algorithm": "IALS", "params": {"n_components": 8}},
    )
    assert catalog.get("configurations", cid)["params"] == {"n_components": 8}
    catalog.update("configurations", cid, {"params": {"n_components": 16}})
    assert catalog.get("configurations", cid)["params"] == {"n_components": 16}
    with pytest.raises(NotFoundError, match="no configuration with id 999"):
        catalog.get("configurations", 999, "configuration")


def test_failed_work_rolls_back(tmp_path):
    catalog = Catalog(tmp_path / "c.duckdb")

    def work(con):
        con.execute("INSERT INTO projects (name, user_column, item_column) VALUES ('x','u','i')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        catalog.run(work)
    assert catalog.query("SELECT count(*) AS n FROM projects")[0]["n"] == 0


def _hammer(path: str, worker: int, n_ops: int) -> None:
    catalog = Catalog(path)
    for step in range(n_ops):
        if step % 2 == 0:
            catalog.insert("job_logs", {"job_id": worker, "message": f"{worker}:{step}"})
        else:
            catalog.query("SELECT count(*) FROM job_logs WHERE job_id = ?", [worker])


def test_four_processes_share_one_catalog_without_losing_writes(tmp_path):
    path = str(tmp_path / "shared.duckdb")
    Catalog(path)
    n_ops = 200
    context = mp.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(path, w, n_ops)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=240)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    rows = Catalog(path).query("SELECT message FROM job_logs")
    expected = {f"{w}:{s}" for w in range(4) for s in range(0, n_ops, 2)}
    assert {r["message"] for r in rows} == expected
    assert len(rows) == len(expected)


def _hold_lock(path: str, ready, release) -> None:
    connection = duckdb.connect(path)
    ready.set()
    release.wait(30)
    connection.close()


def test_a_lock_held_too_long_gives_a_clear_error(tmp_path):
    path = str(tmp_path / "locked.duckdb")
    Catalog(path)
    context = mp.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(CatalogBusyError, match="stayed locked by another process"):
            Catalog(path, lock_timeout=0.5)
    finally:
        release.set()
        holder.join(30)
    assert Catalog(path).schema_version == len(MIGRATIONS)
