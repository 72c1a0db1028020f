"""The dashboards driven headless: press buttons, set values, check the page state and the catalog."""

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import CatalogBusyError
from workbench.ui import (
    DataDashboard,
    HomeDashboard,
    ModelsDashboard,
    RecommendationsDashboard,
    TrainingDashboard,
    TuningDashboard,
)
from workbench.ui.common import DataTable, JobMonitor, describe_error
from workbench.ui.training import ParamForm

from conftest import clustered_interactions, item_table

FAST_IALS = {"n_components": 8, "train_epochs": 3}


def demo_items(n_items: int = 120) -> pd.DataFrame:
    items = item_table(n_items)
    items["year"] = [1970 + i % 50 for i in range(n_items)]
    return items


SMALL_DEMO = {"n_users": 300, "n_items": 150}


def build_demo_home(home: Path, models: bool = True, **sizes) -> wb.Workspace:
    """A throwaway home holding the `demo` project (workbench.demo) and, optionally, two trained models."""
    from workbench.demo import create_demo_project

    ws = wb.open(home)
    create_demo_project(ws, name="demo", seed=0, **sizes)
    if models:
        data = ws.latest_training_data("demo")
        ws.train(ws.create_configuration("demo", "TopPop"), data)
        model = ws.train(ws.create_configuration("demo", "IALS", FAST_IALS, name="IALS small"), data)
        ws.activate(model.id)
    return ws


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One demo workspace for the tests that only add to it."""
    return build_demo_home(tmp_path_factory.mktemp("ui") / "home", **SMALL_DEMO)


def test_home_lists_projects_with_counts_active_model_and_links(shared):
    app = HomeDashboard(shared)
    row = app.frame.iloc[0]
    assert "demo" in row["project"]
    assert row["training data"] >= 1 and row["models"] >= 2 and row["configurations"] >= 2
    active = shared.project("demo").active_model_id
    assert f"#{active} IALS" in row["active model"]
    assert "href='models.ipynb'" in app.links.value and "href='data.ipynb'" in app.table.html.value
    assert "demo" in app.table.html.value


def test_home_on_an_empty_catalog_says_what_to_do(workspace):
    app = HomeDashboard(workspace)
    assert app.banner.kind == "info" and "Data dashboard" in app.banner.message
    assert "No project yet" in app.table.html.value


def test_errors_show_as_a_message_never_a_traceback(workspace, monkeypatch):
    def busy():
        raise CatalogBusyError("The catalog stayed locked for 30 s.")

    monkeypatch.setattr(workspace, "projects", busy)
    app = ModelsDashboard(workspace)
    assert app.banner.kind == "error" and "locked" in app.banner.message
    assert "Traceback" not in app.banner.value
    assert describe_error(KeyError("x")) == "KeyError: 'x'"


def test_a_busy_catalog_while_listing_shows_a_message(workspace, project, monkeypatch):
    def busy(*args, **kwargs):
        raise CatalogBusyError("The catalog stayed locked for 30 s.")

    monkeypatch.setattr(workspace, "models", busy)
    for dashboard in (ModelsDashboard, RecommendationsDashboard, HomeDashboard):
        app = dashboard(workspace)
        assert app.banner.kind == "error" and "locked" in app.banner.message, dashboard


def test_data_create_project_preview_map_columns_and_import(workspace, tmp_path):
    frame = clustered_interactions(n_users=40, n_items=30, per_user=5).rename(
        columns={"user_id": "visitor", "item_id": "product", "timestamp": "when"})
    source = tmp_path / "clicks.csv"
    frame.to_csv(source, index=False)

    app = DataDashboard(workspace)
    assert app.project is None and "create one" in app.project_info.value
    app.new_name.value, app.new_time.value = "shop", "timestamp"
    app.create_button.click()
    assert app.project.name == "shop" and app.project_message.kind == "success"
    app.create_button.click()  # the same name again: an inline validation error
    assert app.project_message.kind == "error" and "already exists" in app.project_message.message

    app.source_tabs.selected_index = 1
    app.path.value = str(source)
    app.preview_button.click()
    assert list(app.preview_frame.columns) == ["visitor", "product", "when"] and len(app.preview_frame) == 20
    assert app.map_user.value == "(none)"  # the project's names are not in the file: map them
    app.import_data(background=False)
    assert app.import_message.kind == "error" and "source column" in app.import_message.message
    app.map_user.value, app.map_item.value, app.map_time.value = "visitor", "product", "when"
    app.import_data(background=False)
    assert app.import_message.kind == "success", app.import_message.message
    listed = workspace.training_data_sets("shop")
    assert len(listed) == 1 and listed["n_users"][0] == 40 and listed["name"][0] == "clicks.csv"
    assert len(app.table.frame) == 1 and app.table.frame["per_user"][0] == 5.0


def test_data_upload_sql_metadata_and_inline_validation_errors(workspace, project, tmp_path):
    app = DataDashboard(workspace)
    csv = clustered_interactions(n_users=30, n_items=20, per_user=4).to_csv(index=False).encode()
    app.source_tabs.selected_index = 0
    app.import_data(background=False)
    assert app.import_message.kind == "error" and "Choose a file" in app.import_message.message
    app.upload.value = ({"name": "../up load.csv", "type": "text/csv", "size": len(csv), "content": memoryview(csv),
                         "last_modified": pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()},)
    app.preview_button.click()
    assert list(app.preview_frame.columns) == ["user_id", "item_id", "timestamp"]
    app.import_button.click()
    app.wait(60)
    assert app.import_message.kind == "success", app.import_message.message
    assert (Path(workspace.data_dir) / "uploads" / "up_load.csv").exists()

    app.source_tabs.selected_index = 2
    (workspace.home / "imports").mkdir()  # queries read the folders declared for data, not data/ (uploads)
    (workspace.home / "imports" / "up_load.csv").write_bytes(csv)
    app.sql.value = f"SELECT * FROM read_csv('{workspace.home / 'imports' / 'up_load.csv'}') WHERE user_id <> 'u0'"
    app.data_name.value = "without u0"
    app.import_data(background=False)
    assert app.import_message.kind == "success", app.import_message.message
    assert workspace.training_data_sets(project)["n_users"].tolist() == [30, 29]

    app.source_tabs.selected_index = 1
    app.path.value = str(tmp_path / "missing.csv")
    app.preview_button.click()
    assert app.import_message.kind == "error" and "no such file" in app.import_message.message
    broken = tmp_path / "broken.csv"
    broken.write_text("user_id,item_id,timestamp\n")  # a header line only
    app.path.value = str(broken)
    app.mapping_box.layout.display = "none"
    app.import_data(background=False)
    assert app.import_message.kind == "error" and "no data rows" in app.import_message.message
    assert "Traceback" not in app.import_message.value

    items = tmp_path / "items.csv"
    demo_items(20).to_csv(items, index=False)
    app.meta_path.value = str(items)
    app.import_metadata(background=False)
    assert app.meta_message.kind == "success", app.meta_message.message
    assert "20 items" in app.meta_info.value and "Title 10" in app.meta_info.value


def test_data_preview_and_mapped_import_use_the_import_reader(workspace, project, tmp_path, monkeypatch):
    """A file named like a query previews as a file; a mapped gzipped Parquet file imports as it is."""
    monkeypatch.chdir(tmp_path)
    frame = clustered_interactions(n_users=20, n_items=15, per_user=3).rename(columns={"user_id": "visitor"})
    named_like_sql = tmp_path / "with.csv"
    frame.to_csv(named_like_sql, index=False)
    app = DataDashboard(workspace)
    app.source_tabs.selected_index = 1
    app.path.value = named_like_sql.name  # "with.csv", relative to the current directory
    app.preview_button.click()
    assert app.import_message.kind != "error", app.import_message.message
    assert list(app.preview_frame.columns) == ["visitor", "item_id", "timestamp"]
    packed = tmp_path / "clicks.parquet.gz"
    packed.write_bytes(__import__("gzip").compress(frame.to_parquet(index=False)))
    app.path.value = str(packed)
    app.preview_button.click()
    assert app.import_message.kind != "error", app.import_message.message
    app.map_user.value = "visitor"
    app.import_data(background=False)
    assert app.import_message.kind == "success", app.import_message.message
    assert workspace.training_data_sets(project)["n_users"].tolist() == [20]


def test_param_form_has_the_registry_defaults_and_validates():
    form = ParamForm("IALS")
    assert form.values() == wb.algorithms.resolve_params("IALS", None)
    assert form.inputs["reg"].value == "" and form.inputs["solver_type"].value == "CG"
    form.inputs["n_components"].value = 0
    with pytest.raises(wb.ValidationError, match="n_components"):
        form.values()
    assert ParamForm("TopPop").values() == {}
    for name in wb.algorithms.list_algorithms():  # every algorithm's form starts at its defaults
        assert ParamForm(name).values() == wb.algorithms.resolve_params(name, None), name
    nmf = ParamForm("NMF")
    assert nmf.inputs["init"].value == "(none)" and nmf.values()["init"] is None
    nmf.set_values({"init": "nndsvd"})
    assert nmf.values()["init"] == "nndsvd"


def test_training_a_new_configuration_from_the_form_in_a_worker(shared):
    app = TrainingDashboard(shared)
    app.mode.value = "new"
    app.algorithm.value = "IALS"
    app.form.inputs["n_components"].value = 8
    app.form.inputs["train_epochs"].value = 3
    app.config_name.value = "IALS from the form"
    before = set(shared.models("demo")["id"])
    app.start_button.click()
    assert app.start_button.disabled and app.model.status in ("PENDING", "RUNNING", "SUCCESS")
    app.wait(120)
    assert app.monitor.record["status"] == "SUCCESS" and app.monitor.progress.value == 1.0
    assert app.message.kind == "success" and not app.start_button.disabled
    assert any("Learned" in line for line in app.monitor.lines)
    assert "Model #" in app.result.value and "n_users" in app.result.value and "SUCCESS" in app.result.value
    new = set(shared.models("demo")["id"]) - before
    assert new == {app.model.id}
    config = shared.configuration(shared.model(app.model.id).configuration_id)
    assert config.name == "IALS from the form" and config.params["n_components"] == 8


def test_training_a_saved_configuration_and_showing_bad_input(shared):
    app = TrainingDashboard(shared)
    assert app.mode.value == "existing" and app.configuration.value is not None
    topop = int(shared.configurations("demo").query("algorithm == 'TopPop'")["id"].iloc[0])
    app.configuration.value = topop
    model = app.start(background=False)
    app.wait(60)
    assert model.status == "SUCCESS" and app.message.kind == "success"
    app.mode.value = "new"
    app.algorithm.value = "RP3beta"
    app.form.inputs["beta"].value = -1.0
    assert app.start() is None
    assert app.message.kind == "error" and "beta" in app.message.message


def test_tuning_shows_live_trials_best_so_far_and_the_trained_model(shared):
    app = TuningDashboard(shared)
    app.algorithms.value = ("TopPop", "RP3beta")
    app.n_trials.value = 4
    app.timeout.value = 120
    app.cutoff.value = 10
    app.start_button.click()
    assert app.tuning_job is not None and app.start_button.disabled
    app.wait(180)
    job = shared.tuning_job(app.tuning_job.id)
    assert job.status == "SUCCESS", app.message.message
    assert len(app.trials_table.frame) == len(job.trials) == 4
    best = list(app.best_line.y)
    assert best and best == sorted(best) and abs(best[-1] - job.best_score) < 1e-9
    assert len(app.trial_points.y) == len(best)
    assert f"model #{job.model_id}" in app.outcome.value and "models.ipynb" in app.outcome.value
    assert shared.model(job.model_id).status == "SUCCESS"
    assert len(app.history.frame) >= 1 and any("trial" in line for line in app.monitor.lines)


def test_tuning_refuses_bad_input_with_a_message(shared, workspace, project):
    app = TuningDashboard(shared)
    app.algorithms.value = ()
    assert app.start() is None and app.message.kind == "error" and "at least one algorithm" in app.message.message
    empty = TuningDashboard(workspace)  # a project without training data
    assert empty.data.value is None
    assert empty.start() is None and "Choose training data" in empty.message.message


@pytest.fixture
def lifecycle_ws(tmp_path):
    return build_demo_home(tmp_path / "home", **SMALL_DEMO)


def test_models_compare_activate_download_retrain_and_guarded_delete(lifecycle_ws, tmp_path):
    ws = lifecycle_ws
    app = ModelsDashboard(ws)
    frame = app.table.frame
    assert {"status", "active", "n_users", "n_items", "trained_on", "file_size", "trained_at"} <= set(frame.columns)
    assert "explained_variance" not in frame.columns or frame["explained_variance"].notna().any()
    ids = sorted(int(i) for i in app.frame["id"])
    active = int(ws.project("demo").active_model_id)
    other = next(i for i in ids if i != active)

    app.select(*ids)
    app.compare_button.click()
    app.wait(120)
    assert app.comparison is not None and sorted(app.comparison["model_id"]) == ids
    assert "ndcg@10" in app.comparison_table.value
    assert len(app.charts.children) == 8  # one chart per metric at the largest cutoff: 5 accuracy, coverage, popularity bias, novelty
    assert "ndcg@10" in app.table.frame.columns  # the metrics are saved on the models

    app.select(other)
    app.activate_button.click()
    assert int(ws.project("demo").active_model_id) == other and app.message.kind == "success"
    assert bool(app.frame.set_index("id").loc[other, "active"])

    app.delete_button.click()  # the active one: refused before any confirmation
    assert app.banner.kind == "error" and "active model" in app.banner.message
    assert app.confirm_box.layout.display == "none"

    app.select(active)
    app.delete_button.click()
    assert app.confirm_box.layout.display == "" and f"#{active}" in app.confirm_text.value
    app.cancel_delete_button.click()
    assert active in set(ws.models("demo")["id"])
    app.delete_button.click()
    app.confirm_button.click()
    assert active not in set(ws.models("demo")["id"]) and app.message.kind == "success"
    assert active not in [v for _, v in app.selection.options]

    app.select(other)
    path = app.download()
    assert path.exists() and "data:application/octet-stream;base64," in app.download_link.value
    encoded = app.download_link.value.split("base64,")[1].split("'")[0]
    assert base64.b64decode(encoded) == path.read_bytes()
    assert ws.inspect_model_file(path)["model_id"] == other

    new = app.retrain()
    app.wait(120)
    fresh = ws.model(new.id)
    assert fresh.status == "SUCCESS" and fresh.configuration_id == ws.model(other).configuration_id
    assert new.id in set(app.frame["id"]) and "Model #" in app.retrained.value
    assert app.message.kind == "success"


def test_models_table_with_a_thousand_models_pages_sorts_and_searches(lifecycle_ws):
    ws = lifecycle_ws
    model = ws.model(int(ws.models("demo")["id"].iloc[0]))
    ws.catalog.run(lambda con: con.execute(
        "INSERT INTO models (project_id, configuration_id, training_data_id, status, n_users, n_items, "
        "n_interactions, train_seconds, metrics, stats, filesize, basename) "
        "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1000) "
        "SELECT ?, ?, ?, 'SUCCESS', 300, 120, 3600, 0.5, '{\"ndcg@10\": 0.1}', '{}', 4096, 'x.wbm' FROM n",
        [model.project_id, model.configuration_id, model.training_data_id]))
    app = ModelsDashboard(ws)  # its speed is measured in bench/bench_dashboards.py, not here
    assert len(app.frame) >= 1000 and len(app.selection.options) >= 1000
    assert app.table.html.value.count("<tr>") == app.table.page_size + 1
    app.table.next_button.click()
    app.table.sort_by.value = "id"
    app.table.search.value = "IALS"
    assert app.table.html.value.count("<tr>") > 1


def test_recommendations_for_a_typed_user_a_random_user_and_a_new_profile(shared):
    app = RecommendationsDashboard(shared)
    assert "active" in app.model.label  # the active model comes first
    recommender = shared.load_model(app.model.value)
    items = shared.item_metadata_frame(shared.latest_item_metadata("demo"))
    user = str(recommender.user_ids[7])
    app.user_id.value = user
    app.cutoff.value = 5
    app.recommend_button.click()
    app.wait(60)
    recs = app.result["recommendations"]
    assert [r["item_id"] for r in recs] == [r["item_id"] for r in recommender.recommend(user, cutoff=5)]
    assert all(r["title"] and r["genres"] for r in recs)
    assert recs[0]["title"] in app.recs_html.value and "genres" in app.recs_html.value
    assert f"Profile of user {user}" in app.profile_html.value
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)

    app.user_id.value = "nobody"
    app.recommend_button.click()
    app.wait(60)
    assert app.message.kind == "error" and "nobody" in app.message.message and app.recs_html.value == ""

    app.random_button.click()
    app.wait(60)
    assert app.result["user_id"] != "nobody" and len(app.result["user_profile"]) > 0
    assert app.result["user_profile"][0].get("title") and app.user_id.value == str(app.result["user_id"])

    title = str(items["title"].iloc[3])
    app.search.value = title.upper()
    labels = [label for label, _ in app.matches.options]
    assert labels and all(title in label for label in labels)
    app.matches.value = app.matches.options[0][1]
    app.add_button.click()
    first, second = app.matches.options[0][1], str(items["item_id"].iloc[5])
    app.add_item(second)
    app.add_item("not-an-item")
    assert [v for _, v in app.picked.options] == [first, second, "not-an-item"]
    assert title in app.picked.options[0][0]
    app.profile_button.click()
    app.wait(60)
    rows = app.profile_result
    assert len(rows) == 5 and {first, second}.isdisjoint(r["item_id"] for r in rows)
    assert "not-an-item" in app.new_recs_html.value and rows[0]["title"] in app.new_recs_html.value
    app.clear_button.click()
    assert app.picked.options == () and app.new_recs_html.value == ""
    app.profile_button.click()
    assert app.new_message.kind == "error"


def test_data_table_pages_sorts_and_filters():
    frame = pd.DataFrame({"id": np.arange(95), "name": [f"row {i}" for i in range(95)]})
    table = DataTable(frame, page_size=10)
    assert table.n_pages == 10 and "row 9<" in table.html.value and "row 10<" not in table.html.value
    table.next_button.click()
    assert table.page == 1 and "row 10<" in table.html.value
    table.sort_by.value = "id"
    assert table.descending.value and "row 94<" in table.html.value
    table.search.value = "row 5"
    assert len(table.view) == 11 and "of 95" in table.page_label.value  # row 5, row 50-59


class _FakeJob:
    id = 7

    def __init__(self):
        self.calls = 0

    @property
    def record(self):
        self.calls += 1
        status = "RUNNING" if self.calls < 3 else "FAILURE"
        return {"id": 7, "kind": "train", "status": status, "progress": 0.5, "step": "learning",
                "error": "Out of memory." if status == "FAILURE" else None}

    def log(self, after_id=0):
        rows = [{"id": 1, "logged_at": pd.Timestamp("2024-01-01"), "level": "INFO", "message": "started"},
                {"id": 2, "logged_at": pd.Timestamp("2024-01-01"), "level": "ERROR", "message": "Out of memory."}]
        return pd.DataFrame([r for r in rows if r["id"] > after_id])


def test_job_monitor_follows_a_job_to_its_end_in_a_thread():
    monitor = JobMonitor(interval=0.01)
    finished = []
    monitor.watch(_FakeJob(), on_finish=finished.append)
    assert monitor.join(10)
    assert finished and finished[0]["status"] == "FAILURE"
    assert monitor.progress.bar_style == "danger" and "Out of memory." in monitor.status.value
    assert len(monitor.lines) == 2 and "started" in monitor.log_view.value and monitor.cancel_button.disabled


def test_pages_served_without_the_chart_library_are_exactly_the_dashboards_without_charts():
    """`workbench serve` leaves bqplot's JavaScript out of the pages in voila_server.CHART_FREE: a
    chart on one of them would not render, and a charted page missing from it would not load."""
    import importlib
    import inspect
    import re

    import workbench.ui as ui
    from workbench.voila_server import CHART_FREE

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    checked = 0
    for notebook in sorted(notebooks.glob("*.ipynb")):
        dashboard = re.search(r"from workbench\.ui import (\w+Dashboard)", notebook.read_text())
        if dashboard is None:  # not a dashboard (the retraining notebook)
            continue
        module = importlib.import_module(getattr(ui, dashboard.group(1)).__module__)
        charts = re.search(r"\b(bqplot|line_chart|bar_chart)\b", inspect.getsource(module)) is not None
        assert bool(CHART_FREE.match(notebook.name)) == (not charts), notebook.name
        checked += 1
    assert checked == 6
