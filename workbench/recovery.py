"""Rebuild a lost or damaged catalog from what the workspace's files hold.

The catalog is the one place that ties records together, so the files carry enough to rebuild
it: each interaction snapshot's `snapshot.json` (fingerprint, statistics, source), each
metadata snapshot's Parquet schema, each signed model file's header (algorithm, parameters,
data fingerprint, statistics; read without unpickling), and one small file per project the
workspace keeps for this purpose, `data/projects/<project>.json` (its columns and active model).
What only the catalog knew (jobs and their logs, tuning history, comparison metrics) cannot
come back; the report says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .data.snapshots import INFO_FILE
from .errors import ModelFileError, WorkbenchError
from .layout import Layout
from .signing import KeyRing, inspect_model_file
from .store import Catalog, utc_now

PROJECTS_FOLDER = "projects"
_PROJECT_KEYS = ("name", "user_column", "item_column", "time_column", "active_model_id")


def project_file(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / PROJECTS_FOLDER / f"{name}.json"


def _write_json(path: Path, value: dict) -> None:
    """Write a small JSON file atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(value, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_project_file(data_dir: Path, project: dict) -> None:
    """Keep a project's name, columns and active model in `data/projects/<name>.json`."""
    _write_json(project_file(data_dir, project["name"]), {k: project.get(k) for k in _PROJECT_KEYS})


def write_active_model(data_dir: Path, name: str, model_id: int | None) -> None:
    """Note a project's new active model in its project file; best effort (the catalog is the truth)."""
    path = project_file(data_dir, name)
    with contextlib.suppress(OSError):
        _write_json(path, {**_read_json(path), "name": name, "active_model_id": model_id})


@dataclass
class RebuildReport:
    """What a rebuild recovered, and what it could not."""

    catalog: Path
    damaged_copy: Path | None
    recovered: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"workbench doctor --rebuild: {self.catalog}"]
        if self.damaged_copy is not None:
            lines.append(f"the damaged catalog was kept as {self.damaged_copy}")
        lines.append("recovered: " + ", ".join(f"{n} {what}" for what, n in self.recovered.items()))
        lines += ["", f"NOT RECOVERED ({len(self.lost)})"] + [f"  {line}" for line in self.lost]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def catalog_is_healthy(layout: Layout) -> bool:
    """Whether the catalog opens and reads (no rebuild needed)."""
    try:
        catalog = Catalog(layout.catalog_path, home=layout.home, read_only=True)
    except (WorkbenchError, OSError):
        return False
    catalog.close()
    return True


def rebuild(location: Any, keyring: KeyRing | None = None, force: bool = False) -> RebuildReport:
    """Rebuild the catalog of the workspace at `location` from its snapshots and signed model headers.

    A missing or damaged catalog is set aside (renamed `<name>.damaged-<time>`, never deleted) and
    replaced. A healthy one is only replaced with `force=True`.
    """
    layout = Layout.of(location)
    path = layout.catalog_path
    if path.exists() and not force and catalog_is_healthy(layout):
        raise WorkbenchError(f"The catalog {path} is readable: nothing to rebuild (`workbench doctor --repair` "
                             "fixes inconsistencies; `--rebuild --force` rebuilds anyway).")
    damaged_copy = None
    if path.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        damaged_copy = path.with_name(f"{path.name}.damaged-{stamp}")
        os.replace(path, damaged_copy)
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{damaged_copy}{suffix}"))
    if keyring is None:
        keyring = KeyRing.load(layout.key_file)
    catalog = Catalog(path, home=layout.home)
    report = RebuildReport(path, damaged_copy)
    _Rebuilder(layout, catalog, keyring, report).run()
    return report


class _Rebuilder:
    def __init__(self, layout: Layout, catalog: Catalog, keyring: KeyRing, report: RebuildReport) -> None:
        self.layout, self.catalog, self.keyring, self.report = layout, catalog, keyring, report
        self.counts = {"projects": 0, "training data": 0, "item metadata": 0, "configurations": 0, "models": 0,
                       "active models": 0}
        report.recovered = self.counts

    def run(self) -> None:
        headers = self.model_headers()
        projects = self.layout.data_dir / PROJECTS_FOLDER
        names = sorted({p.name for root in (self.layout.snapshots_dir, self.layout.models_dir) if root.is_dir()
                        for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
                       | {p.stem for p in projects.glob("*.json")})
        for name in names:
            self.project(name, headers.get(name, []))
        self.report.lost += [
            "jobs, their log lines and tuning history (trials, best scores): only the catalog held them",
            "comparison and validation metrics of models: run a comparison again",
        ]

    def model_headers(self) -> dict[str, list[tuple[Path, dict]]]:
        found: dict[str, list[tuple[Path, dict]]] = {}
        root = self.layout.models_dir
        for path in sorted(root.glob("*/*.wbm")) if root.is_dir() else []:
            try:
                header = inspect_model_file(path, self.keyring)
            except (ModelFileError, OSError) as error:
                self.report.lost.append(f"model file {path}: it does not verify ({error}); left where it is")
                continue
            found.setdefault(path.parent.name, []).append((path, header))
        return found

    def project(self, name: str, models: list[tuple[Path, dict]]) -> None:
        saved = _read_json(project_file(self.layout.data_dir, name))
        columns = saved
        if not columns.get("user_column"):
            header_columns = next((h.get("columns") for _, h in models if h.get("columns")), None) or {}
            columns = {"user_column": header_columns.get("user"), "item_column": header_columns.get("item"),
                       "time_column": header_columns.get("time")}
        if not columns.get("user_column") or not columns.get("item_column"):
            self.report.lost.append(f"project {name}: its column names (set to user_id / item_id; if they differ, "
                                    "re-create the project and import again)")
            columns = {"user_column": "user_id", "item_column": "item_id", "time_column": None}
        project = {"name": name, "user_column": columns["user_column"], "item_column": columns["item_column"],
                   "time_column": columns.get("time_column")}
        project_id = self.catalog.insert("projects", project)
        self.counts["projects"] += 1
        data_ids = self.snapshots(name, project_id, project)
        self.models(name, project_id, models, data_ids, saved.get("active_model_id"))

    def snapshots(self, name: str, project_id: int, project: dict) -> dict[str, int]:
        folder = self.layout.snapshots_dir / name
        entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=_mtime) \
            if folder.is_dir() else []
        data_ids: dict[str, int] = {}
        for path in entries:
            if path.is_dir():
                info = _read_json(path / INFO_FILE)
                if not info.get("fingerprint"):
                    self.report.lost.append(f"snapshot {path}: no readable {INFO_FILE}; left where it is")
                    continue
                data_ids[info["fingerprint"]] = self.catalog.insert("training_data", {
                    "project_id": project_id, "name": Path(str(info.get("source", ""))).name or "recovered",
                    "source": info.get("source") or "recovered", "path": path, "fingerprint": info["fingerprint"],
                    "n_rows": info["n_rows"], "n_users": info["n_users"], "n_items": info["n_items"],
                    "time_min": info.get("time_min"), "time_max": info.get("time_max"),
                    "dropped": info.get("dropped") or {},
                })
                self.counts["training data"] += 1
            elif path.suffix == ".parquet":
                try:
                    meta = pq.read_metadata(path)
                except (OSError, ValueError) as error:
                    self.report.lost.append(f"item metadata {path}: unreadable ({error})")
                    continue
                self.catalog.insert("item_metadata", {
                    "project_id": project_id, "source": "recovered", "path": path, "fingerprint": path.stem,
                    "item_column": project["item_column"], "n_rows": meta.num_rows,
                    "columns": list(meta.schema.to_arrow_schema().names),
                })
                self.counts["item metadata"] += 1
        return data_ids

    def models(self, name: str, project_id: int, models: list[tuple[Path, dict]], data_ids: dict[str, int],
               active: int | None) -> None:
        configurations: dict[str, int] = {}
        recovered: set[int] = set()
        for path, header in models:
            model_id = header.get("model_id")
            if not isinstance(model_id, int) or path.stem != str(model_id):
                self.report.lost.append(f"model file {path}: its header names model {model_id!r}; left where it is")
                continue
            key = json.dumps([header.get("algorithm"), header.get("params")], sort_keys=True)
            if key not in configurations:
                configurations[key] = self.catalog.insert("configurations", {
                    "project_id": project_id, "name": f"recovered-{header.get('algorithm')}",
                    "algorithm": header.get("algorithm"), "params": header.get("params") or {},
                })
                self.counts["configurations"] += 1
            fingerprint = header.get("data_fingerprint")
            data_id = data_ids.get(fingerprint)
            if data_id is None:
                data_id = data_ids[fingerprint] = self.catalog.insert("training_data", {
                    "project_id": project_id, "name": "missing snapshot", "source": "recovered from a model header",
                    "path": self.layout.snapshots_dir / name / str(fingerprint), "fingerprint": str(fingerprint),
                    "n_rows": header.get("n_interactions") or 0, "n_users": header.get("n_users") or 0,
                    "n_items": header.get("n_items") or 0,
                })
                self.report.lost.append(f"the training data of model {model_id} (snapshot {str(fingerprint)[:12]}): "
                                        "the model loads, but cannot be retrained or compared on it")
            self.catalog.insert("models", {
                "id": model_id, "project_id": project_id, "configuration_id": configurations[key],
                "training_data_id": data_id, "status": "SUCCESS", "file": path, "basename": path.name,
                "filesize": path.stat().st_size, "irspack_version": header.get("irspack_version"),
                "data_fingerprint": fingerprint, "n_users": header.get("n_users"), "n_items": header.get("n_items"),
                "n_interactions": header.get("n_interactions"), "train_seconds": header.get("train_seconds"),
                "stats": header.get("stats") or {}, "ins_datetime": header.get("trained_at") or utc_now(),
            })
            recovered.add(model_id)
            self.counts["models"] += 1
        if active in recovered:
            self.catalog.execute("UPDATE projects SET active_model_id = ? WHERE id = ?", [active, project_id])
            self.counts["active models"] += 1
        elif active is not None:
            self.report.lost.append(f"project {name}: its active model {active} (its file did not verify or is gone)")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = ["RebuildReport", "project_file", "rebuild", "write_active_model", "write_project_file"]
