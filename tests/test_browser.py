"""The dashboards in a real browser: Voila (as `workbench serve` runs it) and Debian's Chromium.

Playwright (PyPI) drives /usr/bin/chromium, never a browser of its own. The server runs on a
free loopback port with a throwaway WORKBENCH_HOME holding the demo project; screenshots of
every dashboard go to docs/screenshots/.
"""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from workbench.cli import kernel_ipython_dir, voila_command

from test_ui import build_demo_home

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DASHBOARDS = ("home", "data", "tuning", "training", "models", "recommendations")
WIDGET_ERROR = "Error displaying widget"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




class VoilaServer:
    """Voila on the dashboards, preheated, as `workbench serve` starts it."""

    def __init__(self, home: Path, log: Path, preheat: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/voila/render"
        self.log = log
        env = dict(os.environ, WORKBENCH_HOME=str(home), IPYTHONDIR=str(kernel_ipython_dir(log.parent)))
        self.process = subprocess.Popen(
            voila_command("127.0.0.1", self.port, preheat=preheat), env=env, cwd=home,
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.wait_ready(preheat)

    def wait_ready(self, preheat: bool, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"voila exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/voila/static/voila.js", timeout=2).read(1)
                break
            except OSError:
                time.sleep(0.3)
        while preheat and time.monotonic() < deadline and len(self.filled()) < len(DASHBOARDS):
            time.sleep(0.3)

    def filled(self) -> set[str]:
        """Dashboards whose preheated kernel has run the notebook (from Voila's log)."""
        return set(re.findall(r"Kernel pool of \S*?(\w+)\.ipynb is filled", self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("browser") / "home"
    ws = build_demo_home(path)
    ws.tune(ws.latest_training_data("demo"), algorithms=["TopPop", "RP3beta"], n_trials=5, cutoff=10)
    return path


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    server = VoilaServer(home, tmp_path_factory.mktemp("voila") / "voila.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


def open_dashboard(page, server, name: str, timeout: float = 60_000):
    page.goto(f"{server.url}/{name}.ipynb")
    page.locator(".wb-title").first.wait_for(timeout=timeout)
    page.wait_for_load_state("networkidle")
    return page


def assert_no_widget_error(page) -> None:
    assert page.get_by_text(WIDGET_ERROR).count() == 0, page.inner_text("body")[:2000]
    assert "Traceback" not in page.inner_text("body")
    stderr = page.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    assert stderr.count() == 0, stderr.first.inner_text()  # a dashboard writes nothing to stderr


def screenshot(page, name: str) -> None:
    """The whole dashboard (Voila scrolls inside the page, so grow the viewport to the content)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("(() => { const app = document.querySelector('.wb-nav').closest('.widget-vbox');"
                           " const box = app.getBoundingClientRect(); return box.top + box.height; })()")
    page.set_viewport_size({"width": 1280, "height": int(min(max(height + 24, 700), 2600))})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


def test_preheated_kernels_see_the_workbench_home(server, home):
    assert server.filled() == set(DASHBOARDS), server.log.read_text()[-3000:]
    assert "retrain.ipynb is filled" not in server.log.read_text()  # never run unasked


@pytest.mark.parametrize("name", ["home", "data", "tuning"])
def test_dashboard_renders(page, server, home, name):
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
    screenshot(page, name)


def test_training_end_to_end_then_the_model_is_listed_compared_and_charted(page, server, home):
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
    screenshot(page, "training")

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
    screenshot(page, "models")


def test_a_typed_user_gets_recommendations_with_titles(page, server, home):
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
    screenshot(page, "recommendations")


def test_bench_smoke_measures_a_first_paint():
    bench = Path(__file__).resolve().parents[1] / "bench" / "bench_dashboards.py"
    result = subprocess.run([sys.executable, str(bench), "--smoke"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert re.search(r"^\| home \| \d+\.\d\d \| - \|$", result.stdout, re.MULTILINE), result.stdout
