"""Validation splits and metrics."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sps
from irspack import CosineKNNRecommender, Evaluator, IALSRecommender, TopPopRecommender

from workbench import evaluation as E
from workbench.errors import ValidationError
from workbench.evaluation import SplitConfig, evaluate, make_split


def interactions(n_users=150, n_items=60, seed=0, with_duplicates=True) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    rows = []
    for u in range(n_users):
        n = rng.randint(1, 30)
        items = rng.choice(n_items, size=min(n, n_items), replace=False)
        rows += [(f"user{u:03d}", f"item{i:03d}", int(rng.randint(0, 10**6))) for i in items]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    if with_duplicates:  # a repeated (user, item) pair with a later time
        dup = df.iloc[:5].copy()
        dup["timestamp"] += 10**6
        df = pd.concat([df, dup], ignore_index=True)
    return df


def with_codes(df: pd.DataFrame) -> pd.DataFrame:
    """Like the data layer's read_interactions: codes + ids, sorted by codes."""
    out = df.copy()
    out["user_code"], _ = pd.factorize(out["user_id"], sort=True)
    out["item_code"], _ = pd.factorize(out["item_id"], sort=True)
    out["time"] = pd.to_datetime(out.pop("timestamp"), unit="s")
    return out.sort_values(["user_code", "item_code"]).reset_index(drop=True)


@pytest.fixture(autouse=True)
def fresh_cache():
    E.clear_split_cache()
    yield
    E.clear_split_cache()


def pairs(X: sps.csr_matrix, rows=None) -> set:
    X = X.tocoo()
    r = X.row if rows is None else np.asarray(rows)[X.row]
    return set(zip(r.tolist(), X.col.tolist()))


def latest_times(df: pd.DataFrame) -> dict:
    u, _ = pd.factorize(df["user_id"], sort=True)
    i, _ = pd.factorize(df["item_id"], sort=True)
    t = pd.DataFrame({"u": u, "i": i, "t": df["timestamp"]}).groupby(["u", "i"])["t"].max()
    return t.to_dict()


# ---- configuration ----------------------------------------------------------------------------


def test_config_validation_lists_choices():
    with pytest.raises(ValidationError) as e:
        SplitConfig(scheme="leave-one-out")
    assert all(s in str(e.value) for s in E.SCHEMES)
    for bad in ({"heldout_ratio": 0}, {"heldout_ratio": 1.0}, {"val_user_ratio": 1.5},
                {"time_quantile": 1}, {"seed": -1}, {"seed": "x"}):
        with pytest.raises(ValidationError):
            SplitConfig(**bad)
    assert SplitConfig(scheme="RANDOM", val_user_ratio=1).scheme == "random"
    with pytest.raises(ValidationError, match="heldout_ratio"):
        SplitConfig.from_dict({"holdout": 0.1})


# ---- determinism and caching ------------------------------------------------------------------


def test_split_is_deterministic_and_seed_dependent():
    df = interactions()
    cfg = SplitConfig(seed=7)
    a = make_split(df, config=cfg)
    E.clear_split_cache()
    b = make_split(df.sample(frac=1.0, random_state=3), config=cfg)  # row order must not matter
    assert a is not b
    assert (a.X_train != b.X_train).nnz == 0
    assert (a.X_val_ground_truth != b.X_val_ground_truth).nnz == 0
    assert np.array_equal(a.val_user_indices, b.val_user_indices)
    assert a.fingerprint == b.fingerprint
    c = make_split(df, config=SplitConfig(seed=8))
    assert not np.array_equal(a.val_user_indices, c.val_user_indices)


def test_same_fingerprint_and_config_give_the_same_split(tmp_path):
    df = interactions()
    cfg = SplitConfig(heldout_ratio=0.3)
    a = make_split(df, config=cfg, fingerprint="snap-1", cache_dir=tmp_path)
    assert make_split(df, config=SplitConfig(heldout_ratio=0.3), fingerprint="snap-1") is a
    assert make_split(df, config=cfg, fingerprint="snap-2") is not a
    assert len(list(tmp_path.glob("split-*.npz"))) == 2 - 1 + 0  # only the cache_dir call wrote
    E.clear_split_cache()
    b = make_split(df, config=cfg, fingerprint="snap-1", cache_dir=tmp_path)  # from disk
    assert b is not a and b.fingerprint == "snap-1" and b.config == cfg
    assert (a.X_train != b.X_train).nnz == 0
    assert (a.X_val_ground_truth != b.X_val_ground_truth).nnz == 0
    assert np.array_equal(a.val_user_indices, b.val_user_indices)
    assert list(b.user_ids) == list(a.user_ids) and list(b.item_ids) == list(a.item_ids)
    assert make_split(df, config=cfg, fingerprint="snap-1", cache_dir=tmp_path) is b


def test_matrix_input_gives_the_same_split_as_the_dataframe():
    df = with_codes(interactions(with_duplicates=False))
    n_users, n_items = df.user_code.max() + 1, df.item_code.max() + 1
    X = sps.csr_matrix((np.ones(len(df)), (df.user_code, df.item_code)), shape=(n_users, n_items))
    times = sps.csr_matrix(
        (df.time.astype("int64").to_numpy(dtype=float), (df.user_code, df.item_code)), shape=X.shape
    )
    for scheme in E.SCHEMES:
        cfg = SplitConfig(scheme=scheme)
        a = make_split(df, config=cfg)
        b = make_split(X, config=cfg, times=times)
        assert (a.X_train != b.X_train).nnz == 0, scheme
        assert np.array_equal(a.val_user_indices, b.val_user_indices), scheme
        assert a.user_ids[0] == "user000" and b.user_ids is None


# ---- what the schemes hold out ----------------------------------------------------------------


def test_random_scheme_holds_out_a_share_of_a_share_of_users():
    df = interactions()
    cfg = SplitConfig(scheme="random", heldout_ratio=0.25, val_user_ratio=0.4)
    s = make_split(df, config=cfg)
    full = latest_times(df)
    counts = pd.Series([u for u, _ in full]).value_counts()
    eligible = int((counts >= 2).sum())
    assert s.n_val_users == int(eligible * 0.4)
    assert s.X_train.shape == (df.user_id.nunique(), df.item_id.nunique())
    train, held = pairs(s.X_train), pairs(s.X_val_ground_truth, s.val_user_indices)
    assert not train & held and train | held == set(full)
    per_user = pd.Series([u for u, _ in held]).value_counts()
    for u in s.val_user_indices:
        n = counts[u]
        assert counts[u] >= 2
        assert per_user[u] == max(1, int(np.floor(n * 0.25))) and per_user[u] < n
    assert set(per_user.index) == set(s.val_user_indices.tolist())
    assert set(s.X_val_ground_truth.data) == {1.0}


def test_latest_scheme_holds_out_each_validation_users_latest_interactions():
    df = interactions()
    s = make_split(with_codes(df), config=SplitConfig(scheme="latest", heldout_ratio=0.3, val_user_ratio=0.5))
    t = latest_times(df)
    train, held = pairs(s.X_train), pairs(s.X_val_ground_truth, s.val_user_indices)
    assert held and not train & held
    for u in s.val_user_indices:
        h = [t[(u, i)] for (uu, i) in held if uu == u]
        k = [t[(u, i)] for (uu, i) in train if uu == u]
        assert h and k and min(h) >= max(k)


def test_time_scheme_holds_out_everything_after_the_cut():
    df = interactions()
    s = make_split(df, config=SplitConfig(scheme="time", time_quantile=0.8))
    t = latest_times(df)
    cut = np.quantile(np.array(list(t.values()), dtype=float), 0.8)
    train, held = pairs(s.X_train), pairs(s.X_val_ground_truth, s.val_user_indices)
    assert all(t[p] <= cut for p in train)
    assert all(t[p] > cut for p in held)
    late_users = {u for (u, i), v in t.items() if v > cut}
    train_users = {u for u, _ in train}
    assert set(s.val_user_indices.tolist()) == late_users & train_users
    # every late interaction left the training matrix, evaluated or not
    assert len(train) == sum(v <= cut for v in t.values())


def test_schemes_needing_times_say_so():
    df = interactions().drop(columns="timestamp")
    with pytest.raises(ValidationError, match="random"):
        make_split(df, config=SplitConfig(scheme="latest"))
    with pytest.raises(ValidationError, match="user_code"):
        make_split(pd.DataFrame({"a": [1]}))
    with pytest.raises(ValidationError):
        make_split(pd.DataFrame({"user_id": ["a"], "item_id": ["b"]}))  # nobody has 2 interactions


# ---- metrics ----------------------------------------------------------------------------------


def quiet_learn(rec):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rec.learn()
    return rec


def test_metrics_are_in_range_and_named():
    s = make_split(interactions(), config=SplitConfig(heldout_ratio=0.5, val_user_ratio=0.5))
    for rec in (TopPopRecommender(s.X_train), IALSRecommender(s.X_train, alpha0=0.3, n_threads=1)):
        m = evaluate(quiet_learn(rec), s)
        assert set(m) == {f"{k}@{c}" for k in E.DEFAULT_METRICS for c in (10, 20)}
        assert all(0.0 <= v <= 1.0 for v in m.values()), m
    top = evaluate(TopPopRecommender(s.X_train).learn(), s, cutoffs=(5,), metrics=("coverage", "appeared_item"))
    assert top["coverage@5"] == pytest.approx(top["appeared_item@5"] / s.n_items)
    with pytest.raises(ValidationError, match="ndcg"):
        evaluate(TopPopRecommender(s.X_train).learn(), s, metrics=("auc",))
    with pytest.raises(ValidationError):
        evaluate(TopPopRecommender(s.X_train[:-1]).learn(), s)
    full = s.X_train + sps.csr_matrix(
        (np.ones(s.n_heldout), (s.val_user_indices[s.X_val_ground_truth.tocoo().row], s.X_val_ground_truth.indices)),
        shape=s.X_train.shape,
    )
    with pytest.raises(ValidationError, match="leak"):
        evaluate(TopPopRecommender(full).learn(), s)


def test_split_pickles():
    import pickle

    s = make_split(interactions(), config=SplitConfig())
    s.evaluator(cutoff=5)
    t = pickle.loads(pickle.dumps(s))
    assert (t.X_train != s.X_train).nnz == 0 and t.config == s.config and t.fingerprint == s.fingerprint
    assert t.evaluator(cutoff=5).n_users == s.n_val_users


def test_subset_evaluator_agrees_with_irspacks_offset_evaluator():
    """Scattered validation rows scored via get_score == irspack's contiguous-block evaluator."""
    s = make_split(interactions(seed=3), config=SplitConfig(heldout_ratio=0.5, val_user_ratio=0.3))
    val = s.val_user_indices
    rest = np.setdiff1d(np.arange(s.n_users), val)
    X_perm = sps.vstack([s.X_train[rest], s.X_train[val]], format="csr")
    a = CosineKNNRecommender(s.X_train, top_k=20, n_threads=1).learn()
    b = CosineKNNRecommender(X_perm, top_k=20, n_threads=1).learn()
    ours = s.evaluator(cutoff=10).get_scores(a, [10])
    theirs = Evaluator(s.X_val_ground_truth, offset=len(rest), cutoff=10, n_threads=1).get_scores(b, [10])
    for k in ("ndcg@10", "map@10", "recall@10", "hit@10", "precision@10", "appeared_item@10"):
        assert ours[k] == pytest.approx(theirs[k]), k
    assert s.evaluator(cutoff=10).get_target_score(a) == pytest.approx(theirs["ndcg@10"])
    sub = s.evaluator(cutoff=10, max_users=10)
    assert sub.n_users == 10 and s.evaluator(cutoff=10, max_users=10) is sub
