"""Model files streamed by the dashboard server: GET <base>workbench/download/<model id>.

The signed file goes to the browser as it is on disk, read in 1 MiB chunks, each written only once
the previous one left (memory stays flat for files of gigabytes), with its size and name; no copy is
made. The route sits behind the server's token and Host check like every dashboard page.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path
from urllib.parse import quote

from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from tornado.iostream import StreamClosedError

from .voila_handlers import PlainErrors

ROUTE = "workbench/download/"
CHUNK = 1 << 20


def download_url(model_id: int, base_url: str | None = None) -> str:
    """The link a dashboard gives for a model's signed file (same origin: the login cookie goes with it).

    `base_url` defaults to the one Voila hands its kernels (VOILA_BASE_URL), else "/".
    """
    base = base_url if base_url is not None else os.environ.get("VOILA_BASE_URL", "/")
    return f"{base.rstrip('/')}/{ROUTE}{int(model_id)}"


def model_file(model_id: int) -> tuple[Path, str]:
    """(path, download name) of a trained model's signed file, from the workspace the server runs for."""
    import workbench
    from workbench.errors import WorkbenchError

    ws = workbench.open()  # WORKBENCH_HOME, set by `workbench serve`
    try:
        model = ws.model(model_id)
    except WorkbenchError as error:
        raise web.HTTPError(404, str(error)) from None
    if model.status != "SUCCESS" or not model.file:
        raise web.HTTPError(404, f"Model {model_id} is {model.status} and has no file.")
    path = Path(model.file)
    return (path if path.is_absolute() else ws.home / path), model.basename or path.name


def open_regular_file(path: Path) -> int:
    """A read descriptor on `path`, refused (404) unless it is a regular file: a FIFO would hang the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        raise web.HTTPError(404, f"The model file {path.name} is missing.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise web.HTTPError(404, f"{path.name} is not a regular file.")
    os.set_blocking(fd, True)
    return fd


class ModelDownloadHandler(PlainErrors, JupyterHandler):
    """Streams one model's signed file as an attachment."""

    @web.authenticated
    async def get(self, model_id: str) -> None:
        loop = asyncio.get_running_loop()
        path, name = await loop.run_in_executor(None, model_file, int(model_id))
        plain_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        with os.fdopen(open_regular_file(path), "rb", buffering=0) as file:
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Length", os.fstat(file.fileno()).st_size)
            self.set_header("Content-Disposition", f"attachment; filename=\"{plain_name}\"; filename*=UTF-8''{quote(name)}")
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Content-Type-Options", "nosniff")
            try:
                while chunk := await loop.run_in_executor(None, file.read, CHUNK):
                    self.write(chunk)
                    await self.flush()  # waits until the socket took it: at most one chunk in memory
            except StreamClosedError:  # the browser cancelled the download
                return
        self.finish()
