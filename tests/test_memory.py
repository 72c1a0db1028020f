"""Process-wide memory settings: changed while the workbench works on large data, given back after."""

import threading

import numpy as np
import pytest

from workbench import memory, training

get_advice = getattr(np._core.multiarray, "_get_madvise_hugepage", None)
pytestmark = pytest.mark.skipif(memory._set_hugepage_advice is None or get_advice is None,
                                reason="this numpy has no huge-page advice to turn off")


@pytest.fixture
def advised(monkeypatch):
    """NumPy advising huge pages, as it does by default on Linux, and no user choice in the environment."""
    monkeypatch.delenv(memory.ADVICE_VARIABLE, raising=False)
    before = memory._set_hugepage_advice(True)
    yield
    memory._set_hugepage_advice(before)


def test_training_builds_and_learns_without_huge_page_advice_then_gives_it_back(advised, workspace, dataset, monkeypatch):
    seen = []
    real_fit = training.fit

    def watching_fit(*args, **kwargs):
        seen.append(get_advice())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "fit", watching_fit)
    model = workspace.train(workspace.create_configuration(dataset.project_id, "IALS", {"train_epochs": 2}), dataset)
    assert seen == [False]
    assert get_advice() is True
    assert model.status == "SUCCESS" and len(workspace.load_model(model.id).recommend("u1", cutoff=3)) == 3


def test_the_snapshot_matrix_is_built_without_advice(advised, workspace, dataset, monkeypatch):
    seen = []
    real = np.searchsorted
    monkeypatch.setattr(np, "searchsorted", lambda *a, **k: seen.append(get_advice()) or real(*a, **k))
    workspace.interaction_matrix(dataset)
    assert seen and not any(seen)
    assert get_advice() is True


def test_nested_and_concurrent_blocks_give_the_advice_back_after_the_last(advised):
    inside, release = threading.Event(), threading.Event()

    def other_block():
        with memory.without_numpy_hugepages():
            inside.set()
            release.wait(timeout=60)

    thread = threading.Thread(target=other_block)
    with memory.without_numpy_hugepages():
        thread.start()
        assert inside.wait(timeout=60)
        with memory.without_numpy_hugepages():
            assert get_advice() is False
    assert get_advice() is False  # the other thread's block still runs
    release.set()
    thread.join(timeout=60)
    assert get_advice() is True


def test_a_choice_made_in_the_environment_is_kept(advised, monkeypatch):
    monkeypatch.setenv(memory.ADVICE_VARIABLE, "1")
    with memory.without_numpy_hugepages():
        assert get_advice() is True
