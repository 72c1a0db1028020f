"""Import benchmark: build_interaction_snapshot vs pandas.read_csv + irspack.df_to_sparse.

    .venv/bin/python bench/bench_import.py [--sizes 1000000,10000000] [--repeat 3] [--smoke] [--json F]

Generates synthetic interaction files with string ids under bench/work/ (comma CSV, `::` text,
Parquet), imports them and the real data sets in ../shared/data when present, and prints a
markdown table of median wall times, with the median CPU seconds (all threads) beside them: on a
machine shared with other work, CPU time is the steadier comparison. The import and its pandas
baseline take turns, one uncounted warm-up run each and then `--repeat` counted runs each. Targets: files
of 1M rows or more never slower than the pandas path (smaller files are shown, without a target: there
the fixed cost below is what a user feels), `::` at least 10x faster, snapshot -> CSR for the largest
string-id snapshot at most 0.35 s, and the fixed cost of an import at most 20 ms: the median of
`Workspace.import_training_data` of a 100-row CSV into a fresh project (catalog records included),
with `build_interaction_snapshot` of the same file alone beside it. An import slower than the pandas
path is run once more under pyinstrument, and the seconds of each step of
`build_interaction_snapshot` go into the results ("phases").
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import irspack
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import workbench as wb  # noqa: E402
from workbench.data import build_interaction_snapshot, interaction_matrix  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CSR_TARGET_S = 0.35
FIXED_ROWS, FIXED_TARGET_MS = 100, 20.0
SLOW_BASELINE_S = 20.0  # a baseline run slower than this is not repeated
# the steps of build_interaction_snapshot (pyinstrument frame names) as the report names them
PHASES = {"open_source": "open and sniff", "fetch": "read rows", "epoch_us": "parse times", "encode_columns": "encode ids",
          "sort_rows": "sort rows", "write_interactions": "write Parquet + fingerprint"}


def generate(work: Path, n: int) -> dict[str, Path]:
    """Comma CSV, `::` text and Parquet copies of the same n synthetic rows (string ids, skewed items)."""
    paths = {"csv": work / f"synthetic_{n}.csv", "colons": work / f"synthetic_{n}.dat", "parquet": work / f"synthetic_{n}.parquet"}
    if all(p.exists() for p in paths.values()):
        return paths
    n_users, n_items = max(n // 50, 10), max(n // 200, 10)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""CREATE TABLE t AS SELECT
              'u' || (hash(r) % {n_users}) AS user_id,
              'i' || floor(pow((hash(r * 7 + 1) % 1000003) / 1000003.0, 3) * {n_items})::BIGINT AS item_id,
              1 + hash(r * 5 + 2) % 5 AS rating,
              1500000000 + hash(r * 3 + 4) % 100000000 AS timestamp
            FROM range({n}) AS s(r)"""
    )
    con.execute(f"COPY t TO '{paths['csv']}' (HEADER, DELIMITER ',')")
    con.execute(f"COPY t TO '{paths['parquet']}' (FORMAT parquet)")
    con.execute(
        f"""COPY (SELECT 'user_id::item_id::rating::timestamp' AS line
                  UNION ALL SELECT * FROM (SELECT user_id || '::' || item_id || '::' || rating || '::' || timestamp FROM t))
            TO '{paths['colons']}' (HEADER false, QUOTE '', DELIMITER '\t')"""
    )
    con.close()
    return paths


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timer:
    """Wall and CPU seconds of repeated runs of one function; `median()` summarizes them.

    The first run is not counted (the first run at a new size pays for page faults and the
    allocators' growth: 4.5 s against 2.6-3.4 s for a 10M-row import), unless it is slower than
    SLOW_BASELINE_S: then it is the only run.
    """

    def __init__(self, fn, setup=None) -> None:
        self.fn, self.setup = fn, setup
        self.walls, self.cpus, self.result, self.done, self.started = [], [], None, False, False

    def run(self) -> None:
        if self.done:
            return
        if self.setup:
            self.setup()
        start, cpu = time.perf_counter(), cpu_seconds()
        self.result = self.fn()
        wall = time.perf_counter() - start
        if self.started or wall > SLOW_BASELINE_S:
            self.walls.append(wall)
            self.cpus.append(cpu_seconds() - cpu)
        self.started, self.done = True, wall > SLOW_BASELINE_S

    def median(self) -> tuple[float, float, object, int]:
        """Median wall and CPU seconds, the last result, and how many runs were counted."""
        return statistics.median(self.walls), statistics.median(self.cpus), self.result, len(self.walls)


def take_turns(timers: list[Timer], repeat: int) -> list[tuple[float, float, object, int]]:
    """Run the timers in turn, a warm-up and then `repeat` counted runs each, so that neither
    side profits from the other's warm caches or grown heaps more than the other does."""
    for _ in range(repeat + 1):
        for timer in timers:
            timer.run()
    return [timer.median() for timer in timers]


def phases(fn) -> dict[str, float]:
    """Seconds of each step of build_interaction_snapshot in one run of `fn` under pyinstrument."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    with profiler:
        fn()
    frames = [profiler.last_session.root_frame()]
    while frames and frames[0].function != "build_interaction_snapshot":
        frames = frames[1:] + list(frames[0].children)
    if not frames:
        return {}
    steps = {"total": frames[0].time, **{label: 0.0 for label in PHASES.values()}, "other": 0.0}
    for child in frames[0].children:
        steps[PHASES.get(child.function, "other")] += child.time
    return steps


def fixed_cost(work: Path, runs: int) -> dict:
    """Milliseconds of importing a FIXED_ROWS-row CSV, which a file of any size pays: through the
    workspace (snapshot + catalog records), and `build_interaction_snapshot` alone; taking turns."""
    path = generate(work, FIXED_ROWS)["csv"]
    cols = dict(user_column="user_id", item_column="item_id", time_column="timestamp")
    with tempfile.TemporaryDirectory(dir=work, prefix="fixed-") as home:
        ws, dest, projects = wb.open(home), Path(home) / "snapshots", []

        def new_project() -> None:
            projects.append(ws.create_project(f"p{len(projects)}", **cols))

        (ws_s, ws_cpu, _, n), (snap_s, snap_cpu, _, _) = take_turns([
            Timer(lambda: ws.import_training_data(projects[-1], path), new_project),
            Timer(lambda: build_interaction_snapshot(path, dest, **cols), lambda: shutil.rmtree(dest, ignore_errors=True)),
        ], runs)
    return {"rows": FIXED_ROWS, "runs": n, "import_ms": ws_s * 1e3, "import_cpu_ms": ws_cpu * 1e3,
            "snapshot_ms": snap_s * 1e3, "snapshot_cpu_ms": snap_cpu * 1e3, "target_ms": FIXED_TARGET_MS}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "work")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [20_000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    repeat = 1 if args.smoke else args.repeat
    args.work.mkdir(parents=True, exist_ok=True)
    dest = args.work / "snapshots"

    def fresh():
        shutil.rmtree(dest, ignore_errors=True)

    cases = []  # (name, format, path, import kwargs, pandas reader)
    for n in sizes:
        paths = generate(args.work, n)
        cols = dict(user_column="user_id", item_column="item_id", time_column="timestamp")
        cases += [
            (f"synthetic {n:,} comma CSV", "comma CSV", paths["csv"], cols,
             lambda p=paths["csv"]: pd.read_csv(p, engine="c")),
            (f"synthetic {n:,} `::`", "`::`", paths["colons"], cols,
             lambda p=paths["colons"]: pd.read_csv(p, sep="::", engine="python")),
            (f"synthetic {n:,} Parquet", "Parquet", paths["parquet"], cols, lambda p=paths["parquet"]: pd.read_parquet(p)),
        ]
    ml = SHARED / "ml-100k" / "u.data"
    if ml.exists():
        names = ["column0", "column1", "column2", "column3"]
        cases.append(("ml-100k u.data (tab, no header)", "tab", ml,
                      dict(user_column="column0", item_column="column1", time_column="column3"),
                      lambda: pd.read_csv(ml, sep="\t", header=None, names=names, engine="c")))
    lastfm = SHARED / "lastfm-2k" / "user_artists.dat"
    if lastfm.exists():
        cases.append(("lastfm-2k user_artists.dat (tab)", "tab", lastfm, dict(user_column="userID", item_column="artistID"),
                      lambda: pd.read_csv(lastfm, sep="\t", engine="c")))

    imports, largest = [], None
    for name, fmt, path, kwargs, read in cases:
        user, item = kwargs["user_column"], kwargs["item_column"]
        (ours, ours_cpu, snap, _), (base, base_cpu, _, runs) = take_turns([
            Timer(lambda: build_interaction_snapshot(path, dest, **kwargs), fresh),
            Timer(lambda: irspack.df_to_sparse(read(), user, item))], repeat)
        imports.append({"case": name, "format": fmt, "rows": snap.n_rows, "import_s": ours, "import_cpu_s": ours_cpu,
                        "pandas_s": base, "pandas_cpu_s": base_cpu, "runs": repeat, "pandas_runs": runs,
                        "speedup": base / ours})
        if ours > base:
            fresh()
            imports[-1]["phases"] = phases(lambda: build_interaction_snapshot(path, dest, **kwargs))
        print(json.dumps(imports[-1]), file=sys.stderr, flush=True)
        if fmt == "comma CSV":
            largest = (snap.n_rows, path, kwargs)
    results = {"repeat": repeat, "imports": imports, "csr": None, "fixed": fixed_cost(args.work, max(repeat, 5) * 4)}
    if largest:
        n, path, kwargs = largest
        fresh()
        snap = build_interaction_snapshot(path, dest, **kwargs)
        runs = max(repeat, 5)
        [(csr, csr_cpu, _, _)] = take_turns([Timer(lambda: interaction_matrix(snap.path))], runs)
        results["csr"] = {"rows": n, "s": csr, "cpu_s": csr_cpu, "runs": runs, "target_s": CSR_TARGET_S}
    fresh()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def table(results: dict) -> str:
    rows = [
        "| data | rows | import s (CPU s) | rows/s | pandas + df_to_sparse s (CPU s) | speedup |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["imports"]:
        note = "" if r["pandas_runs"] == r["runs"] else f", {r['pandas_runs']} run"
        rows.append(f"| {r['case']} | {r['rows']:,} | {r['import_s']:.2f} ({r['import_cpu_s']:.2f}) "
                    f"| {r['rows'] / r['import_s']:,.0f} | {r['pandas_s']:.2f} ({r['pandas_cpu_s']:.2f}{note}) "
                    f"| {r['speedup']:.1f}x |")
    csr = results["csr"]
    if csr:
        rows.append(f"| snapshot -> CSR, string ids (target <= {csr['target_s']} s) | {csr['rows']:,} "
                    f"| {csr['s']:.3f} ({csr['cpu_s']:.3f}) | {csr['rows'] / csr['s']:,.0f} | | |")
    fixed = results["fixed"]
    rows.append(f"\nfixed cost of an import ({fixed['rows']} rows, median of {fixed['runs']}): {fixed['import_ms']:.1f} ms "
                f"(snapshot alone {fixed['snapshot_ms']:.1f} ms), target <= {fixed['target_ms']:g} ms")
    return "\n".join(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
