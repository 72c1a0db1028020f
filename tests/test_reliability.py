"""Issue 8: many processes on one catalog lose nothing, a crash leaves nothing half-done,
`workbench doctor` finds and repairs what crashes leave, and the signing secret never shows.

Killing a worker in the middle of training is tests/test_lifecycle.py's; here: killing an
import mid-write, a model file mid-write and just after its rename, a worker that dies before it
starts, and a bounded soak of dashboards, a Papermill retrain, a background training job and an
importer sharing one catalog.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import clustered_interactions, item_table

import workbench as wb
from workbench import cli, doctor, training
from workbench.errors import JobFailedError, ModelFileError, ValidationError
from workbench.signing import ENV_VAR

TABLES = ("projects", "training_data", "item_metadata", "configurations", "models", "jobs", "job_logs",
          "tuning_jobs", "tuning_trials")


# ------------------------------------------------------------------------------------ helpers

def catalog_rows(ws) -> dict:
    return {t: ws.catalog.query_df(f"SELECT * FROM {t} ORDER BY id").to_json(date_format="iso") for t in TABLES}


def visible_entries(folder: Path) -> list[str]:
    """Entries a reader may see: anything not dot-prefixed (temp files are hidden)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not any(
        part.startswith(".") for part in p.relative_to(folder).parts))


def hidden_entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*")) if folder.exists() else []


def wait_for(predicate, timeout: float, what: str, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def run_child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(30)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture
def trained(workspace, dataset, metadata):
    """The shop project with three SUCCESS TopPop models."""
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    return [workspace.train(config, dataset) for _ in range(3)]


# --------------------------------------------------------------------------- crash safety

IMPORT_CHILD = """
    import sys, time
    from pathlib import Path
    import workbench as wb
    import pyarrow.parquet as pq
    home, source, marker, what = sys.argv[1:5]
    real = pq.write_table
    def write_then_hang(table, where, **options):
        real(table, where, **options)
        Path(marker).write_text(str(where))
        time.sleep(600)
    pq.write_table = write_then_hang
    ws = wb.open(home)
    if what == "interactions":
        ws.import_training_data("shop", source)
    else:
        ws.import_item_metadata("shop", source)
"""


@pytest.mark.parametrize("what", ["interactions", "metadata"])
def test_an_import_killed_mid_write_leaves_no_visible_snapshot(workspace, project, tmp_path, what):
    source = tmp_path / "input.csv"
    (clustered_interactions(seed=3) if what == "interactions" else item_table(90)).to_csv(source, index=False)
    snapshots = workspace.snapshots_dir / "shop"
    rows, visible = catalog_rows(workspace), visible_entries(snapshots)
    marker = tmp_path / "marker"
    child = run_child(IMPORT_CHILD, workspace.home, source, marker, what)
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), 120, "the import to start writing its snapshot")
    finally:
        kill(child)
    assert catalog_rows(workspace) == rows
    assert visible_entries(snapshots) == visible  # nothing a reader could take for a snapshot
    leftovers = [p for p in snapshots.iterdir() if p.name.startswith(".")]
    assert leftovers and all(p.name.startswith(".tmp-") for p in leftovers)
    assert Path(marker.read_text()).is_relative_to(leftovers[0])  # it was writing inside the hidden temp entry

    assert doctor.check(workspace, stale_after=3600).ok  # too young to judge: a live import may own it
    report = doctor.check(workspace, stale_after=0)
    assert [f.kind for f in report.problems] == ["temp snapshot"]
    assert doctor.check(workspace, repair=True, stale_after=0).ok
    assert not any(snapshots.iterdir())
    # And the same import, done again, works.
    if what == "interactions":
        assert workspace.import_training_data(project, str(source)).n_rows == len(pd.read_csv(source))
    else:
        assert workspace.import_item_metadata(project, str(source)).n_rows == 90


def test_a_real_import_killed_at_the_moment_it_writes(workspace, project, tmp_path):
    """No patching: a 400k-row file, killed as soon as its hidden temp directory appears."""
    rng = np.random.default_rng(5)
    n = 400_000
    source = tmp_path / "big.csv"
    pd.DataFrame({"user_id": rng.integers(0, 50_000, n), "item_id": rng.integers(0, 5_000, n),
                  "timestamp": rng.integers(1_600_000_000, 1_700_000_000, n)}).to_csv(source, index=False)
    snapshots = workspace.snapshots_dir / "shop"
    rows = catalog_rows(workspace)
    child = run_child("import sys, workbench as wb; wb.open(sys.argv[1]).import_training_data('shop', sys.argv[2])",
                      workspace.home, source)
    try:
        wait_for(lambda: child.poll() is not None or (snapshots.exists() and any(
            p.name.startswith(".tmp-") for p in snapshots.iterdir())), 180, "the snapshot write", poll=0.005)
        if child.poll() is not None:
            assert child.returncode == 0, child.stderr.read()[-2000:]
    finally:
        kill(child)
    if catalog_rows(workspace) != rows:  # it finished before the kill landed: then it is all there
        assert len(workspace.training_data_sets()) == 1
    for entry in visible_entries(snapshots):  # every visible snapshot is complete
        if "/" not in entry:
            assert sorted(p.name for p in (snapshots / entry).iterdir()) == sorted(doctor.SNAPSHOT_FILES)
    assert doctor.check(workspace, repair=True, stale_after=0).ok
    assert all(not p.name.startswith(".") for p in snapshots.iterdir()) if snapshots.exists() else True


TRAIN_CHILD = """
    import sys, time
    from pathlib import Path
    import workbench as wb
    from workbench import signing, training, worker
    home, job_id, marker, where = sys.argv[1:5]
    ws = wb.open(home)
    ws.keyring  # the key file is written first (with the same helper): not what is being killed here
    if where == "write":  # hang half-way through writing the temp file
        real = signing._write_all
        def half_then_hang(fd, data):
            real(fd, bytes(data)[: max(len(data) // 2, 1)])
            Path(marker).write_text("writing")
            time.sleep(600)
        signing._write_all = half_then_hang
    else:  # hang after the rename, before the catalog records the file
        real = training.write_model_file
        def write_then_hang(*args, **kwargs):
            size = real(*args, **kwargs)
            Path(marker).write_text("renamed")
            time.sleep(600)
        training.write_model_file = write_then_hang
    worker.main(str(ws.catalog_path), job_id)
"""


@pytest.mark.parametrize("where", ["write", "rename"])
def test_a_worker_killed_while_writing_its_model_file(workspace, dataset, tmp_path, where):
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    model_id, job_id = training.create_model_record(workspace, workspace.configuration(config.id),
                                                    workspace.training_data(dataset.id))
    marker = tmp_path / "marker"
    folder = workspace.models_dir / "shop"
    final = folder / f"{model_id}{training.MODEL_SUFFIX}"
    child = run_child(TRAIN_CHILD, workspace.home, job_id, marker, where)
    try:
        wait_for(marker.exists, 120, "the worker to write its model file")
        if where == "write":
            assert not final.exists()
            temps = [p.name for p in folder.iterdir()]
            assert len(temps) == 1 and temps[0].startswith(f".{final.name}.tmp-{child.pid}-")
        else:
            assert final.exists() and workspace.catalog.get("models", model_id)["file"] is None
    finally:
        kill(child)
    report = doctor.check(workspace)  # report only: nothing changes
    assert {f.kind for f in report.problems} == {"dead job", "temp file" if where == "write" else "orphan file"}
    assert workspace.catalog.get("jobs", job_id)["status"] == "RUNNING"

    model = workspace.model(model_id)  # any look at it reaps the dead job
    assert model.status == "FAILURE" and model.file is None
    assert f"worker process {child.pid} died" in model.job.error
    with pytest.raises(JobFailedError, match="died"):
        model.job.wait(timeout=5)
    assert list(folder.iterdir()) == []  # neither the temp file nor the unrecorded complete file is left
    assert doctor.check(workspace).ok


def test_a_worker_that_dies_before_it_starts_fails_its_job(workspace, dataset, monkeypatch):
    """Its job must not stay PENDING forever: the worker's pid is recorded when it is started."""
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # the worker exits at once
    model = workspace.train(config, dataset, background=True)
    monkeypatch.undo()
    with pytest.raises(JobFailedError, match="died"):
        model.job.wait(timeout=30)
    assert workspace.model(model.id).status == "FAILURE"


# --------------------------------------------------------------------------------- doctor

def test_doctor_reports_then_repairs_orphans_missing_and_tampered_files(workspace, trained, capsys):
    home = str(workspace.home)
    code, out = run_cli(capsys, "--home", home, "doctor")
    assert code == 0 and "All consistent." in out
    first, second, third = trained
    workspace.activate(second.id)
    folder = workspace.models_dir / "shop"
    os.unlink(first.file)                                                   # SUCCESS without a file
    tampered = bytearray(Path(second.file).read_bytes())
    tampered[-3] ^= 0x01
    Path(second.file).write_bytes(bytes(tampered))                          # altered
    stray = folder / "99.wbm"
    shutil.copyfile(third.file, stray)                                      # a file without a record
    (folder / f".99.wbm.tmp-{dead_pid()}-00ff00ff").write_bytes(b"half")    # a dead writer's temp file
    (workspace.snapshots_dir / "shop" / ".tmp-abandoned").mkdir()           # an import's temp dir
    (workspace.snapshots_dir / "shop" / ("0" * 64)).mkdir()                 # an unreferenced snapshot
    rows = catalog_rows(workspace)

    code, out = run_cli(capsys, "--home", home, "doctor", "--stale-after", "0")
    assert code == 1
    for text in ("[missing file] model 1", "[tampered file] model 2", "SignatureMismatchError",
                 "[orphan file] models/shop/99.wbm", "a correctly signed file of model 3", "[temp file]",
                 "[temp snapshot] data/snapshots/shop/.tmp-abandoned", "[unreferenced snapshot]",
                 "Run `workbench doctor --repair` to fix 6 of them."):
        assert text in out, text
    assert catalog_rows(workspace) == rows and Path(second.file).exists() and stray.exists()

    code, out = run_cli(capsys, "--home", home, "doctor", "--repair", "--stale-after", "0")
    assert code == 0 and "REPAIRED (6)" in out and "All consistent now." in out
    quarantined = sorted((workspace.home / "quarantine").rglob("*.wbm"))
    assert [p.name for p in quarantined] == ["2.wbm", "99.wbm"]
    assert quarantined[0].read_bytes() == bytes(tampered)  # moved, not deleted
    assert sorted(p.name for p in folder.iterdir()) == ["3.wbm"]
    statuses = dict(zip(workspace.models()["id"], workspace.models()["status"]))
    assert statuses == {1: "FAILURE", 2: "FAILURE", 3: "SUCCESS"}
    assert workspace.project("shop").active_model_id is None  # the tampered model was active
    assert "failed verification" in workspace.model(second.id).job.error
    assert "failed verification" in " ".join(workspace.task_log(model=second.id)["message"])
    with pytest.raises(ValidationError, match="FAILURE"):
        workspace.load_model(second.id)
    assert workspace.load_model(third.id).recommend("u1", cutoff=3)
    assert run_cli(capsys, "--home", home, "doctor", "--stale-after", "0")[0] == 0


def test_a_valid_file_of_another_model_is_refused_on_load(workspace, trained):
    first, second, _ = trained
    shutil.copyfile(first.file, second.file)  # correctly signed, but model 1's
    with pytest.raises(ModelFileError, match="holds model 1"):
        workspace.load_model(second.id)
    report = doctor.check(workspace)
    assert [f.detail for f in report.problems] == ["a correctly signed file of model 1, not of model 2"]


def test_doctor_reaps_jobs_left_running_or_pending_by_dead_processes(workspace, dataset, capsys):
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    running = training.create_model_record(workspace, config, workspace.training_data(dataset.id))
    never = training.create_model_record(workspace, config, workspace.training_data(dataset.id))
    pid = dead_pid()
    workspace.catalog.update("jobs", running[1], {"status": "RUNNING", "pid": pid, "host": socket.gethostname(),
                                                  "process_started": time.time() - 5})
    workspace.catalog.update("models", running[0], {"status": "RUNNING"})
    workspace.catalog.execute("UPDATE jobs SET created_at = datetime(created_at, '-2 hours') WHERE id = ?", [never[1]])
    report = doctor.check(workspace)
    assert sorted((f.kind, f.subject) for f in report.problems) == [
        ("dead job", f"job {running[1]} (train)"), ("stale job", f"job {never[1]} (train)")]
    assert "RUNNING, but its process" in report.text()
    code, out = run_cli(capsys, "--home", str(workspace.home), "doctor", "--repair")
    assert code == 0 and "marked FAILURE" in out
    for model_id, job_id in (running, never):
        assert workspace.catalog.get("models", model_id)["status"] == "FAILURE"
        assert workspace.catalog.get("jobs", job_id)["status"] == "FAILURE"
    assert "No process ever started" in workspace.catalog.get("jobs", never[1])["error"]


def test_doctor_cleans_up_after_a_retrain_that_died_mid_run(workspace, trained):
    project = workspace.project("shop")
    workspace.activate(trained[0].id)
    with workspace.catalog.tagged("dead-run"):  # what a run that died after importing and training left
        data = workspace.import_training_data(project, clustered_interactions(seed=9))
        orphan = workspace.train(workspace.configuration(trained[0].configuration_id), data)
    journal = {"state": "running", "project": "shop", "project_id": project.id, "pid": dead_pid(),
               "host": socket.gethostname(), "process_started": time.time() - 60, "started_at": "earlier",
               "run_id": "dead-run", "active_before": trained[0].id, "metrics_backup": {}}
    lock_file = workspace.data_dir / "locks" / "shop.retrain.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock_file.write_text(json.dumps(journal))
    report = doctor.check(workspace)
    assert [f.kind for f in report.problems] == ["crashed retrain"]
    report = doctor.check(workspace, repair=True)
    assert report.ok and f"model {orphan.id}" in report.findings[0].repaired
    assert orphan.id not in set(workspace.models()["id"]) and not Path(orphan.file).exists()
    assert json.loads(lock_file.read_text())["state"] == "rolled back"
    # The snapshot the dead run imported is now referenced by nothing: removed when old enough.
    assert [f.kind for f in doctor.check(workspace, stale_after=0).problems] == ["unreferenced snapshot"]


def test_doctor_never_quarantines_files_of_an_unknown_key(workspace, trained, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "elsewhere:" + "ab" * 32)
    workspace.__dict__.pop("keyring", None)
    report = doctor.check(workspace, repair=True)
    assert report.exit_code == 1
    assert {f.kind for f in report.problems} == {"unknown key"} and len(report.problems) == 3
    assert "WORKBENCH_SIGNING_KEYS" in report.text()
    assert all(Path(m.file).exists() for m in trained) and not (workspace.home / "quarantine").exists()
    assert set(workspace.models()["status"]) == {"SUCCESS"}


def test_a_moved_workspace_works_as_it_is_and_doctor_fixes_the_key_file_mode(workspace, trained, tmp_path):
    moved = tmp_path / "moved"
    shutil.move(workspace.home, moved)
    ws = wb.open(moved)
    os.chmod(ws.key_file, 0o644)
    assert [f.kind for f in doctor.check(ws).problems] == ["key file"]  # paths are relative to the home
    assert doctor.check(ws, repair=True).ok
    assert stat.S_IMODE(ws.key_file.stat().st_mode) == 0o600
    assert ws.load_model(trained[0].id).recommend("u1", cutoff=2)
    assert ws.interaction_matrix(1)[0].nnz > 0


# ----------------------------------------------------------------------------------- soak

KERNEL = """
    import json, sys, time
    from pathlib import Path
    import workbench as wb
    home, ready, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ws = wb.open(home)
    ws.projects()
    ready.touch()
    ops, errors, seen_models, seen_data = 0, [], set(), set()
    deadline = time.time() + 600
    while not stop.exists() and time.time() < deadline:
        try:
            models = ws.models(); ops += 1
            seen_models |= set(int(i) for i in models.loc[models.status == "SUCCESS", "id"])
            ws.projects(); ops += 1
            seen_data |= set(int(i) for i in ws.training_data_sets()["id"]); ops += 1
            last = ws.catalog.query("SELECT max(id) AS id FROM jobs")[0]["id"]; ops += 1
            if last is not None:
                job = ws.job(last); ops += 1
                job.status, job.progress; ops += 2
                job.log(); ops += 1
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
        time.sleep(0.05)
    print(json.dumps({"ops": ops, "errors": errors, "seen_models": sorted(seen_models),
                      "seen_data": sorted(seen_data)}))
"""

IMPORTER = """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[4])
    import workbench as wb
    from conftest import clustered_interactions, item_table
    home, ready, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ws = wb.open(home)
    ws.projects()
    ready.touch()
    ops, errors, imported = 0, [], {}
    i = 0
    deadline = time.time() + 600
    while not stop.exists() and time.time() < deadline:
        i += 1
        try:
            frame = clustered_interactions(n_users=200, seed=100 + i)
            record = ws.import_training_data("shop", frame, name=f"batch {i}"); ops += 1
            imported[record.id] = [int(record.n_rows), len(frame)]
            if i % 3 == 0:
                ws.import_item_metadata("shop", item_table().assign(batch=i)); ops += 1
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
    print(json.dumps({"ops": ops, "errors": errors, "imported": imported}))
"""

SOAK_SECONDS = float(os.environ.get("WORKBENCH_SOAK_SECONDS", "35"))


@pytest.fixture(scope="module")
def soaked(tmp_path_factory):
    """Two dashboard kernels polling, Papermill retrains, background training and an importer, on one
    catalog for SOAK_SECONDS (counted once every process is up); returns what each did."""
    root = tmp_path_factory.mktemp("soak")
    ws = wb.open(root / "home")
    project = ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
    full = clustered_interactions()
    cut = full["timestamp"].quantile(0.8)
    base = ws.import_training_data(project, full[full["timestamp"] <= cut])
    full[full["timestamp"] > cut].to_csv(root / "new.csv", index=False)
    ws.import_item_metadata(project, item_table())
    ws.activate(ws.train(ws.create_configuration(project, "RP3beta"), base).id)
    ials = ws.create_configuration(project, "IALS", {"n_components": 16, "train_epochs": 30})

    stop = root / "stop"
    env = dict(os.environ, WORKBENCH_HOME=str(ws.home))
    children = {name: run_child(code, ws.home, root / f"ready-{n}", stop, Path(__file__).parent)
                for n, (name, code) in enumerate([("kernel 1", KERNEL), ("kernel 2", KERNEL), ("importer", IMPORTER)])}
    retrains, trainings, errors = [], [], []

    def start_retrain():
        return subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "--home", str(ws.home), "retrain", "--project", "shop",
             "-p", "new_data", str(root / "new.csv"), "-p", "activate", "always"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root)

    try:
        wait_for(lambda: all((root / f"ready-{n}").exists() for n in range(3)) or any(
            c.poll() is not None for c in children.values()), 300, "the soak processes to start", poll=0.1)
        started = time.time()
        retrain = start_retrain()
        while time.time() < started + SOAK_SECONDS:
            model = ws.train(ials, base, background=True)
            try:
                trainings.append(model.wait(timeout=300).id)
            except Exception as error:
                errors.append(f"training: {type(error).__name__}: {error}")
            if retrain is not None and retrain.poll() is not None:
                retrains.append((retrain.returncode, retrain.stdout.read(), retrain.stderr.read()))
                retrain = start_retrain() if time.time() < started + SOAK_SECONDS - 20 else None
        seconds = time.time() - started
    finally:
        stop.touch()
    if retrain is not None:
        out, err = retrain.communicate(timeout=600)
        retrains.append((retrain.returncode, out, err))
    results = {}
    for name, child in children.items():
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, f"{name} crashed: {err[-2000:]}"
        results[name] = json.loads(out.strip().splitlines()[-1])
    return {"ws": ws, "root": root, "seconds": seconds, "children": results, "retrains": retrains,
            "trainings": trainings, "errors": errors}


@pytest.mark.slow
def test_soak_many_processes_one_catalog(soaked):
    ws, results = soaked["ws"], soaked["children"]
    summary = {name: {"ops": r["ops"], "errors": len(r["errors"])} for name, r in results.items()}
    summary["retrains"] = [code for code, _, _ in soaked["retrains"]]
    summary["background trainings"] = len(soaked["trainings"])
    summary["rows"] = ws.catalog.run(lambda con: {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("training_data", "item_metadata", "models",
                                                                            "jobs", "job_logs")})
    print(f"\nsoak {soaked['seconds']:.0f} s: {json.dumps(summary)}")

    # 0 errors surfaced anywhere.
    assert soaked["errors"] == []
    for name, result in results.items():
        assert result["errors"] == [], (name, result["errors"][:5])
        assert result["ops"] > 0
    for code, _out, err in soaked["retrains"]:
        assert code == 0, err[-3000:]
    assert soaked["trainings"]

    # 0 rows lost: everything the importer, the trainer and the retrains registered is there, whole.
    data = ws.training_data_sets().set_index("id")
    for record_id, (n_rows, expected) in results["importer"]["imported"].items():
        assert int(data.loc[int(record_id), "n_rows"]) == n_rows == expected
    models = ws.models().set_index("id")
    for name in ("kernel 1", "kernel 2"):
        assert set(results[name]["seen_models"]) <= set(models.index)
        assert set(results[name]["seen_data"]) <= set(data.index)
    assert (models.loc[soaked["trainings"], "status"] == "SUCCESS").all()
    assert len(models) == 1 + len(soaked["trainings"]) + len(soaked["retrains"])
    for model_id in soaked["trainings"]:
        messages = " ".join(ws.task_log(model=model_id)["message"])
        assert "Training IALS" in messages and "written to" in messages

    # The final catalog is consistent.
    assert ws.catalog.query("SELECT id FROM jobs WHERE status NOT IN ('SUCCESS')") == []
    records = ws.catalog.query("SELECT id, status, file FROM models")
    assert {r["status"] for r in records} == {"SUCCESS"}
    assert not (ws.data_dir / "models").exists()  # background workers write where everyone else does
    files = {str(p) for p in ws.models_dir.rglob("*") if p.is_file()}
    assert files == {r["file"] for r in records if r["status"] == "SUCCESS"}  # no temp file, no orphan
    for record in records:
        assert ws.inspect_model_file(record["file"])["model_id"] == record["id"]
    assert not any(p.name.startswith(".") for p in ws.snapshots_dir.rglob("*"))
    report = doctor.check(ws)
    assert report.ok, report.text()


# -------------------------------------------------------------------------------- secrets

@pytest.mark.slow
def test_the_signing_secret_is_never_shown(soaked):
    """After trainings and a Papermill retrain: not in the catalog, the logs, the reports, nor any output."""
    ws = soaked["ws"]
    assert stat.S_IMODE(ws.key_file.stat().st_mode) == 0o600
    secret_hex = ws.key_file.read_text().strip().split(":")[1]
    secret = bytes.fromhex(secret_hex)
    messages = ws.catalog.query_df("SELECT message FROM job_logs")["message"]
    assert len(messages) > 10 and not messages.str.contains(secret_hex, case=False).any()
    reports = sorted((ws.home / "runs").glob("*.ipynb"))
    assert reports
    env = dict(os.environ, WORKBENCH_HOME=str(ws.home))
    outputs = [subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(ws.home), command],
                              capture_output=True, text=True, env=env, timeout=300) for command in ("info", "doctor")]
    assert outputs[1].returncode == 0, outputs[1].stdout
    shown = "".join(o.stdout + o.stderr for o in outputs) + "".join(
        out + err for _, out, err in soaked["retrains"]) + repr(ws.keyring) + str(ws.keyring.signing_key)
    assert secret_hex.lower() not in shown.lower()
    # Every file of the workspace but the key file itself: catalog, worker logs, reports, models, snapshots.
    checked = 0
    for path in ws.home.rglob("*"):
        if path.is_file() and path != ws.key_file:
            content = path.read_bytes()
            assert secret not in content and secret_hex.encode() not in content.lower(), path
            checked += 1
    assert checked > 10 and any(p.suffix == ".ipynb" for p in ws.home.rglob("*"))


def test_voila_binds_to_localhost_unless_told_otherwise():
    command = cli.voila_command("127.0.0.1", 8866)
    assert [part for part in command if "ip=" in part.lower()] == ["--Voila.ip=127.0.0.1"]
    args = cli.build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "HOST ?= 127.0.0.1" in makefile
    assert "--Voila.ip=0.0.0.0" in cli.voila_command("0.0.0.0", 8866)  # only when asked
