"""Tuning insight: parameter importances and each algorithm's best score against its trials."""

import math

import numpy as np
import pandas as pd
import pytest

from workbench.demo import generate_demo
from workbench.errors import NotFoundError
from workbench.insight import MIN_TRIALS, best_by_trials, by_algorithm, parameter_importances

SHAPE = (500, 300, 6000)


def rp3beta_trials(n, seed=0):
    """RP3beta trials whose score depends on beta alone (top_k and normalize_weight are noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for number in range(n):
        beta = float(10 ** rng.uniform(-5, 0))
        params = {"alpha": 1.0, "beta": beta, "top_k": int(rng.integers(2, 4096)),
                  "normalize_weight": bool(rng.random() < 0.5)}
        rows.append({"number": number, "algorithm": "RP3beta", "params": params,
                     "score": 0.5 - (np.log10(beta) + 2.5) ** 2 / 20, "state": "COMPLETE"})
    return pd.DataFrame(rows)


def test_the_parameter_that_drives_the_score_is_the_most_important():
    importances, notes = parameter_importances(rp3beta_trials(30), SHAPE)
    assert not notes
    assert set(importances["parameter"]) == {"beta", "top_k", "normalize_weight"}
    assert importances.iloc[0]["parameter"] == "beta" and importances.iloc[0]["importance"] > 0.8
    assert importances["importance"].sum() == pytest.approx(1.0)
    assert set(importances["n_trials"]) == {30}


def test_too_few_trials_give_a_note_not_importances():
    trials = pd.concat([rp3beta_trials(MIN_TRIALS - 1),
                        pd.DataFrame([{"number": 9, "algorithm": "TopPop", "params": {}, "score": 0.2,
                                       "state": "COMPLETE"}])])
    importances, notes = parameter_importances(trials, SHAPE)
    assert importances.empty and list(importances.columns) == ["algorithm", "parameter", "importance", "n_trials"]
    assert notes["RP3beta"] == f"{MIN_TRIALS - 1} completed trial(s); importances need at least {MIN_TRIALS}"
    assert notes["TopPop"] == "it has no parameters to tune"
    same = rp3beta_trials(8).assign(score=0.3)
    assert "scored the same" in parameter_importances(same, SHAPE)[1]["RP3beta"]


def test_best_score_against_trial_count():
    trials = pd.DataFrame({
        "number": [0, 1, 2, 3, 4, 5],
        "algorithm": ["IALS", "RP3beta", "IALS", "IALS", "RP3beta", "IALS"],
        "score": [0.30, 0.20, 0.25, 0.40, None, 0.45],
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "FAIL", "PRUNED"],
    }).sample(frac=1.0, random_state=1)  # the catalog's order is not the study's
    history = best_by_trials(trials)
    assert list(history["number"]) == [0, 1, 2, 3, 4, 5]
    assert list(history["trial"]) == [1, 1, 2, 3, 2, 4]
    assert list(history["best_score"]) == [0.30, 0.20, 0.30, 0.40, 0.20, 0.40]  # a pruned score is not a result
    summary = by_algorithm(history).set_index("algorithm")
    assert summary.loc["IALS", ["n_trials", "n_complete", "best_score", "best_trial"]].tolist() == [4, 3, 0.40, 3]
    assert summary.loc["RP3beta", ["n_trials", "n_complete", "best_score"]].tolist() == [2, 1, 0.20]


def test_tuning_insight_of_a_job(workspace):
    interactions, _ = generate_demo(seed=2, n_users=400, n_items=200)
    project = workspace.create_project("demo", "user_id", "item_id", "timestamp")
    data = workspace.import_training_data(project, interactions)
    tuning = workspace.tune(data, algorithms=["RP3beta", "CosineKNN"], n_trials=14, cutoff=10,
                            train_after_tuning=False)
    insight = workspace.tuning_insight(tuning.id)
    assert insight.metric == "ndcg@10" and insight.tuning_job_id == tuning.id
    assert len(insight.best_by_trials) == len(tuning.trials) == 14
    assert insight.by_algorithm["best_score"].max() == pytest.approx(tuning.best_score)
    assert insight.by_algorithm["n_trials"].sum() == 14
    for algorithm in ("RP3beta", "CosineKNN"):
        mine = insight.importances[insight.importances["algorithm"] == algorithm]
        if algorithm in insight.notes:
            assert mine.empty
        else:
            assert mine["importance"].sum() == pytest.approx(1.0) and mine["n_trials"].iloc[0] >= MIN_TRIALS
    assert not insight.importances.empty  # 14 trials over two algorithms: at least one has enough
    assert "Parameter importances" in insight._repr_html_()

    short = workspace.tune(data, algorithms=["RP3beta"], n_trials=2, train_after_tuning=False)
    few = workspace.tuning_insight(short.id)
    assert few.importances.empty and "importances need at least" in few.notes["RP3beta"]
    assert not math.isnan(few.by_algorithm.loc[0, "best_score"])
    with pytest.raises(NotFoundError):
        workspace.tuning_insight(9999)
