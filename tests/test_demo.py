"""The synthetic demo data: realistic shape, deterministic, and learnable."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps

from workbench.demo import GENRES, generate_demo


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


def test_shape_and_types(demo):
    interactions, items = demo
    assert list(interactions.columns) == ["user_id", "item_id", "timestamp"]
    assert list(items.columns) == ["item_id", "title", "genres", "year"]
    assert 50_000 <= len(interactions) <= 100_000
    assert interactions.user_id.nunique() == 1500 and len(items) == 800 and items.item_id.is_unique
    assert isinstance(interactions.user_id.iloc[0], str) and isinstance(interactions.item_id.iloc[0], str)
    assert pd.api.types.is_datetime64_any_dtype(interactions.timestamp)
    assert set(interactions.item_id) <= set(items.item_id)
    assert not interactions.duplicated(["user_id", "item_id"]).any()


def test_realistic_distributions(demo):
    interactions, items = demo
    per_item = interactions.item_id.value_counts()
    per_user = interactions.user_id.value_counts()
    assert per_item.iloc[:80].sum() > 0.3 * len(interactions)  # the top 10% of items: a long tail behind them
    assert per_user.max() > 5 * per_user.median() and per_user.min() >= 5
    assert (interactions.timestamp.max() - interactions.timestamp.min()).days > 120
    assert items.title.is_unique and items.year.between(1950, 2024).all()
    assert all(g.split("|")[0] in GENRES for g in items.genres) and items.genres.str.contains("|", regex=False).any()


def test_deterministic_by_seed(demo):
    again = generate_demo(seed=0)
    pd.testing.assert_frame_equal(demo[0], again[0])
    pd.testing.assert_frame_equal(demo[1], again[1])
    assert not demo[0].equals(generate_demo(seed=1)[0])
    small, small_items = generate_demo(seed=3, n_users=50, n_items=40)
    assert small.user_id.nunique() == 50 and len(small_items) == 40


def test_personalized_models_beat_popularity(demo):
    from irspack import Evaluator, RP3betaRecommender, TopPopRecommender, split_dataframe_partial_user_holdout

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits, _ = split_dataframe_partial_user_holdout(
            demo[0], "user_id", "item_id", val_user_ratio=0.2, test_user_ratio=0.0, heldout_ratio_val=0.2, random_state=0
        )
    train, val = splits["train"], splits["val"]
    X = sps.vstack([train.X_all, val.X_train]).tocsr()
    evaluator = Evaluator(val.X_test, offset=train.n_users, cutoff=10)
    top_pop = evaluator.get_score(TopPopRecommender(X).learn())["ndcg"]
    rp3 = evaluator.get_score(RP3betaRecommender(X, top_k=100, beta=0.3).learn())["ndcg"]
    assert rp3 >= 1.3 * top_pop, (rp3, top_pop)
    assert np.isfinite(top_pop) and top_pop > 0.05  # popularity still carries signal
