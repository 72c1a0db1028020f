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
from pathlib import Path

import pytest

from test_server import DASHBOARDS, Server
from test_ui import build_demo_home

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WIDGET_ERROR = "Error displaying widget"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "home"
    ws = build_demo_home(path)
    ws.tune(ws.latest_training_data("demo"), algorithms=["TopPop", "RP3beta"], n_trials=5, cutoff=10)
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


def open_dashboard(page, server, name: str, timeout: float = 60_000):
    page.goto(server.page(name))
    page.locator(".wb-title").first.wait_for(timeout=timeout)
    page.wait_for_load_state("networkidle")
    return page


def assert_no_widget_error(page) -> None:
    assert page.get_by_text(WIDGET_ERROR).count() == 0, page.inner_text("body")[:2000]
    assert "Traceback" not in page.inner_text("body")
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


@pytest.mark.parametrize("name", ["home", "data", "tuning"])
def test_dashboard_renders(page, server, home, screenshots, name):
    open_dashboard(page, server, name)
    assert_no_widget_error(page)
    body = page.inner_text("body")
    assert "Rec Workbench" in body or name.capitalize() in body
    if name == "home":
        assert "demo" in body and page.locator("a[href='models.ipynb']").count() > 0
        assert str(home / "data" / "workbench.sqlite") in body  # WORKBENCH_HOME reached the preheated kernel
    if name == "tuning":  # the latest tuning job: trials, best-so-far chart, the trained model
        page.locator(".bqplot").first.wait_for()
        assert page.locator(".bqplot path.line").count() >= 1 and "trained as model #" in body
    screenshot(page, screenshots, name)


def test_training_end_to_end_then_the_model_is_listed_compared_and_charted(page, server, home, screenshots):
    import workbench as wb

    ws = wb.open(home)
    before = set(ws.models("demo")["id"])
    open_dashboard(page, server, "training")
    page.get_by_role("button", name="New configuration").click()
    page.get_by_text("n_components", exact=True).first.wait_for()
    page.get_by_role("button", name="Start Training").click()
    page.get_by_text("is trained").wait_for(timeout=120_000)
    assert_no_widget_error(page)
    new = set(ws.models("demo")["id"]) - before
    assert len(new) == 1
    (model_id,) = new
    assert f"Model #{model_id}" in page.inner_text("body")
    screenshot(page, screenshots, "training")

    open_dashboard(page, server, "models")  # a kernel preheated before the training: it reloads on view
    page.get_by_text(f"#{model_id} IALS").first.wait_for(timeout=30_000)
    options = page.locator("select[multiple] option")
    labels = [options.nth(i).inner_text() for i in range(options.count())]  # spaces come as U+00A0
    chosen = [label for label in labels if re.match(rf"#({model_id}|\d+)\s+(IALS|TopPop)\b", label)]
    assert len(chosen) >= 2 and any(re.match(rf"#{model_id}\s", label) for label in chosen), labels
    page.locator("select[multiple]").select_option(label=chosen)
    page.get_by_role("button", name="Compare").click()
    page.get_by_text(f"Compared {len(chosen)} models").wait_for(timeout=120_000)
    page.locator(".bqplot rect.bar").first.wait_for(state="attached", timeout=30_000)
    assert page.locator(".bqplot").count() >= 6  # one chart per metric
    assert_no_widget_error(page)
    screenshot(page, screenshots, "models")


def test_a_typed_user_gets_recommendations_with_titles(page, server, home, screenshots):
    import workbench as wb

    ws = wb.open(home)
    recommender = ws.load_model(ws.project("demo").active_model_id)
    user = str(recommender.user_ids[7])
    open_dashboard(page, server, "recommendations")
    page.get_by_placeholder("e.g. u42").fill(user)
    page.locator("button").filter(has_text=re.compile(r"^\W*Recommend\W*$")).click()
    page.get_by_text("Top 10 recommendations").wait_for(timeout=60_000)
    body = page.inner_text("body")
    titles = ws.item_metadata_frame(ws.latest_item_metadata("demo"))["title"].astype(str)
    expected = {str(r["item_id"]) for r in recommender.recommend(user, cutoff=10)}
    assert expected and all(item in body for item in expected)
    assert sum(title in body for title in titles) >= 10  # profile and recommendations carry titles
    assert_no_widget_error(page)
    screenshot(page, screenshots, "recommendations")


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


def test_bench_smoke_measures_a_first_paint():
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_dashboards.py"
    result = subprocess.run([sys.executable, str(bench), "--smoke"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"^\| home \| \d+\.\d\d \| - \|$", result.stdout, re.MULTILINE), result.stdout
