"""Voila as `workbench serve` runs it: `python -m workbench.voila_server NOTEBOOKS [voila options]`.

Plain Voila (`voila.app.Voila`) with what a dashboard server on someone's machine needs:

- only the dashboards are served (`--DashboardServer.dashboards`, names without `.ipynb`): any other
  notebook, the file tree, the contents API and the files route are a 404; `/` leads to the first one;
- a token by default (JupyterLab's convention: the printed URL carries `?token=`, a cookie keeps it),
  taken from WORKBENCH_TOKEN (removed from the environment the kernels inherit) or generated;
  `--no-token` opts out;
- the Host header checked on every request (DNS rebinding): localhost, 127.0.0.1, ::1, the address
  bound, `--DashboardServer.allowed_hosts`; any IP address too when bound to every interface;
- kernels capped and culled (workbench.voila_kernels); the request a page sends when it is left is
  accepted (Voila's page posts back an `_xsrf` cookie that nothing set, so it was refused);
- no stylesheet from a CDN (workbench/voila_template); a quiet log: the URL is printed once the
  preheated dashboards have run, warnings and errors only after that;
- each page gets only the front-end extensions it uses (page_config_hook): bqplot's 1.2 MB of
  JavaScript is left out of the dashboards that never draw a chart;
- model files streamed by id (workbench.voila_download).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import FileFindHandler
from jupyter_server.services.contents.largefilemanager import LargeFileManager
from jupyter_server.utils import url_path_join
from jupyterlab_server.themes_handler import ThemesHandler
from tornado import web
from tornado.ioloop import IOLoop
from tornado.routing import Matcher, Rule
from traitlets import Bool, List, Unicode, default
from traitlets.config import Config
from voila.app import Voila
from voila.static_file_handler import AllowListFileHandler, TemplateStaticFileHandler
from voila.tornado.contentshandler import VoilaContentsHandler
from voila.tornado.handler import TornadoVoilaHandler
from voila.tornado.treehandler import TornadoVoilaTreeHandler

from .dashboards import CHART_FREE as CHART_FREE_NAMES
from .dashboards import DASHBOARD_NAMES as DASHBOARDS
from .voila_download import ROUTE as DOWNLOAD_ROUTE
from .voila_download import ModelDownloadHandler
from .voila_handlers import PlainErrors, discreet, log_request
from .voila_kernels import DashboardKernelManager

# Dashboards that never display a bqplot widget (tuning and models draw charts): the notebook's name,
# in the served folder or a subfolder of it.
CHART_FREE = re.compile(rf"^(.*/)?({'|'.join(CHART_FREE_NAMES)})[.]ipynb$")
CHART_EXTENSIONS = {"bqplot"}
# Only the front-end extensions the dashboards use (others, e.g. plotly's 4.8 MB, slow every first paint).
EXTENSIONS = ["@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8", "bqplot"]
TEMPLATE_FOLDER = Path(__file__).with_name("voila_template")
EVERY_INTERFACE = ("", "0.0.0.0", "::")
NOT_SERVED = (TornadoVoilaHandler, TornadoVoilaTreeHandler, VoilaContentsHandler, AllowListFileHandler)


def page_config_hook(page_config: dict[str, Any], base_url: str = "", settings: Any = None, log: Any = None,
                     voila_configuration: Any = None, notebook_path: str = "", **_: Any) -> dict[str, Any]:
    """Voila's page config for one notebook, without the chart extension where no chart is shown."""
    if notebook_path and CHART_FREE.match(str(notebook_path).replace("\\", "/")):
        page_config = dict(page_config)
        page_config["federated_extensions"] = [
            extension for extension in page_config.get("federated_extensions", [])
            if extension.get("name") not in CHART_EXTENSIONS
        ]
    return page_config


def host_name(host: str) -> str:
    """The name part of a Host header: `[::1]:8866` -> `::1`, `Example.org:80` -> `example.org`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


class UnexpectedHost(Matcher):
    """Matches the requests whose Host header names none of the server's names."""

    def __init__(self, names: set[str], any_ip: bool) -> None:
        self.names, self.any_ip = names, any_ip

    def allows(self, host: str) -> bool:
        name = host_name(host)
        if name in self.names or "*" in self.names:
            return True
        try:
            ipaddress.ip_address(name)  # an address cannot be rebound to another site
        except ValueError:
            return False
        return self.any_ip

    def match(self, request) -> dict | None:
        return None if self.allows(request.host or "") else {}


class RefusedHostHandler(PlainErrors, web.RequestHandler):
    def prepare(self) -> None:
        raise web.HTTPError(403, f"this server does not answer to the Host {self.request.host!r}: open the URL "
                                 "`workbench serve` printed, or add the name with `workbench serve --allow-host NAME`")


class DashboardHandler(TornadoVoilaHandler):
    """A dashboard page: the `_xsrf` cookie its shutdown request sends back, and room for its kernel."""

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:  # sent to the login page
            return
        self.xsrf_token  # noqa: B018  (reading it sets the `_xsrf` cookie)
        await self.kernel_manager.make_room()


class TemplateAssets(TemplateStaticFileHandler):
    """Voila's template assets (`<template>/static/<file>`): any other path is a 404 (upstream fails an assert)."""

    def parse_url_path(self, path: str) -> str:
        if not re.fullmatch(r"[\w.-]+/static/[^.].*", os.path.normpath(path)):
            raise web.HTTPError(404)
        return super().parse_url_path(path)


class LabExtensionFiles(PlainErrors, FileFindHandler):
    """Voila's front-end extension files, with errors it can write (jupyter_server's page needs a static path)."""


class ThemeFiles(PlainErrors, ThemesHandler):
    """Voila's theme files, likewise."""


REPLACED = {TemplateStaticFileHandler: TemplateAssets, FileFindHandler: LabExtensionFiles, ThemesHandler: ThemeFiles}


class DashboardContents(LargeFileManager):
    """The notebooks are the workbench's own (and carry no outputs): trusted as read, without the
    signature store whose check logs "Notebook ... is not trusted" for each and writes a key under ~."""

    def mark_trusted_cells(self, nb, path: str = "") -> None:
        self.notary.mark_cells(nb, True)


class DashboardServer(Voila):
    """Voila serving only the dashboards, behind a token and a Host check, with capped kernels."""

    dashboards = List(Unicode(), list(DASHBOARDS), config=True,
                      help="The notebooks served (paths under the folder, without .ipynb); the first is the start page.")
    require_token = Bool(True, config=True, help="Require the token (WORKBENCH_TOKEN, else a random one).")
    allowed_hosts = List(Unicode(), config=True, help="More names the Host header may carry ('*': any).")

    flags = {
        **Voila.flags,
        "no-token": ({"DashboardServer": {"require_token": False}}, "Serve without a token (anyone who reaches the port)."),
    }
    classes = [*Voila.classes, DashboardKernelManager]

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.WARNING

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        token = os.environ.pop("WORKBENCH_TOKEN", "")  # not for the kernels to inherit
        self.token = (self.token or token or secrets.token_urlsafe(32)) if self.require_token else None
        served = "|".join(re.escape(name) for name in self.dashboards)  # Voila matches absolute paths here
        self.config.VoilaKernelManager.preheat_denylist = [rf"^(?!(.*/)?({served})[.]ipynb$)"]

    def setup_template_dirs(self) -> None:
        super().setup_template_dirs()
        self.template_paths.insert(0, str(TEMPLATE_FOLDER))

    def init_settings(self) -> dict:
        settings = super().init_settings()
        self.contents_manager = settings["contents_manager"] = DashboardContents(parent=self)
        return settings

    def init_handlers(self) -> list:
        names = {"localhost", "127.0.0.1", "::1", *(host.lower() for host in self.allowed_hosts)}
        every_interface = self.ip in EVERY_INTERFACE
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()} if every_interface else {self.ip.lower()}
        pages = "|".join(re.escape(f"{name}.ipynb") for name in self.dashboards)
        routes = [
            (self.server_url, web.RedirectHandler, {"url": self.page_path(self.dashboards[0]), "permanent": False}),
            (url_path_join(self.server_url, rf"/voila/render/({pages})"), DashboardHandler, {
                "template_paths": self.template_paths, "config": self.config,
                "voila_configuration": self.voila_configuration}),
            (url_path_join(self.server_url, rf"/{DOWNLOAD_ROUTE}([0-9]+)"), ModelDownloadHandler),
            *((route, REPLACED.get(handler, handler), *rest)
              for route, handler, *rest in super().init_handlers() if handler not in NOT_SERVED),
        ]
        return [Rule(UnexpectedHost(names, every_interface), discreet(RefusedHostHandler)),
                *((route, discreet(handler), *rest) for route, handler, *rest in routes)]

    def page_path(self, name: str) -> str:
        return url_path_join(self.base_url, "voila/render", f"{name}.ipynb")

    @property
    def dashboard_url(self) -> str:
        host = socket.gethostname() if self.ip in EVERY_INTERFACE else self.ip
        url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}{self.page_path(self.dashboards[0])}"
        return f"{url}?token={self.token}" if self.token else url

    def listen(self) -> None:
        print("Rec Workbench: starting the dashboards...", flush=True)
        IOLoop.current().add_callback(self.announce_when_ready)
        super().listen()

    async def announce_when_ready(self) -> None:
        """Print the URL once every preheated dashboard has run, so the first page opens at once."""
        for entry in self.kernel_manager.preheated_tasks():
            try:
                await (await entry)["task"]
            except Exception as error:  # the page will show it; the server stays up
                self.log.warning("A dashboard failed to preheat: %s", error)
        print(f"Rec Workbench dashboards: {self.dashboard_url}", flush=True)


def main(argv: list[str] | None = None) -> None:
    config = Config()
    config.VoilaConfiguration.update(
        page_config_hook=page_config_hook, extension_allowlist=EXTENSIONS, strip_sources=True, show_tracebacks=False,
        preheat_kernel=True, default_pool_size=1, allow_template_override="NO", allow_theme_override="NO",
        multi_kernel_manager_class=DashboardKernelManager,
    )
    # Kernels talk to the server over Unix sockets in the server's private runtime folder: no TCP port is
    # picked and released for each kernel (another process can take it before the kernel binds it:
    # "ZMQError: Address already in use"), and no other local user can reach a kernel.
    config.KernelManager.transport = "ipc"
    # Front-end extension files are named by content hash: a returning browser takes them from its cache
    # instead of revalidating each with the (busy) server on every page load.
    config.Voila.tornado_settings = {"static_immutable_cache": ["/voila/labextensions/"], "log_function": log_request}
    DashboardServer.launch_instance(argv if argv is not None else sys.argv[1:], config=config)


if __name__ == "__main__":
    main()
