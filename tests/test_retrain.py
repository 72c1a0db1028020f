"""Headless retraining: the gate, the lock, rollback on failure, and Papermill runs of the CLI."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import psutil
import pytest

import workbench as wb
import workbench.retrain as rt
from workbench import data as data_module
from workbench.demo import generate_demo
from workbench.errors import NotFoundError, ValidationError
from workbench.retrain import RetrainBusyError, decide, retrain
from workbench.training import create_model_record

TABLES = ("projects", "training_data", "configurations", "models", "tuning_jobs", "tuning_trials", "jobs")


def catalog_state(ws) -> dict:
    """Every row of the tables a retrain writes, and the model files on disk."""
    state = {t: ws.catalog.query_df(f"SELECT * FROM {t} ORDER BY id").to_json(date_format="iso") for t in TABLES}
    state["files"] = sorted(str(p) for p in ws.models_dir.rglob("*") if p.is_file())
    return state


def file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def shop(tmp_path):
    """A home with project "shop": the older 70% of a demo log (users active across months), an
    active IALS model trained on it, and the newer 30% as new.csv."""
    ws = wb.open(tmp_path / "home")
    project = ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
    full, _ = generate_demo(seed=3, n_users=400, n_items=200)
    full = full.sort_values("timestamp", kind="stable")
    split = int(len(full) * 0.7)
    old = ws.import_training_data(project, full.iloc[:split])
    new_csv = tmp_path / "new.csv"
    full.iloc[split:].to_csv(new_csv, index=False)
    model = ws.train(ws.create_configuration(project, "IALS", {"n_components": 16}), old)
    ws.activate(model.id)
    return ws, new_csv


# -- the gate (pure) ---------------------------------------------------------------------------

@pytest.mark.parametrize("policy, new, old, tolerance, has_active, expected", [
    ("if_better", 0.30, 0.30, 0.0, True, True),     # a tie is "at least as good"
    ("if_better", 0.29, 0.30, 0.0, True, False),
    ("if_better", 0.29, 0.30, 0.02, True, True),    # within the tolerance
    ("if_better", 0.27, 0.30, 0.02, True, False),
    ("if_better", float("nan"), 0.30, 0.5, True, False),
    ("if_better", 0.10, None, 0.0, False, True),    # nothing active: the first model goes live
    ("always", 0.01, 0.90, 0.0, True, True),
    ("never", 0.90, 0.01, 0.0, True, False),
    ("never", 0.90, None, 0.0, False, False),
])
def test_decide(policy, new, old, tolerance, has_active, expected):
    activate, reason = decide(policy, new, old, tolerance, "ndcg@20", has_active=has_active)
    assert activate is expected and reason


# -- the Python API -----------------------------------------------------------------------------

def test_retrain_gates_on_the_newest_interactions_with_the_active_model_as_it_is(shop):
    ws, new_csv = shop
    old = ws.active_model("shop")
    before, old_file = ws.training_data(old.training_data_id), file_digest(old.file)
    outcome = retrain(ws, "shop", str(new_csv), mode="retrain", tolerance=0.0)

    batch = outcome.statistics.loc["new batch"]
    assert outcome.training_data.n_rows == before.n_rows + batch["n_rows"]  # the union
    assert outcome.changes["rows_added"] == batch["n_rows"] > 0 and batch["already_present"] == 0
    assert "newer half of the new batch" in outcome.gate["window"]
    assert 0 < outcome.gate["scored_users"] <= outcome.gate["window_users"]
    assert outcome.gate["held_out_interactions"] > 0
    for role in ("old", "new", "difference"):
        interval = outcome.intervals[role]
        assert interval.low <= interval.mean <= interval.high, role
    assert outcome.intervals["difference"].mean == pytest.approx(outcome.new_score - outcome.old_score)
    # The active model was scored as it is: its file untouched, its id kept.
    assert file_digest(old.file) == old_file and ws.model(old.id).status == "SUCCESS"
    assert list(outcome.comparison["model_id"]) == [old.id, outcome.new_model.id]
    assert outcome.new_model.configuration_id == old.configuration_id
    assert outcome.new_model.training_data_id == outcome.training_data.id  # trained on all the data
    assert list(outcome.segments.index) == ["light", "medium", "heavy"]
    assert outcome.segments["users"].sum() == outcome.gate["scored_users"]
    assert outcome.activated == (ws.active_model("shop").id == outcome.new_model.id)
    assert "<svg" in outcome.chart().data and "interval" in outcome.decision_view().data
    assert json.dumps(outcome.summary())  # JSON-ready for the CLI

    replaced = retrain(ws, "shop", str(new_csv), append=False, activate="never")
    assert replaced.training_data.n_rows == batch["n_rows"]
    assert replaced.decision == "kept"


def test_a_worse_challenger_is_kept_out_and_a_better_one_activated(shop):
    ws, _ = shop
    ials = ws.active_model("shop")
    kept = retrain(ws, "shop", mode="retune", algorithms=["TopPop"], n_trials=1)
    assert kept.new_score < kept.old_score and kept.intervals["difference"].high < 0
    assert kept.decision == "kept" and "worse" in kept.reason
    assert ws.active_model("shop").id == ials.id and kept.new_model.status == "SUCCESS"

    top_pop = kept.new_model
    ws.activate(top_pop.id)
    better = retrain(ws, "shop", mode="retune", algorithms=["IALS"], n_trials=3)
    assert better.new_score > better.old_score and better.old_model.id == top_pop.id
    assert better.decision == "activated" and ws.active_model("shop").id == better.new_model.id


def test_a_tie_within_the_tolerance_follows_the_policy(shop):
    ws, _ = shop
    ials = ws.active_model("shop").id
    worse = dict(mode="retune", algorithms=["TopPop"], n_trials=1)
    lenient = retrain(ws, "shop", tolerance=1.0, **worse)  # worse, but within a tolerance of 1
    assert lenient.new_score < lenient.old_score and lenient.decision == "activated"
    never = retrain(ws, "shop", activate="never")
    assert never.decision == "kept" and ws.active_model("shop").id == lenient.new_model.id
    forced = retrain(ws, "shop", activate="always", **worse)
    assert forced.activated and ws.active_model("shop").id == forced.new_model.id != ials


def test_appended_rows_already_present_are_counted(shop, tmp_path):
    ws, new_csv = shop
    data = ws.latest_training_data("shop")
    repeated = pd.concat([pd.read_csv(new_csv).head(50), _older_rows(data, 30)], ignore_index=True)
    path = tmp_path / "repeated.csv"
    repeated.to_csv(path, index=False)
    kept = retrain(ws, "shop", str(path), activate="never")
    assert kept.statistics.loc["new batch", "already_present"] == 30 == kept.changes["already_present"]
    assert any("30 of the 80 appended rows were already in the training data" in n for n in kept.notes)
    assert kept.training_data.n_rows == data.n_rows + 80  # duplicates="keep": kept twice, as asked
    last = retrain(ws, "shop", str(path), activate="never", import_options={"duplicates": "last"})
    assert last.training_data.n_rows < kept.training_data.n_rows and "kept one of each" in " ".join(last.notes)


def _older_rows(data, n: int) -> pd.DataFrame:
    """`n` rows that are in the training data already, as an export of them would look."""
    rows = data_module.read_interactions(data.path).head(n)
    return pd.DataFrame({"user_id": rows["user_id"], "item_id": rows["item_id"],
                         "timestamp": rows["time"].dt.strftime("%Y-%m-%d %H:%M:%S")})


def test_without_a_time_column_the_gate_refits_both_on_a_random_split(workspace):
    project = workspace.create_project("plain", user_column="user_id", item_column="item_id")
    frame, _ = generate_demo(seed=4, n_users=200, n_items=100)
    data = workspace.import_training_data(project, frame[["user_id", "item_id"]])
    workspace.activate(workspace.train(workspace.create_configuration(project, "IALS", {"n_components": 8}), data).id)
    outcome = retrain(workspace, "plain", activate="never")
    assert "random split" in outcome.gate["window"] and any("no time column" in n for n in outcome.notes)
    assert set(outcome.comparison["role"]) == {"active (old)", "new"} and outcome.segments is None


def test_retrain_without_an_active_model_falls_back_to_tuning(shop):
    ws, _ = shop
    ws.catalog.execute("UPDATE projects SET active_model_id = NULL WHERE name = 'shop'")
    outcome = retrain(ws, "shop", n_trials=2, algorithms=["TopPop", "IALS"])
    assert (outcome.requested_mode, outcome.mode) == ("retrain", "retune")
    assert outcome.tuning_job is not None and outcome.old_model is None
    assert outcome.tuning_job.training_data_id != outcome.training_data.id  # tuned before the cut only
    assert outcome.activated and any("No active model" in note for note in outcome.notes)
    assert len(outcome.comparison) == 1 and "old" not in outcome.intervals


BAD_PARAMETERS = [
    ({"mode": "rebuild"}, "mode must be one of"),
    ({"activate": "maybe"}, "activate must be one of"),
    ({"tolerance": -1}, "tolerance"),
    ({"n_trials": 0}, "n_trials"),
    ({"metric": "auc"}, "metric must be one of"),
    ({"new_data": "no/such/file.csv"}, "no such file"),
]


def test_bad_parameters_fail_before_touching_anything(shop):
    ws, _ = shop
    state = catalog_state(ws)
    for kwargs, message in BAD_PARAMETERS:
        with pytest.raises(ValidationError, match=message):
            retrain(ws, "shop", **kwargs)
    with pytest.raises(NotFoundError, match="no project named 'nowhere'"):
        retrain(ws, "nowhere")
    assert catalog_state(ws) == state


def test_a_failure_late_in_the_run_leaves_the_catalog_as_it_was(shop, monkeypatch):
    ws, new_csv = shop
    state = catalog_state(ws)

    def broken_decision(*args, **kwargs):
        raise RuntimeError("the comparison broke")

    monkeypatch.setattr(rt.run, "decide", broken_decision)
    with pytest.raises(RuntimeError, match="comparison broke"):  # after importing, tuning and scoring
        retrain(ws, "shop", str(new_csv), mode="retune", n_trials=2, algorithms=["TopPop", "RP3beta"])
    assert catalog_state(ws) == state
    journal = json.loads((ws.data_dir / "locks" / "shop.retrain.lock").read_text())
    assert journal["state"] == "rolled back" and journal["removed"]


def test_activation_does_not_override_a_change_made_during_the_run(shop, monkeypatch):
    ws, _ = shop
    real_decide = rt.run.decide

    def decide_while_someone_deactivates(*args, **kwargs):
        ws.catalog.execute("UPDATE projects SET active_model_id = NULL WHERE name = 'shop'")  # e.g. from a dashboard
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(rt.run, "decide", decide_while_someone_deactivates)
    outcome = retrain(ws, "shop", activate="always")
    assert outcome.decision == "kept" and "changed during the run" in outcome.reason
    assert ws.active_model("shop") is None and outcome.active_model_id is None


# -- the lock -----------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import fcntl, json, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": "here", "started_at": "just now"}).encode())
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_second_retrain_of_a_project_gets_a_clear_busy_message(shop):
    ws, _ = shop
    lock_file = ws.data_dir / "locks" / "shop.retrain.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        state = catalog_state(ws)
        with pytest.raises(RetrainBusyError, match=rf"'shop' is already being retrained by process {holder.pid}"):
            retrain(ws, "shop")
        with pytest.raises(RetrainBusyError, match="after waiting 0.3 s"):
            retrain(ws, "shop", lock_timeout=0.3)
        assert catalog_state(ws) == state
    finally:
        holder.kill()
        holder.wait()
    # The holder died holding the lock: the next run takes it over.
    assert retrain(ws, "shop", activate="never").decision == "kept"


def test_the_next_run_removes_what_a_crashed_run_registered(shop):
    ws, new_csv = shop
    project = ws.project("shop")
    active = ws.active_model("shop")
    # What a run that died after importing and training had left behind, and one killed before its
    # next training job recorded a process (a PENDING model and job), and its journal.
    with ws.catalog.tagged("crashed-run"):
        data = ws.import_training_data(project, str(new_csv))
        orphan = ws.train(ws.configuration(active.configuration_id), data)
        pending_model, pending_job = create_model_record(ws, ws.configuration(active.configuration_id), data)
    journal = {"state": "running", "project_id": project.id, "pid": os.getpid(), "host": socket.gethostname(),
               "process_started": psutil.Process().create_time(), "started_at": "earlier", "run_id": "crashed-run",
               "active_before": active.id, "metrics_backup": {}}
    lock_file = ws.data_dir / "locks" / "shop.retrain.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock_file.write_text(json.dumps(journal))

    outcome = retrain(ws, "shop", activate="never")
    assert any("died mid-run" in note for note in outcome.notes)
    assert orphan.id not in set(ws.models("shop")["id"]) and not Path(orphan.file).exists()
    assert data.id not in set(ws.training_data_sets("shop")["id"])
    assert not ws.catalog.query("SELECT id FROM jobs WHERE id IN (?, ?)", [orphan.job_id, pending_job])
    assert not ws.catalog.query("SELECT id FROM models WHERE id = ?", [pending_model])
    assert sorted(ws.models("shop")["id"]) == [active.id, outcome.new_model.id]
    assert ws.active_model("shop").id == active.id


# -- Papermill through the CLI ------------------------------------------------------------------

def cli(ws, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`workbench --home HOME retrain ARGS` in this process (the notebook still runs in its own kernel)."""
    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_HOME", str(ws.home))  # the command sets it for the kernel; restored after
    monkeypatch.chdir(ws.home.parent)
    code = main(["--home", str(ws.home), "retrain", *args])
    out, err = capsys.readouterr()
    return code, out, err


def report_text(path: Path) -> str:
    notebook = nbformat.read(str(path), as_version=4)
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


def test_cli_runs_the_notebook_with_new_rows_appended(shop, monkeypatch, capsys):
    ws, new_csv = shop
    old = ws.active_model("shop")
    code, out, err = cli(ws, monkeypatch, capsys, "--project", "shop", "-p", "new_data", new_csv.name,
                         "-p", "tolerance", "0.5")
    assert code == 0, err
    report = Path(out.strip().splitlines()[-1])
    assert report.parent == ws.home / "runs" and report.name.startswith("shop-") and report.exists()
    assert "activated model" in out

    new = ws.active_model("shop")
    assert len(ws.models("shop")) == 2
    assert new.id != old.id and new.training_data_id != old.training_data_id
    notebook = nbformat.read(str(report), as_version=4)
    assert str(new_csv.resolve()) in notebook.cells[2].source  # papermill's injected parameters
    text = report_text(report)
    assert "ndcg@20" in text and "active (old)" in text and "<svg" in text  # the comparison: table and chart
    assert '"decision": "activated"' in text


def test_cli_retune_keeps_the_active_model_when_told_to(shop, monkeypatch, capsys):
    ws, _ = shop
    old = ws.active_model("shop")
    code, out, err = cli(ws, monkeypatch, capsys, "--project", "shop", "-p", "mode", "retune", "-p", "n_trials", "2",
                         "-p", "activate", "never", "-p", "new_data", "None")
    assert code == 0, err
    assert "registered model" in out and f"stays {old.id}" in out
    assert ws.active_model("shop").id == old.id
    assert len(ws.models("shop")) == 2 and len(ws.tuning_jobs("shop")) == 1
    assert '"mode": "retune"' in report_text(Path(out.strip().splitlines()[-1]))


def test_cli_reports_a_failing_cell_and_a_busy_project(shop, monkeypatch, capsys):
    ws, _ = shop
    lock_file = ws.data_dir / "locks" / "shop.retrain.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        state = catalog_state(ws)
        code, out, err = cli(ws, monkeypatch, capsys, "--project", "shop")
    finally:
        holder.kill()
        holder.wait()
    assert code == 75 and not out
    assert f"RetrainBusyError: Project 'shop' is already being retrained by process {holder.pid}" in err
    report = Path(err.split("report: ")[1].strip())
    assert report.exists() and "RetrainBusyError" in report_text(report)
    assert catalog_state(ws) == state


def test_cli_bad_parameters_exit_nonzero_and_change_nothing(shop, monkeypatch, capsys):
    ws, _ = shop
    state = catalog_state(ws)
    env = dict(os.environ, WORKBENCH_HOME=str(ws.home))
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(ws.home), "retrain", "--project",
                             "nowhere"], capture_output=True, text=True, env=env, cwd=ws.home.parent, timeout=120)
    assert result.returncode == 2 and "There is no project named 'nowhere'" in result.stderr
    code, out, err = cli(ws, monkeypatch, capsys, "--project", "shop", "-p", "new_data", "missing.csv")
    assert code == 2 and "'missing.csv': no such file" in err
    code, out, err = cli(ws, monkeypatch, capsys, "--project", "shop", "-p", "n_trails", "3")
    assert code == 2 and "Unknown parameter(s) n_trails" in err
    assert catalog_state(ws) == state and not (ws.home / "runs").exists()


def test_papermill_value_reads_values_like_papermill():
    from workbench.cli import papermill_value

    assert [papermill_value(v) for v in ("True", "False", "None", "3", "0.5", "ndcg", "1e-3")] == \
        [True, False, None, 3, 0.5, "ndcg", 0.001]



# -- the gate's pieces ----------------------------------------------------------------------------

def test_the_cut_holds_out_days_a_fraction_or_the_newer_half_of_a_new_batch():
    times = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D"))
    assert rt.gate.choose_cut(times, "10d")[0] == datetime(2024, 4, 9) - timedelta(days=10)
    cut, how = rt.gate.choose_cut(times, 0.2)
    assert (times >= cut).mean() == pytest.approx(0.2, abs=0.011) and "newest 20%" in how
    cut, how = rt.gate.choose_cut(times, None, batch_start=datetime(2024, 3, 1))  # a batch of 40 rows (40%)
    assert (times >= cut).sum() == 20 and "newer half of the new batch" in how
    cut, how = rt.gate.choose_cut(times, None, batch_start=datetime(2024, 1, 5))  # 96%: not a batch, the newest 10%
    assert (times >= cut).sum() == 10 and "newest 10%" in how
    for bad in ("soon", 1.5, 0, True):
        with pytest.raises(ValidationError, match="holdout must be None"):
            rt.gate.choose_cut(times, bad)


class FixedScores:
    """A recommender whose scores are given: rows are its users, columns its items."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)

    def get_score(self, users):
        return self.scores[users]

    def get_score_cold_user(self, profile):
        raise NotImplementedError


def test_per_user_metrics_match_a_hand_computation():
    # Items a..e. User x had a before the cut and took c, e after; user y had b, took a.
    frame = pd.DataFrame({
        "user_code": [0, 0, 0, 1, 1], "item_code": [0, 2, 4, 1, 0],
        "time": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-02-02", "2024-01-01", "2024-02-01"]),
    })
    users, items = np.array(["x", "y"], dtype=object), np.array(list("abcde"), dtype=object)
    holdout = rt.gate.make_holdout(frame, users, items, datetime(2024, 1, 15), "test")
    # The model ranks for x: a (seen, skipped), b, c, d, e -> top-2 b, c: one hit (c) at rank 2.
    # For y: e, d, c, b (seen), a -> top-2 e, d: no hit. It knows only items a..e in another order.
    scores = [[9, 8, 7, 6, 5], [1, 2, 3, 4, 5]]
    metrics = rt.gate.per_user_metrics(FixedScores(scores), users, items, holdout, cutoff=2)
    assert list(holdout.user_ids) == ["x", "y"]
    idcg_x = 1 + 1 / np.log2(3)
    assert metrics["ndcg"] == pytest.approx([(1 / np.log2(3)) / idcg_x, 0.0])
    assert metrics["recall"] == pytest.approx([0.5, 0.0]) and metrics["hit"] == pytest.approx([1.0, 0.0])
    assert metrics["precision"] == pytest.approx([0.5, 0.0]) and metrics["map"] == pytest.approx([(1 / 2) / 2, 0.0])
    # A model that does not know item c and user y: c cannot be recommended, y gets nothing.
    partial = rt.gate.per_user_metrics(FixedScores([[9, 8, 6, 5]]), users[:1], items[[0, 1, 3, 4]], holdout, cutoff=2)
    assert partial["hit"] == pytest.approx([0.0, 0.0])  # x's top-2 is b, d
    interval = rt.gate.bootstrap(metrics["ndcg"], metrics["ndcg"] + 0.1, samples=200)["difference"]
    assert interval.mean == pytest.approx(0.1) and interval.low == pytest.approx(0.1) == interval.high
