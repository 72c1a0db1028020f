"""`make bench` in miniature: every benchmark runs and reports (its numbers are asserted nowhere);
and the tuning benchmark's protocol: its test split and its one evaluator."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import irspack
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
from conftest import clustered_interactions

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import protocol  # noqa: E402

SECTIONS = ["## Machine", "## Targets", "## Import", "## Growth from 1M to 10M interactions, and peak memory",
            "## train() overhead", "## Recommendations", "## Tuning: the final model on a held-out test set",
            "## The catalog under many processes", "## Explaining recommendations", "## Interaction weights"]
PLOTS = ["import", "scale_seconds", "scale_memory", "train_overhead", "recommend_all_users", "tuning"]


@pytest.mark.slow
def test_smoke_report_has_every_section_target_and_plot(tmp_path):
    browser = shutil.which("chromium") is not None
    result = subprocess.run([sys.executable, str(BENCH / "report.py"), "--smoke", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    for heading in SECTIONS + (["## Dashboard first paint"] if browser else []):
        assert heading in report
    for plot in PLOTS + (["dashboards"] if browser else []):
        png = tmp_path / "plots" / f"{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"(plots/{plot}.png)" in report
    targets = report.split("## Targets")[1].split("\n## ")[0]
    for kind in ["import never slower than the pandas path", "`::` import >= 10x", "fixed cost of an import <= 20 ms",
                 "train() overhead", "single-user top-10 p50", "all users >= 50,000 users/s",
                 "tuning (synthetic): test nDCG@20 >= irspack per-class tuning's",
                 "no model file the workbench writes is refused by its own reader", "catalog soak: no lost write",
                 "`ws.models()` p99 under the soak", "explaining a top-10 adds <= 2 ms p50"] + (
                     ["preheated first paint"] if browser else []):
        assert kind in targets
    tuning = report.split("## Tuning")[1].split("\n## ")[0]
    assert "| workbench | 0." in tuning and "| irspack | 0." in tuning  # test scores of both final models
    assert re.search(r"\d+ targets: \d+ pass, \d+ miss", report)
    assert "| CPU |" in report and "irspack 0.5" in report
    # the report can be re-rendered from the raw results it left behind
    (tmp_path / "REPORT.md").unlink()
    subprocess.run([sys.executable, str(BENCH / "report.py"), "--render", str(tmp_path)], check=True,
                   capture_output=True)
    assert (tmp_path / "REPORT.md").read_text().split("## Import")[1] == report.split("## Import")[1]


def test_test_split_holds_out_a_fifth_of_each_active_user_and_never_changes():
    frame = clustered_interactions(n_users=60, per_user=12)[["user_id", "item_id"]]
    light = pd.DataFrame({"user_id": ["light"] * 4, "item_id": ["i1", "i2", "i3", "i4"]})
    frame = pd.concat([frame, light], ignore_index=True)
    rest, test = protocol.split_test(frame)
    assert len(rest) + len(test) == len(frame)
    assert rest.merge(test, on=["user_id", "item_id"]).empty
    assert (test.groupby("user_id").size() == 2).all() and test["user_id"].nunique() == 60  # floor(0.2 x 12)
    assert "light" not in set(test["user_id"])  # fewer than 5 interactions: never tested
    again_rest, again_test = protocol.split_test(frame)
    pd.testing.assert_frame_equal(test, again_test)
    other = protocol.split_test(frame, seed=protocol.TEST_SEED + 1)[1]
    assert not other.equals(test)


def test_evaluator_agrees_with_irspacks_evaluator_on_a_models_top_20():
    frame = clustered_interactions(n_users=80, n_items=60, per_user=15)[["user_id", "item_id"]]
    rest, test = protocol.split_test(frame)
    X, users, items = irspack.df_to_sparse(rest, "user_id", "item_id")
    model = irspack.IALSRecommender(X, n_components=8)
    model.learn()
    user_index, item_index = {u: i for i, u in enumerate(users)}, {v: i for i, v in enumerate(items)}
    known = test[test["item_id"].isin(item_index)]
    truth = sps.csr_matrix((np.ones(len(known)), (known["user_id"].map(user_index), known["item_id"].map(item_index))),
                           shape=X.shape)
    expected = irspack.Evaluator(truth, cutoff=20).get_score(model)
    scores = model.get_score_remove_seen(np.arange(X.shape[0]))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    lists = pd.DataFrame({"user_id": np.repeat(users, 20), "item_id": np.asarray(items)[top.ravel()],
                          "rank": np.tile(np.arange(20), len(users))})
    got = protocol.evaluate(lists, known, rest)
    for metric in ("ndcg", "recall", "hit"):
        assert got[f"{metric}@20"] == pytest.approx(expected[metric], rel=1e-9)
    assert got["users_without_list"] == 0 and got["seen_items_recommended"] == 0


def test_evaluator_scores_a_missing_list_as_zero_and_counts_seen_items():
    test = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"]})
    rest = pd.DataFrame({"user_id": ["a"], "item_id": ["w"]})
    lists = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["w", "x"], "rank": [0, 1]})
    got = protocol.evaluate(lists, test, rest)
    assert got["hit@20"] == pytest.approx(0.5)  # a hits; b, without a list, scores 0
    assert got["ndcg@20"] == pytest.approx(0.5 / np.log2(3))  # x at the second place, w (seen) a miss
    assert got["users_without_list"] == 1 and got["seen_items_recommended"] == 1


def test_dataset_folders_are_found_by_their_interaction_file(tmp_path):
    (tmp_path / "shop").mkdir()
    pd.DataFrame({"userId": [1, 1, 2], "movieId": [5, 5, 6], "rating": [4, 4, 3]}).to_csv(
        tmp_path / "shop" / "ratings.csv", index=False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("no interactions here")
    assert protocol.datasets(tmp_path) == {"shop": tmp_path / "shop" / "ratings.csv"}
    frame = protocol.load_interactions("shop", tmp_path)
    assert frame.to_dict("list") == {"user_id": [1, 2], "item_id": [5, 6]}  # distinct pairs
