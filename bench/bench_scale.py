"""How import, snapshot -> CSR and training grow from 1M to 10M interactions, with peak memory.

    .venv/bin/python bench/bench_scale.py [--sizes 1000000,3000000,10000000] [--repeat 3] [--json F]
    .venv/bin/python bench/bench_scale.py --smoke      # 20k and 40k rows, one run: checks that it runs

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
"""

from __future__ import annotations

import argparse
import json
import math
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


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ru_maxrss, not inherited across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(step: str, csv: Path, home: Path) -> dict:
    command = [sys.executable, __file__, "--child", step, "--csv", str(csv), "--home", str(home)]
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
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        seconds = child(args.child, args.csv, args.home)
        print("RESULT " + json.dumps({"s": seconds, "peak_rss_mb": peak_rss_mb()}))
        return {}

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
