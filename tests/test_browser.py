"""The dashboards in a real browser: Voila (as `workbench serve` runs it) and Debian's Chromium.

Playwright (PyPI) drives /usr/bin/chromium, never a browser of its own. The server (test_server.Server)
runs on a free loopback port with a token and a throwaway WORKBENCH_HOME holding the demo project.
Screenshots of every dashboard go to a temporary folder, or to WORKBENCH_SCREENSHOTS when set:
`make screenshots` refreshes the README's docs/screenshots/ that way.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import clustered_interactions
from test_server import DASHBOARDS, Server
from test_ui import build_demo_home

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDGET_ERROR = "Error displaying widget"
LOADED_MACHINE_MS = 180_000  # the longest a page may take to show what a test waits for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The demo project with two models and a tuning job, and a second project ("shop") with data of its own."""
    path = tmp_path_factory.mktemp("browser") / "home"
    ws = build_demo_home(path)
    ws.tune(ws.latest_training_data("demo"), algorithms=["TopPop", "RP3beta"], n_trials=5, cutoff=10)
    shop = ws.create_project("shop", user_column="user_id", item_column="item_id", time_column="timestamp")
    ws.import_training_data(shop, clustered_interactions(n_users=60, n_items=40, per_user=6), name="shop clicks")
    return path


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    server = Server(home, tmp_path_factory.mktemp("voila") / "voila.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    return Path(os.environ.get("WORKBENCH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def context(context):
    """Waits without an explicit timeout allow 180 s: Playwright's 30 s is short for a loaded machine (a
    full CI run beside a 100M-row benchmark once took more than 60 s to render a dashboard). These tests
    assert what a page shows, not how fast: speed is measured in bench/."""
    context.set_default_timeout(LOADED_MACHINE_MS)
    return context


def open_dashboard(page, server, name: str):
    page.goto(server.page(name))
    page.locator(".wb-title").first.wait_for()
    page.wait_for_load_state("networkidle")
    return page


def assert_no_widget_error(page) -> None:
    assert page.get_by_text(WIDGET_ERROR).count() == 0, page.inner_text("body")[:2000]
    assert "Traceback" not in page.inner_text("body")
    assert page.locator("[title='null']").count() == 0  # what ipywidgets shows for a tooltip left None
    stderr = page.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    assert stderr.count() == 0, stderr.first.inner_text()  # a dashboard writes nothing to stderr


def screenshot(page, folder: Path, name: str) -> None:
    """The whole dashboard (Voila scrolls inside the page, so grow the viewport to the content)."""
    folder.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("(() => { const app = document.querySelector('.wb-nav').closest('.widget-vbox');"
                           " const box = app.getBoundingClientRect(); return box.top + box.height; })()")
    page.set_viewport_size({"width": 1280, "height": int(min(max(height + 24, 700), 2600))})
    page.wait_for_timeout(300)
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_every_dashboard_is_preheated_and_its_kernel_sees_the_workbench_home(server, home):
    assert len(server.kernels()) == len(DASHBOARDS)
    for kernel in server.kernels():
        assert kernel.environ()["WORKBENCH_HOME"] == str(home)


def test_leaving_a_page_shuts_its_kernel_down(page, server):
    """Each page a browser leaves (navigation, or a closed tab) posts Voila's shutdown request, and it is
    accepted: after twelve page loads only the preheated kernels and the open page's remain. (The culler
    cannot be the reason: it waits 10 minutes by default. This test runs before any other opens a page.)"""
    pooled = len(DASHBOARDS)
    assert server.wait_kernels(pooled) == pooled
    for name in DASHBOARDS * 2:
        open_dashboard(page, server, name)
    assert server.wait_kernels(pooled + 1) == pooled + 1
    page.close(run_before_unload=True)
    assert server.wait_kernels(pooled) == pooled
    assert "_xsrf" not in server.text() and "403 POST" not in server.text()


# (the log box overflows, the box shows the bottom of its last character) for a `.wb-log-box` element
LAST_LINE_IN_VIEW = """box => {
    const text = box.querySelector('pre').firstChild, range = document.createRange();
    range.setStart(text, text.length - 1); range.setEnd(text, text.length);
    const end = range.getBoundingClientRect(), frame = box.getBoundingClientRect();
    return [box.scrollHeight > box.clientHeight, end.bottom <= frame.bottom + 1 && end.top >= frame.top - 1];
}"""


def chosen(page, label: str) -> str:
    """The option shown by the dropdown whose description is `label` (ipywidgets draws spaces as U+00A0)."""
    select = page.locator(".widget-dropdown", has_text=label).locator("select").first
    return select.evaluate("s => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''").replace("\xa0", " ")


def wait_chosen(page, label: str, wanted: str, timeout: float = LOADED_MACHINE_MS) -> None:
    """Until the dropdown `label` shows an option starting with `wanted`."""
    deadline = time.monotonic() + timeout / 1000
    while not chosen(page, label).startswith(wanted):
        assert time.monotonic() < deadline, (label, chosen(page, label), wanted)
        page.wait_for_timeout(200)


def assert_insight_shown(page, insight) -> None:
    """The Tuning page shows what a job's insight says: each algorithm's best score and trials, and per
    algorithm either its parameter importance chart or, in words, why it has none."""
    page.get_by_text(f"Tuning job #{insight.tuning_job_id}: best {insight.metric} of each algorithm").wait_for()
    summary = page.locator(".widget-html", has_text=f"Tuning job #{insight.tuning_job_id}: best").first.inner_text()
    for algorithm, n_trials in zip(insight.by_algorithm["algorithm"], insight.by_algorithm["n_trials"]):
        assert re.search(rf"{algorithm}\s+{n_trials}\s", summary), (algorithm, summary)
        page.locator(".bqplot", has_text=f"{algorithm} ({n_trials} trial{'' if n_trials == 1 else 's'})").first \
            .wait_for(state="attached")
    for algorithm, note in insight.notes.items():
        page.get_by_text(f"No parameter importances for {algorithm}: {note}").wait_for()
    for algorithm in insight.importances["algorithm"].unique():
        page.locator(".bqplot", has_text=f"{algorithm} importance (").first.wait_for(state="attached")


def below(page, outcome: str, button: str, within: float = 160) -> bool:
    """Whether the text `outcome` shows just below (or beside) the button named `button`."""
    message = page.get_by_text(outcome).first.bounding_box()
    pressed = page.get_by_role("button", name=button).first.bounding_box()
    return 0 <= message["y"] - pressed["y"] <= within


@pytest.mark.parametrize("name", ["home", "data", "tuning"])
def test_dashboard_renders(page, server, home, screenshots, name):
    open_dashboard(page, server, name)
    assert_no_widget_error(page)
    body = page.inner_text("body")
    assert "Rec Workbench" in body or name.capitalize() in body
    if name == "home":
        assert "demo" in body and page.locator("a[href='models.ipynb?project=demo']").count() > 0
        assert str(home / "data" / "workbench.sqlite") in body  # WORKBENCH_HOME reached the preheated kernel
    if name == "tuning":  # the latest tuning job: trials, best-so-far chart, the trained model, what mattered
        page.locator(".bqplot").first.wait_for()
        assert page.locator(".bqplot path.line").count() >= 1 and "trained as model #" in body
        import workbench as wb

        ws = wb.open(home)
        assert_insight_shown(page, ws.tuning_insight(int(ws.tuning_jobs("demo")["id"].iloc[0])))
        boxes = page.locator(".widget-gridbox .widget-checkbox input[type=checkbox]")
        assert boxes.count() == 15 and all(boxes.nth(i).is_visible() for i in range(15))  # every algorithm in view
        assert sum(boxes.nth(i).is_checked() for i in range(15)) == 6 and "6 of 15 chosen" in body
    screenshot(page, screenshots, name)


def test_home_links_open_each_dashboard_on_that_rows_project(page, server):
    open_dashboard(page, server, "home")
    row = page.locator("table.wb-table tr", has_text="shop")
    row.get_by_role("link", name="tuning").click()
    page.locator(".wb-title", has_text="Tuning").wait_for()
    wait_chosen(page, "Training data", "#")  # the preheated page switches to the project its address names
    assert "project=shop" in page.url and chosen(page, "Project") == "shop"
    assert "shop clicks" in chosen(page, "Training data")
    page.locator(".wb-nav").get_by_role("link", name="Models").click()  # the navigation carries the project on
    page.locator(".wb-title", has_text="Models").wait_for()
    page.get_by_text("No model in this project yet").wait_for()
    assert "project=shop" in page.url and chosen(page, "Project") == "shop"
    assert_no_widget_error(page)


def test_data_create_a_project_upload_a_file_and_the_path_box_keeps_the_key(page, server, home, tmp_path):
    import workbench as wb

    open_dashboard(page, server, "data")
    new_project = page.get_by_text("New project").first.bounding_box()
    assert new_project["y"] < page.get_by_text("Import training data").first.bounding_box()["y"]  # at the top
    page.get_by_placeholder("movies").fill("uploaded")
    page.get_by_role("button", name="Create project").click()
    page.get_by_text("Created project 'uploaded'").wait_for()
    assert below(page, "Created project 'uploaded'", "Create project") and chosen(page, "Project") == "uploaded"
    csv = tmp_path / "my clicks.csv"
    clustered_interactions(n_users=30, n_items=20, per_user=4).to_csv(csv, index=False)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=re.compile("Choose file")).first.click()
    chooser.value.set_files(str(csv))
    page.get_by_text("my clicks.csv").first.wait_for()  # the chosen file's name, shown
    page.get_by_role("button", name=re.compile(r"^\W*Import$")).click()
    page.get_by_text("Imported training data").wait_for()
    assert below(page, "Imported training data", re.compile(r"^\W*Import$"))
    assert (home / "imports" / "uploads" / "my_clicks.csv").exists()
    assert wb.open(home).training_data_sets("uploaded")["n_users"].tolist() == [30]

    key = (home / "data" / "signing.key").read_bytes()
    page.get_by_role("tab", name="Path").click()
    page.get_by_placeholder("imports/ratings.csv").fill("data/signing.key")
    page.get_by_role("button", name="Preview").click()
    page.get_by_text("is not in a folder for data").wait_for()
    assert below(page, "is not in a folder for data", "Preview")
    body = page.inner_text("body")
    assert key.hex()[:16] not in body and key[:16].decode("latin-1") not in body
    page.get_by_role("button", name="Create project").click()  # the next action clears the outcome
    page.get_by_text("is not in a folder for data").wait_for(state="detached")
    assert_no_widget_error(page)


def test_tuning_in_the_browser_follows_its_log_and_ends_with_a_link_to_the_model(page, server, home):
    open_dashboard(page, server, "tuning")
    page.get_by_role("button", name="None", exact=True).click()
    # TopPop and RP3beta start checked (the default set): until the kernel has answered "None",
    # check() would find them checked, do nothing, and the kernel's answer would then clear them
    page.get_by_text("0 of 15 chosen").wait_for()
    for name in ("TopPop", "RP3beta"):
        page.get_by_role("checkbox", name=name, exact=True).check()
    page.get_by_text("2 of 15 chosen").wait_for()
    trials = page.locator(".widget-inline-hbox", has_text=re.compile(r"^Trials$")).locator("input").first
    trials.fill("12")
    trials.press("Tab")
    page.get_by_role("button", name="Start tuning").click()
    page.get_by_text("Produced").wait_for()
    log = page.locator(".wb-log-box").first
    assert "Trial 12: " in log.inner_text() and "Held-out split" in log.inner_text()
    overflows, last_line_in_view = log.evaluate(LAST_LINE_IN_VIEW)
    assert overflows and last_line_in_view  # the log is longer than its box, and shows its end
    status = page.locator(".widget-html", has_text="Finished").first.inner_text()
    assert "training the best" not in status
    import workbench as wb

    ws = wb.open(home)
    job = ws.tuning_jobs("demo").iloc[0]
    assert job["n_trials"] == 12
    assert_insight_shown(page, ws.tuning_insight(int(job["id"])))  # what mattered, once the job has ended
    produced = page.locator(".wb-card", has_text="Produced").first
    model_id = re.search(r"model #(\d+)", produced.inner_text()).group(1)
    produced.get_by_role("link", name="Recommendations").click()
    page.locator(".wb-title", has_text="Recommendations").wait_for()
    wait_chosen(page, "Model", f"#{model_id} ")
    assert f"model={model_id}" in page.url and "project=demo" in page.url
    assert_no_widget_error(page)


def test_training_end_to_end_then_the_model_is_ticked_compared_charted_and_downloaded(page, server, home, screenshots):
    import workbench as wb

    ws = wb.open(home)
    before = set(ws.models("demo")["id"])
    open_dashboard(page, server, "training")
    page.get_by_role("button", name="New configuration").click()
    page.get_by_text("n_components", exact=True).first.wait_for()
    assert page.get_by_label(re.compile("Score it on a held-out split")).is_checked()
    page.get_by_role("button", name="Start Training").click()
    page.get_by_text("is trained").wait_for()
    assert_no_widget_error(page)
    new = set(ws.models("demo")["id"]) - before
    assert len(new) == 1
    (model_id,) = new
    assert f"Model #{model_id}" in page.inner_text("body") and "Held-out ndcg@20" in page.inner_text("body")
    screenshot(page, screenshots, "training")

    open_dashboard(page, server, "models")  # a kernel preheated before the training: it reloads on request
    row = page.locator(".wb-row").filter(has=page.locator("td", has_text=re.compile(rf"^{model_id}$")))
    row.wait_for()
    other = ws.model(min(before))
    for ticked in (model_id, other.id):
        page.locator(".wb-row").filter(has=page.locator("td", has_text=re.compile(rf"^{ticked}$"))) \
            .locator("input[type=checkbox]").check()
    page.get_by_text("2 selected").wait_for()
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("Compared 2 models").wait_for()
    assert below(page, "Compared 2 models", "Compare")
    page.locator(".bqplot rect.bar").first.wait_for(state="attached")
    assert page.locator(".bqplot").count() >= 6 + 4  # one chart per metric, and one per user segment
    assert page.locator("td.wb-best").count() >= 6  # the best highlighted in the tables
    from workbench.evaluation.beyond import METRIC_DEFINITIONS

    for name in ("coverage", "popularity_bias", "novelty"):  # each beyond-accuracy metric, defined in a line
        assert page.get_by_text(METRIC_DEFINITIONS[name]).count() == 1, name
    page.get_by_text("ndcg@20 by user segment").wait_for()
    segments = page.locator("table.wb-table", has=page.locator("th", has_text="light")).first
    assert [h.strip() for h in segments.locator("th").all_inner_texts()] == ["model", "all", "light", "medium", "heavy"]
    for segment in ("light", "medium", "heavy"):
        page.locator(".bqplot", has_text=re.compile(rf"{segment} \(\d+ users\)")).first.wait_for(state="attached")
    assert "training interactions" in page.inner_text("body")  # what light, medium and heavy mean
    assert_no_widget_error(page)
    screenshot(page, screenshots, "models")

    with page.expect_download() as download:  # one click, streamed by the server
        row.get_by_role("link", name=re.compile(r"\.wbm")).click()
    saved = Path(download.value.path())
    assert saved.read_bytes() == (home / ws.model(model_id).file).read_bytes()
    assert not (home / "exports").exists()


def test_a_typed_user_gets_recommendations_with_titles(page, server, home, screenshots):
    import workbench as wb

    ws = wb.open(home)
    recommender = ws.load_model(ws.project("demo").active_model_id)
    user = str(recommender.user_ids[7])
    page.goto(server.with_token(f"http://127.0.0.1:{server.port}/voila/render/recommendations.ipynb?project=demo"))
    page.locator(".wb-title").first.wait_for()
    page.get_by_text("model loaded").wait_for()
    page.get_by_placeholder(re.compile(r"^e\.g\. ")).fill(user)
    page.locator("button").filter(has_text=re.compile(r"^\W*Recommend\W*$")).click()
    page.get_by_text("Top 10 recommendations").wait_for()
    body = page.inner_text("body")
    titles = ws.item_metadata_frame(ws.latest_item_metadata("demo"))["title"].astype(str)
    expected = {str(r["item_id"]) for r in recommender.recommend(user, cutoff=10)}
    assert expected and all(item in body for item in expected)
    assert sum(title in body for title in titles) >= 10  # profile and recommendations carry titles
    assert re.search(r"30 of \d+ items shown|\(\d+ items in training\)", body)
    assert "because you watched" in body  # each recommendation beside the user's items it comes from
    metadata = ws.item_metadata_frame(ws.latest_item_metadata("demo"))
    names = dict(zip(metadata["item_id"].astype(str), metadata["title"].astype(str)))
    explained = recommender.recommend(user, cutoff=10, explain=True)[0]["because"][0]
    reason = f"{names[str(explained['item_id'])]} ({explained['share']:.0%})"  # "Title (41%)"
    assert reason in body, reason
    screenshot(page, screenshots, "recommendations")

    finder = page.locator(".wb-similar-finder")  # the similar items' search box and matches
    finder.get_by_placeholder("title, genre or item id").fill(titles.iloc[4])
    choices = finder.locator("select")
    item = metadata["item_id"].iloc[4]
    label = f"{titles.iloc[4]} ({item})"
    # until the list holds the search's matches only (the unfiltered list, shown first, holds the item too)
    page.wait_for_function("([select, text]) => select.options.length > 0 && [...select.options].every("
                           "o => o.text.replace(/\\u00a0/g, ' ').includes(text))",
                           arg=[choices.element_handle(), titles.iloc[4]])
    shown = [text.replace("\xa0", " ") for text in choices.locator("option").all_inner_texts()]
    choices.select_option(index=shown.index(label))
    page.get_by_role("button", name="Similar items").click()
    page.get_by_text(re.compile(r"\d+ items most similar to ")).wait_for()
    similar = ws.similar_items(recommender.model.id, item, cutoff=10, metadata=True)
    body = page.inner_text("body")
    assert f"most similar to {titles.iloc[4]}" in body and all(row["title"] in body for row in similar)
    width = page.evaluate("document.documentElement.clientWidth")
    assert all(t.bounding_box()["x"] + t.bounding_box()["width"] <= width for t in page.locator("table.wb-table").all())
    assert_no_widget_error(page)


def test_a_model_that_cannot_explain_or_relate_items_says_why_on_the_page(page, server, home):
    import workbench as wb

    ws = wb.open(home)
    models = ws.models("demo")
    top_pop = int(models[models["algorithm"] == "TopPop"]["id"].iloc[0])
    page.goto(server.with_token(f"http://127.0.0.1:{server.port}/voila/render/recommendations.ipynb"
                                f"?project=demo&model={top_pop}"))
    page.locator(".wb-title").first.wait_for()
    wait_chosen(page, "Model", f"#{top_pop} ")
    page.get_by_text(ws.load_model(top_pop).cannot_find_similar).wait_for()  # said as the model loads
    page.get_by_role("button", name="Random user").click()
    page.get_by_text("Top 10 recommendations").wait_for()
    reason = "TopPop recommendations cannot be explained: " + wb.algorithms.get_algorithm("TopPop").unexplainable
    assert page.get_by_text(reason).count() == 1 and "because you watched" not in page.inner_text("body")
    assert_no_widget_error(page)


def test_pages_fetch_nothing_from_elsewhere_and_show_their_icons(page, server):
    """Offline, every request succeeds, nothing leaves the server, the console has no error, and the
    buttons' Font Awesome icons (served with Voila's front end, not from a CDN) are drawn."""
    origin = f"http://127.0.0.1:{server.port}/"
    problems, elsewhere = [], []
    page.on("requestfailed", lambda r: None if "/voila/api/shutdown/" in r.url  # the beacon of the page left:
            else problems.append(f"failed {r.url} {r.failure}"))                 # "aborted" by the navigation
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: problems.append(f"console {m.text}") if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith((origin, "data:", "blob:")) else elsewhere.append(r.url))
    for name in DASHBOARDS:
        open_dashboard(page, server, name)
        icon = page.locator("button i.fa:visible").first
        icon.wait_for()
        glyph = icon.evaluate("i => getComputedStyle(i, '::before').content")
        assert glyph not in ("", "none", "normal"), (name, glyph)
        assert page.evaluate("document.fonts.check('900 16px \"Font Awesome 5 Free\"')"), name
    assert elsewhere == [] and problems == [], elsewhere + problems


def test_bench_smoke_measures_a_first_paint_and_a_first_click():
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_dashboards.py"
    result = subprocess.run([sys.executable, str(bench), "--smoke"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"^\| home \| \d+\.\d\d \| - \|$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(r"^\| first \| \d+\.\d\d \|$", result.stdout, re.MULTILINE), result.stdout  # a Recommend click
