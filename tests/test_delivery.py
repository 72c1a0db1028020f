"""Delivering the active model: every user's top-N in one file, and serving processes that follow activations."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap

import duckdb
import pandas as pd
import pytest
from conftest import clustered_interactions, item_table

import workbench as wb
from workbench.cli import main
from workbench.errors import NotFoundError, ValidationError
from workbench.export import read_export_info


@pytest.fixture
def out(tmp_path):
    """An empty folder for exported files (the workspace lives beside it)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def served(workspace, project, dataset, metadata):
    """Project "shop" with an active IALS model and a TopPop model beside it."""
    ials = workspace.train(workspace.create_configuration(project, "IALS", {"n_components": 8}), dataset)
    top_pop = workspace.train(workspace.create_configuration(project, "TopPop"), dataset)
    workspace.activate(ials.id)
    return workspace, ials, top_pop


def read(path) -> pd.DataFrame:
    if path.suffix == ".duckdb":
        with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
            return con.execute("SELECT * FROM recommendations").fetchdf()
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".duckdb"])
def test_an_export_holds_every_user_once_with_the_models_recommendations(served, out, suffix):
    ws, ials, _ = served
    path = ws.export_recommendations("shop", out / f"recs{suffix}", cutoff=5, columns=["title"])
    frame = read(path)
    r = ws.load_model(ials.id)
    assert frame.groupby("user_id").size().eq(5).all() and frame["user_id"].nunique() == len(r.user_ids)
    assert list(frame.columns) == ["user_id", "rank", "item_id", "score", "title"]
    titles = item_table().set_index("item_id")["title"]
    assert (frame["title"] == frame["item_id"].map(titles)).all()
    for user in ("u0", "u17", "u299"):
        mine = frame[frame["user_id"] == user].sort_values("rank")
        expected = r.recommend(user, cutoff=5)
        assert list(mine["item_id"]) == [row["item_id"] for row in expected]
        assert list(mine["score"]) == pytest.approx([row["score"] for row in expected], rel=1e-5)
    info = read_export_info(path)
    assert info["model_id"] == ials.id and info["data_fingerprint"] == ws.training_data(ials.training_data_id).fingerprint
    assert info["cutoff"] == 5 and info["created_at"]
    assert sorted(p.name for p in out.iterdir()) == sorted([path.name] + ([path.name + ".json"] if suffix == ".csv" else []))


def test_an_export_refuses_what_it_cannot_write_and_leaves_nothing(served, out):
    ws, _, top_pop = served
    with pytest.raises(ValidationError, match="the suffix sets the format"):
        ws.export_recommendations("shop", out / "recs.xlsx")
    with pytest.raises(ValidationError, match="no column 'poster'"):
        ws.export_recommendations("shop", out / "recs.parquet", columns=["poster"])
    with pytest.raises(ValidationError, match="is not a folder"):
        ws.export_recommendations("shop", out / "nowhere" / "recs.parquet")
    assert list(out.iterdir()) == []
    other = ws.export_recommendations("shop", out / "top.parquet", model=top_pop.id)
    assert read_export_info(other)["model_id"] == top_pop.id  # an explicit model, not the active one
    ws.catalog.execute("UPDATE projects SET active_model_id = NULL")
    with pytest.raises(NotFoundError, match="no active model"):
        ws.export_recommendations("shop", out / "recs.parquet")


def test_the_recommend_command_writes_every_users_recommendations(served, out, capsys):
    ws, ials, _ = served
    path = out / "recs.parquet"
    assert main(["--home", str(ws.home), "recommend", "--project", "shop", "--all", "--out", str(path),
                 "--cutoff", "3", "--columns", "title,genres"]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == str(path) and "users (100%)" in printed.err
    assert len(read(path)) == 3 * len(ws.load_model(ials.id).user_ids)
    assert main(["--home", str(ws.home), "recommend", "--project", "shop", "--user", "u3", "--cutoff", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["--home", str(ws.home), "recommend", "--project", "shop", "--all", "--out", "x.txt"]) == 2
    assert main(["--home", str(ws.home), "recommend", "--project", "shop", "--all"]) == 2


SERVER = textwrap.dedent("""
    import sys
    import workbench as wb
    active = wb.open(sys.argv[1]).load_active("shop")
    for line in sys.stdin:  # serve a request per line: the model that answered, and its top item
        top = active.recommend("u1", cutoff=1)[0]["item_id"]
        print(active.model_id, top, flush=True)
""")


def test_a_serving_process_picks_up_a_new_activation_without_restarting(served):
    ws, ials, top_pop = served
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ws.home)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        def ask() -> list[str]:
            server.stdin.write("next\n")
            server.stdin.flush()
            return server.stdout.readline().split()

        assert ask()[0] == str(ials.id)
        ws.activate(top_pop.id)  # in this process, while the server runs
        model_id, item = ask()
        assert model_id == str(top_pop.id) and item == ws.load_model(top_pop.id).recommend("u1", cutoff=1)[0]["item_id"]
    finally:
        server.stdin.close()
        server.wait(60)
    assert server.returncode == 0


def test_load_active_says_when_nothing_is_active(workspace, project):
    workspace.import_training_data(project, clustered_interactions(n_users=20))
    with pytest.raises(NotFoundError, match="has no active model"):
        workspace.load_active("shop").recommend("u1")
    assert isinstance(wb.open(workspace.home), wb.Workspace)
