"""Configurations, training, signed files, the registry and recommendations, end to end."""

import os
import signal
import time

import numpy as np
import pytest
from conftest import clustered_interactions, item_table

from workbench import algorithms
from workbench.errors import (
    ForbiddenPickleError,
    JobFailedError,
    ModelFileError,
    NotFoundError,
    SignatureMismatchError,
    ValidationError,
)
from workbench.signing import KeyRing, SigningKey, read_model_file

SMALL_PARAMS = {
    "IALS": {"n_components": 8, "train_epochs": 4},
    "TruncatedSVD": {"n_components": 8},
    "NMF": {"n_components": 8},
    "EDLAE": {},
    "SLIM": {},
}


@pytest.mark.parametrize("name", algorithms.list_algorithms())
def test_every_algorithm_trains_signs_loads_and_recommends(workspace, dataset, name):
    config = workspace.create_configuration(dataset.project_id, name, SMALL_PARAMS.get(name))
    model = workspace.train(config, dataset)
    assert model.status == "SUCCESS"
    assert (model.n_users, model.n_items) == (dataset.n_users, dataset.n_items)
    assert model.filesize == os.path.getsize(model.file) and model.basename == os.path.basename(model.file)
    assert model.irspack_version and model.data_fingerprint == dataset.fingerprint
    header = workspace.inspect_model_file(model.file)
    assert header["algorithm"] == algorithms.get_algorithm(name).name

    recommender = workspace.load_model(model.id)
    recs = recommender.recommend("u1", cutoff=5)
    assert 0 < len(recs) <= 5
    assert not set(r["item_id"] for r in recs) & set(recommender.profile("u1"))
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)


def test_unknown_algorithm_and_parameter_list_the_valid_ones(workspace, project):
    with pytest.raises(ValidationError, match="RP3beta"):
        workspace.create_configuration(project, "NoSuchAlgo")
    with pytest.raises(ValidationError, match="n_components"):
        workspace.create_configuration(project, "ials", {"n_factors": 3})


def test_configuration_and_data_must_share_a_project(workspace, dataset):
    other = workspace.create_project("other", "user_id", "item_id")
    config = workspace.create_configuration(other, "TopPop")
    with pytest.raises(ValidationError, match="belongs to project 'other'"):
        workspace.train(config, dataset)
    assert workspace.models().empty


def test_records_carry_the_fields_users_know(workspace, dataset):
    config = workspace.create_configuration(dataset.project_id, "TruncatedSVD", {"n_components": 4})
    model = workspace.train(config, dataset)
    for field in ("id", "configuration", "data_loc", "file", "irspack_version", "ins_datetime", "basename",
                  "filesize", "status", "n_users", "n_items", "n_interactions", "train_seconds"):
        assert getattr(model, field) is not None, field
    assert 0 < model.stats["explained_variance_ratio"] <= 1
    listing = workspace.models("shop")
    assert listing.loc[0, "id"] == model.id and listing.loc[0, "explained_variance_ratio"] > 0
    assert "Learned in" in " ".join(workspace.task_log(model=model.id)["message"])


def test_activate_and_delete_guard(workspace, dataset):
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    first, second = workspace.train(config, dataset), workspace.train(config, dataset)
    workspace.activate(first.id)
    assert workspace.active_model("shop").id == first.id
    with pytest.raises(ValidationError, match="active model"):
        workspace.delete_model(first.id)
    assert os.path.exists(first.file)
    workspace.delete_model(second.id)
    assert not os.path.exists(second.file)
    with pytest.raises(NotFoundError):
        workspace.model(second.id)
    workspace.delete_model(first.id, force=True)
    assert workspace.project("shop").active_model_id is None


def test_recommendations_for_unknown_users_profiles_and_batches(workspace, dataset, metadata):
    config = workspace.create_configuration(dataset.project_id, "RP3beta")
    model = workspace.train(config, dataset)
    recommender = workspace.load_model(model.id)
    with pytest.raises(NotFoundError, match="'nobody' is not in model"):
        recommender.recommend("nobody")
    with pytest.raises(ValidationError, match="cutoff"):
        recommender.recommend("u1", cutoff=0)

    profile = recommender.profile("u3")
    cold = recommender.recommend_for_profile(profile + ["no-such-item"], cutoff=10)
    assert cold.unknown_items == ["no-such-item"]
    assert [r["item_id"] for r in cold] == [r["item_id"] for r in recommender.recommend("u3", cutoff=10)]

    batch = recommender.recommend_many(["u1", "u2"], cutoff=3)
    assert list(batch.columns) == ["user_id", "rank", "item_id", "score"]
    assert list(batch[batch.user_id == "u2"].item_id) == [r["item_id"] for r in recommender.recommend("u2", 3)]
    assert len(recommender.recommend_many(cutoff=2)) == 2 * dataset.n_users

    sample = workspace.sample_recommendation(model.id, metadata=True, seed=1)
    assert sample["user_profile"] and sample["recommendations"]
    assert all(r["title"].startswith("Title ") for r in sample["recommendations"] + sample["user_profile"])


def test_loaded_models_are_cached_and_reloaded_when_the_file_changes(workspace, dataset, tmp_path):
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    model = workspace.train(config, dataset)
    first = workspace.load_model(model.id)
    assert workspace.load_model(model.id) is first
    exported = workspace.export_model(model.id, tmp_path)
    assert exported.read_bytes() == open(model.file, "rb").read()
    os.utime(model.file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert workspace.load_model(model.id) is not first


def test_a_tampered_model_file_is_refused_before_unpickling(workspace, dataset):
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    model = workspace.train(config, dataset)
    data = bytearray(open(model.file, "rb").read())
    data[-5] ^= 0x01
    with open(model.file, "wb") as handle:
        handle.write(data)
    with pytest.raises(ModelFileError):
        workspace.load_model(model.id)


def test_a_file_signed_with_another_key_is_refused(workspace, dataset, monkeypatch):
    config = workspace.create_configuration(dataset.project_id, "TopPop")
    model = workspace.train(config, dataset)
    own_kid = workspace.keyring.signing_key.kid
    impostor = KeyRing([SigningKey(own_kid, b"\x01" * 32)])
    with pytest.raises(SignatureMismatchError):
        read_model_file(model.file, impostor)


def test_background_training_reports_progress_and_log(workspace, dataset):
    config = workspace.create_configuration(dataset.project_id, "IALS", {"n_components": 8, "train_epochs": 6})
    model = workspace.train(config, dataset, background=True)
    assert model.status in ("PENDING", "RUNNING", "SUCCESS")
    done = model.wait(timeout=120)
    assert done.status == "SUCCESS" and done.job.progress["fraction"] == 1.0
    assert os.path.exists(done.file)
    messages = " ".join(workspace.task_log(model=model.id)["message"])
    assert "Training IALS" in messages and "written to" in messages


def test_training_with_evaluate_records_the_held_out_score_compare_gives_then_fits_all_the_data(workspace, dataset):
    config = workspace.create_configuration(dataset.project_id, "RP3beta")
    plain = workspace.train(config, dataset)
    assert plain.metrics == {}  # no score unless asked
    scored = workspace.train(config, dataset, background=True, evaluate=True).wait(timeout=120)
    assert scored.status == "SUCCESS" and {"ndcg@10", "recall@20", "coverage@20"} <= set(scored.metrics)
    assert scored.n_interactions == plain.n_interactions  # the model itself learnt from every interaction
    compared = workspace.compare([scored.id]).iloc[0]  # the same default held-out split
    for metric in ("ndcg@10", "ndcg@20", "recall@20"):
        assert scored.metrics[metric] == pytest.approx(compared[metric], abs=1e-9), metric
    assert "Held-out score" in " ".join(workspace.task_log(model=scored.id)["message"])


def test_a_killed_background_job_ends_as_failure_with_no_model_file(workspace, project):
    big = workspace.import_training_data(project, clustered_interactions(n_users=3000, n_items=800, per_user=30))
    config = workspace.create_configuration(project, "IALS", {"n_components": 256, "train_epochs": 400})
    model = workspace.train(config, big, background=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        job = workspace.catalog.get("jobs", model.job_id)
        if job["status"] == "RUNNING" and job["step"].startswith("epoch"):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the job never started learning: {job}")
    os.kill(job["pid"], signal.SIGKILL)
    time.sleep(0.5)
    record = workspace.model(model.id)
    assert record.status == "FAILURE"
    assert "died" in record.job.error
    with pytest.raises(JobFailedError):
        record.job.wait(timeout=5)
    project_dir = workspace.models_dir / "shop"
    assert not project_dir.exists() or not any(project_dir.iterdir())


def test_cancelling_a_background_job(workspace, project):
    big = workspace.import_training_data(project, clustered_interactions(n_users=2000, n_items=500, per_user=20))
    config = workspace.create_configuration(project, "IALS", {"n_components": 128, "train_epochs": 400})
    model = workspace.train(config, big, background=True)
    model.job.cancel()
    with pytest.raises(JobFailedError, match="CANCELLED"):
        model.job.wait(timeout=60)
    assert workspace.model(model.id).status == "FAILURE"


def test_allow_list_refuses_a_validly_signed_payload_that_imports_os(workspace, tmp_path):
    from workbench.signing import write_model_file

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.wbm"
    write_model_file(path, {"algorithm": "evil"}, {"recommender": Evil()}, workspace.keyring)
    assert workspace.inspect_model_file(path)["algorithm"] == "evil"
    with pytest.raises(ForbiddenPickleError):
        read_model_file(path, workspace.keyring)
    assert not (tmp_path / "pwned").exists()


def test_training_data_matrix_matches_the_interactions(workspace, dataset):
    X, users, items = workspace.interaction_matrix(dataset)
    frame = clustered_interactions()
    assert X.shape == (frame.user_id.nunique(), frame.item_id.nunique())
    assert X.nnz == len(frame.drop_duplicates(["user_id", "item_id"]))
    row = X[list(users).index("u5")]
    assert set(np.asarray(items)[row.indices]) == set(frame[frame.user_id == "u5"].item_id)


def test_sample_recommendation_joins_metadata_whatever_the_item_column_is_called(workspace):
    project = workspace.create_project("films", user_column="viewer", item_column="movie_id")
    frame = clustered_interactions().rename(columns={"user_id": "viewer", "item_id": "movie_id"})
    data = workspace.import_training_data(project, frame)
    items = item_table().rename(columns={"item_id": "movie_id"})
    workspace.import_item_metadata(project, items)
    model = workspace.train(workspace.create_configuration(project, "TopPop"), data)
    sample = workspace.sample_recommendation(model.id, metadata=True, seed=0)
    assert all(row["title"].startswith("Title ") for row in sample["recommendations"])
