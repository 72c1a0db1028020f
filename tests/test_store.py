"""The catalog: schema, records, and many processes sharing one file without losing a write."""

import multiprocessing as mp
import sqlite3

import pytest

import workbench as wb
from workbench import jobs
from workbench.errors import CatalogBusyError, NotFoundError, ReadOnlyWorkspaceError
from workbench.store import MIGRATIONS, Catalog

N_PROCESSES = 8
N_OPERATIONS = 500
N_MODELS = 4


def test_new_catalog_is_migrated_to_the_latest_schema(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    assert catalog.schema_version == len(MIGRATIONS)
    assert Catalog(tmp_path / "c.sqlite").schema_version == len(MIGRATIONS)  # nothing applied twice
    assert sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_insert_get_update_round_trip_json_time_flag_and_path_columns(tmp_path):
    catalog = Catalog(tmp_path / "data" / "c.sqlite", home=tmp_path)
    pid = catalog.insert("projects", {"name": "p", "user_column": "u", "item_column": "i"})
    cid = catalog.insert("configurations", {"project_id": pid, "name": "c", "algorithm": "IALS",
                                            "params": {"n_components": 8}})
    assert catalog.get("configurations", cid)["params"] == {"n_components": 8}
    catalog.update("configurations", cid, {"params": {"n_components": 16}})
    assert catalog.get("configurations", cid)["params"] == {"n_components": 16}
    job = catalog.get("jobs", catalog.insert("jobs", {"kind": "train", "cancel_requested": True}))
    assert job["cancel_requested"] is True and job["created_at"].year >= 2026
    tid = catalog.insert("training_data", {
        "project_id": pid, "source": "x", "path": tmp_path / "data" / "snapshots" / "p" / "abc", "fingerprint": "abc",
        "n_rows": 1, "n_users": 1, "n_items": 1})
    assert catalog.get("training_data", tid)["path"] == str(tmp_path / "data" / "snapshots" / "p" / "abc")
    stored = sqlite3.connect(catalog.path).execute("SELECT path FROM training_data").fetchone()[0]
    assert stored == "data/snapshots/p/abc"  # relative to the home: the workspace can move
    with pytest.raises(NotFoundError, match="no configuration with id 999"):
        catalog.get("configurations", 999, "configuration")


def test_failed_work_rolls_back(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")

    def work(con):
        con.execute("INSERT INTO projects (name, user_column, item_column) VALUES ('x','u','i')")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        catalog.run(work)
    assert catalog.query("SELECT count(*) AS n FROM projects")[0]["n"] == 0


def test_ids_of_deleted_rows_are_never_handed_out_again(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    first = catalog.insert("jobs", {"kind": "train"})
    catalog.execute("DELETE FROM jobs WHERE id = ?", [first])
    assert catalog.insert("jobs", {"kind": "train"}) == first + 1


def _hold_write_lock(path: str, ready, release) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO jobs (kind) VALUES ('held')")
    ready.set()
    release.wait(60)
    connection.execute("ROLLBACK")
    connection.close()


def test_readers_do_not_wait_for_a_writer_and_a_lock_held_too_long_is_a_clear_error(tmp_path):
    path = str(tmp_path / "locked.sqlite")
    Catalog(path).insert("jobs", {"kind": "before"})
    context = mp.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_write_lock, args=(path, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        waiting = Catalog(path, lock_timeout=0.5)
        assert [r["kind"] for r in waiting.query("SELECT kind FROM jobs")] == ["before"]  # reads go on
        with pytest.raises(CatalogBusyError, match="stayed locked by another process"):
            waiting.insert("jobs", {"kind": "blocked"})
    finally:
        release.set()
        holder.join(60)
    assert [r["kind"] for r in Catalog(path).query("SELECT kind FROM jobs")] == ["before"]


# ------------------------------------------------------------------ many processes, one catalog

def _mixed_operations(home: str, worker: int, n_operations: int, model_ids: list[int], job_id: int) -> None:
    """Inserts, updates, activations, listings and job progress, interleaved, through the public API."""
    ws = wb.open(home)
    reporter = jobs.Reporter(ws.catalog, job_id, interval=0)
    for step in range(n_operations):
        kind = step % 5
        if kind == 0:
            ws.create_configuration("stress", "TopPop", name=f"w{worker}-{step}")
        elif kind == 1:
            reporter.progress((step + 1) / n_operations, f"step {step}")
            reporter.log(f"w{worker}:{step}")
            reporter.flush()
        elif kind == 2:
            ws.activate(model_ids[(worker + step) % len(model_ids)])
        elif kind == 3:
            listed = ws.models("stress")
            assert sorted(listed["id"]) == sorted(model_ids), listed
        else:
            assert ws.model(model_ids[step % len(model_ids)]).status == "SUCCESS"


def _stress_workspace(home):
    ws = wb.open(home)
    project = ws.create_project("stress", user_column="u", item_column="i")
    data_id = ws.catalog.insert("training_data", {"project_id": project.id, "source": "x", "path": "nowhere",
                                                  "fingerprint": "f", "n_rows": 0, "n_users": 0, "n_items": 0})
    config = ws.create_configuration(project, "TopPop", name="base")
    models = [ws.catalog.insert("models", {"project_id": project.id, "configuration_id": config.id,
                                           "training_data_id": data_id, "status": "SUCCESS"})
              for _ in range(N_MODELS)]
    job_ids = [jobs.create_job(ws.catalog, "stress", project.id, {}) for _ in range(N_PROCESSES)]
    return ws, models, job_ids


@pytest.mark.parametrize("run", range(3))
def test_eight_processes_of_mixed_operations_lose_and_duplicate_nothing(tmp_path, run):
    ws, model_ids, job_ids = _stress_workspace(tmp_path / "home")
    context = mp.get_context("spawn")
    workers = [context.Process(target=_mixed_operations,
                               args=(str(ws.home), w, N_OPERATIONS, model_ids, job_ids[w]))
               for w in range(N_PROCESSES)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=900)
    assert [p.exitcode for p in workers] == [0] * N_PROCESSES

    names = [r["name"] for r in ws.catalog.query("SELECT name FROM configurations WHERE name != 'base'")]
    expected = {f"w{w}-{s}" for w in range(N_PROCESSES) for s in range(0, N_OPERATIONS, 5)}
    assert len(names) == len(expected) and set(names) == expected  # every insert, once
    for worker, job_id in enumerate(job_ids):
        log = list(ws.job(job_id).log()["message"])
        assert log == [f"w{worker}:{s}" for s in range(1, N_OPERATIONS, 5)]  # every line, once, in order
        last = max(range(1, N_OPERATIONS, 5))
        assert ws.job(job_id).progress == {"fraction": pytest.approx((last + 1) / N_OPERATIONS), "step": f"step {last}"}
    assert ws.project("stress").active_model_id in model_ids


def test_a_read_only_catalog_lists_but_refuses_writes(tmp_path):
    Catalog(tmp_path / "c.sqlite").insert("jobs", {"kind": "train"})
    catalog = Catalog(tmp_path / "c.sqlite", read_only=True)
    assert len(catalog.query("SELECT * FROM jobs")) == 1
    with pytest.raises(ReadOnlyWorkspaceError, match="read-only"):
        catalog.insert("jobs", {"kind": "train"})
