"""The Optuna search over algorithms."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import optuna
import pandas as pd
import pytest

from workbench import algorithms as A
from workbench import search as S
from workbench.errors import ValidationError, WorkbenchError
from workbench.evaluation import SplitConfig, make_split
from workbench.search import SearchError, run_search


def clustered_interactions(n_users=200, n_items=100, n_clusters=5, seed=0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    item_cluster = rng.randint(n_clusters, size=n_items)
    pop = np.minimum(rng.zipf(1.6, size=n_items).astype(float), 30.0)
    rows = []
    for u in range(n_users):
        c = rng.randint(n_clusters)
        n = rng.randint(6, 30)
        inside = np.flatnonzero(item_cluster == c)
        outside = np.flatnonzero(item_cluster != c)
        n_in = min(len(inside), rng.binomial(n, 0.8))
        n_out = min(len(outside), n - n_in)
        items = np.concatenate([
            rng.choice(inside, n_in, replace=False, p=pop[inside] / pop[inside].sum()),
            rng.choice(outside, n_out, replace=False, p=pop[outside] / pop[outside].sum()),
        ])
        rows += [(f"u{u}", f"i{i}") for i in items]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def make_test_split(seed=0):
    return make_split(
        clustered_interactions(seed=seed),
        config=SplitConfig(heldout_ratio=0.3, val_user_ratio=0.5, seed=seed),
        fingerprint=f"test-search-{seed}",
    )


@pytest.fixture(scope="module")
def split():
    return make_test_split()


FAST = ["TopPop", "IALS", "RP3beta", "CosineKNN", "TruncatedSVD"]


def test_search_beats_toppop_and_reports_everything(split):
    seen, logs = [], []
    res = run_search(split, n_trials=11, cutoff=10, seed=0, on_trial=seen.append, log=logs.append)
    top = res.trials.loc[res.trials.algorithm == "TopPop", "score"].max()
    assert res.best_score > top + 0.1 and res.best_algorithm != "TopPop"
    assert set(res.trials.algorithm) >= set(A.DEFAULT_PORTFOLIO)  # every default tried once
    assert len(res.trials) == 11 == len(seen)
    assert list(res.trials.columns[:6]) == ["number", "algorithm", "params", "score", "seconds", "state"]
    assert res.n_complete + res.n_pruned + res.n_failed == 11
    assert res.best_params == A.resolve_params(res.best_algorithm, res.best_params)
    assert res.metric_name == "ndcg@10" and res.elapsed > 0 and res.stopped_reason is None
    info = seen[-1]
    assert {"number", "algorithm", "params", "score", "seconds", "state", "best_so_far"} <= set(info)
    assert max(i["best_so_far"] for i in seen) == pytest.approx(res.best_score)
    assert any(m.startswith("Searching") for m in logs) and any(m.startswith("Trial 11: ") for m in logs)
    ials = [i for i in seen if i["algorithm"] == "IALS" and i["state"] == "COMPLETE"]
    assert ials and all(1 <= i["params"]["train_epochs"] <= S.MAX_EPOCHS for i in ials)


def test_fixed_seed_reproduces_the_best_configuration(split):
    a = run_search(split, algorithms=["IALS", "CosineKNN"], n_trials=10, cutoff=10, seed=3)
    b = run_search(split, algorithms=["IALS", "CosineKNN"], n_trials=10, cutoff=10, seed=3)
    assert (a.best_algorithm, a.best_params, a.best_score) == (b.best_algorithm, b.best_params, b.best_score)
    assert a.trials.params.tolist() == b.trials.params.tolist()


def test_iterative_trials_are_pruned(split):
    res = run_search(split, algorithms=["IALS"], n_trials=12, cutoff=10, seed=0)
    assert res.n_pruned > 0
    pruned = res.trials[res.trials.state == "PRUNED"]
    assert len(pruned) == res.n_pruned and pruned.epochs.notna().all()
    assert res.best_params["train_epochs"] >= 1


def test_timeout_is_honoured(split):
    started = time.perf_counter()
    res = run_search(split, algorithms=["IALS", "CosineKNN", "TruncatedSVD"], n_trials=100000,
                     timeout=3.0, cutoff=10, seed=0)
    wall = time.perf_counter() - started
    assert res.stopped_reason == "timeout"
    assert 1.5 <= res.elapsed <= 3.0 * 1.1 + 0.3
    assert wall <= 3.0 * 1.1 + 0.5


def test_cancel_between_trials(split):
    seen = []
    res = run_search(split, algorithms=FAST, n_trials=50, cutoff=10, on_trial=seen.append,
                     should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3 and len(res.trials) == 3 and res.stopped_reason == "cancelled"


def test_failed_trials_do_not_kill_the_search(split, monkeypatch):
    import irspack

    def boom(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(irspack.CosineKNNRecommender, "learn", boom)
    logs = []
    res = run_search(split, algorithms=["CosineKNN", "TruncatedSVD"], n_trials=6, cutoff=10, log=logs.append)
    assert res.n_failed >= 1 and res.best_algorithm == "TruncatedSVD"
    failed = res.trials[res.trials.state == "FAIL"]
    assert (failed.algorithm == "CosineKNN").all() and failed.error.str.contains("boom").all()
    assert any("boom" in m for m in logs)

    with pytest.raises(SearchError, match="boom") as e:
        run_search(split, algorithms=["CosineKNN"], n_trials=3, cutoff=10)
    assert isinstance(e.value, WorkbenchError)


def test_per_trial_timeout(split):
    res = run_search(split, algorithms=["IALS"], n_trials=3, cutoff=10, per_trial_timeout=1e-6)
    assert res.n_complete == 3 and (res.trials.epochs == 1).all()  # stopped after its 1st epoch
    res = run_search(split, algorithms=["TruncatedSVD", "IALS"], n_trials=4, cutoff=10, per_trial_timeout=1e-6)
    failed = res.trials[res.trials.state == "FAIL"]
    assert (failed.algorithm == "TruncatedSVD").all() and len(failed) >= 1
    assert failed.error.str.contains("per_trial_timeout").all()


def test_cost_guard_skips_with_a_logged_reason(split, monkeypatch):
    monkeypatch.setitem(A.LIMITS, "dense_items", 10)
    logs = []
    res = run_search(split, n_trials=7, cutoff=10, log=logs.append)
    assert "DenseSLIM" in res.skipped and "DenseSLIM" not in set(res.trials.algorithm)
    assert any(m.startswith("skipping DenseSLIM") for m in logs)
    with pytest.raises(SearchError, match="DenseSLIM"):
        run_search(split, algorithms=["DenseSLIM"], n_trials=2)


def test_bad_arguments(split):
    with pytest.raises(ValidationError, match="IALS"):
        run_search(split, algorithms=["ALS"], n_trials=1)
    with pytest.raises(ValidationError, match="ndcg"):
        run_search(split, metric="auc", n_trials=1)
    with pytest.raises(ValidationError):
        run_search(split, n_trials=0)


def _worker(path: str, queue) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    numbers = []
    run_search(make_test_split(), algorithms=FAST, n_trials=3, cutoff=10, seed=None,
               storage=path, study_name="shared", on_trial=lambda i: numbers.append(i["number"]))
    queue.put(numbers)


def test_two_processes_add_distinct_trials_to_one_journal_study(tmp_path):
    path = str(tmp_path / "study.journal")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    a, b = results
    assert len(a) == 3 and len(b) == 3 and not set(a) & set(b)
    study = optuna.load_study(study_name="shared", storage=S.open_storage(path))
    finished = [t for t in study.trials if t.state.is_finished()]
    assert sorted(t.number for t in finished) == sorted(a + b)
    summary = S.study_result(make_test_split(), storage=path, study_name="shared", cutoff=10)
    assert len(summary.trials) == 6
    assert summary.best_score == max(t.value for t in finished if t.state == optuna.trial.TrialState.COMPLETE)
    # a third run joins the same study and sees all of them
    res = run_search(make_test_split(), algorithms=FAST, n_trials=1, cutoff=10, storage=path, study_name="shared")
    assert len(res.trials) == 7
    with pytest.raises(ValidationError, match="cutoff"):
        run_search(make_test_split(), algorithms=FAST, n_trials=1, cutoff=20, storage=path, study_name="shared")
