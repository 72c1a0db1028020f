"""The exact top-N used by every recommendation call."""

import numpy as np
import pytest
from conftest import clustered_interactions, error_without_waiting
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import NotFoundError, ValidationError
from workbench.topn import top_n


@settings(max_examples=200, deadline=None)
@given(n_rows=st.integers(1, 70), n_items=st.integers(1, 300), cutoff=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1), ties=st.booleans())
def test_top_n_equals_a_full_sort(n_rows, n_items, cutoff, seed, ties):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, (n_rows, n_items)).astype(np.float32) if ties else rng.standard_normal((n_rows, n_items))
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    rows, columns, values = top_n(scores, cutoff)
    for row in range(n_rows):
        finite = np.flatnonzero(np.isfinite(scores[row]))
        expected = finite[np.argsort(-scores[row, finite], kind="stable")][:cutoff]
        assert list(columns[rows == row]) == list(expected)
        assert np.array_equal(values[rows == row], scores[row, expected])


def _full_sort_top(scores, seen, cutoff):
    """Reference: every row's unseen finite columns by score descending, then column."""
    expected = []
    for row in range(scores.shape[0]):
        masked = scores[row].copy()
        masked[seen[row].indices] = -np.inf
        finite = np.flatnonzero(np.isfinite(masked))
        expected.append(finite[np.argsort(-masked[finite], kind="stable")][:cutoff])
    return expected


@settings(max_examples=150, deadline=None)
@given(n_users=st.integers(1, 90), n_items=st.integers(1, 400), n_factors=st.integers(1, 12),
       cutoff=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), ties=st.booleans(),
       density=st.sampled_from([0.0, 0.05, 0.3, 0.97]), head=st.integers(1, 64), chunk=st.integers(1, 50),
       block=st.integers(1, 40), duplicates=st.booleans())
def test_factor_top_n_equals_a_full_sort(n_users, n_items, n_factors, cutoff, seed, ties, density, head, chunk,
                                         block, duplicates):
    import scipy.sparse as sps

    from workbench import topn

    rng = np.random.default_rng(seed)
    # multiples of 1/64 (or small integers: many ties): every product and sum is exact in float32,
    # so any way of blocking the matrix product gives the same scores
    scale = 1.0 if ties else 64.0
    users = (np.round(rng.standard_normal((n_users, n_factors)) * scale) / scale).clip(-3, 3)
    items = (np.round(rng.standard_normal((n_items, n_factors)) * scale) / scale).clip(-3, 3)
    users[rng.random(n_users) < 0.1] = 0.0  # zero-norm users: every item ties at 0
    items = items * rng.choice([0.25, 1.0, 2.0], size=(n_items, 1))  # spread of norms, still exact
    users, items = users.astype(np.float32), items.astype(np.float32)
    seen = sps.random(n_users, n_items, density=density, format="csr", random_state=rng.integers(2**31))
    seen.data[:] = 1.0
    indices = rng.integers(0, n_users, n_users) if duplicates else np.arange(n_users)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(topn, "FACTOR_HEAD", head)
        patch.setattr(topn, "FACTOR_CHUNK", chunk)
        patch.setattr(topn, "FACTOR_BLOCK", block)
        parts = topn.FactorIndex(users, items).top_n_many(indices, seen, cutoff)
    got_users = np.concatenate([p[0] for p in parts])
    got_ranks = np.concatenate([p[1] for p in parts])
    got_items = np.concatenate([p[2] for p in parts])
    got_scores = np.concatenate([p[3] for p in parts])
    scores = users @ items.T
    expected = _full_sort_top(scores, seen, cutoff)
    position = 0
    for user in indices:  # grouped by user, in the order asked, ranks 1..n
        best = expected[user]
        assert list(got_users[position:position + len(best)]) == [user] * len(best)
        assert list(got_ranks[position:position + len(best)]) == list(range(1, len(best) + 1))
        assert list(got_items[position:position + len(best)]) == list(best)
        assert np.array_equal(got_scores[position:position + len(best)], scores[user, best])
        position += len(best)
    assert position == len(got_users)


def test_factor_models_take_the_fast_path_with_the_generic_answer(workspace, dataset):

    params = {"IALS": {"n_components": 8, "train_epochs": 4}, "TruncatedSVD": {"n_components": 8},
              "NMF": {"n_components": 8}, "RP3beta": None, "TopPop": None}
    for name, config_params in params.items():
        model = workspace.train(workspace.create_configuration(dataset.project_id, name, config_params), dataset)
        recommender = workspace.load_model(model.id)
        factors = recommender._factor_index()
        assert (factors is not None) == (name in ("IALS", "TruncatedSVD", "NMF")), name
        users = ["u3", "u1", "u3"] + list(recommender.user_ids[::7])
        for cutoff in (1, 10, 500):
            fast = recommender.recommend_many(users, cutoff=cutoff)
            recommender._factors = None  # force the generic path
            generic = recommender.recommend_many(users, cutoff=cutoff)
            recommender._factors = factors
            assert fast.dtypes.to_dict() == generic.dtypes.to_dict(), name
            # the same items at the same ranks; scores agree to rounding (BLAS may block the
            # products of the two paths differently, which changes the last bits)
            columns = ["user_id", "rank", "item_id"]
            assert fast[columns].equals(generic[columns]), (name, cutoff)
            np.testing.assert_allclose(fast.score, generic.score, rtol=1e-5, atol=1e-6, err_msg=f"{name} {cutoff}")
        assert list(recommender.recommend_many(["u2"], cutoff=5).item_id) == [
            r["item_id"] for r in recommender.recommend("u2", cutoff=5)]
        assert recommender.recommend_many([], cutoff=3).empty


# ---- ids of the model's own type only -----------------------------------------------------------


@pytest.fixture
def int_id_model(workspace):
    """A model of a project whose user and item ids are integers (users 0..99, items 0..59)."""
    frame = clustered_interactions(n_users=100, n_items=60)
    frame["user_id"] = frame["user_id"].str[1:].astype(int)
    frame["item_id"] = frame["item_id"].str[1:].astype(int)
    project = workspace.create_project("ints", user_column="user_id", item_column="item_id", time_column="timestamp")
    data = workspace.import_training_data(project, frame)
    model = workspace.train(workspace.create_configuration(project, "RP3beta"), data)
    return workspace.load_model(model.id)


def test_an_int_id_model_takes_ints_and_their_decimal_digits_only(int_id_model):
    recommender = int_id_model
    assert recommender.user_ids.dtype.kind in "iu"
    one, ten = recommender.recommend(1, cutoff=5), recommender.recommend(10, cutoff=5)
    assert one != ten  # so a lookup that confused them would show
    assert recommender.recommend("1", cutoff=5) == one == recommender.recommend(np.int64(1), cutoff=5)
    assert recommender.recommend("10", cutoff=5) == ten
    for bad in (1.9, 1.0, True, np.bool_(True), " 1 ", "1_0", "1.0", "+1", "", "1\n", b"1", None, [1]):
        with pytest.raises(ValidationError, match="whole numbers"):
            recommender.recommend(bad)
    with pytest.raises(NotFoundError, match="recommend_for_profile"):
        recommender.recommend(10**9)
    items = recommender.profile(1)
    assert recommender.recommend_for_profile([items[0], str(items[1])], cutoff=5) == \
        recommender.recommend_for_profile(items[:2], cutoff=5)
    with pytest.raises(ValidationError, match="whole numbers"):
        recommender.recommend_for_profile([items[0], True])


def test_a_text_id_model_takes_text_only(workspace, dataset):
    model = workspace.train(workspace.create_configuration(dataset.project_id, "TopPop"), dataset)
    recommender = workspace.load_model(model.id)
    assert recommender.recommend(np.str_("u1"), cutoff=3) == recommender.recommend("u1", cutoff=3)
    for bad in (1, 1.0, True, b"u1", None):
        with pytest.raises(ValidationError, match="text"):
            recommender.recommend(bad)
    with pytest.raises(NotFoundError):
        recommender.recommend(" u1")


@pytest.mark.parametrize("profile", ["50", "i5", b"i5", 5])
def test_a_profile_is_a_list_not_one_id(workspace, dataset, int_id_model, profile):
    model = workspace.train(workspace.create_configuration(dataset.project_id, "TopPop"), dataset)
    for recommender in (workspace.load_model(model.id), int_id_model):
        with pytest.raises(ValidationError, match="list of item ids"):
            recommender.recommend_for_profile(profile)


# ---- a loaded model is checked against its header ------------------------------------------------


def _resign(workspace, model_id, change):
    """Rewrite model `model_id`'s file, validly signed, after `change(header, payload)`."""
    from workbench.signing import read_model_file, write_model_file

    path = workspace.model(model_id).file
    header, payload = read_model_file(path, workspace.keyring)
    change(header, payload)
    write_model_file(path, header, payload, workspace.keyring)


def _out_of_range(header, payload):
    W = payload["recommender"].W  # RP3beta's sparse item-item weights
    W.indices[len(W.indices) // 2] = header["n_items"] + 1000


@pytest.mark.parametrize("change", [
    _out_of_range,
    lambda header, payload: header.update(n_items=header["n_items"] + 1),
    lambda header, payload: header.update(n_users=header["n_users"] - 1),
    lambda header, payload: payload.update(item_ids=payload["item_ids"][:-1]),
    lambda header, payload: header.update(algorithm="TopPop"),
    lambda header, payload: payload.pop("user_ids"),
], ids=["sparse-indices", "n_items", "n_users", "item_ids", "algorithm", "no-user-ids"])
def test_a_validly_signed_model_that_disagrees_with_its_header_is_refused(workspace, dataset, change):
    from workbench.errors import ModelFileError

    model = workspace.train(workspace.create_configuration(dataset.project_id, "RP3beta"), dataset)
    _resign(workspace, model.id, change)
    with pytest.raises(ModelFileError, match=f"model {model.id}"):
        workspace.load_model(model.id)  # refused before any score is computed


def test_a_model_path_that_is_a_fifo_is_refused_at_once(workspace, dataset):
    import os

    from workbench.errors import ModelFileError

    model = workspace.train(workspace.create_configuration(dataset.project_id, "TopPop"), dataset)
    path = workspace.model(model.id).file
    os.unlink(path)
    os.mkfifo(path)
    error = error_without_waiting(lambda: workspace.load_model(model.id), path)
    assert isinstance(error, ModelFileError) and "FIFO" in str(error)
