"""The catalog under load: many processes on one workspace, and the engines it could be built on.

    .venv/bin/python bench/bench_catalog.py                # idle 30 s, then a 3-minute soak
    .venv/bin/python bench/bench_catalog.py --smoke        # seconds: checks that it runs

1. Soak. Two dashboard-like pollers (`ws.models()`, `ws.projects()`), an importer, a background
   trainer, an activator, a tuner, a `workbench retrain` loop and a job writing progress, all on
   one workspace, each in its own process. First the pollers and the progress writer run alone
   (idle), then everything together (soak). Reported: p50/p99/max of `ws.models()` and of one
   job-progress write, idle against soak in the same run, errors, and lost writes (every record
   and log line a role wrote is looked up at the end). Targets: 0 errors, 0 lost writes, soak p99
   <= 0.25 s on a quiet machine, and <= 5x the idle p99 on a loaded one.
2. Engines. The workload issue 15 measured: N processes x M cycles of connect, BEGIN, INSERT,
   SELECT, COMMIT, close on one file, for plain DuckDB (relying on its file lock), DuckDB behind
   an exclusive `flock` held from connect to close, and SQLite in WAL mode (what the catalog
   uses); rows kept, wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROLES = ("poller", "progress", "importer", "trainer", "activator", "tuner", "retrain")
IDLE_ROLES = ("poller", "progress")


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], "max": ordered[-1]}


# --- the soak's roles (each runs in its own process) ------------------------------------------

def role_main(role: str, home: str, seconds: float, worker: int, out: Path) -> None:
    import optuna

    import workbench as wb
    from workbench import jobs
    from workbench.demo import generate_demo

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ws = wb.open(home)
    deadline = time.monotonic() + seconds
    result: dict = {"role": role, "worker": worker, "errors": [], "latency": {}, "written": {}}

    def timed(name: str, call):
        started = time.perf_counter()
        value = call()
        result["latency"].setdefault(name, []).append(time.perf_counter() - started)
        return value

    written = result["written"]
    data = ws.latest_training_data("demo")
    config_id = ws.active_model("demo").configuration_id
    step = 0
    reporter = None
    if role == "progress":
        job_id = jobs.create_job(ws.catalog, "soak", ws.project("demo").id, {})
        reporter = jobs.Reporter(ws.catalog, job_id, interval=1e9)  # buffers until the timed flush
        written["job"] = job_id
    while time.monotonic() < deadline:
        step += 1
        try:
            if role == "poller":
                timed("models", lambda: ws.models())
                timed("projects", lambda: ws.projects())
                time.sleep(0.05)
            elif role == "progress":
                reporter.progress(step / 1e6, f"step {step}")
                reporter.log(f"{worker}:{step}")
                timed("progress_write", reporter.flush)
                written.setdefault("lines", []).append(f"{worker}:{step}")
                time.sleep(0.1)
            elif role == "importer":
                frame, _ = generate_demo(seed=1000 * worker + step, n_users=150, n_items=80)
                record = timed("import", lambda: ws.import_training_data("demo", frame, name=f"soak {step}"))
                written.setdefault("training_data", []).append(record.id)
            elif role == "trainer":
                model = ws.train(config_id, data.id, background=True)
                try:
                    timed("train_background", lambda: model.wait(600))
                except Exception as error:
                    log = Path(home) / "data" / "logs" / f"job-{model.job_id}.log"
                    tail = log.read_text()[-400:] if log.exists() else "(no worker log)"
                    raise RuntimeError(f"{error}; worker log: {tail}") from error
                written.setdefault("models", []).append(model.id)
            elif role == "activator":
                ids = [int(i) for i, s in zip(ws.models("demo")["id"], ws.models("demo")["status"]) if s == "SUCCESS"]
                chosen = ids[step % len(ids)]
                timed("activate", lambda: ws.activate(chosen))
                time.sleep(0.2)
            elif role == "tuner":
                job = timed("tune", lambda: ws.tune(data.id, n_trials=3, cutoff=10, algorithms=["TopPop", "IALS"],
                                                    train_after_tuning=False))
                written.setdefault("tuning_jobs", []).append(job.id)
            elif role == "retrain":
                done = timed("retrain", lambda: subprocess.run(
                    [sys.executable, "-m", "workbench.cli", "--home", home, "retrain", "--project", "demo",
                     "-p", "activate", "never"], capture_output=True, text=True, timeout=900))
                if done.returncode != 0:
                    raise RuntimeError(f"retrain exited {done.returncode}: {done.stderr.strip()[-300:]}")
        except Exception as error:  # every error counts against the catalog
            result["errors"].append(f"{type(error).__name__}: {error}"[:500])
            result.setdefault("traceback", traceback.format_exc()[-2000:])
    out.write_text(json.dumps(result))


def start_roles(roles: list[str], home: Path, seconds: float, folder: Path) -> list[tuple[subprocess.Popen, Path]]:
    started = []
    for number, role in enumerate(roles):
        out = folder / f"{role}-{number}.json"
        process = subprocess.Popen([sys.executable, __file__, "--role", role, "--home", str(home),
                                    "--seconds", str(seconds), "--worker", str(number), "--out", str(out)])
        started.append((process, out))
    return started


def collect(started: list[tuple[subprocess.Popen, Path]]) -> list[dict]:
    results = []
    for process, out in started:
        code = process.wait()
        if code != 0 or not out.exists():
            results.append({"role": out.stem, "errors": [f"the role process exited {code}"], "latency": {}, "written": {}})
        else:
            results.append(json.loads(out.read_text()))
    return results


def lost_writes(home: Path, results: list[dict]) -> list[str]:
    """Every record and log line the roles wrote that the catalog no longer has."""
    import workbench as wb

    ws = wb.open(home)
    lost = []
    for result in results:
        written = result["written"]
        if "job" in written:
            present = set(ws.job(written["job"]).log()["message"])
            lost += [f"log line {line}" for line in written.get("lines", []) if line not in present]
        for table, ids in (("training_data", written.get("training_data", [])), ("models", written.get("models", [])),
                           ("tuning_jobs", written.get("tuning_jobs", []))):
            if ids:
                found = {r["id"] for r in ws.catalog.query(
                    f"SELECT id FROM {table} WHERE id IN ({', '.join('?' * len(ids))})", ids)}
                lost += [f"{table} {i}" for i in ids if i not in found]
    return lost


def phase(roles: list[str], home: Path, seconds: float, folder: Path) -> dict:
    results = collect(start_roles(roles, home, seconds, folder))
    latency: dict[str, list[float]] = {}
    for result in results:
        for name, values in result["latency"].items():
            latency.setdefault(name, []).extend(values)
    return {"seconds": seconds, "roles": roles, "errors": [e for r in results for e in r["errors"]],
            "tracebacks": [r["traceback"] for r in results if r.get("traceback")],
            "latency": {name: percentiles(values) for name, values in latency.items()},
            "operations": {name: len(values) for name, values in latency.items()},
            "lost": lost_writes(home, results)}


def soak(idle_seconds: float, soak_seconds: float, work: Path, roles: list[str]) -> dict:
    import workbench as wb
    from workbench.demo import create_demo_project

    home = work / "soak-home"
    ws = wb.open(home)
    create_demo_project(ws, n_users=400, n_items=200)
    data = ws.latest_training_data("demo")
    model = ws.train(ws.create_configuration("demo", "IALS", {"n_components": 16}), data)
    ws.activate(model.id)
    ws.train(ws.create_configuration("demo", "TopPop"), data)
    load_before = os.getloadavg()[0]
    idle = phase(["poller", "poller", "progress"], home, idle_seconds, work)
    loaded = phase(roles, home, soak_seconds, work)
    return {"idle": idle, "soak": loaded, "load_before": load_before, "load_after": os.getloadavg()[0]}


# --- the engines ----------------------------------------------------------------------------

def engine_worker(engine: str, path: str, worker: int, cycles: int, out: str) -> None:
    errors = []
    for cycle in range(cycles):
        gate = open(path + ".gate", "a+") if engine == "duckdb+flock" else None
        try:
            if gate is not None:
                fcntl.flock(gate, fcntl.LOCK_EX)
            if engine.startswith("duckdb"):
                import duckdb

                for _ in range(6000):  # plain DuckDB: retry while another process holds the file
                    try:
                        con = duckdb.connect(path)
                        break
                    except duckdb.Error as error:
                        if "lock" not in str(error).lower():
                            raise
                        time.sleep(0.01)
                con.execute("BEGIN")
            else:
                import sqlite3

                con = sqlite3.connect(path, timeout=60, isolation_level=None)
                con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT INTO rows VALUES (?, ?)", [worker, cycle])
            con.execute("SELECT count(*) FROM rows").fetchone()
            con.execute("COMMIT")
            con.close()
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}"[:300])
        finally:
            if gate is not None:
                gate.close()
    Path(out).write_text(json.dumps({"errors": errors}))


def engines(processes: int, cycles: int, work: Path) -> list[dict]:
    import sqlite3

    import duckdb

    rows = []
    for engine in ("sqlite-wal", "duckdb+flock", "duckdb"):
        folder = Path(tempfile.mkdtemp(dir=work, prefix=f"engine-{engine}-"))
        path = str(folder / "catalog.db")
        if engine == "sqlite-wal":
            con = sqlite3.connect(path)
            con.execute("PRAGMA journal_mode = WAL")
        else:
            con = duckdb.connect(path)
        con.execute("CREATE TABLE rows (worker INTEGER, cycle INTEGER)")
        con.commit() if engine == "sqlite-wal" else None
        con.close()
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        workers = [subprocess.Popen([sys.executable, __file__, "--engine", engine, "--home", path, "--worker", str(w),
                                     "--cycles", str(cycles), "--out", f"{path}.{w}.json"])
                   for w in range(processes)]
        for process in workers:
            process.wait()
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        errors = []
        for w in range(processes):
            out = Path(f"{path}.{w}.json")
            errors += json.loads(out.read_text())["errors"] if out.exists() else [f"worker {w} died"]
        if engine == "sqlite-wal":
            con = sqlite3.connect(path)
        else:
            con = duckdb.connect(path)
        kept = con.execute("SELECT count(*) FROM rows").fetchone()[0]
        con.close()
        rows.append({"engine": engine, "processes": processes, "cycles": cycles, "expected": processes * cycles,
                     "kept": kept, "errors": len(errors), "error_examples": errors[:3], "wall_s": wall,
                     "cpu_s": (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)})
        print(f"{engine:13s} kept {kept}/{processes * cycles} errors {len(errors)} wall {wall:.1f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--soak-seconds", type=float, default=180.0)
    parser.add_argument("--engine-processes", type=int, default=4)
    parser.add_argument("--engine-cycles", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cycles", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        role_main(args.role, args.home, args.seconds, args.worker, args.out)
        return None
    if args.engine:
        engine_worker(args.engine, args.home, args.worker, args.cycles, str(args.out))
        return None
    if args.smoke:
        args.idle_seconds, args.soak_seconds, args.engine_processes, args.engine_cycles = 3.0, 8.0, 2, 5
    with tempfile.TemporaryDirectory(prefix="bench-catalog-", dir=args.work) as scratch:
        work = Path(scratch)
        roles = ["poller", "poller", "progress", "importer", "trainer", "activator", "tuner"]
        roles += [] if args.smoke else ["retrain"]  # a Papermill run outlasts a smoke soak
        results = {"smoke": args.smoke, "soak": soak(args.idle_seconds, args.soak_seconds, work, roles),
                   "engines": engines(args.engine_processes, args.engine_cycles, work)}
    for name in ("idle", "soak"):
        part = results["soak"][name]
        for what in ("models", "progress_write"):
            stats = part["latency"].get(what, {})
            print(f"{name:5s} {what:15s} n={stats.get('n')} p50={stats.get('p50')} p99={stats.get('p99')} "
                  f"max={stats.get('max')}")
        print(f"{name:5s} errors={len(part['errors'])} lost={len(part['lost'])} operations={part['operations']}")
        for error in part["errors"][:5]:
            print("   ", error)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
