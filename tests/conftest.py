"""Shared fixtures: throwaway workspaces with small, learnable data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench as wb

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def clustered_interactions(n_users=300, n_items=120, n_clusters=4, per_user=12, seed=0) -> pd.DataFrame:
    """Users who mostly pick items of their own taste cluster, popular items more often."""
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, n_clusters, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.6
    rows = []
    for user in range(n_users):
        cluster = user % n_clusters
        weights = popularity * np.where(item_cluster == cluster, 12.0, 1.0)
        items = rng.choice(n_items, size=per_user, replace=False, p=weights / weights.sum())
        for step, item in enumerate(items):
            rows.append((f"u{user}", f"i{item}", pd.Timestamp("2024-01-01") + pd.Timedelta(hours=user * 24 + step)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def item_table(n_items=120) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "title": [f"Title {i}" for i in range(n_items)],
        "genres": ["Drama|Comedy" if i % 2 else "Action" for i in range(n_items)],
    })


@pytest.fixture
def workspace(tmp_path) -> wb.Workspace:
    return wb.open(tmp_path / "home")


@pytest.fixture
def project(workspace):
    return workspace.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")


@pytest.fixture
def dataset(workspace, project):
    return workspace.import_training_data(project, clustered_interactions())


@pytest.fixture
def metadata(workspace, project):
    return workspace.import_item_metadata(project, item_table())


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real datasets live in ../shared/data)")
    return path


def error_without_waiting(call, fifo: Path) -> BaseException | None:
    """Run `call`, which reads the FIFO `fifo`, in a thread; return the exception it raised. The
    test fails if the call is still waiting for a writer after a minute (an fstat takes
    microseconds: only an open() that waits for a writer takes that long); the FIFO is then
    opened for writing once, so that the thread ends."""
    import os
    import threading

    outcome = {}

    def run():
        try:
            call()
        except Exception as error:  # noqa: BLE001 -- returned to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    blocked = thread.is_alive()
    if blocked:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(60)
    assert not blocked, "the call waited for a writer to open the FIFO"
    return outcome.get("error")
