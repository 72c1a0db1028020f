"""How import, snapshot -> CSR and training grow from 1M to 10M interactions, with peak memory;
and the whole pipeline from 1M to 100M interactions.

    .venv/bin/python bench/bench_scale.py [--sizes 1000000,3000000,10000000] [--repeat 3] [--json F]
    .venv/bin/python bench/bench_scale.py --smoke      # 20k and 40k rows, one run: checks that it runs
    .venv/bin/python bench/bench_scale.py --rows 100000000 [--json F]    # the pipeline at 1M, 10M and 100M rows
    .venv/bin/python bench/bench_scale.py --rows 20000,40000 --smoke     # the pipeline, small, in this process

Every step runs in a fresh child process, so its peak RSS (VmHWM, read by the child at its end) is
its own; the wall time is measured inside the child around the step alone. The smoke run calls the
steps in this process instead (no memory figures). Steps, on the synthetic comma CSVs of
bench_import.py (string ids, n/50 users, n/200 items):
- import: `build_interaction_snapshot`, against the baseline `pandas.read_csv` + `irspack.df_to_sparse`;
- csr: snapshot -> CSR (`interaction_matrix`);
- train: `Workspace.train` of IALS (64 factors, 4 epochs) on an imported data set, against the
  baseline bare irspack `learn()` of the same configuration on the same matrix;
- floor: a child that only imports workbench and irspack (the RSS every child starts from).
Figures are medians over the repeats; growth exponents are the log-log slopes from the smallest to
the largest size.

The pipeline (`--rows N`: 1M, 10M when N is larger, and N rows) runs a user's whole path on a
synthetic log of N rows with N/100 users and N/500 items (100M rows: 1M users, 200k items),
string ids, long-tail item popularity (item i drawn with probability ~ i^-2/3), users uniform,
as a comma CSV; each step in a fresh process, seconds and peak RSS (VmHWM):
- import: `import_training_data` of the CSV;
- tune: `tune` of the default portfolio, 20 trials on a sample of 50,000 users
  (`sample_users`; all users below that), without training;
- train: `train` of IALS (64 factors, 8 epochs) on every interaction;
- top-N: `load_model(...).recommend_many()` of every user's top 10, written to Parquet.
Targets: peak RSS <= 12 GB at every step; growth exponent of each step's seconds and peak memory
no worse than 1.15 from the smallest to the largest size.

`--steps import,train,topn --merge F` measures only those steps (with what they need: tune and
train need import, topn needs train) and keeps the other steps' figures from the earlier results F
(each step's figures say which run they come from: `pipeline.runs`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

IALS = {"n_components": 64, "train_epochs": 4}
STEPS = ("floor", "import", "pandas", "csr", "train", "learn")
COLUMNS = dict(user_column="user_id", item_column="item_id", time_column="timestamp")
PIPELINE = ("floor", "import", "tune", "train", "topn")
NEEDS = {"tune": "import", "train": "import", "topn": "train"}  # what a pipeline step reads
PIPELINE_IALS = {"n_components": 64, "train_epochs": 8}
SAMPLE_USERS, TUNE_TRIALS, TOP_N = 50_000, 20, 10
MEMORY_TARGET_MB, GROWTH_TARGET = 12_000, 1.15


def child(step: str, csv: Path, home: Path) -> float:
    """Run one step in this process; the seconds it took."""
    import irspack  # noqa: F401  (the floor: what every child imports)

    import workbench as wb
    from workbench import algorithms, data

    started = time.perf_counter()
    if step == "import":
        data.build_interaction_snapshot(csv, Path(tempfile.mkdtemp(dir=home)), **COLUMNS)
    elif step == "pandas":
        import pandas as pd

        irspack.df_to_sparse(pd.read_csv(csv, engine="c"), "user_id", "item_id")
    elif step in ("csr", "learn"):
        dataset = wb.open(home).latest_training_data("scale")
        started = time.perf_counter()
        X, _, _ = data.interaction_matrix(dataset.path)
        if step == "learn":
            started = time.perf_counter()
            algorithms.build_recommender("IALS", X, IALS).learn()
    elif step == "train":
        ws = wb.open(home)
        config, dataset = ws.create_configuration("scale", "IALS", IALS), ws.latest_training_data("scale")
        started = time.perf_counter()
        ws.train(config, dataset)
    return time.perf_counter() - started


def pipeline_child(step: str, csv: Path, home: Path) -> float:
    """Run one step of the pipeline in this process; the seconds it took."""
    import irspack  # noqa: F401  (the floor: what every child imports)

    import workbench as wb

    ws = wb.open(home)
    started = time.perf_counter()
    if step == "import":
        ws.import_training_data(ws.create_project("scale", user_column="user_id", item_column="item_id"), csv)
    elif step == "tune":
        data = ws.latest_training_data("scale")
        ws.tune(data, n_trials=TUNE_TRIALS, train_after_tuning=False, sample_users=min(SAMPLE_USERS, data.n_users))
    elif step == "train":
        ws.train(ws.create_configuration("scale", "IALS", PIPELINE_IALS), ws.latest_training_data("scale"))
    elif step == "topn":
        import pyarrow as pa
        import pyarrow.parquet as pq

        model = ws.models("scale")["id"].max()
        top = ws.load_model(int(model)).recommend_many(cutoff=TOP_N)
        pq.write_table(pa.Table.from_pandas(top, preserve_index=False), home / "recommendations.parquet")
    return time.perf_counter() - started


def generate_log(work: Path, n: int) -> Path:
    """The pipeline's comma CSV of n rows: user_id, item_id (string ids, long-tail popularity)."""
    import duckdb

    path = work / f"pipeline_{n}.csv"
    if path.exists():
        return path
    n_users, n_items = max(n // 100, 10), max(n // 500, 10)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""COPY (SELECT
              'u' || (hash(r) % {n_users}) AS user_id,
              'i' || floor(pow((hash(r * 7 + 1) % 1000003) / 1000003.0, 3) * {n_items})::BIGINT AS item_id
            FROM range({n}) AS s(r)) TO '{path}.tmp' (HEADER, DELIMITER ',')"""
    )
    con.close()
    Path(f"{path}.tmp").rename(path)
    return path


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(step: str, csv: Path, home: Path, pipeline: bool = False) -> dict:
    command = [sys.executable, __file__, "--pipeline-child" if pipeline else "--child", step, "--csv", str(csv),
               "--home", str(home)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{step} on {csv.name} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.rsplit("RESULT ", 1)[1])


def run_here(step: str, csv: Path, home: Path) -> dict:
    return {"s": child(step, csv, home), "peak_rss_mb": None}


def prepare_home(csv: Path, root: Path):
    import workbench as wb

    home = Path(tempfile.mkdtemp(dir=root, prefix="home-"))
    ws = wb.open(home)
    ws.create_project("scale", **COLUMNS)
    ws.import_training_data("scale", csv)
    return home


def slope(points: list[tuple[int, float]]) -> float | None:
    """The log-log slope between the smallest and the largest size (1.0 = linear)."""
    (n0, y0), (n1, y1) = points[0], points[-1]
    if n1 == n0 or y0 <= 0 or y1 <= 0:
        return None
    return math.log(y1 / y0) / math.log(n1 / n0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,3000000,10000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="20k and 40k rows, one run")
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--rows", help="run the pipeline at 1M, 10M and this many rows (or a comma-separated list)")
    parser.add_argument("--steps", default=",".join(PIPELINE[1:]), help="the pipeline steps to measure")
    parser.add_argument("--merge", type=Path, help="keep the other steps' figures from this earlier pipeline JSON")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--pipeline-child", choices=PIPELINE, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child or args.pipeline_child:
        seconds = child(args.child, args.csv, args.home) if args.child else pipeline_child(args.pipeline_child, args.csv,
                                                                                          args.home)
        print("RESULT " + json.dumps({"s": seconds, "peak_rss_mb": peak_rss_mb()}))
        return {}
    if args.rows:
        return run_pipeline(args)

    from bench_import import generate

    sizes = [20_000, 40_000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    repeat = 1 if args.smoke else args.repeat
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work, prefix="scale-") as tmp:
        for n in sizes:
            csv = generate(args.work, n)["csv"]
            home = prepare_home(csv, Path(tmp))
            run = run_here if args.smoke else run_child
            runs = {step: [run(step, csv, home) for _ in range(repeat)] for step in STEPS}
            row = {"rows": n, "runs": repeat}
            for step, measured in runs.items():
                row[f"{step}_s"] = statistics.median(m["s"] for m in measured)
                rss = [m["peak_rss_mb"] for m in measured if m["peak_rss_mb"] is not None]
                row[f"{step}_rss_mb"] = statistics.median(rss) if rss else None
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    growth = {step: slope([(r["rows"], r[f"{step}_s"]) for r in rows]) for step in STEPS if step != "floor"}
    results = {"repeat": repeat, "ials": IALS, "rows": rows, "growth": growth}
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def pipeline_sizes(rows: str) -> list[int]:
    sizes = [int(float(r)) for r in rows.split(",")]
    if len(sizes) == 1:
        sizes = sorted({min(1_000_000, sizes[0]), *([10_000_000] if sizes[0] > 10_000_000 else []), sizes[0]})
    return sizes


def pipeline_steps(steps: str) -> list[str]:
    """The named steps in pipeline order, with the floor and every step they need."""
    wanted = {s.strip() for s in steps.split(",") if s.strip()}
    unknown = wanted - set(PIPELINE[1:])
    if unknown or not wanted:
        raise SystemExit(f"--steps: choose from {', '.join(PIPELINE[1:])} (got {steps!r})")
    for step in list(wanted):
        while step in NEEDS:
            step = NEEDS[step]
            wanted.add(step)
    return [s for s in PIPELINE if s == "floor" or s in wanted]


def run_pipeline(args: argparse.Namespace) -> dict:
    """The pipeline at each size, every step in a fresh process (in this one with --smoke)."""
    args.work.mkdir(parents=True, exist_ok=True)
    steps = pipeline_steps(args.steps)
    this_run = {"steps": [s for s in steps if s != "floor"], "load_before": os.getloadavg()[0]}
    rows = []
    for n in pipeline_sizes(args.rows):
        csv = generate_log(args.work, n)
        with tempfile.TemporaryDirectory(dir=args.work, prefix="pipeline-") as home:
            row = {"rows": n}
            for step in steps:
                if args.smoke:
                    measured = {"s": pipeline_child(step, csv, Path(home)), "peak_rss_mb": None}
                else:
                    measured = run_child(step, csv, Path(home), pipeline=True)
                row[f"{step}_s"], row[f"{step}_rss_mb"] = measured["s"], measured["peak_rss_mb"]
                print(json.dumps({"rows": n, "step": step, **measured}), file=sys.stderr, flush=True)
            import workbench as wb

            data = wb.open(Path(home)).latest_training_data("scale")
            row.update(users=data.n_users, items=data.n_items)
        rows.append(row)
    this_run.update(date=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), load_after=os.getloadavg()[0])
    runs = [this_run]
    if args.merge is not None:
        rows, runs = merge_pipeline(rows, runs, json.loads(args.merge.read_text())["pipeline"])
    steps = [s for s in PIPELINE if s != "floor" and all(f"{s}_s" in r for r in rows)]
    growth = {step: slope([(r["rows"], r[f"{step}_s"]) for r in rows]) for step in steps}
    memory_growth = {step: slope([(r["rows"], r[f"{step}_rss_mb"] - r["floor_rss_mb"]) for r in rows])
                     for step in steps if rows[0][f"{step}_rss_mb"] is not None}
    results = {"pipeline": {"rows": rows, "growth": growth, "memory_growth": memory_growth, "ials": PIPELINE_IALS,
                            "sample_users": SAMPLE_USERS, "trials": TUNE_TRIALS, "top_n": TOP_N,
                            "memory_target_mb": MEMORY_TARGET_MB, "growth_target": GROWTH_TARGET, "runs": runs}}
    print(pipeline_table(results["pipeline"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def merge_pipeline(rows: list[dict], runs: list[dict], earlier: dict) -> tuple[list[dict], list[dict]]:
    """This run's rows completed with the steps it did not measure, from the same sizes of `earlier`."""
    measured = set(runs[0]["steps"])
    before = {r["rows"]: r for r in earlier["rows"]}
    missing = [r["rows"] for r in rows if r["rows"] not in before]
    if missing:
        raise SystemExit(f"--merge: the earlier results have no row of {missing} rows")
    merged = []
    for row in rows:
        old = before[row["rows"]]
        kept = {k: v for k, v in old.items() if k.split("_")[0] in PIPELINE[1:] and k.split("_")[0] not in measured}
        merged.append({**kept, **row})
    kept_runs = []
    for run in earlier.get("runs", []):
        steps = [s for s in run["steps"] if s not in measured]
        if steps:
            kept_runs.append({**run, "steps": steps})
    return merged, runs + kept_runs


def pipeline_table(res: dict) -> str:
    names = {"import": "import", "tune": f"tune ({res['trials']} trials, {res['sample_users']:,} users)",
             "train": "train IALS", "topn": f"all users' top {res['top_n']}"}
    lines = ["| rows | users | items | " + " | ".join(f"{v} s (MB)" for v in names.values()) + " | floor MB |",
             "|---:|---:|---:|" + "---:|" * (len(names) + 1)]
    for r in res["rows"]:
        cells = [f"{r[f'{s}_s']:,.1f} ({mb(r[f'{s}_rss_mb'])})" if f"{s}_s" in r else "-" for s in names]
        lines.append(f"| {r['rows']:,} | {r['users']:,} | {r['items']:,} | " + " | ".join(cells)
                     + f" | {mb(r['floor_rss_mb'])} |")
    peaks = [r[f"{s}_rss_mb"] for r in res["rows"] for s in names if r.get(f"{s}_rss_mb") is not None]
    growth = ", ".join(f"{names[k]} {v:.2f}" for k, v in res["growth"].items() if v is not None)
    memory = ", ".join(f"{names[k]} {v:.2f}" for k, v in res["memory_growth"].items() if v is not None)
    lines += ["", f"log-log slope of seconds (1.0 = linear): {growth}",
              f"log-log slope of peak memory above the floor: {memory or '-'}",
              f"largest peak: {mb(max(peaks)) if peaks else '-'} MB (target <= {res['memory_target_mb']:,} MB)"]
    for run in res.get("runs", []):
        load = (f", load average {run['load_before']:.1f} before and {run['load_after']:.1f} after"
                if "load_after" in run else "")
        lines.append(f"{', '.join(names[s] for s in run['steps'])}: the run finished {run['date']}{load}")
    return "\n".join(lines)


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(results: dict) -> str:
    lines = ["| rows | import s (MB) | pandas + df_to_sparse s (MB) | snapshot -> CSR s (MB) | train() IALS s (MB) "
             "| bare learn() s (MB) | floor MB |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        cells = [f"{r[f'{s}_s']:.2f} ({mb(r[f'{s}_rss_mb'])})" for s in ("import", "pandas", "csr", "train", "learn")]
        lines.append(f"| {r['rows']:,} | " + " | ".join(cells) + f" | {mb(r['floor_rss_mb'])} |")
    growth = ", ".join(f"{k} {v:.2f}" for k, v in results["growth"].items() if v is not None)
    return "\n".join(lines) + f"\n\nlog-log slope of seconds (1.0 = linear): {growth}"


if __name__ == "__main__":
    main(sys.argv[1:])
