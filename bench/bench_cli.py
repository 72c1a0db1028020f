"""How fast the `workbench` command answers `--help` and argument errors (target <= 0.5 s each).

    python bench/bench_cli.py              # 9 runs of each case (median), ~1 min
    python bench/bench_cli.py --smoke      # 2 runs of each case (tests)

Each case is a fresh `python -m workbench.cli ...` process, timed from start to exit (wall seconds), run
against a throwaway workspace holding the small demo project; the cases take turns. The floor is a bare
`python -c pass` measured in the same run: what any Python command costs on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_S = 0.5
# (case, arguments after `workbench --home HOME`, the exit status it must give)
CASES = [
    ("--help", ["--help"], 0),
    ("unknown command", ["frobnicate"], 2),
    ("retrain: unknown -p parameter", ["retrain", "--project", "demo", "-p", "n_trails", "3"], 2),
    ("retrain: bad -p value", ["retrain", "--project", "demo", "-p", "n_trials", "many"], 2),
    ("retrain: missing new_data file", ["retrain", "--project", "demo", "-p", "new_data", "missing.csv"], 2),
    ("retrain: unknown project", ["retrain", "--project", "nowhere"], 2),
    ("serve: bad --port", ["serve", "--port", "0"], 2),
]


def timed(command: list[str], cwd: Path, expect: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != expect:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}, expected {expect}: {done.stderr[-1000:]}")
    return seconds


def measure(home: Path, repeat: int) -> dict:
    floor = [sys.executable, "-c", "pass"]
    runs: dict[str, list[float]] = {case: [] for case, _, _ in CASES}
    floors = []
    for _ in range(repeat):
        floors.append(timed(floor, home, 0))
        for case, args, expect in CASES:
            runs[case].append(timed([sys.executable, "-m", "workbench.cli", "--home", str(home), *args], home, expect))
    return {"repeat": repeat, "floor_s": statistics.median(floors), "target_s": TARGET_S,
            "rows": [{"case": case, "args": " ".join(args), "median_s": statistics.median(runs[case]), "runs": runs[case]}
                     for case, args, _ in CASES]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 runs of each case")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    import workbench as wb
    from workbench.demo import create_demo_project

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        home = Path(tmp) / "home"
        create_demo_project(wb.open(home), name="demo", seed=0, n_users=300, n_items=150)
        result = measure(home, 2 if args.smoke else args.repeat)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n`workbench` answers (median of {result['repeat']} runs; target <= {TARGET_S} s; floor `python -c pass` "
          f"{result['floor_s']:.3f} s; {os.cpu_count()} cores, load average {load})\n")
    print("| case | seconds | target |")
    print("|---|---:|---|")
    for row in result["rows"]:
        print(f"| {row['case']} | {row['median_s']:.3f} | {'pass' if row['median_s'] <= TARGET_S else 'miss'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
