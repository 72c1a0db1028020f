"""Beyond-accuracy metrics on hand-computed examples, and comparisons overall and per user segment."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
from conftest import clustered_interactions, item_table

from workbench.errors import ValidationError
from workbench.evaluation import METRIC_DEFINITIONS, beyond_accuracy, category_matrix
from workbench.evaluation.beyond import (
    catalog_coverage,
    intra_list_diversity,
    item_popularity,
    novelty,
    popularity_bias,
    popularity_percentiles,
)

# 4 users x 4 items: item popularity 3, 1, 1, 0
X = sps.csr_matrix(np.array([[1, 1, 0, 0],
                             [1, 0, 1, 0],
                             [1, 0, 0, 0],
                             [0, 0, 0, 0]], dtype=float))
LISTS = np.array([[0, 3], [0, 1], [-1, -1]])  # users 0, 1, 2; user 2 got nothing


def test_popularity_and_its_percentiles():
    assert list(item_popularity(X)) == [3, 1, 1, 0]
    # (less popular + half of as popular) / items: 3 -> (3 + .5)/4; 1 -> (1 + 1)/4; 0 -> .5/4
    assert list(popularity_percentiles(np.array([3, 1, 1, 0]))) == [0.875, 0.5, 0.5, 0.125]


def test_catalog_coverage():
    assert catalog_coverage(LISTS, 4) == 3 / 4  # items 0, 1, 3
    assert catalog_coverage(np.array([[0, 1, -1], [1, 2, -1]]), 5) == 3 / 5


def test_popularity_bias():
    # user 0: recommended (0.875 + 0.125)/2 = 0.5, own (0.875 + 0.5)/2 = 0.6875 -> -0.1875
    # user 1: recommended (0.875 + 0.5)/2 = 0.6875, own (0.875 + 0.5)/2 -> 0; user 2: no list, left out
    assert popularity_bias(LISTS, X[:3], item_popularity(X)) == pytest.approx(-0.09375)


def test_novelty():
    # self-information log2(4 users / popularity), an item nobody has counts as one user's
    expected = (math.log2(4 / 3) + 2) / 2  # both lists: one item with 3 users, one with 1 (or 0)
    assert novelty(LISTS, item_popularity(X), 4) == pytest.approx(expected)


def test_intra_list_diversity_and_the_category_matrix():
    metadata = pd.DataFrame({"item": ["a", "b", "c", "d"], "genres": ["X | Y", "X", "Z", None]})
    categories = category_matrix(["a", "b", "c", "d", "unknown"], metadata, "item", "genres")
    assert categories.shape == (5, 3) and list(np.asarray(categories.sum(axis=1)).ravel()) == [2, 1, 1, 0, 0]
    lists = np.array([[0, 1, 2],     # pairs: {X,Y}-{X} 0.5, {X,Y}-{Z} 1, {X}-{Z} 1 -> 2.5/3
                      [1, 3, -1],    # one item with categories: left out
                      [0, 1, -1]])   # 0.5
    assert intra_list_diversity(lists, categories) == pytest.approx((2.5 / 3 + 0.5) / 2)
    assert math.isnan(intra_list_diversity(np.array([[3, 4]]), categories))
    with pytest.raises(ValidationError, match="no column 'genre'"):
        category_matrix(["a"], metadata, "item", "genre")


def test_beyond_accuracy_names_every_metric_at_every_cutoff():
    categories = sps.csr_matrix(np.eye(4))
    out = beyond_accuracy(np.array([[0, 1], [0, 2]]), (1, 2), X, X[:2], categories)
    assert out["coverage@1"] == 0.25 and out["coverage@2"] == 0.75
    assert out["diversity@2"] == 1.0 and math.isnan(out["diversity@1"])
    assert {name.split("@")[0] for name in out} == set(METRIC_DEFINITIONS)
    assert all(isinstance(text, str) and text.endswith(".") for text in METRIC_DEFINITIONS.values())


# ---- compare --------------------------------------------------------------------------------


def popular_for_light_users(seed=0):
    """Light users take two of five blockbusters and one niche item; the others stay in their
    niche cluster and never watch a blockbuster."""
    rng = np.random.default_rng(seed)
    rows = []
    clusters = [np.arange(5 + 10 * c, 15 + 10 * c) for c in range(4)]
    for user in range(200):
        rows += [(f"light{user}", f"i{i}") for i in rng.choice(5, 2, replace=False)]
        rows.append((f"light{user}", f"i{rng.integers(5, 45)}"))
    for user in range(200):
        rows += [(f"fan{user}", f"i{i}") for i in rng.choice(clusters[user % 4], 6 if user < 100 else 10, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_a_model_that_wins_on_average_but_loses_on_light_users_shows_in_the_segments(workspace):
    project = workspace.create_project("segments", "user_id", "item_id")
    data = workspace.import_training_data(project, popular_for_light_users())
    top_pop = workspace.train(workspace.create_configuration(project, "TopPop"), data)
    niche = workspace.train(workspace.create_configuration(project, "RP3beta", {"beta": 1.0}), data)
    split = {"val_user_ratio": 1.0, "heldout_ratio": 0.34, "seed": 0}
    frame = workspace.compare([top_pop.id, niche.id], cutoffs=(5,), split=split, by="activity")
    assert list(frame.columns[:6]) == ["model_id", "algorithm", "configuration", "segment", "definition", "n_users"]
    assert list(frame["segment"]) == ["all", "light", "medium", "heavy"] * 2
    assert list(frame["model_id"]) == [niche.id] * 4 + [top_pop.id] * 4  # best overall first
    ndcg = frame.set_index(["algorithm", "segment"])["ndcg@5"]
    assert ndcg["RP3beta", "all"] > ndcg["TopPop", "all"]
    assert ndcg["TopPop", "light"] > ndcg["RP3beta", "light"]
    users = frame[frame["model_id"] == niche.id].set_index("segment")["n_users"]
    assert users["all"] == users["light"] + users["medium"] + users["heavy"] == 400
    assert users["light"] == 200 and "at most 2 training interactions" in frame.loc[1, "definition"]
    # the overall row is the plain comparison's
    plain = workspace.compare([top_pop.id, niche.id], cutoffs=(5,), split=split)
    assert "segment" not in plain
    assert plain.set_index("model_id").loc[niche.id, "ndcg@5"] == pytest.approx(ndcg["RP3beta", "all"])


def test_activity_tertiles_keep_tied_counts_together_and_fill_every_segment():
    from workbench.comparison import activity_segments
    from workbench.evaluation import Split, SplitConfig

    counts = [2] * 10 + [5] * 10 + [9] * 25  # a third of the users or more share the top count
    X = sps.csr_matrix((np.ones(sum(counts)), np.concatenate([np.arange(c) for c in counts]),
                        np.concatenate([[0], np.cumsum(counts)])), shape=(len(counts), 10))
    users = np.arange(len(counts))
    split = Split(X_train=X, X_val_ground_truth=X, val_user_indices=users, config=SplitConfig(), fingerprint="x")
    segments = {s.name: (s.definition, len(s.rows)) for s in activity_segments(split)}
    assert segments == {"light": ("at most 4 training interactions", 10), "medium": ("5 to 8 training interactions", 10),
                        "heavy": ("more than 8 training interactions", 25)}


def test_new_users_since_a_date_are_scored_apart(workspace, project):
    data = workspace.import_training_data(project, clustered_interactions())  # user k starts on day k of 2024
    model = workspace.train(workspace.create_configuration(project, "RP3beta"), data)
    frame = workspace.compare([model.id], cutoffs=(10,), split={"val_user_ratio": 1.0}, by="new_since",
                              since="2024-06-01")
    users = frame.set_index("segment")["n_users"]
    assert list(frame["segment"]) == ["all", "new", "existing"]
    assert users["new"] == 300 - 152 and users["existing"] == 152  # day 152 of 2024 is June 1st
    assert "2024-06-01" in frame.loc[1, "definition"]
    with pytest.raises(ValidationError, match="since="):
        workspace.compare([model.id], by="new_since")
    with pytest.raises(ValidationError, match="by must be one of"):
        workspace.compare([model.id], by="country")


def test_new_since_needs_times(workspace):
    project = workspace.create_project("untimed", "user_id", "item_id")
    data = workspace.import_training_data(project, clustered_interactions().drop(columns="timestamp"))
    model = workspace.train(workspace.create_configuration(project, "TopPop"), data)
    with pytest.raises(ValidationError, match="needs interaction times"):
        workspace.compare([model.id], by="new_since", since="2024-06-01")


def test_compare_reports_beyond_accuracy_and_diversity_with_metadata(workspace, dataset, metadata):
    top_pop = workspace.train(workspace.create_configuration("shop", "TopPop"), dataset)
    knn = workspace.train(workspace.create_configuration("shop", "CosineKNN"), dataset)
    frame = workspace.compare([top_pop.id, knn.id], cutoffs=(10,), metadata=metadata).set_index("algorithm")
    for column in ("coverage@10", "popularity_bias@10", "novelty@10", "diversity@10"):
        assert frame[column].notna().all(), column
    assert frame.loc["TopPop", "coverage@10"] < frame.loc["CosineKNN", "coverage@10"]
    assert frame.loc["TopPop", "novelty@10"] < frame.loc["CosineKNN", "novelty@10"]
    assert frame.loc["TopPop", "popularity_bias@10"] > frame.loc["CosineKNN", "popularity_bias@10"]
    assert 0 <= frame.loc["CosineKNN", "diversity@10"] <= 1
    assert workspace.model(knn.id).metrics["novelty@10"] == pytest.approx(frame.loc["CosineKNN", "novelty@10"])
    assert "diversity@10" not in workspace.compare([knn.id], cutoffs=(10,))
    with pytest.raises(ValidationError, match="no column 'tags'"):
        workspace.compare([knn.id], metadata=item_table(), category_column="tags")
