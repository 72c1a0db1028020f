"""DuckDB queries given as sources run sandboxed.

A source query must be exactly one SELECT. It runs on a DuckDB database of its own that may read
only the folders declared for data (WORKBENCH_DATA_DIRS, else a default the caller gives, else the
current directory) minus private folders (a workspace's data/ and models/), and that has no other
file or network access, no extension loading, no Python variables, and a locked configuration.

DuckDB's allowed_directories is a list of path prefixes and has no exclusions, so an allowed folder
holding a private one is allowed piece by piece: each of its entries except the way to the private
folder (folders as prefixes, files one by one). Files added to it later need a new connection (each
query gets one); a glob over that folder itself (`'*.csv'` there) finds nothing. Symbolic links are
resolved while carving, but links deeper inside an allowed folder are followed as DuckDB follows them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from workbench.errors import ValidationError

from .engine import literal, wrap_error

DATA_DIRS_VARIABLE = "WORKBENCH_DATA_DIRS"


@dataclass(frozen=True)
class SqlSandbox:
    """What a source query may read: `allowed_dirs` and all below them, except `private_dirs`."""

    allowed_dirs: tuple = ()
    private_dirs: tuple = ()

    @classmethod
    def declared(cls, default=(), private=()) -> SqlSandbox:
        """The folders in WORKBENCH_DATA_DIRS (separated by os.pathsep) if it is set, else `default`,
        else the current directory; relative ones are relative to the current directory."""
        text = os.environ.get(DATA_DIRS_VARIABLE, "").strip()
        folders = [part for part in text.split(os.pathsep) if part.strip()] if text else list(default)
        folders = folders or [Path.cwd()]
        return cls(tuple(Path(f).expanduser().absolute() for f in folders), tuple(Path(p) for p in private))

    def readable(self) -> tuple[list[str], list[str]]:
        """(folders, files) a query may read, for DuckDB's allowed_directories and allowed_paths."""
        private = [Path(p).resolve() for p in self.private_dirs]
        folders: list[str] = []
        files: list[str] = []

        def visit(path: Path) -> None:
            real = path.resolve()
            if any(_within(real, p) for p in private):
                return
            if any(_within(p, real) for p in private):  # a private folder lies below: allow the rest
                for entry in sorted(path.iterdir()):
                    visit(entry)
                return
            if path.is_file():
                files.append(str(path))
                return
            folders.append(os.path.join(path, ""))
            if real != path.absolute():
                folders.append(os.path.join(real, ""))

        for folder in self.allowed_dirs:
            visit(Path(folder).absolute())
        return list(dict.fromkeys(folders)), list(dict.fromkeys(files))

    def refusal(self, description: str, error: duckdb.Error) -> ValidationError | None:
        """A clear message for a read this sandbox refused; None for any other error."""
        if not isinstance(error, duckdb.PermissionException):
            return None
        found = re.search(r'Cannot access (?:file|directory) "([^"]*)"', str(error))
        private = f" (never in {', '.join(map(str, self.private_dirs))})" if self.private_dirs else ""
        return ValidationError(
            f"{description}: the query may not read {found.group(1) if found else 'that file'!r}: source queries "
            f"read only files in {', '.join(map(str, self.allowed_dirs))}{private}, without extensions or network; "
            f"{DATA_DIRS_VARIABLE} declares the folders for data"
        )

    def connect(self, temp_dir: Path) -> duckdb.DuckDBPyConnection:
        """A new in-memory database locked down to `readable()`; `temp_dir` (private) takes its spills."""
        folders, files = self.readable()
        con = duckdb.connect(":memory:")
        try:
            con.execute(
                "SET enable_progress_bar = false; SET TimeZone = 'UTC'; SET python_enable_replacements = false; "
                f"SET temp_directory = {literal(str(temp_dir))}; "
                f"SET allowed_directories = [{', '.join(map(literal, folders))}]; "
                f"SET allowed_paths = [{', '.join(map(literal, files))}]; "
                "SET enable_external_access = false; SET autoinstall_known_extensions = false; "
                "SET autoload_known_extensions = false; SET lock_configuration = true"
            )
        except BaseException:
            con.close()
            raise
        return con


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_select(query: str, description: str) -> None:
    """Refuse anything but exactly one SELECT statement (WITH ... SELECT, FROM ..., VALUES too)."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as error:
        raise wrap_error(description, error, "not a valid query") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = " + ".join(s.type.name for s in statements) or "none"
        raise ValidationError(
            f"{description}: a source query must be exactly one SELECT statement, got {len(statements)} "
            f"({kinds}); queries cannot write, attach databases or change settings"
        )
