"""`workbench doctor`: find (and with `repair=True` fix) what crashes and hand edits leave behind.

What it checks, and what `--repair` does about it:

| finding | repair |
|---|---|
| a job RUNNING (or PENDING with a worker pid) whose process is gone | FAILURE with a reason (`jobs.reap_dead_jobs`) |
| a job PENDING with no process for longer than `stale_after` | FAILURE with a reason |
| a retrain that died mid-run (its journal in `data/locks/` still says "running") | what it registered is removed (`retrain.undo_run`) |
| a SUCCESS model whose file is missing | the model is marked FAILURE (the reason goes to its job) |
| a SUCCESS model whose file fails verification (altered, truncated, another model's) | marked FAILURE; the file moves to `quarantine/` |
| a model file with no model record claiming it | moved to `quarantine/` |
| temp files of dead writers: models `.<name>.tmp-<pid>-*`, snapshot `.tmp-*` | removed |
| snapshot directories / metadata files that no record references | removed |
| a snapshot directory missing one of its files, a record whose snapshot is gone | reported only |
| the signing key file readable by others | chmod 0600 |

Nothing is deleted that could hold a model: model files are moved to `HOME/quarantine/<time>/`,
never removed. A file signed with a key id the key ring does not hold is reported, never
quarantined: that is a key configuration problem (WORKBENCH_SIGNING_KEYS), not a tampered file.
Temp files and unreferenced snapshots younger than `stale_after` seconds are left alone (a live
import or training may be writing them). The signing secret is never shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from . import jobs
from .data.snapshots import SNAPSHOT_FILES, TEMP_PREFIX
from .errors import ModelFileError, UnknownKeyError, WorkbenchError
from .models import forget_cached
from .recovery import write_active_model
from .signing import TEMP_FILE, inspect_model_file

if TYPE_CHECKING:
    from .workspace import Workspace

DEFAULT_STALE_AFTER = 600.0  # seconds: younger temp files and unreferenced snapshots may belong to a live writer
_SNAPSHOT_TEMP = re.compile(rf"^{re.escape(TEMP_PREFIX)}(?:(\d+)-)?")  # data's unfinished snapshots
_RETRAIN_SCRATCH = ".retrain-batch-"


@dataclass
class Finding:
    """One problem: what kind, what it concerns, why it is one; `repaired` says what was done."""

    kind: str
    subject: str
    detail: str
    repairable: bool = True
    repaired: str | None = None

    def line(self) -> str:
        text = f"[{self.kind}] {self.subject}: {self.detail}"
        return text + (f" -> {self.repaired}" if self.repaired else "")


@dataclass
class Report:
    """What `check` found and did. `ok` when nothing is left to fix; `exit_code` 0 or 1."""

    catalog: Path
    repair: bool
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        """Findings still standing (all of them without repair)."""
        return [f for f in self.findings if f.repaired is None]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, kind: str, subject: str, detail: str, repairable: bool = True) -> Finding:
        finding = Finding(kind, subject, detail, repairable)
        self.findings.append(finding)
        return finding

    def text(self) -> str:
        checked = ", ".join(f"{n} {what}" for what, n in self.checked.items())
        lines = [f"workbench doctor: {self.catalog}", f"checked: {checked}"]
        repaired = [f for f in self.findings if f.repaired]
        if repaired:
            lines += ["", f"REPAIRED ({len(repaired)})"] + [f"  {f.line()}" for f in repaired]
        if self.problems:
            lines += ["", f"PROBLEMS ({len(self.problems)})"] + [f"  {f.line()}" for f in self.problems]
            fixable = [f for f in self.problems if f.repairable]
            if fixable and not self.repair:
                lines += ["", f"Run `workbench doctor --repair` to fix {len(fixable)} of them."]
            manual = [f for f in self.problems if not f.repairable]
            if manual:
                lines += ["", f"{len(manual)} need a person: see the reasons above."]
        else:
            lines += ["", "All consistent." if not repaired else "All consistent now."]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.text())}</pre>"


def check(ws: Workspace, repair: bool = False, stale_after: float = DEFAULT_STALE_AFTER) -> Report:
    """Check the workspace's catalog, model files and snapshots; with `repair=True` fix what can be."""
    report = Report(ws.catalog_path, repair)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    doctor = _Doctor(ws, report, repair, float(stale_after), ws.home / "quarantine" / stamp)
    doctor.run()
    return report


class _Doctor:
    def __init__(self, ws: Workspace, report: Report, repair: bool, stale_after: float, quarantine: Path) -> None:
        self.ws = ws
        self.report = report
        self.repair = repair
        self.stale_after = stale_after
        self.quarantine = quarantine
        self.now = time.time()

    def run(self) -> None:
        self.retrain_journals()
        self.dead_jobs()
        self.stale_pending_jobs()
        self.key_file()
        self.model_records_and_files()
        self.snapshots()

    # ------------------------------------------------------------------------------- helpers

    def rel(self, path: Any) -> str:
        path = Path(path)
        try:
            return str(path.relative_to(self.ws.home))
        except ValueError:
            return str(path)

    def stale(self, path: Path, pid: int | None) -> bool:
        """A temp entry no live writer can still own: its pid is gone, or it is older than stale_after."""
        if pid is not None and not psutil.pid_exists(pid):
            return True
        try:
            newest = max([path.lstat().st_mtime] + ([p.lstat().st_mtime for p in path.rglob("*")] if path.is_dir() else []))
        except OSError:
            return False
        return self.now - newest >= self.stale_after

    def old_enough(self, path: Path) -> bool:
        try:
            return self.now - path.lstat().st_mtime >= self.stale_after
        except OSError:
            return False

    def remove(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def remove_unreferenced(self, path: Path) -> bool:
        """Remove an unreferenced snapshot unless an import re-used it meanwhile.

        An import of the same content finds the snapshot by its name and records it: the
        snapshot is first renamed out of the way (a hidden temp name, which a later run removes
        if this one dies), then the catalog is asked again.
        """
        trash = path.with_name(f".tmp-unreferenced-{path.name}")
        os.rename(path, trash)
        stored = self.ws.catalog.relative(path)
        rows = self.ws.catalog.query(
            "SELECT id FROM training_data WHERE path = ? UNION ALL SELECT id FROM item_metadata WHERE path = ?",
            [stored, stored])
        if rows:
            os.rename(trash, path)
            return False
        self.remove(trash)
        return True

    def model_folders(self) -> list[Path]:
        """models/, and data/models/ where background jobs of earlier versions wrote their files."""
        folders = [self.ws.models_dir, self.ws.data_dir / "models"]
        return [f for i, f in enumerate(folders) if f.is_dir() and _key(f) not in map(_key, folders[:i])]

    def move_to_quarantine(self, path: Path, project: str) -> Path:
        target_dir = self.quarantine / project
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        n = 1
        while target.exists():
            n += 1
            target = target_dir / f"{path.name}.{n}"
        shutil.move(str(path), str(target))
        return target

    def fail_model(self, model: dict, reason: str) -> str:
        """Mark a model FAILURE, put the reason on its job, and free the project's active slot."""
        message = f"workbench doctor: model {model['id']} marked FAILURE: {reason}"

        def work(con) -> bool:
            con.execute("UPDATE models SET status = 'FAILURE' WHERE id = ?", [model["id"]])
            if model.get("job_id") is not None:
                con.execute("INSERT INTO job_logs (job_id, level, message) VALUES (?, 'ERROR', ?)",
                            [model["job_id"], message])
                con.execute("UPDATE jobs SET error = coalesce(error, ?) WHERE id = ?", [message, model["job_id"]])
            active = con.execute("SELECT id FROM projects WHERE active_model_id = ?", [model["id"]]).fetchall()
            con.execute("UPDATE projects SET active_model_id = NULL WHERE active_model_id = ?", [model["id"]])
            return bool(active)

        was_active = self.ws.catalog.run(work)
        if was_active and model.get("project"):
            write_active_model(self.ws.data_dir, model["project"], None)
        if model.get("file"):
            forget_cached(model["file"])
        return "marked FAILURE" + (" (it was the active model: the project now has none)" if was_active else "")

    # ---------------------------------------------------------------------------------- jobs

    def retrain_journals(self) -> None:
        from .retrain import ProjectLock, RetrainBusyError, undo_run

        locks = self.ws.data_dir / "locks"
        files = sorted(locks.glob("*.retrain.lock")) if locks.is_dir() else []
        self.report.checked["retrain journals"] = len(files)
        for path in files:
            try:
                journal = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                continue
            if not isinstance(journal, dict) or journal.get("state") != "running":
                continue
            identity = {"pid": journal.get("pid"), "host": journal.get("host"),
                        "process_started": journal.get("process_started")}
            if jobs.is_alive(identity):
                continue  # a retrain is running right now
            project = journal.get("project") or path.name.removesuffix(".retrain.lock")
            finding = self.report.add(
                "crashed retrain", f"project {project}",
                f"the retrain started {journal.get('started_at', '?')} by process {journal.get('pid')} died mid-run; "
                "what it registered is still in the catalog (the next retrain would remove it)",
            )
            if not self.repair:
                continue
            try:
                with ProjectLock(self.ws, project).acquire(timeout=0) as lock:
                    if lock.previous.get("state") != "running":
                        finding.repaired = "already cleaned up by another process"
                        continue
                    removed = undo_run(self.ws, lock.previous)
                    lock.journal = dict(lock.previous)
                    lock.write(state="rolled back", error="died mid-run; cleaned up by workbench doctor",
                               removed=removed)
                finding.repaired = "removed " + ("; ".join(removed) if removed else "nothing (it had registered nothing)")
            except RetrainBusyError:
                finding.repaired = "a new retrain of the project has started and cleans it up itself"
            except WorkbenchError as error:
                finding.detail += f" (cleaning up failed: {error})"

    def dead_jobs(self) -> None:
        rows = self.ws.catalog.query(
            "SELECT id, kind, status, pid, host, process_started FROM jobs "
            "WHERE status IN ('PENDING', 'RUNNING') AND pid IS NOT NULL ORDER BY id"
        )
        self.report.checked["unfinished jobs"] = len(rows)
        dead = [job for job in rows if not jobs.is_alive(job)]
        findings = {
            job["id"]: self.report.add(
                "dead job", f"job {job['id']} ({job['kind']})",
                f"{job['status']}, but its process {job['pid']} is gone",
            )
            for job in dead
        }
        if self.repair and dead:
            reaped = set(jobs.reap_dead_jobs(self.ws.catalog, self.ws.models_dir))
            for job_id, finding in findings.items():
                finding.repaired = "marked FAILURE (with its models)" if job_id in reaped else "already ended"

    def stale_pending_jobs(self) -> None:
        rows = self.ws.catalog.query(
            "SELECT id, kind, (julianday('now') - julianday(created_at)) * 86400.0 AS age FROM jobs "
            "WHERE status = 'PENDING' AND pid IS NULL ORDER BY id"
        )
        for job in rows:
            if job["age"] is None or job["age"] < self.stale_after:
                continue
            finding = self.report.add(
                "stale job", f"job {job['id']} ({job['kind']})",
                f"PENDING for {job['age']:.0f} s and no process ever took it",
            )
            if self.repair:
                reason = "No process ever started this job (found by workbench doctor)."
                ended = jobs.finish_job(self.ws.catalog, job["id"], jobs.FAILURE, reason, never_started=True)
                finding.repaired = "marked FAILURE" if ended else "a worker took it meanwhile"

    # ------------------------------------------------------------------------------- signing

    def key_file(self) -> None:
        path = self.ws.key_file
        if os.environ.get("WORKBENCH_SIGNING_KEYS") is not None or not path.exists():
            return
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            finding = self.report.add("key file", self.rel(path), f"mode {mode:04o}: others can read the signing key")
            if self.repair:
                os.chmod(path, 0o600)
                finding.repaired = "chmod 0600"

    # -------------------------------------------------------------------------------- models

    def model_records_and_files(self) -> None:
        ws = self.ws
        try:
            keyring = ws.keyring
        except WorkbenchError as error:
            keyring = None
            self.report.add("signing keys", "key ring", f"cannot load the signing keys, so no file was verified: {error}",
                            repairable=False)
        records = ws.catalog.query(
            "SELECT m.id, m.status, m.file, m.basename, m.job_id, m.project_id, m.data_fingerprint, p.name AS project, "
            "j.status AS job_status, j.pid, j.host, j.process_started "
            "FROM models m LEFT JOIN projects p ON p.id = m.project_id LEFT JOIN jobs j ON j.id = m.job_id ORDER BY m.id"
        )
        self.report.checked["models"] = len(records)
        claimed: dict[str, dict] = {}  # resolved path -> SUCCESS record
        in_progress: dict[str, dict] = {}  # models/<project>/<id>.* of models still being trained
        verified = 0
        for model in records:
            if model["status"] in ("PENDING", "RUNNING") and model["project"]:
                for candidate in (ws.models_dir / model["project"]).glob(f"{model['id']}.*"):
                    in_progress[_key(candidate)] = model
            if model["status"] != jobs.SUCCESS:
                continue
            path = Path(model["file"]) if model["file"] else None
            if path is None or not path.is_file():
                finding = self.report.add(
                    "missing file", f"model {model['id']}",
                    f"SUCCESS but its file {self.rel(path) if path else '(none recorded)'} does not exist")
                if self.repair:
                    finding.repaired = self.fail_model(model, f"its model file {model['file']} is missing")
                continue
            claimed[_key(path)] = model
            if keyring is None:
                continue
            problem = None
            try:
                header = inspect_model_file(path, keyring)
                verified += 1
            except UnknownKeyError as error:
                self.report.add("unknown key", f"model {model['id']} ({self.rel(path)})",
                                f"{error}; configure the key (WORKBENCH_SIGNING_KEYS) that signed it", repairable=False)
                continue
            except ModelFileError as error:
                problem = f"{type(error).__name__}: {error}"
            except OSError as error:
                problem = f"unreadable: {error}"
            else:
                if header.get("model_id") != model["id"]:
                    problem = f"a correctly signed file of model {header.get('model_id')!r}, not of model {model['id']}"
                elif model["data_fingerprint"] and header.get("data_fingerprint") != model["data_fingerprint"]:
                    problem = "signed for other training data than the record says"
            if problem is None:
                continue
            finding = self.report.add("tampered file", f"model {model['id']} ({self.rel(path)})", problem)
            if self.repair:
                target = self.move_to_quarantine(path, model["project"] or "unknown")
                done = self.fail_model(model, f"its model file failed verification ({problem}); moved to {target}")
                finding.repaired = f"{done}; file moved to {self.rel(target)}"
        self.report.checked["model files verified"] = verified
        self.model_folder(claimed, in_progress, keyring)

    def model_folder(self, claimed: dict[str, dict], in_progress: dict[str, dict], keyring) -> None:
        entries = sorted(p for folder in self.model_folders() for d in folder.iterdir() if d.is_dir() for p in d.iterdir())
        files = 0
        for path in entries:
            temp = TEMP_FILE.match(path.name)
            if temp:
                if self.stale(path, int(temp.group(1))):
                    finding = self.report.add("temp file", self.rel(path),
                                              f"an unfinished model file left by process {temp.group(1)}")
                    if self.repair:
                        self.remove(path)
                        finding.repaired = "removed"
                continue
            if path.name.startswith(".") or not path.is_file():
                continue
            files += 1
            key = _key(path)
            if key in claimed:
                continue
            model = in_progress.get(key)
            if model is not None and model["job_status"] in ("PENDING", "RUNNING") and jobs.is_alive(model):
                continue  # written, its record is being updated right now
            detail = "no model record claims it"
            if keyring is not None:
                try:
                    header = inspect_model_file(path, keyring)
                    detail += f" (a correctly signed file of model {header.get('model_id')!r})"
                except (ModelFileError, OSError) as error:
                    detail += f" (and it does not verify: {error})"
            finding = self.report.add("orphan file", self.rel(path), detail)
            if self.repair:
                target = self.move_to_quarantine(path, path.parent.name)
                finding.repaired = f"moved to {self.rel(target)}"
        self.report.checked["model files"] = files

    # ----------------------------------------------------------------------------- snapshots

    def snapshots(self) -> None:
        ws = self.ws
        data_rows = ws.catalog.query(
            "SELECT t.id, t.path, t.fingerprint, p.name AS project FROM training_data t "
            "LEFT JOIN projects p ON p.id = t.project_id ORDER BY t.id")
        meta_rows = ws.catalog.query(
            "SELECT m.id, m.path, m.fingerprint, p.name AS project FROM item_metadata m "
            "LEFT JOIN projects p ON p.id = m.project_id ORDER BY m.id")
        self.report.checked["snapshots"] = len(data_rows) + len(meta_rows)
        referenced: set[str] = set()
        for rows, table, label in ((data_rows, "training_data", "training data"),
                                   (meta_rows, "item_metadata", "item metadata")):
            for row in rows:
                path = Path(row["path"])
                referenced.add(_key(path))
                if not path.exists():
                    self.report.add("missing snapshot", f"{label} {row['id']}",
                                    f"its snapshot {self.rel(path)} is gone; re-import the data (models trained on it "
                                    "still load, but cannot be retrained or compared on it)", repairable=False)
                elif table == "training_data":
                    missing = [name for name in SNAPSHOT_FILES if not (path / name).is_file()]
                    if missing:
                        self.report.add("broken snapshot", f"{label} {row['id']}",
                                        f"{self.rel(path)} lacks {', '.join(missing)}; re-import the data",
                                        repairable=False)
        root = ws.snapshots_dir
        for project_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            for path in sorted(project_dir.iterdir()):
                temp = _SNAPSHOT_TEMP.match(path.name)
                if temp:
                    pid = int(temp.group(1)) if temp.group(1) else None
                    if self.stale(path, pid):
                        finding = self.report.add("temp snapshot", self.rel(path), "an unfinished import's temp files")
                        if self.repair:
                            self.remove(path)
                            finding.repaired = "removed"
                    continue
                if path.name.startswith(".") or _key(path) in referenced:
                    continue
                if not (path.is_dir() or path.suffix == ".parquet") or not self.old_enough(path):
                    continue
                finding = self.report.add("unreferenced snapshot", self.rel(path),
                                          "no training data or item metadata record uses it")
                if self.repair:
                    finding.repaired = "removed" if self.remove_unreferenced(path) else "in use again: kept"
        for path in sorted(ws.data_dir.glob(_RETRAIN_SCRATCH + "*")) if ws.data_dir.is_dir() else []:
            if self.stale(path, None):
                finding = self.report.add("temp snapshot", self.rel(path), "a retrain's scratch folder")
                if self.repair:
                    self.remove(path)
                    finding.repaired = "removed"
        for path in sorted(ws.key_file.parent.glob(f".{ws.key_file.name}.tmp-*")) if ws.key_file.parent.is_dir() else []:
            temp = TEMP_FILE.match(path.name)
            if temp and self.stale(path, int(temp.group(1))):
                finding = self.report.add("temp file", self.rel(path), "an unfinished signing key file")
                if self.repair:
                    self.remove(path)
                    finding.repaired = "removed"


def _key(path: Path) -> str:
    return os.path.realpath(path)
