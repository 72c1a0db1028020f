"""Distributed tuning: `workbench tune-worker` processes and the coordinator on one PostgreSQL study.

The suite starts its own throwaway PostgreSQL cluster (Debian's `postgresql` package, installed by
`make test`) in a temporary folder on a free loopback port, and stops it at the end.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest

from workbench.demo import generate_demo
from workbench.errors import ValidationError
from workbench.search import SKIPPED_ATTR, open_storage

pytestmark = pytest.mark.slow


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_server():
    """(host, port) of a PostgreSQL cluster that lives as long as this module's tests."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no pg_ctl; `make test` installs Debian's postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the `postgres` system user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip("running as root and there is no `postgres` system user to own the test cluster")
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data_dir, log = folder / "data", folder / "server.log"
    port = _free_port()
    initdb = subprocess.run(run_as + [str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "workbench",
                                      "--auth=trust", "-E", "UTF8", "--no-sync"],
                            capture_output=True, text=True)
    if initdb.returncode:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed: {initdb.stderr.strip()[-500:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    start = subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log), "-w",
                                     "-t", "30", "-o", options, "start"], capture_output=True, text=True)
    if start.returncode:
        text = log.read_text()[-500:] if log.exists() else start.stderr
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {text.strip()}")
    try:
        yield "127.0.0.1", port
    finally:
        subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def storage(postgres_server, request):
    """A fresh database per test: one catalog's tuning jobs per database."""
    import psycopg2

    host, port = postgres_server
    name = f"optuna_{request.node.name.lower()[:40]}_{os.getpid()}".replace("-", "_")
    con = psycopg2.connect(host=host, port=port, user="workbench", dbname="postgres")
    con.autocommit = True
    with con.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    con.close()
    return f"postgresql://workbench@{host}:{port}/{name}"


@pytest.fixture
def demo(workspace):
    interactions, _ = generate_demo(seed=1, n_users=700, n_items=300)
    project = workspace.create_project("demo", "user_id", "item_id", "timestamp")
    return project, workspace.import_training_data(project, interactions)


def _worker(job_id: int, storage: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", "tune-worker", "--job", str(job_id),
                             "--storage", storage, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_three_workers_fill_the_coordinators_study_and_the_best_is_trained_once(workspace, demo, storage):
    """The coordinator only coordinates (n_jobs=0) and each worker may run a third of the budget,
    so every worker runs exactly its share, however fast each process happens to be."""
    _, data = demo
    n_workers, share = 3, 8
    n_trials = n_workers * share
    assert workspace.tuning_jobs().empty  # so the job about to be created is number 1
    # Workers may start before the coordinator (as in a Kubernetes Job): they wait for its study.
    workers = [_worker(1, storage, "--wait", "600", "--n-trials", str(share), "--worker", str(i))
               for i in range(1, n_workers + 1)]
    try:
        tuning = workspace.tune(data, algorithms=["IALS", "RP3beta", "CosineKNN"], n_trials=n_trials,
                                storage=storage, n_jobs=0, train_after_tuning=True, background=True)
        assert tuning.id == 1
        tuning.job.wait(timeout=600)
        outputs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert all(w.returncode == 0 for w in workers), outputs

    study = optuna.load_study(study_name=f"workbench-tuning-{tuning.id}", storage=open_storage(storage))
    counted = [t for t in study.get_trials() if SKIPPED_ATTR not in t.user_attrs
               and t.state != optuna.trial.TrialState.WAITING]
    assert len(counted) == n_trials  # the budget is study-wide
    assert all(t.state.is_finished() for t in counted)
    assert len({t.number for t in counted}) == n_trials
    by_worker = {}
    for t in counted:
        by_worker[t.user_attrs.get("worker")] = by_worker.get(t.user_attrs.get("worker"), 0) + 1
    assert by_worker == {i: share for i in range(1, n_workers + 1)}  # every worker ran its share

    tuning = tuning.refresh()
    assert tuning.status == "SUCCESS" and tuning.model_id is not None
    trials = tuning.trials
    assert len(trials) == n_trials and trials["number"].is_unique  # every worker's trials are in the catalog
    assert trials["worker"].value_counts().to_dict() == by_worker
    assert tuning.best_score == pytest.approx(trials["score"].max())
    assert len(workspace.models("demo")) == 1  # the best configuration is trained exactly once


def test_a_coordinator_only_needs_a_shared_storage(workspace, demo):
    _, data = demo
    with pytest.raises(ValidationError, match="n_jobs"):
        workspace.tune(data, n_jobs=0)
    assert workspace.tuning_jobs().empty


def test_a_worker_refuses_a_snapshot_other_than_the_jobs(workspace, demo, storage):
    project, data = demo
    tuning = workspace.tune(data, algorithms=["TopPop", "RP3beta"], n_trials=2, storage=storage,
                            train_after_tuning=False)
    other, _ = generate_demo(seed=2, n_users=200, n_items=100)
    other_data = workspace.import_training_data(project, other)
    # The job is done: it has its trials. A wrong snapshot is still refused, before any trial.
    worker = _worker(tuning.id, storage, "--snapshot", str(other_data.path))
    output = worker.communicate(timeout=60)[0]
    assert worker.returncode == 2
    assert "fingerprint" in output and "snapshot" in output.lower()

    missing = _worker(tuning.id + 100, storage, "--wait", "0")
    output = missing.communicate(timeout=60)[0]
    assert missing.returncode == 2 and "No tuning job" in output
