"""Tuning jobs through the workspace: quality, budgets, pruning, parallel workers, comparisons."""

import math
import time

import pytest

from workbench.demo import generate_demo
from workbench.errors import JobFailedError, ValidationError


@pytest.fixture
def demo(workspace):
    interactions, items = generate_demo(seed=1, n_users=700, n_items=300)
    project = workspace.create_project("demo", "user_id", "item_id", "timestamp")
    data = workspace.import_training_data(project, interactions)
    workspace.import_item_metadata(project, items)
    return project, data


def test_a_tuned_model_beats_toppop_on_one_shared_split(workspace, demo):
    project, data = demo
    tuning = workspace.tune(data, algorithms=["TopPop", "IALS", "RP3beta"], n_trials=8, cutoff=10, seed=0)
    assert tuning.status == "SUCCESS" and tuning.model_id is not None
    assert tuning.best_algorithm in ("IALS", "RP3beta")
    assert set(tuning.trials["algorithm"]) <= {"TopPop", "IALS", "RP3beta"}
    assert tuning.best_score == pytest.approx(tuning.trials["score"].max())

    top_pop = workspace.train(workspace.create_configuration(project, "TopPop"), data)
    ranked = workspace.compare([top_pop.id, tuning.model_id], cutoffs=(10,))
    assert list(ranked["model_id"]) == [tuning.model_id, top_pop.id]
    assert ranked.loc[0, "ndcg@10"] > 1.3 * ranked.loc[1, "ndcg@10"]
    # The comparison's metrics land on the model records.
    assert workspace.models(project).set_index("id").loc[top_pop.id, "ndcg@10"] == pytest.approx(ranked.loc[1, "ndcg@10"])

    model = workspace.model(tuning.model_id)
    assert model.configuration == f"tuned-{tuning.id}-{tuning.best_algorithm}"
    assert model.metrics["val_ndcg@10"] == pytest.approx(tuning.best_score)


def test_the_tuning_record_mirrors_the_fields_users_know(workspace, demo):
    _, data = demo
    tuning = workspace.tune(data, algorithms=["TopPop", "RP3beta"], n_trials=3, timeout=60,
                            per_trial_timeout=30, train_after_tuning=False)
    for field in ("n_trials", "timeout_overall", "timeout_singlestep", "algorithms", "best_score",
                  "train_after_tuning", "best_configuration_id"):
        assert hasattr(tuning, field), field
    assert tuning.model_id is None and not tuning.train_after_tuning
    assert len(tuning.trials) == 3
    listing = workspace.tuning_jobs("demo")
    assert listing.loc[0, "trials_done"] == 3 and listing.loc[0, "status"] == "SUCCESS"
    lines = workspace.task_log(tuning_job=tuning.id)["message"]
    assert sum(line.startswith("Trial ") for line in lines) >= 3


def test_the_time_budget_holds(workspace, demo):
    _, data = demo
    started = time.monotonic()
    tuning = workspace.tune(data, algorithms=["IALS", "RP3beta", "CosineKNN"], n_trials=10_000, timeout=6,
                            train_after_tuning=False)
    elapsed = time.monotonic() - started
    assert tuning.status == "SUCCESS"
    assert elapsed <= 6 * 1.1 + 1.5  # the budget, 10%, and the job's own set-up
    assert len(tuning.trials) < 10_000


def test_unpromising_trials_are_pruned(workspace, demo):
    _, data = demo
    tuning = workspace.tune(data, algorithms=["IALS"], n_trials=14, seed=3, train_after_tuning=False)
    assert (tuning.trials["state"] == "PRUNED").sum() > 0


def test_a_fixed_seed_reproduces_the_best_configuration(workspace, demo):
    _, data = demo
    options = dict(algorithms=["RP3beta", "CosineKNN"], n_trials=6, seed=11, train_after_tuning=False)
    first, second = workspace.tune(data, **options), workspace.tune(data, **options)
    assert workspace.configuration(first.best_configuration_id).params == \
        workspace.configuration(second.best_configuration_id).params
    assert first.best_score == pytest.approx(second.best_score)


def test_two_workers_add_distinct_trials_to_one_study(workspace, demo):
    _, data = demo
    tuning = workspace.tune(data, algorithms=["RP3beta", "CosineKNN", "TopPop"], n_trials=8, n_jobs=2,
                            train_after_tuning=True)
    assert tuning.status == "SUCCESS"
    trials = tuning.trials
    assert set(trials["worker"]) == {0, 1}
    assert len(trials) == 8 and trials["number"].is_unique
    assert tuning.best_score == pytest.approx(trials["score"].max())
    assert len(workspace.models("demo")) == 1  # the best configuration is trained exactly once


def test_background_tuning_reports_progress_and_can_be_cancelled(workspace, demo):
    _, data = demo
    tuning = workspace.tune(data, algorithms=["IALS"], n_trials=500, background=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not len(tuning.refresh().trials):
        time.sleep(0.2)
    assert "trials" in tuning.job.progress["step"]
    tuning.job.cancel()
    with pytest.raises(JobFailedError, match="CANCELLED"):
        tuning.job.wait(timeout=60)
    assert tuning.refresh().model_id is None


def test_bad_tuning_requests_are_clear_errors(workspace, demo):
    _, data = demo
    with pytest.raises(ValidationError, match="metric"):
        workspace.tune(data, metric="auc")
    with pytest.raises(ValidationError, match="RP3beta"):
        workspace.tune(data, algorithms=["NoSuch"])
    with pytest.raises(ValidationError, match="n_trials"):
        workspace.tune(data, n_trials=0)
    assert workspace.tuning_jobs().empty


def test_skipped_algorithms_and_trials_are_in_the_result_the_trials_and_the_log(workspace, demo):
    _, data = demo
    # DenseSLIM's weights alone (300 x 300 floats) need more than this limit; IALS and TopPop fit.
    tuning = workspace.tune(data, algorithms=["DenseSLIM", "IALS", "TopPop"], n_trials=4, memory_limit="1.2MB",
                            train_after_tuning=False)
    assert tuning.status == "SUCCESS" and tuning.best_algorithm in ("IALS", "TopPop")
    left_out = [s for s in tuning.skipped if s["algorithm"] == "DenseSLIM"]
    assert left_out and "memory" in left_out[0]["reason"] and "1.2 MB" in left_out[0]["reason"]
    warnings = workspace.task_log(tuning_job=tuning.id).query("level == 'WARNING'")["message"]
    assert warnings.str.contains("DenseSLIM").any()
    assert not (tuning.trials["algorithm"] == "DenseSLIM").any()


def test_a_trial_estimated_to_overrun_shows_as_skipped(workspace, demo, monkeypatch):
    from workbench import algorithms

    _, data = demo
    slow = algorithms.Machine(gemm_flops=2e5, sparse_rate=2e4, memory_rate=2e5, threads=1)  # a machine 10^5 x slower
    monkeypatch.setattr(algorithms.costs, "_MEASURED", slow)
    tuning = workspace.tune(data, algorithms=["TruncatedSVD", "TopPop"], n_trials=3, timeout=30,
                            train_after_tuning=False)
    assert tuning.status == "SUCCESS" and tuning.best_algorithm == "TopPop"
    assert "TruncatedSVD" in {s["algorithm"] for s in tuning.skipped}
    assert any("timeout" in s["reason"] for s in tuning.skipped)


def test_weighted_data_tunes_weightings_and_trains_the_best_one_recorded_in_the_model(workspace):
    interactions, _ = generate_demo(seed=2, n_users=400, n_items=200)
    interactions["plays"] = (interactions.index % 7 + 1).astype(float)
    project = workspace.create_project("plays", "user_id", "item_id", "timestamp")
    data = workspace.import_training_data(project, interactions, weight_column="plays")
    tuning = workspace.tune(data, algorithms=["IALS", "TopPop"], n_trials=8, search_weighting=True, seed=1)
    weightings = {p["weighting"] for p in tuning.trials["params"]}
    assert "binary" in weightings and len(weightings) >= 2
    model = workspace.model(tuning.model_id)
    best = workspace.configuration(tuning.best_configuration_id).params
    assert model.params["weighting"] == best["weighting"]
    header = workspace.inspect_model_file(model.file)
    assert header["params"]["weighting"] == best["weighting"]
    # a configuration of its own: log1p confidence of the play counts
    config = workspace.create_configuration(project, "IALS", {"weighting": "log1p", "weighting_alpha": 2.0})
    trained = workspace.train(config, data)
    header = workspace.inspect_model_file(trained.file)
    assert header["params"]["weighting"] == "log1p" and header["params"]["weighting_alpha"] == 2.0
    recommender = workspace.load_model(trained.id).recommender
    assert recommender.X_train_all.data.max() == pytest.approx(1 + 2.0 * math.log1p(interactions["plays"].max()))


def test_tuning_on_a_sample_of_users_trains_on_all_of_them(workspace, demo):
    _, data = demo
    tuning = workspace.tune(data, algorithms=["IALS", "TopPop"], n_trials=3, sample_users=200, seed=0)
    assert "(a sample of 200 users, all items)" in workspace.task_log(tuning_job=tuning.id)["message"].str.cat()
    assert workspace.model(tuning.model_id).n_users == data.n_users
    with pytest.raises(ValidationError, match="sample_users"):
        workspace.tune(data, sample_users=1)
    with pytest.raises(ValidationError, match="memory_limit"):
        workspace.tune(data, memory_limit="a lot")
