"""The dashboard server as `workbench serve` runs it (workbench.voila_server), over plain HTTP.

What only the server decides: which URLs answer (the six dashboards, nothing else), the token, the
Host check, the kernel cap and culling, the quiet start and the streamed model download. Each
server runs on a free loopback port with a throwaway WORKBENCH_HOME holding the demo project;
tests/test_browser.py drives the same server class in Chromium.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from test_ui import SMALL_DEMO, build_demo_home

import workbench as wb
from workbench.cli import kernel_ipython_dir, voila_command
from workbench.dashboards import DASHBOARD_NAMES as DASHBOARDS
from workbench.polling import poll_until
from workbench.voila_download import download_url

READY = "Rec Workbench dashboards: "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`workbench serve` (voila_command) on a free port, with a token unless told otherwise."""

    def __init__(self, home: Path, log: Path, preheat: bool = True, token: bool = True, options=()) -> None:
        self.port, self.log, self.preheat = free_port(), log, preheat
        self.token = f"test-{secrets.token_hex(8)}" if token else None
        env = dict(os.environ, WORKBENCH_HOME=str(home), IPYTHONDIR=str(kernel_ipython_dir(log.parent)))
        env.pop("WORKBENCH_TOKEN", None)
        if self.token:
            env["WORKBENCH_TOKEN"] = self.token
        self.process = subprocess.Popen(
            voila_command("127.0.0.1", self.port, preheat=preheat, token=token, options=options), env=env, cwd=home,
            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.url = self.wait_ready()

    def wait_ready(self, timeout: float = 240.0) -> str:
        """The URL the server prints once its preheated dashboards have run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(rf"^{READY}(\S+)$", self.text(), re.MULTILINE)
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.text()[-3000:]}")
            time.sleep(0.3)
        raise TimeoutError(self.text()[-3000:])

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def page(self, name: str) -> str:
        """A dashboard's URL with the token."""
        return self.with_token(f"http://127.0.0.1:{self.port}/voila/render/{name}.ipynb")

    def with_token(self, url: str) -> str:
        return f"{url}{'&' if '?' in url else '?'}token={self.token}" if self.token else url

    def request(self, path: str, token: bool = True, method: str = "GET", headers: dict | None = None,
                body: bytes | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        """(status, headers, body) of one request, redirects not followed; the path is sent as given."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, self.with_token(path) if token else path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def open_page(self, path: str, timeout: float = 120.0, **kwargs) -> tuple[int, http.client.HTTPMessage, bytes]:
        """request(), waiting out 503s: the kernel cap lets a page in once an abandoned kernel may go."""
        deadline = time.monotonic() + timeout
        while True:
            status, headers, body = self.request(path, **kwargs)
            if status != 503 or time.monotonic() > deadline:
                return status, headers, body
            time.sleep(0.5)

    def kernels(self) -> list[psutil.Process]:
        """The kernel processes the server runs."""
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if any("ipykernel" in part for part in child.cmdline()):
                    found.append(child)
            except psutil.Error:  # exited meanwhile
                pass
        return found

    def wait_kernels(self, count: int, timeout: float = 120.0) -> int:
        """Wait until exactly `count` kernels run (extra ones shut down, the preheated pool refilled);
        the number running when that happened or the time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            running = len(self.kernels())
            if running == count or time.monotonic() >= deadline:
                return running
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)


def rss(processes: list[psutil.Process]) -> int:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


# Small limits so that culling and the cap show within a test: at most 3 pages' kernels, a kernel
# whose page never connects goes after 4 s, the culler looks every second.
LIMITS = ("--DashboardKernelManager.max_kernels=3", "--DashboardKernelManager.unconnected_timeout=4",
          "--DashboardKernelManager.cull_idle_timeout=4", "--DashboardKernelManager.cull_interval=1",
          "--DashboardServer.allowed_hosts=workbench.example")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("server") / "home"
    build_demo_home(path, **SMALL_DEMO)
    return path


@pytest.fixture(scope="module")
def server(home, tmp_path_factory):
    server = Server(home, tmp_path_factory.mktemp("voila") / "voila.log", options=LIMITS)
    yield server
    server.stop()


def test_start_prints_the_tokenised_url_once_ready_and_nothing_else(server):
    assert server.url == f"http://127.0.0.1:{server.port}/voila/render/home.ipynb?token={server.token}"
    before_url = server.text().split(READY)[0]
    assert before_url.splitlines() == ["Rec Workbench: starting the dashboards..."], before_url  # no warning, no info
    assert len(server.kernels()) == len(DASHBOARDS)  # one preheated kernel per dashboard, and they have run


# Every URL form Voila (or Jupyter) offers, pointed at notebooks that are not dashboards.
NOT_SERVED = [
    "/voila/render/retrain.ipynb", "/voila/render/tour.ipynb", "/voila/render/./retrain.ipynb",
    "/voila/render//retrain.ipynb", "/voila/render/%72etrain.ipynb", "/voila/render/home.ipynb/../retrain.ipynb",
    "/voila/render/x/../retrain.ipynb", "/voila/render/RETRAIN.ipynb", "/voila/render/retrain.ipynb?template=lab",
    "/voila/render/home", "/voila/render/home.ipynb.bak", "/voila/render/", "/voila/render/data.py",
    "/voila/tree", "/voila/tree/", "/voila/tree/retrain.ipynb", "/voila/api/contents",
    "/voila/api/contents/retrain.ipynb", "/voila/api/contents/retrain.ipynb?content=1", "/voila/files/retrain.ipynb",
    "/voila/files/home.ipynb", "/voila/nbconvert/html/retrain.ipynb", "/voila/retrain.ipynb", "/retrain.ipynb",
    "/notebooks/retrain.ipynb", "/files/retrain.ipynb", "/api/contents/retrain.ipynb", "/api/kernels",
    "/api/sessions", "/tree", "/lab", "/nbconvert/html/retrain.ipynb", "/view/retrain.ipynb",
]


def test_only_the_dashboards_are_served(server, home):
    ws = wb.open(home)
    before = (ws.project("demo").active_model_id, len(ws.models("demo")), len(server.kernels()))
    for path in NOT_SERVED:
        status, _, body = server.request(path)
        assert status == 404, (path, status, body[:300])
        assert b"retrain(" not in body and b"workbench.ui" not in body
    for path in ("/voila/static/../../../notebooks/retrain.ipynb", "/voila/templates/lab/static/../../../retrain.ipynb",
                 "/voila/labextensions/../notebooks/retrain.ipynb"):  # the static routes stay in their folders
        status, _, body = server.request(path)
        assert status in (403, 404) and b"retrain(" not in body, (path, status)
    assert (ws.project("demo").active_model_id, len(ws.models("demo")), len(server.kernels())) == before

    status, headers, _ = server.request("/")
    assert status == 302 and headers["Location"].startswith("/voila/render/home.ipynb")
    for name in DASHBOARDS:
        status, _, body = server.open_page(f"/voila/render/{name}.ipynb")
        assert status == 200 and b"application/vnd.jupyter.widget-view+json" in body, name  # the app, for the page to draw
        assert not re.search(rb"""(href|src)=["']?(https?:)?//""", body)  # no stylesheet or script from elsewhere


def test_pages_need_the_token_once_then_the_cookie(server):
    page = "/voila/render/home.ipynb"
    status, headers, _ = server.request(page, token=False)
    assert status == 302 and headers["Location"].startswith("/login?next=")  # Jupyter's login page asks for it
    status, headers, _ = server.request(f"{page}?token=wrong", token=False)
    assert status == 302 and headers["Location"].startswith("/login?next=")
    for path, method in ((f"/api/kernels/{'0' * 8}-0000-0000-0000-{'0' * 12}", "GET"), ("/workbench/download/1", "POST"),
                         (f"/voila/api/shutdown/{'0' * 8}-0000-0000-0000-{'0' * 12}", "POST")):
        status, _, _ = server.request(path, token=False, method=method)
        assert status == 403, (path, status)

    status, headers, _ = server.open_page(page)
    assert status == 200
    cookies = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie"))
    assert re.search(r"username-127-0-0-1-\d+=", cookies) and "_xsrf=" in cookies
    assert server.open_page(page, token=False, headers={"Cookie": cookies})[0] == 200  # links between dashboards
    assert server.open_page(page, token=False, headers={"Authorization": f"token {server.token}"})[0] == 200


def test_requests_for_other_host_names_are_refused(server):
    page = "/voila/render/home.ipynb"
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example", "localhost.evil.example",
                 f"[::2]:{server.port}"):
        for path in (page, "/voila/static/voila.js", "/workbench/download/1", "/login"):
            status, _, body = server.request(path, headers={"Host": host})
            assert status == 403 and b"--allow-host" in body, (host, path, status)
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}", "LOCALHOST",
                 f"workbench.example:{server.port}"):  # the last one given with --allow-host
        assert server.open_page(page, headers={"Host": host})[0] == 200, host


def test_a_model_file_is_streamed_whole_with_its_name_and_size(server, home, monkeypatch):
    ws = wb.open(home)
    model = ws.model(int(ws.models("demo")["id"].iloc[0]))
    path = Path(model.file)
    before = sorted(p for p in home.rglob("*") if "data" not in p.relative_to(home).parts)
    assert download_url(model.id, "/") == f"/workbench/download/{model.id}"
    assert download_url(7, "/prefix/") == "/prefix/workbench/download/7"
    monkeypatch.setenv("VOILA_BASE_URL", "/from-voila/")  # what Voila hands its kernels
    assert download_url(7) == "/from-voila/workbench/download/7"

    status, headers, body = server.request(download_url(model.id, "/"))
    assert status == 200 and body == path.read_bytes()
    assert int(headers["Content-Length"]) == path.stat().st_size
    assert headers["Content-Disposition"] == f"attachment; filename=\"{model.basename}\"; " \
                                             f"filename*=UTF-8''{quote(model.basename)}"
    assert headers["Content-Type"] == "application/octet-stream"
    assert sorted(p for p in home.rglob("*") if "data" not in p.relative_to(home).parts) == before  # no copy made
    assert not (home / "exports").exists()

    assert server.request("/workbench/download/987654")[0] == 404
    assert server.request("/workbench/download/abc")[0] == 404
    status, headers, body = server.request(download_url(model.id, "/"), token=False)
    assert status in (302, 403) and body != path.read_bytes()


@pytest.mark.slow
def test_a_large_model_file_streams_in_flat_memory(server, home):
    """A 768 MiB file (sparse: takes no disk) goes out whole while the server grows by far less."""
    ws = wb.open(home)
    model = ws.model(int(ws.models("demo")["id"].iloc[0]))
    path = Path(model.file)
    original = path.read_bytes()
    size = 768 << 20
    path.write_bytes(b"")
    os.truncate(path, size)
    server_process = psutil.Process(server.process.pid)
    baseline = server_process.memory_info().rss
    peak, done = [baseline], threading.Event()

    def watch():
        while not done.is_set():
            peak.append(server_process.memory_info().rss)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        connection.request("GET", server.with_token(f"/workbench/download/{model.id}"))
        response = connection.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) == size
        digest, received = hashlib.sha256(), 0
        while chunk := response.read(4 << 20):
            digest.update(chunk)
            received += len(chunk)
        connection.close()
    finally:
        done.set()
        watcher.join()
        path.write_bytes(original)
    assert received == size and digest.hexdigest() == hashlib.sha256(bytes(size)).hexdigest()
    assert max(peak) - baseline < 96 << 20, (max(peak) - baseline) >> 20


def test_page_loads_that_never_connect_leave_a_bounded_number_of_kernels(server):
    """30 page requests whose client never opens the kernel's websocket (a script, a link preview): the
    kernels they take stay under the cap (later requests get a 503 meanwhile), then are shut down."""
    pooled = len(DASHBOARDS)
    assert server.wait_kernels(pooled) == pooled
    per_kernel = rss(server.kernels()) / pooled
    statuses, most = [], 0
    for n in range(30):
        statuses.append(server.request(f"/voila/render/{DASHBOARDS[n % len(DASHBOARDS)]}.ipynb")[0])
        most = max(most, len(server.kernels()))
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 3, statuses
    assert most <= pooled + 3 + 1, most  # the cap (3) and the pool; +1: a pool refill under way
    status, _, body = server.request("/voila/render/home.ipynb")
    if status == 503:
        assert b"Close a dashboard tab" in body
    served = statuses.count(200) + (status == 200)  # each of those pages took a kernel it never connected to
    poll_until(lambda: server.text().count("Shutting down kernel") >= served, timeout=180, interval=0.5)
    assert server.wait_kernels(pooled) == pooled  # none left behind once the timeout passed
    assert rss(server.kernels()) <= 1.5 * pooled * per_kernel


def test_the_log_shows_the_token_only_in_the_url_printed_at_start(server):
    """After the tests above (404s, 403s, 503s, refused hosts, all with ?token= in the URL)."""
    assert server.request("/voila/render/nothing.ipynb")[0] == 404
    log = server.text()
    assert log.count(server.token) == 1 and f"{READY}{server.url}" in log
    assert "token=[secret]" in log


@pytest.fixture(scope="module")
def open_server(home, tmp_path_factory):
    """--no-token --no-preheat: no kernel until a page asks for one."""
    server = Server(home, tmp_path_factory.mktemp("voila-open") / "voila.log", preheat=False, token=False,
                    options=LIMITS)
    yield server
    server.stop()


def test_no_token_is_an_explicit_choice_and_the_host_check_stays(open_server):
    assert open_server.url == f"http://127.0.0.1:{open_server.port}/voila/render/home.ipynb"
    assert open_server.kernels() == []
    assert open_server.open_page("/voila/render/models.ipynb", token=False)[0] == 200
    assert len(open_server.kernels()) == 1
    assert open_server.request("/voila/render/retrain.ipynb", token=False)[0] == 404
    assert open_server.request("/voila/render/home.ipynb", token=False, headers={"Host": "evil.example"})[0] == 403
    assert open_server.wait_kernels(0) == 0  # the page never connected: its kernel is gone after the timeout
