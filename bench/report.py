"""Run every benchmark and write bench/REPORT.md with PNG plots: each target beside its figure.

    .venv/bin/python bench/report.py                  # the whole suite (`make bench`), an hour or more
    .venv/bin/python bench/report.py --smoke --out D  # tiny sizes, one run each: checks that it all runs
    .venv/bin/python bench/report.py --only import,scale --out D
    .venv/bin/python bench/report.py --only pipeline --pipeline-steps import,train,topn  # keep tune's figures
    .venv/bin/python bench/report.py --render D       # re-render D/REPORT.md from D/results/*.json

Each benchmark runs as its own process and leaves its results as JSON in <out>/results/; this
script then describes the machine, draws the plots into <out>/plots/ and writes <out>/REPORT.md.
Figures are medians over repeated runs; every comparison is a ratio against a baseline measured
in the same run; load averages are recorded before and after each benchmark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
RECOTEM = HERE / ".venv-recotem" / "bin" / "python"
LIBRARIES = ("irspack", "duckdb", "numpy", "scipy", "pandas", "pyarrow", "optuna", "voila", "ipywidgets",
             "bqplot", "scikit-learn", "playwright", "matplotlib")
# name -> (script, arguments of the full run, arguments of the smoke run)
BENCHMARKS = {
    "catalog": ("bench_catalog.py", [], ["--smoke"]),
    "import": ("bench_import.py", ["--sizes", "1000000,10000000", "--repeat", "5"], ["--smoke"]),
    "scale": ("bench_scale.py", ["--sizes", "1000000,3000000,10000000", "--repeat", "3"], ["--smoke"]),
    "lifecycle": ("bench_lifecycle.py", ["--repeat", "3"], ["--smoke"]),
    "tuning": ("bench_tuning.py", ["--datasets", "all", "--trials", "40", "--repeat", "1"], ["--smoke"]),
    "dashboards": ("bench_dashboards.py", ["--runs", "3"], ["--smoke"]),
    "cli": ("bench_cli.py", ["--repeat", "9"], ["--smoke"]),
    "insight": ("bench_insight.py", ["--repeat", "3"], ["--smoke"]),
    "weights": ("bench_weights.py", ["--datasets", "ml-100k,lastfm-2k", "--trials", "40"], ["--smoke"]),
}
# Run only when named (`--only pipeline`: an hour or more at 100M rows); rendered whenever their results exist.
ON_REQUEST = {
    "pipeline": ("bench_scale.py", ["--rows", "100000000"], ["--rows", "20000,40000", "--smoke"]),
}
TARGETS = {
    "csr_s": 0.35, "import_speedup": 1.0, "colons_speedup": 10.0, "import_target_rows": 1_000_000,
    "fixed_import_ms": 20.0, "tuning_wall_ratio": 0.25, "tuning_peak_ratio": 0.5, "catalog_p99_s": 0.25,
    "p50_ms": 1.0, "users_per_s": 50_000, "first_paint_s": 1.0, "models_usable_s": 1.0, "cli_s": 0.5,
    "first_click_extra_s": 0.1,
}


# --- running ---------------------------------------------------------------------------------

def run_benchmarks(names: list[str], smoke: bool, out: Path, pipeline_steps: str | None = None) -> None:
    results = out / "results"
    results.mkdir(parents=True, exist_ok=True)
    work = out / "work" if smoke else HERE / "work"
    (results / "meta.json").write_text(json.dumps({"smoke": smoke, "machine": machine()}))
    for name in names:
        script, full, small = {**BENCHMARKS, **ON_REQUEST}[name]
        arguments = [*(small if smoke else full)]
        if name == "pipeline" and pipeline_steps:
            arguments += ["--steps", pipeline_steps, "--merge", str(results / "pipeline.json")]
        command = [sys.executable, str(HERE / script), *arguments, "--json", str(results / f"{name}.json")]
        if name in ("import", "scale", "pipeline"):
            command += ["--work", str(work)]
        load_before, started = os.getloadavg()[0], time.perf_counter()
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        done = subprocess.run(command, cwd=HERE.parent)
        if done.returncode != 0:
            raise SystemExit(f"benchmark {name} failed with exit code {done.returncode}")
        shown = [f"bench/{script}", *(str(Path(a).relative_to(HERE.parent)) if a.startswith(str(HERE)) else a
                                       for a in arguments)]
        (results / f"{name}.run.json").write_text(json.dumps({
            "command": " ".join(["python", *shown]), "seconds": time.perf_counter() - started,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "commit": machine_commit()}))


# --- the machine -----------------------------------------------------------------------------

def machine_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                          text=True).stdout.strip() or "unknown"


def machine() -> dict:
    import numpy  # noqa: F401  (loads the BLAS that threadpool_info describes)
    import psutil
    from threadpoolctl import threadpool_info

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads, {p.get('architecture')})"
            for p in threadpool_info() if p.get("user_api") == "blas"]
    versions = {}
    for name in ("workbench", *LIBRARIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    chromium = "absent"
    if Path(CHROMIUM).exists():
        chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    recotem = "absent"
    if RECOTEM.exists():
        recotem = subprocess.run([str(RECOTEM), "-c", "import importlib.metadata as m; print(m.version('recotem'))"],
                                 capture_output=True, text=True).stdout.strip() or "absent"
    commit = machine_commit()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": psutil.virtual_memory().total / 2**30,
            "os": platform.platform(), "python": platform.python_version(), "blas": ", ".join(blas) or "unknown",
            "versions": versions, "chromium": chromium, "recotem": recotem, "commit": commit,
            "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M")}


# --- rendering -------------------------------------------------------------------------------

class Report:
    """Markdown sections, the target table and the plots of one report."""

    def __init__(self, out: Path, results: dict, runs: dict, smoke: bool) -> None:
        self.out, self.results, self.runs, self.smoke = out, results, runs, smoke
        self.targets: list[tuple[str, str, str, bool]] = []  # (target, measured, baseline, passed)
        self.sections: list[str] = []
        (out / "plots").mkdir(parents=True, exist_ok=True)

    def target(self, what: str, measured: str, baseline: str, passed: bool) -> str:
        self.targets.append((what, measured, baseline, passed))
        return "pass" if passed else "**miss**"

    def section(self, title: str, name: str, body: list[str]) -> None:
        run = self.runs.get(name)
        header = [f"## {title}", ""]
        if run:
            when = f", finished {run['date']} at commit {run['commit']}" if run.get("date") else ", an earlier run"
            header += [f"`{run['command']}`: {run['seconds'] / 60:.1f} min{when}, load average "
                       f"{run['load_before']:.1f} before and {run['load_after']:.1f} after.", ""]
        self.sections.append("\n".join(header + body))

    def plot(self, name: str, draw) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.8), dpi=100)
        draw(ax)
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.out / "plots" / f"{name}.png")
        plt.close(fig)
        return f"![{name}](plots/{name}.png)"


def bars(ax, labels: list[str], series: dict[str, list[float]], ylabel: str, target: float | None = None,
         log: bool = False) -> None:
    """Grouped bars, one group per label, one bar per series; an optional dashed target line."""
    import numpy as np

    x, width = np.arange(len(labels)), 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name)
    if target is not None:
        ax.axhline(target, color="crimson", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)


def table(columns: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def import_section(report: Report, res: dict) -> None:
    rows, body = [], []
    for r in res["imports"]:
        verdict = "-"  # files under 1M rows: the fixed cost below is what a user feels there
        if r["rows"] >= TARGETS["import_target_rows"] or (report.smoke and r["case"].startswith("synthetic")):
            if r["format"] == "`::`":
                verdict = report.target(f"`::` import >= {TARGETS['colons_speedup']:g}x the pandas path ({r['case']})",
                                        f"{r['import_s']:.2f} s", f"{r['pandas_s']:.2f} s ({r['speedup']:.1f}x)",
                                        r["speedup"] >= TARGETS["colons_speedup"])
            else:
                verdict = report.target(f"import never slower than the pandas path ({r['case']})",
                                        f"{r['import_s']:.3f} s", f"{r['pandas_s']:.3f} s ({r['speedup']:.2f}x)",
                                        r["speedup"] >= TARGETS["import_speedup"])
        note = "" if r["pandas_runs"] == r["runs"] else f" ({r['pandas_runs']} run: slower than 20 s)"
        rows.append([r["case"], f"{r['rows']:,}", f"{r['import_s']:.3f} ({r['import_cpu_s']:.2f})",
                     f"{r['rows'] / r['import_s']:,.0f}", f"{r['pandas_s']:.3f} ({r['pandas_cpu_s']:.2f}){note}",
                     f"{r['speedup']:.2f}x", verdict])
    body += [f"`build_interaction_snapshot` (DuckDB sniffs the file, Arrow's CSV reader or DuckDB reads it; ids encoded; rows sorted; fingerprinted "
             f"Parquet snapshot written) against `pandas.read_csv` (C engine; the python engine for `::`) or "
             f"`read_parquet`, then `irspack.df_to_sparse`. Wall seconds, median of {res['repeat']} runs; the two "
             f"take turns, after one uncounted warm-up run each (CPU seconds of all threads in brackets). Files under "
             f"{TARGETS['import_target_rows']:,} rows carry no target against pandas: a few milliseconds either way "
             f"are the fixed cost of an import, which has its own target below.", ""]
    body += table(["data", "rows", "import s (CPU s)", "rows/s", "pandas + df_to_sparse s (CPU s)", "speed-up",
                   "target"], rows)
    labels = [r["case"] for r in res["imports"]]
    body += [report.plot("import", lambda ax: bars(
        ax, labels, {"workbench import": [r["import_s"] for r in res["imports"]],
                     "pandas + df_to_sparse": [r["pandas_s"] for r in res["imports"]]}, "seconds (log)", log=True)), ""]
    body += import_misses(res["imports"])
    fixed = res.get("fixed")
    if fixed:
        verdict = report.target(f"fixed cost of an import <= {TARGETS['fixed_import_ms']:g} ms "
                                f"({fixed['rows']}-row CSV through the workspace)", f"{fixed['import_ms']:.1f} ms",
                                f"snapshot alone {fixed['snapshot_ms']:.1f} ms",
                                fixed["import_ms"] <= TARGETS["fixed_import_ms"])
        body += [f"Fixed cost of an import: `Workspace.import_training_data` of a {fixed['rows']}-row CSV into a fresh "
                 f"project, median of {fixed['runs']} runs: {fixed['import_ms']:.1f} ms ({fixed['import_cpu_ms']:.1f} ms "
                 f"CPU): {verdict}. Of it, `build_interaction_snapshot` alone (open, sniff, read, encode, sort, write "
                 f"the snapshot) takes {fixed['snapshot_ms']:.1f} ms; the rest is the catalog's reads and writes. At a few "
                 f"million rows per second, the rows themselves cost well under 0.1 ms.", ""]
    csr = res.get("csr")
    if csr:
        full = csr["rows"] >= 10_000_000
        verdict = report.target(f"snapshot -> CSR of {csr['rows']:,} string-id rows <= {TARGETS['csr_s']} s",
                                f"{csr['s']:.3f} s", "-", csr["s"] <= TARGETS["csr_s"]) if full else "(smoke size)"
        body += [f"Snapshot -> CSR (`interaction_matrix`), {csr['rows']:,} rows, median of {csr['runs']}: "
                 f"{csr['s']:.3f} s ({csr['rows'] / csr['s']:,.0f} rows/s): {verdict}.", ""]
    report.section("Import", "import", body)


def import_misses(imports: list[dict]) -> list[str]:
    """The profile of each import slower than the pandas path, and the arithmetic of the gap."""
    profiled = [r for r in imports if r.get("phases")]
    if not profiled:
        return []
    steps = [k for k in profiled[0]["phases"] if k != "total"]
    body = ["Where the time goes in each import slower than the pandas path: one more run under pyinstrument "
            "(which adds a little overhead), seconds of each step of `build_interaction_snapshot`.", ""]
    body += table(["data", "profiled run s", *steps, "pandas + df_to_sparse s"],
                  [[r["case"], f"{r['phases']['total']:.3f}", *[f"{r['phases'][s]:.3f}" for s in steps],
                    f"{r['pandas_s']:.3f}"] for r in profiled])
    for r in profiled:
        p = r["phases"]
        reading = p["read rows"] + p["parse times"] + p["encode ids"]
        snapshot = p["sort rows"] + p["write Parquet + fingerprint"]
        body += [f"- {r['case']}: reading the rows and encoding the ids, the job the pandas path does, took "
                 f"{reading:.3f} s against its {r['pandas_s']:.3f} s; sorting the rows by user, writing the Parquet "
                 f"snapshot and fingerprinting it, which the pandas path never does, took {snapshot:.3f} s; opening "
                 f"and sniffing the file, a fixed cost whatever its size, {p['open and sniff']:.3f} s."]
    return body + [""]


def scale_section(report: Report, res: dict) -> None:
    steps = {"import": "workbench import", "pandas": "pandas + df_to_sparse", "csr": "snapshot -> CSR",
             "train": "train() IALS", "learn": "bare irspack learn()"}
    rows = [[f"{r['rows']:,}", *[f"{r[f'{s}_s']:.2f}" for s in steps],
             *[("-" if r[f"{s}_rss_mb"] is None else f"{r[f'{s}_rss_mb']:,.0f}") for s in ("floor", *steps)]]
            for r in res["rows"]]
    body = [f"Synthetic comma CSVs (string ids, n/50 users, n/200 items); IALS {res['ials']}. Each step in a fresh "
            f"process; seconds around the step alone, peak RSS (VmHWM) of the whole process, whose floor (Python with "
            f"workbench and irspack imported) is the `floor` column. Medians of {res['repeat']} runs.", ""]
    body += table(["rows", *[f"{v} s" for v in steps.values()], "floor MB", *[f"{v} MB" for v in steps.values()]], rows)
    growth = [f"{steps[k]} {v:.2f}" for k, v in res["growth"].items() if v is not None]
    body += ["Growth exponent (log-log slope of seconds from the smallest to the largest size; 1.00 is linear): "
             + ", ".join(growth) + ".", ""]
    ns = [r["rows"] for r in res["rows"]]

    def seconds(ax):
        for step, label in steps.items():
            ax.plot(ns, [r[f"{step}_s"] for r in res["rows"]], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)

    def memory(ax):
        for step, label in {"floor": "floor (imports only)", **steps}.items():
            values = [r[f"{step}_rss_mb"] for r in res["rows"]]
            if None not in values:
                ax.plot(ns, values, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("interactions")
        ax.set_ylabel("peak RSS MB")
        ax.legend(fontsize=8)

    body += [report.plot("scale_seconds", seconds), "", report.plot("scale_memory", memory), ""]
    report.section("Growth from 1M to 10M interactions, and peak memory", "scale", body)


def lifecycle_section(report: Report, res: dict) -> None:
    rows = []
    for r in res["train_overhead"]:
        budget = 0.1 * r["bare learn s"] + 0.5
        verdict = report.target(f"train() overhead <= 10% + 0.5 s ({r['algorithm']})", f"{r['overhead s']:.2f} s",
                                f"learn() {r['bare learn s']:.2f} s, budget {budget:.2f} s", r["overhead s"] <= budget)
        rows.append([r["algorithm"], f"{r['bare learn s']:.2f}", f"{r['train() s']:.2f}", f"{r['overhead s']:.2f}",
                     f"{budget:.2f}", verdict])
    body = [f"`Workspace.train` end to end (matrix from the snapshot, learn, sign, write, catalog) against bare "
            f"irspack `learn()` on the same matrix; medians of {res['repeat']} runs.", ""]
    body += table(["algorithm", "bare learn() s", "train() s", "overhead s", "budget s", "target"], rows)
    labels = [r["algorithm"] for r in res["train_overhead"]]
    body += [report.plot("train_overhead", lambda ax: bars(
        ax, labels, {"bare learn()": [r["bare learn s"] for r in res["train_overhead"]],
                     "train()": [r["train() s"] for r in res["train_overhead"]]}, "seconds")), ""]
    report.section("train() overhead", "lifecycle", body)

    r = res["recommend"]
    p50 = report.target("single-user top-10 p50 <= 1 ms", f"{r['single p50 ms']:.3f} ms", "-",
                        r["single p50 ms"] <= TARGETS["p50_ms"])
    many = report.target(f"all users >= {TARGETS['users_per_s']:,} users/s at {r['users']:,} x {r['items']:,}",
                         f"{r['users/s']:,.0f} users/s", f"irspack IDMapper {r['irspack IDMapper users/s']:,.0f} "
                         f"users/s ({r['speed-up']:.1f}x)", r["users/s"] >= TARGETS["users_per_s"])
    body = [f"IALS with {r.get('factors', '?')} factors on {r['users']:,} users x {r['items']:,} items, top-10, seen "
            f"items excluded.", ""]
    body += table(["measure", "workbench", "baseline (same run)", "target"], [
        ["single user p50", f"{r['single p50 ms']:.3f} ms", "-", p50],
        ["single user p99", f"{r['single p99 ms']:.3f} ms", "-", "-"],
        ["all users", f"{r['users/s']:,.0f} users/s ({r['all users s']:.2f} s)",
         f"{r['irspack IDMapper users/s']:,.0f} users/s (irspack IDMapper)", many]]
        + [[f"export to {kind} (file included)", f"{r[f'export {kind} users/s']:,.0f} users/s",
            f"{r['users/s']:,.0f} users/s (recommend_many alone)", "-"]
           for kind in ("parquet", "csv", "duckdb") if f"export {kind} users/s" in r])
    if r.get("gemm_gflops"):
        per_user = 2 * r["factors"] * r["items"]
        body += [f"Ceiling arithmetic: scoring one user is {per_user / 1e6:.2f} MFLOP ({r['factors']} x {r['items']:,} "
                 f"multiply-adds); this machine's float32 GEMM ran at {r['gemm_gflops']:.0f} GFLOP/s in the same run, "
                 f"so scoring every item alone caps at {r['gemm_gflops'] * 1e9 / per_user:,.0f} users/s.", ""]
    body += [report.plot("recommend_all_users", lambda ax: bars(
        ax, ["all users, top-10"], {"workbench recommend_many": [r["users/s"]],
                                    "irspack IDMapper": [r["irspack IDMapper users/s"]]}, "users/s",
        target=TARGETS["users_per_s"])), ""]
    report.section("Recommendations", "lifecycle", body)


def tuning_section(report: Report, res: dict) -> None:
    rows, p = res["rows"], res["protocol"]
    body = [f"What a user gets. One fixed test split per dataset ({p['test_ratio']:.0%} of the interactions of every user "
            f"with >= {p['test_min_interactions']}, numpy seed {p['test_seed']}) that no system sees. Each system, in its "
            f"own process, tunes on the rest ({', '.join(p['algorithms'])}; {res['trials']} trials; nDCG@{p['cutoff']} on its "
            f"own random validation split holding out {p['validation']['heldout_ratio']:.0%}, seed "
            f"{p['validation']['seed']}), trains its best configuration on all of the rest and writes its model file: "
            f"that process is timed (wall and CPU seconds; peak MB: VmHWM of its process tree). Its model file is then "
            f"loaded by the system's own reader, which lists the top-{p['cutoff']} of every test user (training items "
            f"excluded), and one evaluator (irspack's metrics, binary relevance) scores every system's lists. The "
            f"validation score is each system's best trial on its own split: selection-biased, shown for reference. "
            f"Medians of {res['repeat']} round(s); systems take turns.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = {r["system"]: r for r in rows if r["dataset"] == dataset}
        split = res["splits"][dataset]
        body += [f"### {dataset}", "", f"{split['users']:,} users x {split['items']:,} items: {split['rest']:,} "
                 f"interactions to tune and train on, {split['test']:,} held out for {split['test_users']:,} test users.", ""]
        body += table(["system", "test nDCG@20", "test recall@20", "test hit@20", "validation nDCG@20 (own split)",
                       "wall s", "CPU s", "peak MB", "chosen algorithm", "model file MB"],
                      [[name, _score(r, "ndcg@20") + _every_run(r), _score(r, "recall@20"), _score(r, "hit@20"),
                        _score(r, "validation_ndcg"), f"{r['wall_s']:,.1f}", f"{r['cpu_s']:,.1f}", f"{r['peak_mb']:,.0f}",
                        ", ".join(dict.fromkeys(r["algorithms"])), _megabytes(r.get("model_file_mb"))]
                       for name, r in mine.items()])
        chosen = [f"- {name} chose {r['algorithms'][-1]}: " + ", ".join(f"{k}={_short(v)}" for k, v in r["params"].items())
                  for name, r in mine.items() if r.get("params")]
        body += chosen + [""] if chosen else []
        body += tuning_targets(report, dataset, mine, res.get("floors", {}))
    body += tuning_loader_target(report, res["runs"])
    body += tuning_floors(res.get("floors", {}))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    found = {(r["dataset"], r["system"]): r.get("ndcg@20") or 0.0 for r in rows}
    body += [report.plot("tuning", lambda ax: bars(
        ax, datasets, {s: [found.get((d, s), 0.0) for d in datasets] for s in systems}, "test nDCG@20")), ""]
    report.section("Tuning: the final model on a held-out test set", "tuning", body)


def _score(row: dict, key: str) -> str:
    return "-" if row.get(key) is None else f"{row[key]:.4f}"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _megabytes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _every_run(row: dict) -> str:
    runs = row["test_ndcg_runs"]
    return "" if len(runs) < 2 else " (" + ", ".join("-" if v is None else f"{v:.4f}" for v in runs) + ")"


def tuning_targets(report: Report, dataset: str, mine: dict, floors: dict) -> list[str]:
    """The targets of one dataset: test quality against each baseline, time and memory against Recotem's
    (with the floor the target lies under, when it does: see `tuning_floors`)."""
    ours = mine.get("workbench")
    if not ours:
        return []
    lines = []
    for peer_name, label in (("recotem", "Recotem"), ("irspack", "irspack per-class tuning")):
        peer = mine.get(peer_name)
        if peer:
            passed = None not in (ours["ndcg@20"], peer["ndcg@20"]) and ours["ndcg@20"] >= peer["ndcg@20"]
            verdict = report.target(f"tuning ({dataset}): test nDCG@20 >= {label}'s", _score(ours, "ndcg@20"),
                                    f"{label} {_score(peer, 'ndcg@20')}", passed)
            lines.append(f"- test nDCG@20 >= {label}'s: {verdict}")
    peer = mine.get("recotem")
    if peer:
        for key, unit, limit, what in (("wall_s", "s", TARGETS["tuning_wall_ratio"], "wall time"),
                                       ("peak_mb", "MB", TARGETS["tuning_peak_ratio"], "peak memory")):
            ratio = ours[key] / peer[key]
            verdict = report.target(f"tuning ({dataset}): {what} <= {limit:g}x Recotem's", f"{ours[key]:,.1f} {unit}",
                                    f"Recotem {peer[key]:,.1f} {unit} ({ratio:.2f}x)", ratio <= limit)
            floor = floors.get("workbench", {}).get("irspack", {}).get(key)
            below = (f" (the target, {limit * peer[key]:,.1f} {unit}, lies below the {floor:,.1f} {unit} that importing "
                     "irspack alone costs a process)") if floor is not None and limit * peer[key] < floor else ""
            lines.append(f"- {what} <= {limit:g}x Recotem's: {ratio:.2f}x, {verdict}{below}")
    return lines + [""]


def tuning_floors(floors: dict) -> list[str]:
    """What each system's process pays before it reads any data, measured in the same run."""
    if not floors:
        return []
    names = {"irspack": "`import irspack`", "workbench": "`import workbench.workspace` (irspack, DuckDB, pandas, "
                                                        "pyarrow, Optuna)"}
    rows = [[system, names[what], f"{m['wall_s']:.2f}", f"{m['peak_mb']:,.0f}"]
            for system, found in floors.items() for what, m in found.items()]
    return ["Floors: a fresh process of each system's Python importing what it trains with, before it reads any data "
            "(medians of 3; the same run). Every system trains with irspack, whose import brings scikit-learn and SciPy: "
            "a ratio target below this floor cannot be met by a process that trains with irspack.", "",
            *table(["system", "imports", "wall s", "peak MB"], rows)]


def tuning_loader_target(report: Report, runs: list[dict]) -> list[str]:
    """Every final model file the workbench wrote loads with `load_model`; Recotem's refusals beside it."""
    ours = [r for r in runs if r["system"] == "workbench"]
    if not ours:
        return []
    loaded = sum(r["model_loaded"] for r in ours)
    theirs = [r for r in runs if r["system"] == "recotem"]
    refused = [r for r in theirs if not r["model_loaded"]]
    baseline = (f"Recotem: {len(refused)} of {len(theirs)} refused by its own reader"
                + "".join(f"; {r['dataset']} ({r.get('model_file_mb') or 0:,.0f} MB): {r['loader'].get('refused')}"
                          for r in refused)) if theirs else "-"
    verdict = report.target("no model file the workbench writes is refused by its own reader (final models, "
                            "`load_model`)", f"{loaded} of {len(ours)} loaded", baseline, loaded == len(ours))
    lines = [f"Model files: {loaded} of {len(ours)} final workbench models loaded with `load_model`: {verdict}."]
    if refused:
        lines.append(f"Recotem's reader (`read_artifact` under its default 512 MiB cap, as `recotem serve`) refused "
                     f"{len(refused)} of its {len(theirs)} artifacts; those were scored after asking the same reader again "
                     f"with the cap at Recotem's maximum (16 GiB), as RECOTEM_MAX_PAYLOAD_BYTES would set it.")
    return lines + [""]


def dashboards_section(report: Report, res: dict) -> None:
    names = list(res["preheated"])
    rows = []
    for name in names:
        pre = statistics.median(res["preheated"][name])
        cold = statistics.median(res["cold"][name]) if name in res["cold"] else None
        label = "baseline: one Label, no workbench" if name == res["baseline"] else name
        verdict = "-" if name == res["baseline"] else report.target(
            f"preheated first paint <= 1 s ({name})", f"{pre:.2f} s", "-", pre <= TARGETS["first_paint_s"])
        rows.append([label, f"{pre:.2f}", "-" if cold is None else f"{cold:.2f}", verdict])
    body = [f"Navigation start until the dashboard's title and main control are on screen, Playwright in Debian's "
            f"Chromium, warm browser cache; `workbench serve` as shipped (preheated) and with `--no-preheat` (cold). "
            f"Medians of {res['runs']} runs.", ""]
    body += table(["dashboard", "preheated s", "cold s", "target"], rows)
    body += dashboards_floor(res)
    if res["models_1000"]:
        shown = statistics.median(m["shown_s"] for m in res["models_1000"])
        turned = statistics.median(m["page_turn_s"] for m in res["models_1000"])
        body += table(["Models dashboard with 1,002 models", "seconds", "target"], [
            ["table shown", f"{shown:.2f}", report.target("1,002-model list shown <= 1 s", f"{shown:.2f} s", "-",
                                                          shown <= TARGETS["models_usable_s"])],
            ["page turn answered", f"{turned:.2f}", report.target("1,002-model list page turn <= 1 s", f"{turned:.2f} s",
                                                                  "-", turned <= TARGETS["models_usable_s"])]])
    body += dashboards_clicks(report, res)
    body += [report.plot("dashboards", lambda ax: bars(
        ax, names, {"preheated": [statistics.median(res["preheated"][n]) for n in names],
                    **({"cold": [statistics.median(res["cold"][n]) for n in names]} if res["cold"] else {})},
        "seconds", target=TARGETS["first_paint_s"])), ""]
    report.section("Dashboard first paint", "dashboards", body)


def dashboards_clicks(report: Report, res: dict) -> list[str]:
    """The first Recommend click on a freshly opened Recommendations page, beside a second one."""
    clicks = res.get("clicks") or []
    if not clicks:
        return []
    first = statistics.median(c["first_s"] for c in clicks)
    second = statistics.median(c["second_s"] for c in clicks)
    load = statistics.median(res["model_load_s"])
    verdict = report.target(f"first Recommend click within {TARGETS['first_click_extra_s']:g} s of a second one",
                            f"{first:.2f} s", f"second click {second:.2f} s",
                            first <= second + TARGETS["first_click_extra_s"])
    return [f"Recommendations opened as Home's link opens it, a user id typed and Recommend clicked as soon as the "
            f"page painted: seconds until that user's top 10 is on screen, the active model a "
            f"{res['model_bytes'] / 2**20:.1f} MiB file (the page loads it in the background as it opens). Baselines: "
            f"a second click on the same page, and a fresh process loading the model (what a click would add "
            f"without preloading). Medians of {len(clicks)} runs. The first click waits for no loading when it "
            f"takes no longer than the second; what both take is the page's round trip and the model's scoring.", ""] + table(["measure", "seconds", "target"], [
        ["first click", f"{first:.2f}", verdict], ["second click (baseline)", f"{second:.2f}", "-"],
        ["loading the model in a fresh process", f"{load:.2f}", "-"]])


def dashboards_floor(res: dict) -> list[str]:
    """The arithmetic of first paint: the floor an empty Voila page sets, and what the dashboards add."""
    if res["baseline"] not in res["preheated"]:
        return []
    floor = statistics.median(res["preheated"][res["baseline"]])
    added = [statistics.median(times) - floor for name, times in res["preheated"].items() if name != res["baseline"]]
    scripts = res.get("scripts")
    loaded = (f" It loads {scripts['bytes'] / 2**20:.1f} MiB of JavaScript in {scripts['files']} files (Voila's front "
              f"end and the widget libraries), which Chromium compiles and runs on every visit, cached or not."
              if scripts and scripts.get("page") == res["baseline"] else "")
    lines = [f"Floor: a Voila page showing one Label, with nothing of the workbench in it, paints in {floor:.2f} s "
             f"preheated in this run.{loaded} The dashboards add {min(added):+.2f} to {max(added):+.2f} s to it."]
    if floor > TARGETS["first_paint_s"]:
        lines[0] += (f" The {TARGETS['first_paint_s']:g} s target lies below that floor: no change to the dashboards "
                     f"can meet it on this machine; a lighter front end than Voila's could.")
    return lines + [""]


def cli_section(report: Report, res: dict) -> None:
    rows = [[f"`workbench {r['args']}`", r["case"], f"{r['median_s']:.3f}",
             report.target(f"`workbench` {r['case']} answers <= {TARGETS['cli_s']:g} s", f"{r['median_s']:.3f} s",
                           f"`python -c pass` {res['floor_s']:.3f} s", r["median_s"] <= TARGETS["cli_s"])]
            for r in res["rows"]]
    body = [f"A fresh `python -m workbench.cli --home HOME ...` process per run, start to exit, against a workspace "
            f"holding the small demo project; medians of {res['repeat']} runs, the cases taking turns with a bare "
            f"`python -c pass` (the floor, {res['floor_s']:.3f} s).", ""]
    body += table(["command", "case", "seconds", "target"], rows)
    report.section("Command line: help and argument errors", "cli", body)


def catalog_section(report: Report, res: dict) -> None:
    soak = res["soak"]
    idle, loaded = soak["idle"], soak["soak"]
    quiet = soak["load_before"] < 1.5
    rows = []
    for what, label in (("models", "`ws.models()`"), ("progress_write", "one job-progress write")):
        i, s_ = idle["latency"].get(what, {}), loaded["latency"].get(what, {})
        if not s_.get("p99"):
            continue
        bound = TARGETS["catalog_p99_s"] if quiet else max(TARGETS["catalog_p99_s"], 5 * i["p99"])
        verdict = report.target(
            f"{label} p99 under the soak <= {TARGETS['catalog_p99_s']} s (quiet) or <= 5x idle p99 (loaded)",
            f"{s_['p99']:.3f} s", f"idle p99 {i['p99']:.3f} s (load {soak['load_before']:.1f})", s_["p99"] <= bound)
        rows.append([label, f"{i['p50'] * 1000:.1f} / {i['p99'] * 1000:.1f} / {i['max'] * 1000:.1f}",
                     f"{s_['p50'] * 1000:.1f} / {s_['p99'] * 1000:.1f} / {s_['max'] * 1000:.1f}", verdict])
    errors = report.target("catalog soak: no error", str(len(loaded["errors"])), "-", not loaded["errors"])
    lost = report.target("catalog soak: no lost write", str(len(loaded["lost"])), "-", not loaded["lost"])
    body = [f"Idle: {', '.join(idle['roles'])} for {idle['seconds']:g} s. Soak: {', '.join(loaded['roles'])} for "
            f"{loaded['seconds']:g} s, each role in its own process on one workspace; operations: "
            + ", ".join(f"{n} {k}" for k, n in loaded["operations"].items()) + ".", ""]
    body += table(["latency", "idle p50 / p99 / max (ms)", "soak p50 / p99 / max (ms)", "target"], rows)
    body += table(["soak", "count", "target"], [["errors", len(loaded["errors"]), errors],
                                              ["lost writes", len(loaded["lost"]), lost]])
    body += ["The engines the catalog could be built on, on issue 15's workload (processes x cycles of connect, "
             "BEGIN, INSERT, SELECT, COMMIT, close on one file):", ""]
    body += table(["engine", "rows kept", "errors", "wall s", "CPU s"],
                  [[r["engine"], f"{r['kept']}/{r['expected']}", r["errors"], f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}"]
                   for r in res["engines"]])
    report.section("The catalog under many processes", "catalog", body)


def insight_section(report: Report, res: dict) -> None:
    rows = []
    for r in res["explain"]:
        verdict = report.target(f"explaining a top-10 adds <= {res['target_added_ms']:g} ms p50 ({r['algorithm']}, "
                                f"{r['call']})", f"{r['added p50 ms']:.2f} ms", f"plain p50 {r['plain p50 ms']:.2f} ms",
                                r["added p50 ms"] <= res["target_added_ms"])
        rows.append([r["algorithm"], r["call"], f"{r['plain p50 ms']:.2f}", f"{r['explain p50 ms']:.2f}",
                     f"{r['added p50 ms']:.2f}", f"{r['per-call added p50 ms']:.2f}", verdict])
    body = [f"{res['data']}: the same {res['users']} sampled users (and 20-item profiles) recommended a top-10 with "
            f"and without `explain=True`, alternating which goes first, {res['repeat']} rounds; medians.", ""]
    body += table(["model", "call", "plain p50 ms", "explained p50 ms", "added p50 ms", "per-call added p50 ms",
                   "target"], rows)
    report.section("Explaining recommendations", "insight", body)


def weights_section(report: Report, res: dict) -> None:
    import bench_weights

    body = ["What interaction weights (ratings, play counts) gain, on the tuning benchmark's test split: each arm "
            "imports the rest with its weights and either tunes (binary only, or with `search_weighting=True`) or "
            "trains IALS's default configuration with one weighting. Relevance stays binary: every held-out "
            "interaction counts, whatever its weight.", "", bench_weights.table(res), ""]
    report.section("Interaction weights", "weights", body)


def pipeline_section(report: Report, res: dict) -> None:
    import bench_scale

    p = res["pipeline"]
    peaks = [r[f"{s}_rss_mb"] for r in p["rows"] for s in ("import", "tune", "train", "topn") if r.get(f"{s}_rss_mb")]
    largest = p["rows"][-1]["rows"]
    verdicts = []
    if peaks:
        verdicts.append(f"- peak memory <= {p['memory_target_mb']:,} MB at every step up to {largest:,} rows: "
                        + report.target(f"pipeline peak memory <= {p['memory_target_mb']:,} MB ({largest:,} rows)",
                                        f"{max(peaks):,.0f} MB", "-", max(peaks) <= p["memory_target_mb"]))
    for step in p["growth"]:
        # the steepest stretch between consecutive sizes: an end-to-end slope can hide a superlinear middle
        stretches = [(a["rows"], b["rows"], math.log(b[f"{step}_s"] / a[f"{step}_s"]) / math.log(b["rows"] / a["rows"]))
                     for a, b in zip(p["rows"], p["rows"][1:]) if a[f"{step}_s"] > 0 and b[f"{step}_s"] > 0]
        if stretches:
            low, high, slope = max(stretches, key=lambda stretch: stretch[2])
            overall = p["growth"].get(step)
            whole = f"rows^{overall:.2f} from {p['rows'][0]['rows']:,} to {largest:,} rows, " if overall else ""
            verdicts.append(f"- {step} seconds grow as {whole}rows^{slope:.2f} from {low:,} to {high:,} rows (the "
                            "steepest stretch, judged): " + report.target(
                                f"pipeline {step}: growth exponent of seconds <= {p['growth_target']} (steepest stretch)",
                                f"{slope:.2f}", "1.00 (linear)", slope <= p["growth_target"]))
    body = ["A user's whole path on one machine: a synthetic log (rows/100 users, rows/500 items, string ids, "
            "long-tail popularity) imported from CSV, tuned (the default portfolio on a user sample), IALS trained "
            "on every interaction, every user's top-N written to Parquet; each step in a fresh process, seconds and "
            "peak RSS (VmHWM). Run on request: `python bench/report.py --only pipeline`.", "",
            bench_scale.pipeline_table(p), "", *verdicts, ""]
    report.section("The pipeline from 1M to 100M interactions", "pipeline", body)


SECTIONS = {"weights": weights_section, "pipeline": pipeline_section, "catalog": catalog_section, "insight": insight_section, "import": import_section, "scale": scale_section, "lifecycle": lifecycle_section,
            "tuning": tuning_section, "dashboards": dashboards_section, "cli": cli_section}


def render(out: Path) -> Path:
    results_dir = out / "results"
    meta = json.loads((results_dir / "meta.json").read_text())
    smoke, m = meta["smoke"], meta["machine"]
    names = [*BENCHMARKS, *ON_REQUEST]
    results = {name: json.loads((results_dir / f"{name}.json").read_text())
               for name in names if (results_dir / f"{name}.json").exists()}
    runs = {name: json.loads((results_dir / f"{name}.run.json").read_text())
            for name in names if (results_dir / f"{name}.run.json").exists()}
    report = Report(out, results, runs, smoke)
    for name, res in results.items():
        SECTIONS[name](report, res)
    missed = sum(not passed for *_, passed in report.targets)
    lines = ["# Rec Workbench performance report", "",
             f"Written by `make bench` (`python bench/report.py`{' --smoke' if smoke else ''}), last run from {m['date']} at "
             f"commit {m['commit']}; each section's first line says when its benchmark ran (`--only` refreshes some). "
             f"{len(report.targets)} targets: {len(report.targets) - missed} pass, {missed} miss."
             + (" **Smoke run: tiny sizes, one run each; the figures mean nothing.**" if smoke else ""), "",
             "## Machine", ""]
    lines += table(["", ""], [["CPU", f"{m['cpu']}, {m['cores']} cores"], ["memory", f"{m['memory_gib']:.1f} GiB"],
                              ["OS", m["os"]], ["Python", m["python"]], ["BLAS", m["blas"]],
                              ["libraries", ", ".join(f"{k} {v}" for k, v in m["versions"].items())],
                              ["browser", m["chromium"]], ["Recotem (bench/.venv-recotem)", m["recotem"]]])
    lines += ["## Targets", ""]
    lines += table(["target", "measured", "baseline (same run)", "result"],
                   [[w, me, b, "pass" if p else "**miss**"] for w, me, b, p in report.targets])
    lines += report.sections
    path = out / "REPORT.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--out", type=Path, default=HERE, help="where REPORT.md, plots/ and results/ go")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join([*BENCHMARKS, *ON_REQUEST])}")
    parser.add_argument("--render", type=Path, help="only re-render this folder's REPORT.md from its results/")
    parser.add_argument("--pipeline-steps", help="measure only these pipeline steps; keep the others' earlier figures")
    args = parser.parse_args(argv)
    if args.render:
        print(render(args.render))
        return 0
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    if "dashboards" in names and not Path(CHROMIUM).exists():
        print(f"skipping dashboards: {CHROMIUM} is absent (apt-get install chromium)", file=sys.stderr)
        names.remove("dashboards")
    run_benchmarks(names, args.smoke, args.out, args.pipeline_steps)
    print(render(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
