"""What a dashboard knows of its page: the query string (`?project=movies&model=12`), the links that
carry it to the other dashboards, the navigation bar and the stylesheet.

Voila hands a page's request to its kernel. A kernel started for the page has it in its environment
(`QUERY_STRING`) before the notebook runs. A preheated kernel ran the notebook before anyone asked for
the page, so it learns of the request when a page takes it: Voila sends the request over a websocket
(`voila/query/<kernel id>`), which :func:`when_requested` listens to from a thread.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

import ipywidgets as widgets

from ..dashboards import DASHBOARDS

QUERY_KEYS = ("project", "model")
WITH_MODEL = ("models", "recommendations")
RECEIVE_ATTEMPTS = 5  # the dashboards a `model` in the link means something to

STYLE = """
<style>
.wb-nav a { margin-right: 14px; text-decoration: none; color: #1565c0; font-weight: 500; }
.wb-nav a.wb-current { color: #111; border-bottom: 2px solid #1565c0; }
.wb-title { font-size: 20px; font-weight: 600; margin: 6px 0 2px 0; }
.wb-sub { color: #555; margin-bottom: 6px; }
table.wb-table { border-collapse: collapse; font-size: 13px; margin: 4px 0; width: 100%; }
table.wb-table th { background: #f0f3f7; text-align: left; padding: 4px 8px; border-bottom: 1px solid #ccd;
  vertical-align: bottom; }
table.wb-table td { padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; white-space: normal;
  overflow-wrap: anywhere; }
table.wb-fixed { table-layout: fixed; margin: 0; }
.wb-cells > .widget-html-content { flex: 1 1 auto; min-width: 0; }
table.wb-fixed th, table.wb-fixed td { overflow: hidden; }
.wb-card table.wb-table { width: auto; }
.wb-card table.wb-table td { max-width: 640px; }
table.wb-table tr:hover td { background: #fafbff; }
table.wb-table td.wb-best { background: #e3f4e5; font-weight: 600; color: #1b5e20; }
.wb-selected table.wb-table td { background: #e8f1fb; }
.wb-row { border-bottom: 1px solid #eee; }
.wb-banner-error { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0; padding: 6px 10px; border-radius: 4px; }
.wb-banner-info { background: #e8f1fb; color: #0d3c61; border: 1px solid #b8d4f0; padding: 6px 10px; border-radius: 4px; }
.wb-banner-success { background: #e9f6ec; color: #1e4620; border: 1px solid #b7dfbf; padding: 6px 10px; border-radius: 4px; }
.wb-card { border: 1px solid #dde; border-radius: 6px; padding: 8px 12px; background: #fcfcff; }
.wb-log-box { display: flex; flex-direction: column-reverse; max-height: 220px; overflow-y: auto;
  border: 1px solid #eee; }
.wb-log { font-family: monospace; font-size: 12px; white-space: pre-wrap; margin: 0; padding: 2px 6px; flex: 0 0 auto; }
.wb-muted { color: #777; }
.wb-file { color: #333; margin-left: 8px; }
.widget-html-content a, .wb-card a, table.wb-table a { color: #1565c0; text-decoration: none; }
.widget-html-content a:hover { text-decoration: underline; }
</style>
"""


def page_link(name: str, project: str | None = None, model: int | None = None) -> str:
    """A dashboard's address relative to the page's, carrying the project (and the model)."""
    params = {key: value for key, value in (("project", project), ("model", model)) if value is not None}
    return f"{name}.ipynb" + (f"?{urlencode(params)}" if params else "")


def anchor(href: str, text: str) -> str:
    return f"<a href='{html.escape(href, quote=True)}'>{html.escape(text)}</a>"


def parse_query(text: str | None) -> dict[str, str]:
    """The dashboard's parameters in a query string (others, such as the token, are left out)."""
    values = parse_qs(text or "")
    return {key: values[key][-1] for key in QUERY_KEYS if values.get(key)}


class NavBar(widgets.HTML):
    """Links to every dashboard, carrying the current project (and model, where it means something)."""

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current
        self.show()

    def show(self, project: str | None = None, model: int | None = None) -> None:
        links = "".join(
            f"<a href='{html.escape(page_link(name, project, model if name in WITH_MODEL else None), quote=True)}' "
            f"class='{'wb-current' if name == self.current else ''}'>{label}</a>"
            for name, label in DASHBOARDS
        )
        self.value = STYLE + f"<div class='wb-nav'>{links}</div>"


def request_now() -> dict[str, str] | None:
    """The page's parameters when this kernel was started for its page (they are in its environment);
    None in a preheated kernel (no page yet) and outside Voila."""
    if os.environ.get("VOILA_PREHEAT") == "True" or "QUERY_STRING" not in os.environ:
        return None
    return parse_query(os.environ["QUERY_STRING"])


def when_requested(callback: Callable[[dict[str, str]], Any]) -> threading.Thread | None:
    """In a preheated Voila kernel, call `callback(parameters)` from a thread once a page takes the
    kernel; elsewhere do nothing (None). Nothing is ever printed: a page shows its kernel's output."""
    url = _request_url()
    if url is None:
        return None

    def listen() -> None:
        info = _receive(url)
        if info is not None:
            callback(parse_query(info.get("QUERY_STRING")))

    thread = threading.Thread(target=listen, name="voila-request", daemon=True)
    thread.start()
    return thread


def _request_url() -> str | None:
    """Where a preheated kernel hears of its page (as voila.utils.wait_for_request builds it)."""
    kernel_id = os.environ.get("VOILA_KERNEL_ID")
    if os.environ.get("VOILA_PREHEAT") != "True" or not kernel_id:
        return None
    base = os.environ.get("VOILA_WS_BASE_URL", os.environ.get("VOILA_SERVER_URL", "/"))
    return (f"{os.environ.get('VOILA_WS_PROTOCOL', 'ws')}://{os.environ.get('VOILA_APP_IP', '127.0.0.1')}:"
            f"{os.environ.get('VOILA_APP_PORT', '8866')}{base}voila/query/{kernel_id}")


def _receive(url: str) -> dict | None:
    """The request info Voila sends once a page takes this kernel (None if the server went away)."""
    import websockets

    options = {"proxy": None} if int(websockets.__version__.split(".")[0]) >= 15 else {}  # never via a proxy

    async def receive() -> dict:
        async with websockets.connect(url, open_timeout=10, **options) as socket:
            return json.loads(await socket.recv())

    for _ in range(RECEIVE_ATTEMPTS):  # a dropped connection is retried: Voila keeps the request for us
        try:
            return asyncio.run(receive())
        except Exception:
            time.sleep(1.0)
    return None  # the server stopped, or this kernel was shut down unused
