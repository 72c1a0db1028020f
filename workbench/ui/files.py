"""Files named on a dashboard: paths limited to the folders declared for data, uploads saved where
queries can read them.

A dashboard is used through a browser by someone who may not own the server's files, so the Path
boxes read only the folders SQL sources may read (`ws.sql_sandbox()`: WORKBENCH_DATA_DIRS, by
default the workspace's imports/ and the current directory), never the workspace's data/ (catalog,
signing key) or models/. Relative paths are taken from the workspace's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..store import disk_errors

UPLOADS = Path("imports") / "uploads"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def data_folders(ws: Any) -> list[Path]:
    """The folders a dashboard may read files from (their private parts excepted)."""
    return [Path(folder) for folder in ws.sql_sandbox().allowed_dirs]


def data_path(ws: Any, text: str) -> Path:
    """The file `text` names, if it lies in a folder declared for data (symbolic links resolved)."""
    path = Path(text.strip()).expanduser()
    path = path if path.is_absolute() else Path(ws.home) / path
    real = path.resolve()
    sandbox = ws.sql_sandbox()
    private = any(_within(real, Path(folder).resolve()) for folder in sandbox.private_dirs)
    allowed = any(_within(real, Path(folder).resolve()) for folder in sandbox.allowed_dirs)
    if private or not allowed:
        folders = ", ".join(str(f) for f in sandbox.allowed_dirs)
        raise ValidationError(
            f"{text.strip()!r} is not in a folder for data: the dashboards read files only in {folders} (never the "
            "workspace's data/ or models/). Put the file there or upload it; WORKBENCH_DATA_DIRS, set where the server "
            "starts, declares other folders.")
    return real


def save_upload(ws: Any, upload: dict) -> Path:
    """Write an uploaded file under imports/uploads/ of the workspace (where queries may read it)."""
    name = _UNSAFE.sub("_", Path(str(upload.get("name") or "upload.csv")).name).lstrip(".") or "upload.csv"
    ws.require_writable("save an uploaded file")
    folder = Path(ws.home) / UPLOADS
    path = folder / name
    content = upload["content"]
    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.tobytes() if hasattr(content, "tobytes") else bytes(content))
    return path
