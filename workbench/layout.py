"""Where a workspace keeps its files: one home folder, its catalog, snapshots, models and keys."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ValidationError

CATALOG_NAME = "workbench.sqlite"
LEGACY_CATALOG_NAME = "workbench.duckdb"
CATALOG_SUFFIXES = (".sqlite", ".duckdb")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def safe_name(name: str, what: str) -> str:
    """A name that becomes part of a path: letters, digits, `_ . -`; no `..`, `/` or controls."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValidationError(
            f"The {what} name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it becomes part of a file path)."
        )
    return name


def default_home() -> Path:
    """WORKBENCH_HOME, else the nearest folder up from here holding a workspace catalog, else here."""
    if os.environ.get("WORKBENCH_HOME"):
        return Path(os.environ["WORKBENCH_HOME"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if any((folder / "data" / name).exists() for name in (CATALOG_NAME, LEGACY_CATALOG_NAME)):
            return folder
    return here


@dataclass(frozen=True)
class Layout:
    """The paths of one workspace.

    A home folder keeps `data/workbench.sqlite`, `data/snapshots/`, `data/signing.key` and
    `models/`. A catalog file given directly (`x.sqlite`) keeps its snapshots and key beside it.
    A home's own catalog, `some/dir/data/workbench.sqlite`, is the same workspace as `some/dir`:
    one catalog always has the same model and data folders, however it is opened.
    """

    home: Path
    data_dir: Path
    catalog_path: Path

    @classmethod
    def of(cls, location: str | os.PathLike | None = None) -> Layout:
        location = Path(location) if location is not None else default_home()
        if location.suffix in CATALOG_SUFFIXES and location.stem == Path(CATALOG_NAME).stem \
                and location.resolve().parent.name == "data":
            location = location.resolve().parent.parent
        if location.suffix in CATALOG_SUFFIXES:
            catalog_path = location.resolve().with_suffix(".sqlite")
            return cls(catalog_path.parent, catalog_path.parent, catalog_path)
        home = location.resolve()
        return cls(home, home / "data", home / "data" / CATALOG_NAME)

    @property
    def legacy_catalog_path(self) -> Path:
        """Where a catalog of the DuckDB era would be."""
        return self.catalog_path.with_suffix(".duckdb")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "signing.key"
