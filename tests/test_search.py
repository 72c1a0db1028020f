"""The Optuna search over algorithms."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import clustered_interactions as shared_clusters

from workbench import algorithms as A
from workbench import search as S
from workbench.errors import ValidationError, WorkbenchError
from workbench.evaluation import SplitConfig, make_split
from workbench.search import SearchError, run_search


def clustered_interactions(seed=0, **shape) -> pd.DataFrame:
    """conftest's taste clusters, in this module's default shape, without times."""
    shape = {"n_users": 200, "n_items": 100, "n_clusters": 5, **shape}
    return shared_clusters(**shape, seed=seed).drop(columns="timestamp")


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
    # a non-iterative algorithm no trial of which can end within the limit is not searched at all
    res = run_search(split, algorithms=["TruncatedSVD", "IALS"], n_trials=4, cutoff=10, per_trial_timeout=1e-6)
    assert "per_trial_timeout" in res.skipped["TruncatedSVD"] and set(res.trials.algorithm) == {"IALS"}


def _machine_for(split, seconds, algorithm="TruncatedSVD", params=None):
    """A Machine on which the algorithm's configuration is estimated to take `seconds` on the split."""
    def machine(slowdown):
        return A.Machine(gemm_flops=1e9 / slowdown, sparse_rate=1e8 / slowdown, memory_rate=1e9 / slowdown, threads=1)

    def estimate(speed):
        budget = S.TrialBudget(A.DataShape.of(split.X_train), speed, 10**12, split.n_val_users, split.n_val_users,
                               S.MAX_EPOCHS)
        return budget.cost(A.get_algorithm(algorithm), A.resolve_params(algorithm, params)).seconds

    fixed = estimate(machine(1e-6))  # what does not depend on the machine's speed
    return machine((seconds - fixed) / (estimate(machine(1)) - fixed))


def test_trials_estimated_not_to_fit_are_skipped_with_the_reason_and_estimate(split):
    # On this (pretend) slow machine the default 16 components take 0.5 s, 4 components less:
    # large configurations would overrun the per-trial limit and are skipped, never run.
    slow = _machine_for(split, 0.5)
    warnings, seen = [], []
    res = run_search(split, algorithms=["TruncatedSVD"], n_trials=14, cutoff=10, seed=0, per_trial_timeout=1.0,
                     speed=slow, warn=warnings.append, on_trial=seen.append)
    skipped = res.trials[res.trials.state == "SKIPPED"]
    ran = res.trials[res.trials.state == "COMPLETE"]
    assert len(skipped) >= 1 and res.n_skipped == len(skipped) and res.n_failed == 0 and len(ran) >= 1
    assert skipped.error.str.contains("per_trial_timeout=1 s").all() and skipped.error.str.contains("estimate ~").all()
    assert all(e["seconds"] > 1.0 for e in skipped.estimate)  # the estimate (rescaled by the trials that ran)
    assert ran.params.map(lambda p: p["n_components"]).max() < skipped.params.map(lambda p: p["n_components"]).min()
    assert skipped.seconds.isna().all()  # not run
    assert len(warnings) == len(skipped) and all("skipped, not run" in w for w in warnings)
    assert [i["state"] for i in seen].count("SKIPPED") == len(skipped)


def test_an_algorithm_that_cannot_fit_the_memory_limit_is_left_out_and_says_why():
    items = make_split(clustered_interactions(n_users=300, n_items=1500, seed=2),
                       config=SplitConfig(heldout_ratio=0.3, val_user_ratio=0.3, seed=0), fingerprint="many-items")
    warnings = []
    res = run_search(items, algorithms=["DenseSLIM", "IALS", "TopPop"], n_trials=4, cutoff=10, memory_limit="5MB",
                     warn=warnings.append)
    reason = res.skipped["DenseSLIM"]
    assert "memory" in reason and "5.0 MB" in reason and f"{items.n_items:,} x {items.n_items:,}" in reason
    assert "DenseSLIM" not in set(res.trials.algorithm) and res.best_algorithm in ("IALS", "TopPop")
    assert any(w.startswith("skipping DenseSLIM") for w in warnings)
    with pytest.raises(SearchError, match="DenseSLIM.*memory"):
        run_search(items, algorithms=["DenseSLIM"], n_trials=2, memory_limit="5MB")
    with pytest.raises(ValidationError, match="memory_limit"):
        run_search(items, n_trials=1, memory_limit="lots")


def test_memory_limit_reads_bytes_text_and_the_environment(monkeypatch):
    assert S.memory_limit(2_000_000) == 2_000_000 and S.memory_limit("6GB") == 6 * 10**9
    assert S.memory_limit("512 MiB") == 512 * 2**20
    monkeypatch.setenv(S.MEMORY_LIMIT_VARIABLE, "3g")
    assert S.memory_limit() == 3 * 10**9
    monkeypatch.delenv(S.MEMORY_LIMIT_VARIABLE)
    import psutil

    assert S.memory_limit() == pytest.approx(psutil.virtual_memory().available / 2, rel=0.2)
    for bad in ("6", 6, "-1GB", "6 elephants"):
        with pytest.raises(ValidationError):
            S.memory_limit(bad)


def test_a_searched_weighting_is_recorded_with_each_configuration():
    df = clustered_interactions(seed=4)
    df["weight"] = np.random.RandomState(0).randint(1, 6, len(df)).astype(float)
    weighted = make_split(df, config=SplitConfig(heldout_ratio=0.3, val_user_ratio=0.5), fingerprint="weighted")
    assert set(weighted.X_train.data) == {1.0, 2.0, 3.0, 4.0, 5.0} and set(weighted.X_val_ground_truth.data) == {1.0}
    res = run_search(weighted, algorithms=["IALS", "RP3beta"], n_trials=12, cutoff=10, seed=0, search_weighting=True)
    kinds = {p["weighting"] for p in res.trials.params}
    assert {"binary", "log1p"} <= kinds <= {"binary", "log1p", "threshold"}
    assert res.trials.params.iloc[0]["weighting"] == "binary"  # the defaults stay binary
    assert res.best_params["weighting"] in kinds
    plain = run_search(weighted, algorithms=["IALS"], n_trials=3, cutoff=10)
    assert {p["weighting"] for p in plain.trials.params} == {"binary"}  # searched only when asked


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


def test_dense_item_models_are_tried_on_a_catalogue_of_ml_latest_small_s_size():
    """610 users x 9,724 items (MovieLens ml-latest-small): the fixed 6,000-item cap used to leave
    DenseSLIM out; its estimate (~0.4 GB, seconds) fits a 4 GB limit and a 10-minute search."""
    shape = A.DataShape.uniform(610, 9_724, 100_836)
    budget = S.TrialBudget(shape, A.machine(), S.memory_limit("4GB"), 610, 610, S.MAX_EPOCHS,
                           deadline=time.perf_counter() + 600, timeout=600, max_model_bytes=2**31)
    for name in ("DenseSLIM", "EDLAE"):
        cost = budget.cheapest(A.get_algorithm(name))
        assert budget.refusal(A.get_algorithm(name), cost, whole_search=True) is None, cost.describe()
        assert 9_724**2 * 4 <= cost.peak_bytes <= 1e9
    # 24,000 items: the weights alone (2.3 GB) exceed a 2 GB limit; the reason says so
    wide = S.TrialBudget(A.DataShape.uniform(610, 24_000, 100_836), A.machine(), S.memory_limit("2GB"), 610, 610,
                         S.MAX_EPOCHS)
    algo = A.get_algorithm("DenseSLIM")
    assert "more than the limit of 2.00 GB" in wide.refusal(algo, wide.cheapest(algo))


def test_trials_on_a_large_catalogue_are_scored_on_a_fixed_sample_of_validation_users():
    from types import SimpleNamespace

    from workbench.search.trial import scored_users

    assert scored_users(SimpleNamespace(n_val_users=800, n_items=1_682)) == (800, 800)
    assert scored_users(SimpleNamespace(n_val_users=10_000, n_items=5_000)) == (10_000, S.EPOCH_EVAL_MAX_USERS)
    assert scored_users(SimpleNamespace(n_val_users=10_000, n_items=20_000)) == (2_500, S.EPOCH_EVAL_MAX_USERS)
    trial, epoch = scored_users(SimpleNamespace(n_val_users=10_000, n_items=200_000))
    assert trial == epoch == S.EPOCH_EVAL_MAX_USERS  # the floor, whatever the catalogue


def _bandit_study(seconds: dict[str, float]) -> optuna.Study:
    """A study in which every algorithm has one finished trial of the same score, taking ``seconds``."""
    study = optuna.create_study(direction="maximize")
    names = list(seconds)
    for name, took in seconds.items():
        study.add_trial(optuna.trial.create_trial(
            params={"algorithm": name}, distributions={"algorithm": optuna.distributions.CategoricalDistribution(names)},
            value=0.3, user_attrs={"algorithm": name, "seconds": took}))
    return study


def test_the_bandit_gives_an_algorithm_whose_trials_cost_far_more_a_smaller_share():
    from workbench.search.bandit import COST_SLACK, choose_algorithm, cost_factors

    # within COST_SLACK of the typical algorithm: no penalty; at 8x the typical cost, half the share
    assert cost_factors({"a": [1.0], "b": [1.0, 3.0], "c": [1.5]}) == {}.fromkeys("abc", 1.0)
    assert cost_factors({"a": [1.0], "b": [1.0], "c": [8.0]})["c"] == pytest.approx((COST_SLACK / 8) ** 0.5)
    assert cost_factors({"a": [5.0]}) == {}  # nothing to compare with

    portfolio = [A.get_algorithm(n) for n in ("IALS", "RP3beta", "DenseSLIM")]

    def shares(seconds):
        study = _bandit_study(seconds)
        picks = [choose_algorithm(study, portfolio, seed=0, n=n) for n in range(600)]
        return {name: picks.count(name) / len(picks) for name in seconds}

    same = shares({"IALS": 2.0, "RP3beta": 2.0, "DenseSLIM": 2.0})
    costly = shares({"IALS": 2.0, "RP3beta": 2.0, "DenseSLIM": 32.0})  # 16x: a third of its weight
    assert costly["DenseSLIM"] < 0.6 * same["DenseSLIM"]
    assert costly["IALS"] > same["IALS"] and costly["RP3beta"] > same["RP3beta"]
