"""The algorithm registry: names, parameters, defaults, search spaces, interaction weights, cost estimates."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import optuna
import pandas as pd
import pytest
import scipy.sparse as sps
from conftest import clustered_interactions as shared_clusters
from irspack.optimization.parameter_range import (
    CategoricalRange,
    LogUniformFloatRange,
    LogUniformIntegerRange,
    UniformFloatRange,
    UniformIntegerRange,
)

from workbench import algorithms as A
from workbench.errors import ValidationError
from workbench.evaluation import SplitConfig, evaluate, make_split

ALL = A.list_algorithms()


def clustered_interactions(seed=0, **shape) -> pd.DataFrame:
    """conftest's taste clusters, in this module's default shape."""
    shape = {"n_users": 240, "n_items": 120, "n_clusters": 6, **shape}
    return shared_clusters(**shape, seed=seed)


@pytest.fixture(scope="module")
def split():
    return make_split(clustered_interactions(), config=SplitConfig(heldout_ratio=0.5, val_user_ratio=0.3, seed=1))


# ---- names ------------------------------------------------------------------------------------


def test_all_irspack_algorithms_are_registered():
    assert set(ALL) == {
        "IALS", "RP3beta", "P3alpha", "CosineKNN", "AsymmetricCosineKNN", "JaccardKNN",
        "TverskyIndexKNN", "CosineUserKNN", "AsymmetricCosineUserKNN", "DenseSLIM", "EDLAE",
        "SLIM", "TopPop", "TruncatedSVD", "NMF",
    }


@pytest.mark.parametrize("name", ALL)
def test_resolves_by_short_and_class_name_in_any_case(name):
    algo = A.get_algorithm(name)
    assert algo.name == name
    cls = algo.recommender_class.__name__
    assert cls.endswith("Recommender")
    for alias in (name.lower(), name.upper(), cls, cls.lower(), cls.upper(), f"  {name} "):
        assert A.get_algorithm(alias) is algo
    assert A.get_algorithm(algo) is algo


def test_unknown_algorithm_lists_valid_ones():
    with pytest.raises(ValidationError) as e:
        A.get_algorithm("ALSX")
    msg = str(e.value)
    assert "ALSX" in msg
    for name in ALL:
        assert name in msg


# ---- parameters -------------------------------------------------------------------------------


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValidationError) as e:
        A.resolve_params("ials", {"factors": 10})
    msg = str(e.value)
    assert "factors" in msg and "n_components" in msg and "alpha0" in msg
    with pytest.raises(ValidationError, match="weighting"):  # TopPop's only parameters: the interaction weights
        A.resolve_params("TopPop", {"k": 1})
    with pytest.raises(ValidationError, match="n_threads"):
        A.resolve_params("RP3beta", {"n_threads": 4})  # fixed, not a user parameter


def test_resolve_merges_defaults_and_coerces_types():
    p = A.resolve_params("IALS", {"n_components": "32", "alpha0": "0.5", "solver_type": "cholesky"})
    assert p["n_components"] == 32 and isinstance(p["n_components"], int)
    assert p["alpha0"] == 0.5 and p["solver_type"] == "CHOLESKY"
    assert p["train_epochs"] == A.get_algorithm("IALS").defaults["train_epochs"]
    assert A.resolve_params("CosineKNN", {"normalize": "false", "top_k": 50.0}) == {
        **A.get_algorithm("CosineKNN").defaults, "normalize": False, "top_k": 50,
    }
    assert A.resolve_params("RP3beta", {"top_k": None})["top_k"] is None  # nullable
    assert A.resolve_params("TopPop", None) == {"weighting": "binary", "weighting_alpha": 1.0, "weighting_threshold": 4.0}


@pytest.mark.parametrize(
    "algorithm,params",
    [
        ("IALS", {"n_components": 3.5}),
        ("IALS", {"n_components": "many"}),
        ("IALS", {"n_components": 0}),
        ("IALS", {"alpha0": -1}),
        ("IALS", {"alpha0": float("nan")}),
        ("IALS", {"solver_type": "SGD"}),
        ("CosineKNN", {"normalize": "maybe"}),
        ("CosineKNN", {"top_k": True}),
        ("DenseSLIM", {"reg": None}),
        ("EDLAE", {"dropout_p": 1.5}),
    ],
)
def test_bad_values_are_rejected(algorithm, params):
    with pytest.raises(ValidationError) as e:
        A.resolve_params(algorithm, params)
    assert next(iter(params)) in str(e.value)


def test_bad_choice_lists_the_choices():
    with pytest.raises(ValidationError) as e:
        A.resolve_params("CosineKNN", {"feature_weighting": "idf"})
    assert "TF_IDF" in str(e.value) and "BM_25" in str(e.value)


@pytest.mark.parametrize("name", ALL)
def test_params_schema_describes_every_parameter(name):
    algo = A.get_algorithm(name)
    schema = algo.params_schema()
    assert set(schema) == set(algo.defaults)
    for pname, s in schema.items():
        assert s["type"] in ("int", "float", "bool", "str", "choices")
        assert s["default"] == algo.defaults[pname]
        if s["type"] == "choices":
            assert s["default"] in s["choices"]
    assert A.resolve_params(name, {k: v["default"] for k, v in schema.items()}) == algo.defaults


def test_defaults_are_sensible_not_irspack_pitfalls():
    ials = A.get_algorithm("IALS").defaults
    assert ials["alpha0"] > 0  # irspack's own default 0 scores ~0.003 nDCG@10 on ml-100k
    assert ials["train_epochs"] <= 32 and ials["solver_type"] == "CG"
    assert A.get_algorithm("RP3beta").defaults["top_k"] is not None
    assert A.get_algorithm("DenseSLIM").defaults["reg"] >= 10
    assert A.get_algorithm("TruncatedSVD").defaults["n_components"] > 4
    eff = A.effective_params("IALS", {}, 1000, 2000, 50_000)
    assert eff["reg"] == pytest.approx(8 / max(0.3 * 2000 + 50, 0.3 * 1000 + 25))
    assert "n_threads" in eff
    assert A.effective_params("IALS", {"reg": 0.5}, 1000, 2000)["reg"] == 0.5


# ---- training with defaults -------------------------------------------------------------------


def _learn(rec):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rec.learn()
    return rec


@pytest.mark.parametrize("name", ALL)
def test_each_algorithm_trains_with_defaults_and_scores(split, name):
    rec = _learn(A.build_recommender(name, split.X_train, None))
    m = evaluate(rec, split, cutoffs=(10,))
    for k, v in m.items():
        assert 0.0 <= v <= 1.0, (k, v)
    if name != "TopPop":
        assert m["ndcg@10"] > 0.05


def test_ials_default_beats_toppop_on_clustered_data(split):
    top = evaluate(_learn(A.build_recommender("TopPop", split.X_train)), split, cutoffs=(10,))
    ials = evaluate(_learn(A.build_recommender("IALS", split.X_train)), split, cutoffs=(10,))
    assert ials["ndcg@10"] > top["ndcg@10"] + 0.1


def test_build_clamps_sizes_to_the_data():
    X = sps.random(30, 12, density=0.3, format="csr", random_state=0)
    X.data[:] = 1
    svd = _learn(A.build_recommender("TruncatedSVD", X, {"n_components": 500}))
    assert svd.n_components == 11
    knn = A.build_recommender("CosineKNN", X, {"top_k": 1000})
    assert knn.top_k == 12


# ---- search spaces ----------------------------------------------------------------------------


class RecordingTrial:
    def __init__(self):
        self.space = {}

    def suggest_int(self, name, low, high, log=False, step=1):
        self.space[name] = ("num", low, high)
        return low

    def suggest_float(self, name, low, high, log=False, step=None):
        self.space[name] = ("num", low, high)
        return low

    def suggest_categorical(self, name, choices):
        self.space[name] = ("cat", list(choices))
        return choices[0]


@pytest.mark.parametrize("name", ALL)
def test_search_space_covers_irspack_default_tune_range(name):
    algo = A.get_algorithm(name)
    t = RecordingTrial()
    algo.suggest(t)
    prefix = f"{name}."
    assert all(k.startswith(prefix) for k in t.space)
    for r in algo.recommender_class.default_tune_range:
        kind, *rest = t.space[prefix + r.name]
        if isinstance(r, CategoricalRange):
            assert kind == "cat" and set(r.choices) <= set(rest[0])
        else:
            assert isinstance(r, (UniformIntegerRange, UniformFloatRange, LogUniformFloatRange, LogUniformIntegerRange))
            assert rest[0] <= r.low and rest[1] >= r.high, (r.name, rest, r.low, r.high)


@pytest.mark.parametrize("shape", [(300, 200, 8_000), (943, 1682, 90_000), (1892, 17632, 83_000), (10**6, 10**5, 10**8)])
def test_ials_shape_aware_space_still_covers_irspack_reg_range(shape):
    t = RecordingTrial()
    params = A.get_algorithm("IALS").suggest(t, n_users=shape[0], n_items=shape[1], nnz=shape[2])
    _, lam_lo, lam_hi = t.space["IALS.reg_lambda"]
    _, a_lo, a_hi = t.space["IALS.alpha0"]
    assert a_lo <= 3e-3 and a_hi >= 1.0 and "reg" in params
    # reachable reg = lam / scale(alpha0) must reach [1e-4, 1e-1] for every alpha0 in [3e-3, 1]
    for alpha0 in np.geomspace(3e-3, 1.0, 9):
        scale = A.ials_reg_scale(alpha0, *shape)
        assert lam_lo / scale <= 1e-4 * (1 + 1e-9) and lam_hi / scale >= 1e-1 * (1 - 1e-9)


@pytest.mark.parametrize("name", ALL)
def test_suggested_configurations_are_valid_and_build(split, name):
    algo = A.get_algorithm(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(2):
        trial = study.ask()
        params = algo.suggest(trial, n_users=split.n_users, n_items=split.n_items)
        resolved = A.resolve_params(name, params)
        rec = A.build_recommender(name, split.X_train, resolved)
        assert rec.n_items == split.n_items
        study.tell(trial, 0.0)


# ---- interaction weights ------------------------------------------------------------------------


WEIGHTS = sps.csr_matrix(np.array([[1.0, 0.0, 5.0], [3.0, 4.0, 0.0]]))


def test_weightings_give_each_pair_its_value():
    assert A.weighting.apply(WEIGHTS, {"weighting": "binary"}).toarray().tolist() == [[1, 0, 1], [1, 1, 0]]
    log1p = A.weighting.apply(WEIGHTS, {"weighting": "log1p", "weighting_alpha": 2.0})
    np.testing.assert_allclose(log1p.toarray(), [[1 + 2 * np.log(2), 0, 1 + 2 * np.log(6)], [1 + 2 * np.log(4), 1 + 2 * np.log(5), 0]])
    kept = A.weighting.apply(WEIGHTS, {"weighting": "threshold", "weighting_threshold": 4.0})
    low = A.weighting.BELOW_THRESHOLD
    assert kept.toarray().tolist() == [[low, 0, 1], [low, 1, 0]]  # below: still seen, almost weightless
    assert WEIGHTS.toarray().tolist() == [[1, 0, 5], [3, 4, 0]]  # the weights themselves are untouched
    with pytest.raises(ValidationError, match=">= 9"):
        A.weighting.apply(WEIGHTS, {"weighting": "threshold", "weighting_threshold": 9})
    binary = A.weighting.apply(WEIGHTS, {"weighting": "binary"})
    assert A.weighting.apply(binary, {}) is binary  # nothing to change: no copy


def test_the_weighting_is_a_parameter_of_every_configuration_but_never_reaches_irspack():
    for name in ALL:
        params = A.resolve_params(name, {"weighting": "LOG1P", "weighting_alpha": "0.5"})
        assert params["weighting"] == "log1p" and params["weighting_alpha"] == 0.5
        assert not set(A.weighting.NAMES) & set(A.effective_params(name, params, 10, 10, 20))
    with pytest.raises(ValidationError, match="binary"):
        A.resolve_params("IALS", {"weighting": "sqrt"})
    rec = A.build_recommender("TopPop", WEIGHTS, {"weighting": "threshold", "weighting_threshold": 4})
    assert rec.X_train_all.toarray().tolist() == [[0.001, 0, 1], [0.001, 1, 0]]
    assert A.build_recommender("TopPop", WEIGHTS).X_train_all.toarray().tolist() == [[1, 0, 1], [1, 1, 0]]


def test_threshold_range_spans_the_weights_that_change_something():
    assert A.weighting.threshold_range(sps.csr_matrix(np.ones((3, 3)))) is None  # every pair weighs the same
    ratings = sps.csr_matrix(np.arange(1, 6, dtype=float).reshape(1, 5).repeat(4, axis=0))
    low, high = A.weighting.threshold_range(ratings)
    assert 1 < low <= 2 and 4 <= high <= 5


# ---- costs ------------------------------------------------------------------------------------

SLOW = A.Machine(gemm_flops=1e10, sparse_rate=1e8, memory_rate=1e9, threads=1)
FAST = A.Machine(gemm_flops=1e11, sparse_rate=1e9, memory_rate=1e10, threads=1)


def _estimate(name, params, n_users, n_items, nnz, speed=SLOW):
    return A.estimate_cost(name, params, A.DataShape.uniform(n_users, n_items, nnz), speed)


def test_estimates_follow_what_drives_each_algorithm_s_cost():
    # DenseSLIM: W is n_items^2 floats; through the users' side below n_users items, else an n^3 inverse
    small, large = _estimate("DenseSLIM", {}, 610, 9_724, 100_000), _estimate("DenseSLIM", {}, 610, 19_448, 200_000)
    assert 9_724**2 * 4 <= small.peak_bytes < 2.5 * 9_724**2 * 4 and small.model_bytes >= 9_724**2 * 4
    assert large.peak_bytes == pytest.approx(4 * small.peak_bytes, rel=0.1)
    by_users, by_items = _estimate("DenseSLIM", {}, 1_000, 5_000, 50_000), _estimate("DenseSLIM", {}, 50_000, 5_000, 250_000)
    assert 2 * 5_000**2 * 4 <= by_items.peak_bytes <= 2.3 * 5_000**2 * 4  # X^T X kept, and its inverse
    assert by_items.seconds > 3 * by_users.seconds
    # IALS: epochs x (interactions x factors + rows x factors^2)
    ials = _estimate("IALS", {"n_components": 64, "train_epochs": 10}, 10_000, 5_000, 1_000_000)
    assert ials.epochs == 10 and ials.seconds == pytest.approx(ials.setup_seconds + 10 * ials.epoch_seconds)
    twice = _estimate("IALS", {"n_components": 64, "train_epochs": 10}, 20_000, 10_000, 2_000_000)
    assert twice.epoch_seconds == pytest.approx(2 * ials.epoch_seconds, rel=0.01)
    assert _estimate("IALS", {"n_components": 256}, 10_000, 5_000, 1_000_000).epoch_seconds > 4 * ials.epoch_seconds
    # item similarities keep top_k per item
    few, many = (_estimate("RP3beta", {"top_k": k}, 10_000, 50_000, 1_000_000) for k in (10, 1000))
    assert many.peak_bytes > 15 * few.peak_bytes and many.model_bytes >= 50_000 * 1000 * 12  # 1,000 (index, value) per item
    # a faster machine, a shorter estimate, the same memory
    fast = _estimate("DenseSLIM", {}, 610, 9_724, 100_000, FAST)
    assert fast.seconds < small.seconds / 5 and fast.peak_bytes == small.peak_bytes
    for name in ALL:
        e = _estimate(name, {"n_components": 8} if "n_components" in A.get_algorithm(name).defaults else {}, 500, 300, 5_000)
        assert e.seconds > 0 and e.peak_bytes > 0 and e.model_bytes > 0 and e.score_seconds > 0, name
        assert "~" in e.describe()


def test_unusable_data_is_named():
    assert "no interactions" in A.unusable_reason("TopPop", 10, 10, 0)
    assert "2 items" in A.unusable_reason("TruncatedSVD", 10, 1, 5)
    for name in ALL:
        assert A.unusable_reason(name, 943, 1682, 100_000) is None, name


def test_data_shape_counts_co_occurring_pairs():
    X = sps.csr_matrix(np.array([[1, 1, 0], [1, 1, 1]], dtype=float))
    shape = A.DataShape.of(X)
    assert (shape.n_users, shape.n_items, shape.nnz) == (2, 3, 5)
    assert shape.item_pairs == 2**2 + 3**2 and shape.user_pairs == 2**2 + 2**2 + 1


def test_ials_default_beats_toppop_on_demo_data():
    demo = pytest.importorskip("workbench.demo")
    interactions, _ = demo.generate_demo(seed=0, n_users=300, n_items=200)
    s = make_split(interactions, config=SplitConfig(heldout_ratio=0.5, val_user_ratio=0.3))
    top = evaluate(_learn(A.build_recommender("TopPop", s.X_train)), s, cutoffs=(10,))
    ials = evaluate(_learn(A.build_recommender("IALS", s.X_train)), s, cutoffs=(10,))
    assert ials["ndcg@10"] > top["ndcg@10"] + 0.05, (ials, top)


# ---- per-algorithm hooks, against irspack's own learn() / get_score() --------------------------


def _hooked(hook):
    """The algorithms whose `hook` is not the registry's default."""
    default = A.Algorithm.__dataclass_fields__[hook].default
    return [name for name in ALL if getattr(A.get_algorithm(name), hook) is not default]


def _learnt(name, X, params=None):
    return _learn(A.build_recommender(name, X, params))


def _scores(rec, users):
    s = rec.get_score(users)
    return s.toarray() if sps.issparse(s) else np.asarray(s)


def test_hooks_are_where_the_algorithms_need_them():
    assert set(_hooked("fit_trial")) == {"DenseSLIM", "EDLAE", "TruncatedSVD"}
    assert set(_hooked("fit_final")) == {"DenseSLIM", "EDLAE"}
    assert set(_hooked("estimate")) == set(ALL) - {"TopPop"}
    assert set(_hooked("factors")) == {"IALS", "TruncatedSVD", "NMF"}
    assert set(_hooked("statistics")) == {"IALS", "TruncatedSVD"}
    assert set(_hooked("item_weights")) == {"RP3beta", "P3alpha", "CosineKNN", "AsymmetricCosineKNN", "JaccardKNN",
                                            "TverskyIndexKNN", "DenseSLIM", "EDLAE", "SLIM"}
    assert set(_hooked("check")) == set(ALL)  # every algorithm checks what it holds beyond the training matrix


@pytest.mark.parametrize("name", _hooked("fit_trial"))
def test_fast_trial_fit_scores_like_irspack_learn(split, name):
    # TruncatedSVD: as many components as the data allows, where irspack's randomized SVD is exact too
    params = {"n_components": split.n_items - 1} if name == "TruncatedSVD" else {"reg": 30.0}
    users = np.arange(split.n_users)
    reference = _learnt(name, split.X_train, params)
    fast = A.build_recommender(name, split.X_train, params)
    cache = A.FitCache(split.X_train)
    A.get_algorithm(name).fit_trial(fast, cache)
    np.testing.assert_allclose(_scores(fast, users), _scores(reference, users), rtol=1e-3, atol=1e-3)
    assert evaluate(fast, split, cutoffs=(10,))["ndcg@10"] == pytest.approx(
        evaluate(reference, split, cutoffs=(10,))["ndcg@10"], abs=0.01)
    again = A.build_recommender(name, split.X_train, params)
    A.get_algorithm(name).fit_trial(again, cache)  # a second trial reuses what the first computed
    np.testing.assert_allclose(_scores(again, users), _scores(fast, users), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["DenseSLIM", "EDLAE"])
@pytest.mark.parametrize("shape", [(300, 500), (500, 300)])
def test_lean_dense_item_fits_give_irspack_s_weights_in_less_memory(name, shape):
    """Through the users' side (fewer users than items) or an in-place inverse (the other way round):
    irspack's weights, and a final model that holds float32 interactions (scoring never upcasts W)."""
    import tracemalloc

    X = sps.random(*shape, density=0.05, format="csr", random_state=np.random.RandomState(2))
    X.data[:] = 1.0
    params = {"reg": 5.0}
    reference = _learnt(name, X, params)
    tracemalloc.start()
    final = A.build_recommender(name, X, params)
    A.learn(final)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(final.W, reference.W, atol=1e-5)
    assert final.X_train_all.dtype == np.float32 and final.W.dtype == np.float32
    assert _scores(final, np.arange(shape[0])).dtype == np.float32
    A.get_algorithm(name).check(final, *shape)
    n = shape[1]
    assert peak < 1.5 * n * n * 4 + 3 * shape[0] * n * 8  # W, and no second n_items^2 copy
    cache = A.FitCache(X)
    for reg in (5.0, 50.0):  # trials share what they can (X^T X on the items' side)
        trial = A.build_recommender(name, X, {"reg": reg})
        A.get_algorithm(name).fit_trial(trial, cache)
        np.testing.assert_allclose(trial.W, _learnt(name, X, {"reg": reg}).W, atol=1e-5)
    assert ("gram" in cache) == (shape[0] >= shape[1])


@pytest.mark.parametrize("shape", [(120, 90), (90, 120)])
def test_svd_trials_with_many_components_score_the_exact_rank_k_approximation(shape):
    """Trial fits of TruncatedSVD from 64 components take the top of one exact SVD: the model's
    scores are the best rank-k approximation of the training matrix, however it is oriented;
    where irspack's randomized SVD is exact too (k near the rank), they are irspack's scores."""
    X = sps.random(*shape, density=0.15, format="csr", random_state=np.random.RandomState(1))
    X.data[:] = 1.0
    U, s, Vt = np.linalg.svd(X.toarray(), full_matrices=False)
    algo, cache, users = A.get_algorithm("TruncatedSVD"), A.FitCache(X), np.arange(shape[0])
    for k in (64, 80):
        rec = A.build_recommender(algo, X, {"n_components": k})
        algo.fit_trial(rec, cache)
        np.testing.assert_allclose(rec.get_score(users), (U[:, :k] * s[:k]) @ Vt[:k], atol=1e-8)
    np.testing.assert_allclose(rec.get_score(users), _learnt(algo, X, {"n_components": 80}).get_score(users), atol=1e-8)
    assert "svd" in cache  # computed once, shared by the trials
    small = A.build_recommender(algo, X, {"n_components": 8})
    algo.fit_trial(small, cache)  # below 64 components: irspack's own randomized fit
    np.testing.assert_allclose(small.get_score(users), _learnt(algo, X, {"n_components": 8}).get_score(users), atol=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_factors_reproduce_get_score(split, name):
    params = {"n_components": 8} if "n_components" in A.get_algorithm(name).defaults else None
    rec = _learnt(name, split.X_train, params)
    factors = A.get_algorithm(name).factors(rec)
    if name not in _hooked("factors"):
        assert factors is None
        return
    users_factors, item_factors = factors
    users = np.arange(0, split.n_users, 3)
    assert item_factors.shape[0] == split.n_items
    np.testing.assert_allclose(users_factors[users] @ item_factors.T, _scores(rec, users), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_item_weights_reproduce_get_score(split, name):
    rec = _learnt(name, split.X_train)
    W = A.get_algorithm(name).item_weights(rec)
    if name not in _hooked("item_weights"):
        assert W is None
        return
    assert W.shape == (split.n_items, split.n_items)
    users = np.arange(0, split.n_users, 3)
    expected = split.X_train[users] @ (W.toarray() if sps.issparse(W) else W)
    np.testing.assert_allclose(expected, _scores(rec, users), rtol=1e-5, atol=1e-6)
    assert A.get_algorithm(name).item_weights(A.build_recommender(name, split.X_train)) is None  # not learnt yet


def test_statistics_report_what_the_fit_measured(split):
    svd = _learnt("TruncatedSVD", split.X_train, {"n_components": 8})
    stats = A.get_algorithm("TruncatedSVD").statistics(svd)
    dense = split.X_train.toarray()
    projected = dense @ svd.get_item_embedding()  # the user factors of the fit, recomputed
    assert stats == {"explained_variance_ratio": pytest.approx(projected.var(axis=0).sum() / dense.var(axis=0).sum())}

    ials = A.get_algorithm("IALS")
    losses = []
    for epochs in (1, 8):
        rec = _learnt(ials, split.X_train, {"n_components": 8, "train_epochs": epochs})
        stats = ials.statistics(rec)
        assert set(stats) == {"final_loss", "epochs"} and stats["epochs"] == epochs
        losses.append(stats["final_loss"])
    assert 0 < losses[1] < losses[0]  # the loss irspack minimises went down with more epochs
    for name in set(ALL) - set(_hooked("statistics")):
        assert A.get_algorithm(name).statistics(_learnt(name, split.X_train, {"n_components": 4} if name == "NMF" else None)) == {}


@pytest.mark.parametrize("name", [n for n in ALL if A.get_algorithm(n).space is not None])
def test_space_point_maps_defaults_into_the_search_space(split, name):
    """A configuration sent through `space_point` and sampled back by the space is itself."""
    algo = A.get_algorithm(name)
    shape = (split.n_users, split.n_items, split.X_train.nnz)
    effective = A.effective_params(algo, {}, *shape)
    point = algo.space_point(dict(effective), shape)
    ranges = algo.space_ranges(*shape)
    inside = {}
    for full, spec in ranges.items():
        value = point[full[len(name) + 1:]]
        if spec[0] == "cat" and value in spec[1] or spec[0] != "cat" and value is not None and spec[1] <= value <= spec[2]:
            inside[full] = value
    sampled = algo.suggest(optuna.trial.FixedTrial(inside), n_users=shape[0], n_items=shape[1], nnz=shape[2])
    for key, value in sampled.items():
        if f"{name}.{key}" in inside or key == "reg":
            assert value == pytest.approx(effective[key]), key


@pytest.mark.parametrize("name", ALL)
def test_check_accepts_a_learnt_model_and_refuses_other_shapes_or_bad_indices(split, name):
    from workbench.errors import ModelFileError

    algo = A.get_algorithm(name)
    rec = _learnt(name, split.X_train, {"n_components": 4} if "n_components" in algo.defaults else None)
    assert A.algorithm_of(rec) is algo
    algo.check(rec, split.n_users, split.n_items)
    with pytest.raises(ModelFileError):
        algo.check(rec, split.n_users, split.n_items + 1)
    with pytest.raises(ModelFileError):
        algo.check(rec, split.n_users + 1, split.n_items)
    with pytest.raises(ModelFileError):  # not learnt
        algo.check(A.build_recommender(name, split.X_train), split.n_users, split.n_items)
    # every sparse matrix the model holds, one index pushed out of range
    matrices = [(key, value) for key, value in vars(rec).items() if sps.issparse(value)]
    assert matrices
    for _, matrix in matrices:
        saved = matrix.indices[0]
        matrix.indices[0] = matrix.shape[1 if matrix.format == "csr" else 0] + 5
        with pytest.raises(ModelFileError, match="indices"):
            algo.check(rec, split.n_users, split.n_items)
        matrix.indices[0] = saved
    algo.check(rec, split.n_users, split.n_items)
