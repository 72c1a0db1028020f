"""Why a model recommends what it does: similar items and explained recommendations."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
from conftest import clustered_interactions

from workbench.errors import NotFoundError, ValidationError
from workbench.explanations import because_text
from workbench.recommend import EXPLAIN_TOP

PROFILE = ["i1", "i5", "i9", "i14"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from conftest import item_table

    import workbench as wb

    workspace = wb.open(tmp_path_factory.mktemp("explain") / "home")
    project = workspace.create_project("shop", "user_id", "item_id", "timestamp")
    workspace.import_training_data(project, clustered_interactions())
    workspace.import_item_metadata(project, item_table())
    return workspace


def trained(ws, algorithm, params=None):
    config = ws.create_configuration("shop", algorithm, params or {})
    return ws.load_model(ws.train(config, ws.latest_training_data("shop")).id)


def profile_matrix(r, item_ids):
    columns = sorted(int(np.flatnonzero(r.item_ids == i)[0]) for i in item_ids)
    return sps.csr_matrix((np.ones(len(columns)), (np.zeros(len(columns), dtype=int), columns)),
                          shape=(1, len(r.item_ids)))


def user_row(r, user_id):
    return int(np.flatnonzero(r.user_ids == user_id)[0])


# ---- similar items ----------------------------------------------------------------------------


def test_similar_items_of_a_knn_model_are_the_top_entries_of_its_weight_row(ws):
    r = trained(ws, "CosineKNN")
    W = sps.csr_matrix(r.recommender.W)
    for item in ("i3", "i40", "i77"):
        index = int(np.flatnonzero(r.item_ids == item)[0])
        row = W[index].toarray().ravel()
        row[index] = 0.0
        neighbours = np.flatnonzero(row > 0)
        expected = neighbours[np.argsort(-row[neighbours], kind="stable")][:8]
        similar = r.similar_items(item, cutoff=8)
        assert [s["item_id"] for s in similar] == list(r.item_ids[expected])
        assert np.allclose([s["similarity"] for s in similar], row[expected])
        assert item not in [s["item_id"] for s in similar]


def test_similar_items_of_a_factor_model_are_by_cosine_of_the_item_factors(ws):
    r = trained(ws, "IALS", {"n_components": 8, "train_epochs": 4})
    V = r.recommender.get_item_embedding().astype(np.float64)
    index = int(np.flatnonzero(r.item_ids == "i7")[0])
    cosine = V @ V[index] / (np.linalg.norm(V, axis=1) * np.linalg.norm(V[index]))
    cosine[index] = -np.inf
    expected = np.argsort(-cosine, kind="stable")[:5]
    similar = r.similar_items("i7", cutoff=5)
    assert [s["item_id"] for s in similar] == list(r.item_ids[expected])
    assert np.allclose([s["similarity"] for s in similar], cosine[expected])


def test_similar_items_with_metadata_and_clear_errors(ws):
    r = trained(ws, "RP3beta")
    rows = ws.similar_items(r.model.id, "i3", cutoff=4, metadata=True)
    assert len(rows) == 4 and all(row["title"] == f"Title {row['item_id'][1:]}" for row in rows)
    assert list(rows.to_frame().columns[:2]) == ["item_id", "similarity"]
    with pytest.raises(NotFoundError, match="'nope'"):
        r.similar_items("nope")
    for algorithm in ("TopPop", "CosineUserKNN"):
        model = trained(ws, algorithm).model
        with pytest.raises(ValidationError, match="neither item-item weights nor item factors"):
            ws.similar_items(model.id, "i3")


# ---- explanations -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["CosineKNN", "RP3beta", "DenseSLIM", "SLIM", "TruncatedSVD"])
def test_explanations_sum_to_the_score_for_item_based_models(ws, algorithm):
    r = trained(ws, algorithm)
    profiles = [("profile", r.recommend_for_profile(PROFILE, cutoff=5, explain=True), {"profile": PROFILE})]
    if algorithm != "TruncatedSVD":  # its known users' vectors come from a randomised SVD, not from the projection
        profiles.append(("user", r.recommend("u7", cutoff=5, explain=True), {"user_id": "u7"}))
    for _, recommendations, who in profiles:
        assert len(recommendations) == 5
        table = r.explain([row["item_id"] for row in recommendations], **who)
        totals = table.groupby("item_id", sort=False)["contribution"].sum()
        for row in recommendations:
            assert totals[row["item_id"]] == pytest.approx(row["score"], rel=1e-5, abs=1e-6)
            assert row["explained_score"] == pytest.approx(row["score"], rel=1e-5, abs=1e-6)


def test_each_recommendation_names_its_biggest_contributors_from_the_profile(ws):
    r = trained(ws, "CosineKNN")
    own = set(r.profile("u7"))
    for row in r.recommend("u7", cutoff=6, explain=True):
        table = r.explain([row["item_id"]], user_id="u7")
        assert set(table["because_item_id"]) == own
        positive = table[table["contribution"] > 0].head(EXPLAIN_TOP)
        assert [b["item_id"] for b in row["because"]] == list(positive["because_item_id"])
        for part in row["because"]:
            assert part["share"] == pytest.approx(part["contribution"] / row["explained_score"])
        assert table["share"].sum() == pytest.approx(1.0)
    explained = r.recommend("u7", cutoff=2, explain=True)
    assert "%)" in explained._repr_html_()  # "i3 (41%), ..."
    top = explained[0]["because"][0]
    titles = pd.Series({top["item_id"]: "Title A"})
    assert because_text(explained[0]["because"], titles).startswith(f"Title A ({top['share']:.0%})")


IALS_VARIANTS = [
    {},
    {"loss_type": "ORIGINAL", "alpha0": 0.1},
    {"nu": 0.5, "confidence_scaling": "log", "epsilon": 0.5, "alpha0": 1.0},
    {"alpha0": 0.0, "reg": 0.05},
]


@pytest.mark.parametrize("variant", IALS_VARIANTS)
def test_ials_explanations_reproduce_irspacks_user_solve(ws, variant):
    # With the Cholesky solver, irspack's cold-user solve is exact: the reference.
    r = trained(ws, "IALS", {"n_components": 12, "train_epochs": 6, "solver_type": "CHOLESKY", **variant})
    recommendations = r.recommend_for_profile(PROFILE, cutoff=8, explain=True)
    reference = r.recommender.get_score_cold_user(profile_matrix(r, PROFILE))[0]
    table = r.explain([row["item_id"] for row in recommendations], profile=PROFILE)
    totals = table.groupby("item_id", sort=False)["contribution"].sum()
    for row in recommendations:
        column = int(np.flatnonzero(r.item_ids == row["item_id"])[0])
        assert row["score"] == pytest.approx(reference[column], abs=1e-4)
        assert totals[row["item_id"]] == pytest.approx(reference[column], abs=1e-4)
        assert row["explained_score"] == pytest.approx(reference[column], abs=1e-4)
    # A known user: the closed form of the solve on their own training row.
    row_matrix = r.recommender.X_train_all[user_row(r, "u11")]
    reference = r.recommender.get_score_cold_user(row_matrix)[0]
    for row in r.recommend("u11", cutoff=5, explain=True):
        column = int(np.flatnonzero(r.item_ids == row["item_id"])[0])
        assert row["explained_score"] == pytest.approx(reference[column], abs=1e-4)


def test_ials_explanations_stay_close_to_the_served_scores_of_a_cg_model(ws):
    r = trained(ws, "IALS", {"n_components": 16})
    rows = list(r.recommend("u3", cutoff=10, explain=True)) + list(r.recommend_for_profile(PROFILE, cutoff=10, explain=True))
    scale = max(abs(row["score"]) for row in rows)
    for row in rows:
        assert abs(row["explained_score"] - row["score"]) <= 0.05 * scale
        assert row["because"] and row["because"][0]["contribution"] > 0


@pytest.mark.parametrize("algorithm, why", [("TopPop", "popularity alone"), ("CosineUserKNN", "similar users"),
                                            ("NMF", "non-negative fit")])
def test_models_that_cannot_be_explained_say_why(ws, algorithm, why):
    r = trained(ws, algorithm, {"n_components": 4} if algorithm == "NMF" else {})
    assert why in r.cannot_explain
    assert len(r.recommend("u7", cutoff=3)) == 3  # plain recommendations still work
    for call in (lambda: r.recommend("u7", explain=True), lambda: r.recommend_for_profile(PROFILE, explain=True),
                 lambda: r.explain(["i3"], user_id="u7")):
        with pytest.raises(ValidationError, match=why):
            call()
    if algorithm == "CosineUserKNN":  # irspack scores no new profile with it: said plainly, not NotImplementedError
        with pytest.raises(ValidationError, match="cannot score a new user's profile"):
            r.recommend_for_profile(PROFILE)


def test_explain_checks_its_arguments(ws):
    r = trained(ws, "RP3beta")
    assert r.cannot_explain is None
    with pytest.raises(ValidationError, match="either user_id"):
        r.explain(["i3"])
    with pytest.raises(ValidationError, match="either user_id"):
        r.explain(["i3"], user_id="u1", profile=["i2"])
    with pytest.raises(NotFoundError):
        r.explain(["nope"], user_id="u1")
    with pytest.raises(NotFoundError):
        r.explain(["i3"], user_id="nobody")
    assert list(r.explain("i3", profile=["i2", "i4"]).columns) == ["item_id", "because_item_id", "contribution", "share"]


def test_sample_recommendation_can_explain_with_metadata(ws):
    r = trained(ws, "CosineKNN")
    sample = ws.sample_recommendation(r.model.id, metadata=True, explain=True, seed=3)
    own = {row["item_id"] for row in sample["user_profile"]}
    for row in sample["recommendations"]:
        assert row["title"] and {b["item_id"] for b in row["because"]} <= own
