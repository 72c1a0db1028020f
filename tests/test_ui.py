"""The dashboards driven headless: press buttons, set values, check the page state and the catalog."""

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import clustered_interactions, item_table
from ipywidgets.widgets.widget_description import DescriptionWidget

import workbench as wb
from workbench.errors import CatalogBusyError, describe_error
from workbench.ui import (
    DataDashboard,
    HomeDashboard,
    ModelsDashboard,
    RecommendationsDashboard,
    TrainingDashboard,
    TuningDashboard,
)
from workbench.ui.controls import CheckboxGroup
from workbench.ui.monitor import JobMonitor
from workbench.ui.page import page_link, parse_query
from workbench.ui.tables import DataTable
from workbench.ui.training import ParamForm
from workbench.voila_download import download_url

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


def texts(widget) -> str:
    """Every text a dashboard shows (HTML values, labels, descriptions, options), walked through its widgets."""
    found = []
    for name in ("value", "description", "placeholder", "tooltip", "label"):
        value = getattr(widget, name, None)
        if isinstance(value, str):
            found.append(value)
    found += [str(option) for option in getattr(widget, "options", ()) or ()]
    for child in getattr(widget, "children", ()) or ():
        found.append(texts(child))
    return "\n".join(found)


def texts_of_charts(app) -> str:
    return "\n".join(chart.title for chart in app.insight.charts.children)


def upload(name: str, content: bytes) -> tuple:
    """A FileUpload value as the browser sends it."""
    return ({"name": name, "type": "text/csv", "size": len(content), "content": memoryview(content),
             "last_modified": pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()},)


# --- context and navigation


def test_home_rows_link_to_every_dashboard_of_their_own_project(shared):
    shared.create_project("zoo-shop", user_column="user_id", item_column="item_id")
    app = HomeDashboard(shared)
    rows = app.frame.set_index(app.frame["project"].map(lambda cell: re.sub("<[^>]+>", "", cell)))
    demo, zoo = rows.loc["demo"], rows.loc["zoo-shop"]
    assert demo["training data"] >= 1 and demo["models"] >= 2 and demo["configurations"] >= 2
    for name in ("data", "tuning", "training", "models", "recommendations"):
        assert f"href='{name}.ipynb?project=demo'" in demo["open"], name
        assert f"href='{name}.ipynb?project=zoo-shop'" in zoo["open"], name
    active = shared.project("demo").active_model_id
    assert f"recommendations.ipynb?project=demo&amp;model={active}" in demo["active model"]
    assert f"#{active} IALS" in demo["active model"] and "none" in zoo["active model"]
    assert "href='models.ipynb'" in app.links.value


def test_a_dashboard_opens_on_the_project_and_model_its_address_names_and_its_links_carry_them(shared, monkeypatch):
    shared.create_project("other", user_column="user_id", item_column="item_id")
    active = int(shared.project("demo").active_model_id)
    other_model = next(int(i) for i in shared.models("demo")["id"] if int(i) != active)
    # a kernel started for its page has the address in its environment (Voila without preheating)
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    monkeypatch.setenv("QUERY_STRING", f"project=demo&model={other_model}&token=secret")
    app = RecommendationsDashboard(shared)
    assert app.project_name == "demo" and app.model.value == other_model
    assert f"models.ipynb?project=demo&amp;model={other_model}" in app.nav.value
    assert "tuning.ipynb?project=demo'" in app.nav.value and "secret" not in app.nav.value
    app.project_picker.value = int(shared.project("other").id)  # choosing another project moves the links along
    assert "tuning.ipynb?project=other'" in app.nav.value and app.model.value is None
    # a preheated kernel hears of its page later, and switches to what it asks for
    monkeypatch.setenv("QUERY_STRING", "")
    models = ModelsDashboard(shared)
    assert models.project_name in ("demo", "other")
    models.open_request(parse_query(f"project=demo&model={active}&token=x"))
    assert models.project_name == "demo" and models.table.selected == [active]
    assert f"recommendations.ipynb?project=demo&amp;model={active}" in models.nav.value
    models.open_request(parse_query("project=nowhere"))
    assert models.banner.kind == "error" and "no project 'nowhere'" in models.banner.message
    assert page_link("data", "a b&c") == "data.ipynb?project=a+b%26c"


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


# --- data


def test_data_create_project_at_the_top_then_preview_map_columns_and_import(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIRS", str(tmp_path / "exports"))
    frame = clustered_interactions(n_users=40, n_items=30, per_user=5).rename(
        columns={"user_id": "visitor", "item_id": "product", "timestamp": "when"})
    source = tmp_path / "exports" / "clicks.csv"
    source.parent.mkdir()
    frame.to_csv(source, index=False)

    app = DataDashboard(workspace)
    assert app.children.index(app.intro) < app.children.index(app.project_picker)  # the form comes first
    assert "New project" in texts(app.intro)
    assert app.project is None and "create one above" in app.project_info.value
    app.new_name.value, app.new_time.value = "shop", "timestamp"
    app.create_button.click()
    assert app.project.name == "shop" and app.project_message.kind == "success"
    assert "data.ipynb?project=shop" in app.nav.value
    app.create_button.click()  # the same name again: an inline validation error
    assert app.project_message.kind == "error" and "already exists" in app.project_message.message

    app.source_tabs.selected_index = 1
    app.path.value = str(source)
    app.preview_button.click()
    assert app.project_message.kind == "", "the next action clears the earlier outcome"
    assert list(app.preview_frame.columns) == ["visitor", "product", "when"] and len(app.preview_frame) == 20
    assert app.map_user.value == "(none)"  # the project's names are not in the file: map them
    app.import_button.click()
    assert app.import_message.kind == "error" and "source column" in app.import_message.message
    app.map_user.value, app.map_item.value, app.map_time.value = "visitor", "product", "when"
    app.import_data(background=False)
    assert app.import_message.kind == "success", app.import_message.message
    assert "tuning.ipynb?project=shop" in app.import_message.value
    listed = workspace.training_data_sets("shop")
    assert len(listed) == 1 and listed["n_users"][0] == 40 and listed["name"][0] == "clicks.csv"
    assert len(app.table.frame) == 1 and app.table.frame["per_user"][0] == 5.0


def test_data_uploads_land_in_imports_where_sql_reads_them_and_show_their_name(workspace, project, tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_DATA_DIRS", raising=False)
    app = DataDashboard(workspace)
    csv = clustered_interactions(n_users=30, n_items=20, per_user=4).to_csv(index=False).encode()
    app.source_tabs.selected_index = 0
    assert app.upload.upload.tooltip and app.upload.upload.tooltip != "null" and "no file chosen" in app.upload.chosen.value
    app.import_button.click()
    assert app.import_message.kind == "error" and "Choose a file" in app.import_message.message
    app.upload.upload.value = upload("../up load.csv", csv)
    assert "up load.csv" in app.upload.chosen.value and "KB" in app.upload.chosen.value
    app.preview_button.click()
    assert list(app.preview_frame.columns) == ["user_id", "item_id", "timestamp"]
    app.import_button.click()
    app.wait(60)
    assert app.import_message.kind == "success", app.import_message.message
    saved = workspace.home / "imports" / "uploads" / "up_load.csv"
    assert saved.read_bytes() == csv and not (workspace.data_dir / "uploads").exists()

    app.source_tabs.selected_index = 2  # queries read the folders declared for data: imports/ by default
    app.sql.value = f"SELECT * FROM read_csv('{saved}') WHERE user_id <> 'u0'"
    app.data_name.value = "without u0"
    app.import_data(background=False)
    assert app.import_message.kind == "success", app.import_message.message
    assert workspace.training_data_sets(project)["n_users"].tolist() == [30, 29]

    items = workspace.home / "imports" / "items.csv"
    demo_items(20).to_csv(items, index=False)
    app.meta_path.value = "imports/items.csv"  # relative to the workspace's folder
    app.import_metadata(background=False)
    assert app.meta_message.kind == "success", app.meta_message.message
    assert "20 items" in app.meta_info.value and "Title 1" in app.meta_info.value
    assert "5 of 20 items shown" in app.meta_info.value


def test_the_path_box_reads_only_the_folders_for_data_never_the_signing_key(workspace, project, tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_DATA_DIRS", raising=False)
    key = workspace.data_dir / "signing.key"
    workspace.keyring  # noqa: B018  (creates the key file)
    assert key.exists()
    imports = workspace.home / "imports"
    imports.mkdir()
    (imports / "innocent.csv").symlink_to(key)
    outside = tmp_path / "elsewhere.csv"
    clustered_interactions(n_users=10, n_items=5, per_user=2).to_csv(outside, index=False)
    app = DataDashboard(workspace)
    app.source_tabs.selected_index = 1
    for typed in ("data/signing.key", str(key), "imports/../data/signing.key", "imports/innocent.csv", str(outside)):
        app.path.value = typed
        app.preview_button.click()
        assert app.import_message.kind == "error" and "not in a folder for data" in app.import_message.message, typed
        assert app.preview_html.value == "" and key.read_bytes()[:8].hex() not in texts(app)
        app.import_button.click()
        assert app.import_message.kind == "error", typed
        app.meta_path.value = typed
        app.meta_button.click()
        assert app.meta_message.kind == "error" and "not in a folder for data" in app.meta_message.message, typed
    assert str(imports) in app.folders_note.value
    assert workspace.training_data_sets(project).empty and workspace.latest_item_metadata(project) is None
    monkeypatch.setenv("WORKBENCH_DATA_DIRS", str(tmp_path))  # the workspace lies inside: its data/ stays private
    app.path.value = str(outside)
    app.preview_button.click()
    assert app.import_message.kind != "error", app.import_message.message
    app.path.value = str(key)
    app.preview_button.click()
    assert app.import_message.kind == "error" and "never the workspace's data/" in app.import_message.message


def test_data_preview_and_mapped_import_use_the_import_reader(workspace, project, tmp_path, monkeypatch):
    """A file named like a query previews as a file; a mapped gzipped Parquet file imports as it is."""
    monkeypatch.delenv("WORKBENCH_DATA_DIRS", raising=False)
    frame = clustered_interactions(n_users=20, n_items=15, per_user=3).rename(columns={"user_id": "visitor"})
    imports = workspace.home / "imports"
    imports.mkdir()
    frame.to_csv(imports / "with.csv", index=False)
    app = DataDashboard(workspace)
    app.source_tabs.selected_index = 1
    app.path.value = "imports/with.csv"
    app.preview_button.click()
    assert app.import_message.kind != "error", app.import_message.message
    assert list(app.preview_frame.columns) == ["visitor", "item_id", "timestamp"]
    packed = imports / "clicks.parquet.gz"
    packed.write_bytes(__import__("gzip").compress(frame.to_parquet(index=False)))
    app.path.value = str(packed)
    app.preview_button.click()
    assert app.import_message.kind != "error", app.import_message.message
    app.map_user.value = "visitor"
    app.import_data(background=False)
    assert app.import_message.kind == "success", app.import_message.message
    assert workspace.training_data_sets(project)["n_users"].tolist() == [20]
    broken = imports / "broken.csv"
    broken.write_text("user_id,item_id,timestamp\n")  # a header line only
    app.path.value = str(broken)
    app.mapping_box.layout.display = "none"
    app.import_button.click()
    app.wait(60)
    assert app.import_message.kind == "error" and "no data rows" in app.import_message.message
    assert "Traceback" not in app.import_message.value


# --- training


def test_param_form_has_the_registry_defaults_and_validates():
    form = ParamForm("IALS")
    assert form.values() == wb.algorithms.resolve_params("IALS", None)
    assert form.inputs["reg"].value == "" and form.inputs["solver_type"].value == "CG"
    form.inputs["n_components"].value = 0
    with pytest.raises(wb.ValidationError, match="n_components"):
        form.values()
    assert set(ParamForm("TopPop").values()) == set(wb.algorithms.weighting.NAMES)  # every form offers the weighting
    for name in wb.algorithms.list_algorithms():  # every algorithm's form starts at its defaults
        assert ParamForm(name).values() == wb.algorithms.resolve_params(name, None), name
    nmf = ParamForm("NMF")
    assert nmf.inputs["init"].value == "(none)" and nmf.values()["init"] is None
    nmf.set_values({"init": "nndsvd"})
    assert nmf.values()["init"] == "nndsvd"


def test_training_a_new_configuration_scores_it_and_ends_with_links_to_the_model(shared):
    app = TrainingDashboard(shared)
    assert app.evaluate.value  # a score at training time, by default
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
    assert app.message.kind == "success" and "Held-out ndcg@20" in app.message.message and not app.start_button.disabled
    assert any("Learned in" in line for line in app.monitor.lines) and "INFO" not in app.monitor.log_view.value
    model = shared.model(app.model.id)
    assert model.metrics["ndcg@20"] > 0 and "ndcg@20" in app.result.value
    for link in (f"models.ipynb?project=demo&amp;model={model.id}", f"recommendations.ipynb?project=demo&amp;model={model.id}",
                 download_url(model.id)):
        assert link in app.result.value and link in app.monitor.conclusion.value, link
    new = set(shared.models("demo")["id"]) - before
    assert new == {app.model.id}
    config = shared.configuration(model.configuration_id)
    assert config.name == "IALS from the form" and config.params["n_components"] == 8


def test_training_a_saved_configuration_and_showing_bad_input_next_to_the_button(shared):
    app = TrainingDashboard(shared)
    assert app.mode.value == "existing" and app.configuration.value is not None
    topop = int(shared.configurations("demo").query("algorithm == 'TopPop'")["id"].iloc[0])
    app.configuration.value = topop
    app.evaluate.value = False
    model = app.start(background=False)
    app.wait(60)
    assert model.status == "SUCCESS" and app.message.kind == "success" and shared.model(model.id).metrics == {}
    app.mode.value = "new"
    app.algorithm.value = "RP3beta"
    app.form.inputs["beta"].value = -1.0
    app.start_button.click()
    assert app.message.kind == "error" and "beta" in app.message.message and app.banner.kind == ""


# --- tuning


def test_a_checkbox_group_shows_its_state_both_ways():
    names = wb.algorithms.list_algorithms()
    group = CheckboxGroup(names, wb.algorithms.DEFAULT_PORTFOLIO)
    assert [box.value for box in group.boxes.values()] == [n in wb.algorithms.DEFAULT_PORTFOLIO for n in names]
    group.boxes["SLIM"].value = True
    assert "SLIM" in group.value and len(group.value) == len(wb.algorithms.DEFAULT_PORTFOLIO) + 1
    group.value = ("TopPop",)
    assert [n for n, box in group.boxes.items() if box.value] == ["TopPop"]
    with pytest.raises(Exception, match="not an option"):
        group.value = ("Nope",)


def test_tuning_shows_live_trials_a_readable_log_the_best_and_what_it_produced(shared):
    app = TuningDashboard(shared)
    assert set(app.algorithms.value) == set(wb.algorithms.DEFAULT_PORTFOLIO)
    assert all(isinstance(box, wb.ui.controls.widgets.Checkbox) for box in app.algorithms.children)
    assert len(app.algorithms.children) == len(wb.algorithms.list_algorithms())  # all visible, none scrolled away
    assert f"{len(wb.algorithms.DEFAULT_PORTFOLIO)} of" in app.algorithm_count.value
    app.none_button.click()
    assert app.algorithms.value == () and "0 of" in app.algorithm_count.value
    app.start_button.click()
    assert app.message.kind == "error" and "at least one algorithm" in app.message.message
    app.algorithms.boxes["TopPop"].value = True
    app.algorithms.boxes["RP3beta"].value = True
    app.n_trials.value = 4
    app.timeout.value = 120
    app.cutoff.value = 10
    app.start_button.click()
    assert app.tuning_job is not None and app.start_button.disabled
    app.wait(180)
    job = shared.tuning_job(app.tuning_job.id)
    assert job.status == "SUCCESS", app.message.message
    assert len(app.trials_table.frame) == len(job.trials) == 4
    assert sorted(app.trials_table.frame["trial"]) == [1, 2, 3, 4]
    best = list(app.chart.line.y)
    assert best and best == sorted(best) and abs(best[-1] - job.best_score) < 1e-9
    assert list(app.chart.best_point.y) == [pytest.approx(job.best_score)]
    assert app.chart.y_scale.min == 0 and all(float(t).is_integer() for t in app.chart.x_axis.tick_values)
    assert "wb-best" in app.trials_table.html.value
    lines = "\n".join(app.monitor.lines)
    assert "Held-out split (random, seed" in lines and "fingerprint" not in lines and "{" not in lines
    assert re.search(r"Trial 1: (TopPop|RP3beta) ndcg@10 0\.\d{4} in \d+\.\d s", lines), lines
    assert f"Trained model #{job.model_id}" in lines and "wb-log-box" in app.monitor.log_view.value
    assert "Finished" in app.monitor.status.value and "training the best" not in app.monitor.status.value
    produced = app.monitor.conclusion.value
    assert f"model #{job.model_id}" in produced and f"recommendations.ipynb?project=demo&amp;model={job.model_id}" in produced
    assert f"models.ipynb?project=demo&amp;model={job.model_id}" in app.outcome_card.value
    assert shared.model(job.model_id).status == "SUCCESS"
    assert len(app.history.frame) >= 1
    insight = shared.tuning_insight(job.id)  # what mattered, shown after the job
    assert app.insight.tuning_job_id == job.id and "best ndcg@10 of each algorithm" in app.insight.summary.value
    for algorithm, n_trials in zip(insight.by_algorithm["algorithm"], insight.by_algorithm["n_trials"]):
        assert f"<td>{algorithm}</td><td>{n_trials}</td>" in app.insight.summary.value
        assert algorithm in app.insight.notes.value or f"{algorithm} importance (" in texts_of_charts(app)


def test_tuning_refuses_bad_input_with_a_message(workspace, project):
    empty = TuningDashboard(workspace)  # a project without training data
    assert empty.data.value is None
    empty.start_button.click()
    assert empty.message.kind == "error" and "Choose training data" in empty.message.message
    assert list(empty.chart.x_axis.tick_values) == [0, 1, 2, 3, 4, 5] and empty.chart.y_scale.min == 0


# --- models


@pytest.fixture
def lifecycle_ws(tmp_path):
    return build_demo_home(tmp_path / "home", **SMALL_DEMO)


def test_models_are_selected_in_the_table_and_the_actions_act_on_the_selection(lifecycle_ws):
    ws = lifecycle_ws
    app = ModelsDashboard(ws)
    assert app.table.selectable and len(app.table.row_boxes) == len(app.frame) < app.table.page_size
    assert set(app.table.shown_columns) <= {"id", "algorithm", "configuration", "status", "active", "ndcg@10",
                                            "ndcg@20", "val_ndcg@20", "trained_at", "file", "top-N"}
    assert "n_interactions" in app.table.frame.columns and "n_interactions" not in app.table.shown_columns
    app.table.columns_button.value = True
    app.table.picker.boxes["n_interactions"].value = True  # the rest is a click away
    assert "n_interactions" in app.table.shown_columns and "<th>n_interactions</th>" in app.table.head_html.value
    ids = sorted(int(i) for i in app.frame["id"])
    active = int(ws.project("demo").active_model_id)
    other = next(i for i in ids if i != active)

    app.compare_button.click()
    assert app.message.kind == "error" and "Tick a model" in app.message.message
    for box in app.table.row_boxes[:len(ids)]:  # tick every row, as a user does
        box.value = True
    assert sorted(app.table.selected) == ids and "2 selected" in app.selection_label.value
    app.compare_button.click()
    assert app.message.kind == "info"  # the earlier error is gone
    app.wait(120)
    assert app.comparison is not None and sorted(app.comparison["model_id"]) == ids
    table = app.comparison_table
    assert "ndcg@10" in table.frame.columns and "ndcg@10" not in table.shown_columns  # @10 a click away
    assert "<th>ndcg@20</th>" in table.html.value and "wb-best" in table.html.value
    assert len(app.charts.children) == 8  # one chart per metric at the largest cutoff: 5 accuracy, coverage, popularity bias, novelty
    chart = app.charts.children[0]
    assert chart.axes[1].scale.min == 0 and not chart.axes[1].scale.allow_padding and "best #" in chart.title
    assert sorted(chart.marks[0].color) == [0.0, 1.0]  # the best bar in its own colour
    assert {"ndcg@10", "ndcg@20", "recall@20"} <= set(app.table.shown_columns)  # the metrics are saved, shown
    assert "wb-best" in "".join(cell.value for cell in app.table.row_htmls)

    app.table.row_boxes[[int(i) for i in app.table.view["id"]].index(active)].value = False  # untick the active one
    assert app.table.selected == [other]
    assert f"recommendations.ipynb?project=demo&amp;model={other}" in app.nav.value
    app.activate_button.click()
    assert int(ws.project("demo").active_model_id) == other and app.message.kind == "success"
    assert bool(app.frame.set_index("id").loc[other, "active"])

    app.delete_button.click()  # the active one: refused before any confirmation, next to the buttons
    assert app.message.kind == "error" and "active model" in app.message.message and app.banner.kind == ""
    assert app.confirm_box.layout.display == "none"
    app.select(active)
    app.delete_button.click()
    assert app.message.kind == "" and app.confirm_box.layout.display == "" and f"#{active}" in app.confirm_text.value
    app.cancel_delete_button.click()
    assert active in set(ws.models("demo")["id"])
    app.delete_button.click()
    app.confirm_button.click()
    assert active not in set(ws.models("demo")["id"]) and app.message.kind == "success"
    assert active not in app.table.frame["id"].tolist() and app.table.selected == []

    app.select(other)
    new = app.retrain()
    app.wait(120)
    fresh = ws.model(new.id)
    assert fresh.status == "SUCCESS" and fresh.configuration_id == ws.model(other).configuration_id
    assert fresh.metrics.get("ndcg@20") is not None  # scored at training time
    assert new.id in set(app.frame["id"]) and "Model #" in app.retrained.value and app.message.kind == "success"

    # "Retrain active": the retraining gate (workbench.retrain) on the latest data, its report on the page
    before = set(ws.models("demo")["id"])
    app.gated_button.click()
    app.wait(300)
    added = set(ws.models("demo")["id"]) - before
    assert added and any(f"model {i}" in app.retrained.value for i in added), app.retrained.value
    assert "held out" in app.retrained.value and app.message.kind in ("success", "info")
    activated = int(ws.project("demo").active_model_id) != other
    assert activated == (app.message.kind == "success") and activated == ("activated model" in app.message.message)


def test_a_model_downloads_in_one_click_from_the_server_with_no_copy_left(lifecycle_ws):
    ws = lifecycle_ws
    app = ModelsDashboard(ws)
    for model_id, cell in zip(app.table.frame["id"], app.table.frame["file"]):
        model = ws.model(int(model_id))
        assert f"href='{download_url(model.id)}'" in cell and f"download='{model.basename}'" in cell
    assert "base64" not in texts(app) and not (ws.home / "exports").exists()
    assert "inspect_model_file" not in texts(app)


def test_models_table_with_a_thousand_models_pages_sorts_searches_and_selects(lifecycle_ws):
    ws = lifecycle_ws
    model = ws.model(int(ws.models("demo")["id"].iloc[0]))
    ws.catalog.run(lambda con: con.execute(
        "INSERT INTO models (project_id, configuration_id, training_data_id, status, n_users, n_items, "
        "n_interactions, train_seconds, metrics, stats, filesize, basename) "
        "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1000) "
        "SELECT ?, ?, ?, 'SUCCESS', 300, 120, 3600, 0.5, '{\"ndcg@10\": 0.1}', '{}', 4096, 'x.wbm' FROM n",
        [model.project_id, model.configuration_id, model.training_data_id]))
    app = ModelsDashboard(ws)  # its speed is measured in bench/bench_dashboards.py, not here
    assert len(app.frame) >= 1000 and "of 1,002" in app.table.page_label.value
    assert len(app.table.rows) == app.table.page_size and all(row.layout.display != "none" for row in app.table.rows)
    first_page = list(app.table._page_keys)
    app.table.row_boxes[0].value = True
    app.table.next_button.click()
    assert app.table._page_keys != first_page and not any(box.value for box in app.table.row_boxes)
    assert app.table.selected == [first_page[0]]  # the selection outlives a page turn
    app.table.sort_by.value = "id"
    app.table.search.value = "IALS"
    assert 0 < len(app.table.view) < len(app.table.frame) and "filtered from 1,002" in app.table.page_label.value


# --- recommendations


def test_recommendations_load_the_model_before_any_click_and_answer_a_typed_random_and_new_user(shared):
    app = RecommendationsDashboard(shared)
    assert "active" in app.model.label  # the active model comes first
    app.wait(60)
    assert app.loader.loaded(app.model.value) is not None and "model loaded" in app.model_state.value
    recommender = app.recommender()
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
    assert scores == sorted(scores, reverse=True) and "wb-best" in app.recs_html.value

    app.user_id.value = "nobody"
    app.recommend_button.click()
    app.wait(60)
    assert app.message.kind == "error" and "'nobody' is not in the training data" in app.message.message
    assert "Random user" in app.message.message and "recommend_for_profile" not in app.message.message
    assert app.recs_html.value == ""

    app.random_button.click()
    app.wait(60)
    assert app.message.kind == "" and app.result["user_id"] != "nobody" and len(app.result["user_profile"]) > 0
    assert app.result["user_profile"][0].get("title") and app.user_id.value == str(app.result["user_id"])

    title = str(items["title"].iloc[3])
    app.search.value = title.upper()
    labels = [label for label, _ in app.matches.options]
    assert labels and all(title in label for label in labels)
    assert re.search(r"\d+ matches", app.matches_label.value)
    app.search.value = ""
    assert f"50 of {len(items):,} matches" in app.matches_label.value
    app.search.value = title.upper()
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


def test_a_long_profile_says_how_much_of_it_is_shown(shared):
    app = RecommendationsDashboard(shared)
    recommender = app.recommender()
    counts = np.diff(recommender.recommender.X_train_all.indptr)
    heavy = str(recommender.user_ids[int(np.argmax(counts))])
    assert counts.max() > 30
    app.recommend_user(heavy, background=False)
    assert f"30 of {counts.max():,} items shown" in app.profile_html.value


def described(widget):
    """The widgets under `widget` that carry a description label."""
    found = [widget] if isinstance(widget, DescriptionWidget) else []
    for child in getattr(widget, "children", ()) or ():
        found += described(child)
    return found


def test_no_dashboard_gives_python_advice_or_null_tooltips(shared):
    pages = [HomeDashboard(shared), DataDashboard(shared), TuningDashboard(shared), TrainingDashboard(shared),
             ModelsDashboard(shared), RecommendationsDashboard(shared)]
    for app in pages:
        app.wait(60)
        shown = texts(app)
        assert not re.search(r"\bws\.|\bwb\.|recommend_for_profile|inspect_model_file|import workbench", shown), app.name
        assert [w for w in described(app) if w.tooltip is None] == [], app.name  # drawn as a "null" tooltip


# --- shared parts


def test_data_table_pages_sorts_filters_and_chooses_columns():
    frame = pd.DataFrame({"id": np.arange(95), "name": [f"row {i}" for i in range(95)], "extra": ["x"] * 95})
    table = DataTable(frame, page_size=10, columns=["id", "name"], best=["id"])
    assert table.n_pages == 10 and "row 9<" in table.html.value and "row 10<" not in table.html.value
    assert "<th>extra</th>" not in table.html.value and table.columns_button.layout.display == ""
    table.show_columns("extra")
    assert "<th>extra</th>" in table.html.value
    table.next_button.click()
    assert table.page == 1 and "row 10<" in table.html.value
    table.sort_by.value = "id"
    assert table.descending.value and "row 94<" in table.html.value and "class=wb-best>94<" in table.html.value
    table.search.value = "row 5"
    assert len(table.view) == 11 and "filtered from 95" in table.page_label.value  # row 5, row 50-59
    long = DataTable(pd.DataFrame({"genres": ["Drama|" * 40]}))
    assert "table-layout" not in long.html.value and "<table class='wb-table'>" in long.html.value  # wraps to fit


class _FakeJob:
    id = 7

    def __init__(self):
        self.calls = 0

    @property
    def record(self):
        self.calls += 1
        status = "RUNNING" if self.calls < 3 else "FAILURE"
        return {"id": 7, "kind": "train", "status": status, "progress": 0.5, "step": "learning",
                "error": "Out of memory." if status == "FAILURE" else None,
                "started_at": "2024-01-01 00:00:00", "finished_at": "2024-01-01 00:00:12"}

    def log(self, after_id=0):
        rows = [{"id": i, "logged_at": pd.Timestamp("2024-01-01"), "level": "INFO", "message": f"line {i}"}
                for i in range(1, 40)]
        rows.append({"id": 40, "logged_at": pd.Timestamp("2024-01-01"), "level": "ERROR", "message": "Out of memory."})
        return pd.DataFrame([r for r in rows if r["id"] > after_id])


def test_job_monitor_follows_a_job_to_its_end_in_a_thread_with_the_newest_line_in_view():
    monitor = JobMonitor(interval=0.01)
    finished = []
    monitor.watch(_FakeJob(), on_finish=finished.append)
    assert monitor.join(10)
    assert finished and finished[0]["status"] == "FAILURE"
    assert monitor.progress.bar_style == "danger" and "Out of memory." in monitor.status.value
    assert "Failed" in monitor.status.value and "after 12 s" in monitor.status.value
    assert len(monitor.lines) == 40 and monitor.lines[0] == "00:00:00 line 1" and monitor.cancel_button.disabled
    assert monitor.lines[-1] == "00:00:00 ERROR: Out of memory."
    assert "wb-log-box" in monitor.log_view.value  # a column-reverse box: scrolled to its newest line


def test_pages_served_without_the_chart_library_are_exactly_the_dashboards_without_charts():
    """`workbench serve` leaves bqplot's JavaScript out of the pages in voila_server.CHART_FREE: a
    chart on one of them would not render, and a charted page missing from it would not load."""
    import importlib
    import inspect

    import workbench.ui as ui
    from workbench.voila_server import CHART_FREE

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    checked = 0
    for notebook in sorted(notebooks.glob("*.ipynb")):
        dashboard = re.search(r"from workbench\.ui import (\w+Dashboard)", notebook.read_text())
        if dashboard is None:  # not a dashboard (the retraining notebook)
            continue
        module = importlib.import_module(getattr(ui, dashboard.group(1)).__module__)
        charts = re.search(r"\b(bqplot|BestSoFarChart|bar_chart)\b", inspect.getsource(module)) is not None
        assert bool(CHART_FREE.match(notebook.name)) == (not charts), notebook.name
        checked += 1
    assert checked == 6


# --- why: explanations, similar items, segments, tuning insight


def test_recommendations_explain_each_item_for_a_known_a_random_and_a_new_user(shared):
    from workbench.explanations import because_text

    app = RecommendationsDashboard(shared)
    app.wait(60)
    recommender = app.recommender()  # the active model, IALS: its scores split over the user's items
    assert recommender.algorithm.name == "IALS" and recommender.cannot_explain is None
    items = shared.item_metadata_frame(shared.latest_item_metadata("demo"))
    titles = dict(zip(items["item_id"].astype(str), items["title"].astype(str)))
    user = str(recommender.user_ids[11])
    app.recommend_user(user, background=False)
    shown = app.recs_html.value
    assert "<th>because you watched</th>" in shown and "cannot be explained" not in shown
    for row in recommender.recommend(user, cutoff=10, explain=True):
        text = because_text([{**p, "item_id": str(p["item_id"])} for p in row["because"]], titles)
        assert text and "%" in text and html.escape(text) in shown  # "Title A (41%), Title B (22%)", beside the item
    assert all(p["item_id"] in recommender.profile(user) for r in app.result["recommendations"] for p in r["because"])

    app.random_button.click()
    app.wait(60)
    assert app.message.kind == "" and "<th>because you watched</th>" in app.recs_html.value
    assert re.search(r"\(\d+%\)", app.recs_html.value)

    picked = [str(i) for i in items["item_id"].iloc[[2, 9, 30]]]
    for item in picked:
        app.add_item(item)
    app.profile_button.click()
    app.wait(60)
    rows = app.profile_result
    assert rows and all(r["because"] and {p["item_id"] for p in r["because"]} <= set(picked) for r in rows)
    assert "<th>because you watched</th>" in app.new_recs_html.value
    assert any(html.escape(titles[p]) in app.new_recs_html.value for p in picked)


def test_recommendations_say_in_one_line_why_a_model_cannot_explain_or_has_no_similar_items(shared):
    data = shared.latest_training_data("demo")
    user_knn = shared.train(shared.create_configuration("demo", "CosineUserKNN", name="user knn"), data)
    top_pop = int(shared.models("demo").query("algorithm == 'TopPop'")["id"].iloc[0])
    app = RecommendationsDashboard(shared, model=user_knn.id)
    app.wait(60)
    assert app.model.value == user_knn.id
    app.random_user(background=False)
    reason = "CosineUserKNN recommendations cannot be explained: " + wb.algorithms.get_algorithm("CosineUserKNN").unexplainable
    assert html.escape(reason) in app.recs_html.value and "<th>because you watched</th>" not in app.recs_html.value
    no_similar = app.recommender().cannot_find_similar
    assert "CosineUserKNN" in no_similar and "no similar items" in no_similar
    assert html.escape(no_similar) in app.similar_state.value  # said as the model loads, before any click
    app.similar_finder.search.value = ""
    app.similar_finder.matches.value = app.similar_finder.matches.options[0][1]
    app.similar_button.click()
    app.wait(60)
    assert app.similar_message.kind == "error" and app.similar_message.message == no_similar
    assert app.similar_html.value == ""
    app.model.value = top_pop
    app.wait(60)
    app.add_item(str(app.recommender().item_ids[0]))
    app.recommend_profile(background=False)
    assert "it ranks items by popularity alone" in app.new_recs_html.value and "TopPop" in app.similar_state.value


def test_similar_items_are_found_by_searching_an_item_and_carry_metadata(shared):
    app = RecommendationsDashboard(shared)
    app.wait(60)
    model_id = app.model.value
    assert app.similar_state.value == ""  # IALS relates items through its factors
    items = shared.item_metadata_frame(shared.latest_item_metadata("demo"))
    title = str(items["title"].iloc[4])
    app.similar_finder.search.value = title.lower()
    assert app.similar_finder.matches.options and all(title in label for label, _ in app.similar_finder.matches.options)
    app.similar_button.click()
    app.wait(60)
    assert app.similar_message.kind == "error" and "pick it" in app.similar_message.message
    item = app.similar_finder.matches.options[0][1]
    app.similar_finder.matches.value = item
    app.cutoff.value = 6
    app.similar_button.click()
    app.wait(60)
    expected = shared.similar_items(model_id, item, cutoff=6, metadata=True)
    assert [r["item_id"] for r in app.similar_result] == [r["item_id"] for r in expected]
    assert [r["title"] for r in app.similar_result] == [r["title"] for r in expected]
    shown = app.similar_html.value
    assert f"6 items most similar to {html.escape(title)}" in shown and "<th>similarity</th>" in shown
    assert all(html.escape(r["title"]) in shown for r in expected) and "wb-best" in shown


def test_models_compare_shows_metric_definitions_and_each_user_segment(shared):
    from workbench.evaluation.beyond import METRIC_DEFINITIONS

    app = ModelsDashboard(shared)
    models = app.frame[app.frame["algorithm"].isin(["TopPop", "IALS"])]
    app.select(*models["id"].head(2))
    assert app.segments.value == "activity" and app.since.layout.display == "none"
    app.compare_button.click()
    app.wait(120)
    assert app.message.kind == "success", app.message.message
    assert list(app.comparison.columns).count("segment") == 0 and len(app.comparison) == 2  # the overall rows
    for name in ("coverage", "popularity_bias", "novelty"):
        assert f"<b>{name}</b>: {html.escape(METRIC_DEFINITIONS[name])}" in app.definitions.value
    view = app.segment_view
    assert list(view.frame["segment"].unique()) == ["all", "light", "medium", "heavy"]
    summary = view.summary.value
    assert "ndcg@20 by user segment" in summary and "<th>light</th>" in summary and "<th>heavy</th>" in summary
    for definition in view.frame["definition"].unique():
        assert html.escape(definition) in summary  # "at most 14 training interactions"...
    assert [c.title.split(" (")[0] for c in view.charts.children] == ["all", "light", "medium", "heavy"]
    for chart, segment in zip(view.charts.children, ("all", "light", "medium", "heavy")):
        rows = view.frame[view.frame["segment"] == segment]
        winner = rows.loc[rows["ndcg@20"].idxmax()]
        assert list(chart.marks[0].x)[list(chart.marks[0].color).index(1.0)] == f"#{winner.model_id} {winner.algorithm}"
        assert chart.axes[1].scale.min == 0

    app.segments.value = "new_since"
    assert app.since.layout.display == "" and re.fullmatch(r"\d{4}-\d\d-\d\d", app.since.value)
    suggested, app.since.value = app.since.value, ""
    app.compare_button.click()
    assert app.message.kind == "error" and "Type a date next to “since”" in app.message.message
    app.since.value = suggested
    app.compare_button.click()
    app.wait(120)
    assert list(app.segment_view.frame["segment"].unique())[1:] in (["new", "existing"], ["new"], ["existing"])
    assert f"first interaction on or after {app.since.value}" in app.segment_view.summary.value or \
        f"first interaction before {app.since.value}" in app.segment_view.summary.value


def test_a_model_that_wins_on_average_but_loses_on_light_users_shows_at_a_glance():
    from workbench.ui.segments import SegmentView

    rows = [(1, "IALS", "all", 0.30), (1, "IALS", "light", 0.05), (1, "IALS", "heavy", 0.50),
            (2, "TopPop", "all", 0.20), (2, "TopPop", "light", 0.15), (2, "TopPop", "heavy", 0.25)]
    frame = pd.DataFrame([{"model_id": m, "algorithm": a, "segment": s, "definition": f"{s} users",
                           "n_users": 10, "ndcg@20": v} for m, a, s, v in rows])
    view = SegmentView()
    view.show(frame, "ndcg@20")
    assert "light: <b>#2 TopPop</b> <span style='color:#b26a00'>(not the best overall)</span>" in view.summary.value
    assert "all: <b>#1 IALS</b> ·" in view.summary.value and "heavy: <b>#1 IALS</b>" in view.summary.value
    light = view.charts.children[1]
    assert "light" in light.title and "best #2 TopPop" in light.title and list(light.marks[0].color) == [0.0, 1.0]


def test_tuning_shows_what_mattered_or_that_there_are_too_few_trials(shared):
    data = shared.latest_training_data("demo")
    many = shared.tune(data, algorithms=["RP3beta"], n_trials=6, cutoff=10, train_after_tuning=False)
    few = shared.tune(data, algorithms=["RP3beta"], n_trials=2, cutoff=10, train_after_tuning=False)
    app = TuningDashboard(shared)  # opens on the latest job, with too few trials for importances
    app.wait(120)
    assert app.tuning_job.id == few.id and app.insight.tuning_job_id == few.id, app.insight_message.message
    assert "No parameter importances for RP3beta: 2 completed trial(s); importances need at least 5" in app.insight.notes.value
    assert "<td>RP3beta</td><td>2</td><td>2</td>" in app.insight.summary.value
    assert [c.title.split(" · ")[0] for c in app.insight.charts.children] == ["best ndcg@10"]

    app.show_job(many.id)  # a past job with enough trials
    app.wait(120)
    insight = shared.tuning_insight(many.id)
    assert app.insight.notes.value == "" and "<td>RP3beta</td><td>6</td><td>6</td>" in app.insight.summary.value
    best, importance = app.insight.charts.children
    assert list(best.marks[0].x) == ["RP3beta (6 trials)"]
    assert list(best.marks[0].y) == pytest.approx([insight.by_algorithm["best_score"].iloc[0]])
    assert importance.title.startswith("RP3beta importance (6 trials)")
    assert list(importance.marks[0].x) == insight.importances["parameter"].tolist()
    assert list(importance.marks[0].y) == pytest.approx(insight.importances["importance"].tolist())
    assert f"best {insight.importances['parameter'].iloc[0]}" in importance.title  # the one that mattered most
    app.show_job(few.id)  # an ended job's insight is kept: shown again at once
    assert app.insight.tuning_job_id == few.id and "importances need at least 5" in app.insight.notes.value
