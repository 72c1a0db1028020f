"""Tuning at an equal trial budget: this workbench vs irspack's per-class `tune` vs Recotem 2.1.

    .venv/bin/python bench/bench_tuning.py                       # ml-100k, all three systems
    .venv/bin/python bench/bench_tuning.py --datasets ml-100k,lastfm-2k --trials 40
    .venv/bin/python bench/bench_tuning.py --smoke               # synthetic, workbench + irspack, seconds

Each system runs in its own child process, timed from start to a trained model of the best
configuration (import, split, search, final fit), with its peak RSS from `wait4`. Same budget
(40 trials, nDCG@20, random split holding out 10% of every user's interactions, seed 42, the six
algorithms IALS/RP3beta/CosineKNN/TopPop/TruncatedSVD/DenseSLIM). Each system reports the
best validation nDCG@20 on its own split with those settings (the splits differ only by RNG).
Recotem needs Python >= 3.12: it lives in bench/.venv-recotem (ignored by git), made with
`python3.12 -m venv bench/.venv-recotem && bench/.venv-recotem/bin/pip install recotem==2.1.0`;
it is skipped when absent. Target: at least Recotem's quality in <= 0.5x its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
RECOTEM = HERE / ".venv-recotem" / "bin" / "recotem"
ALGORITHMS = ["IALS", "RP3beta", "CosineKNN", "TopPop", "TruncatedSVD", "DenseSLIM"]
SPLIT = {"scheme": "random", "heldout_ratio": 0.1, "val_user_ratio": 1.0, "seed": 42}
DATASETS = {
    "ml-100k": {"file": SHARED / "ml-100k" / "u.data", "sep": "\t", "header": None,
                "names": ["user_id", "item_id", "rating", "timestamp"]},
    "lastfm-2k": {"file": SHARED / "lastfm-2k" / "user_artists.dat", "sep": "\t", "header": 0,
                  "names": ["user_id", "item_id", "weight"]},
}


def load_frame(dataset: str):
    import pandas as pd

    if dataset == "synthetic":
        from workbench.demo import generate_demo

        return generate_demo(seed=0, n_users=500, n_items=300)[0][["user_id", "item_id"]]
    spec = DATASETS[dataset]
    frame = pd.read_csv(spec["file"], sep=spec["sep"], header=spec["header"], names=spec["names"])
    return frame[["user_id", "item_id"]]


def child_workbench(dataset: str, trials: int) -> dict:
    import workbench as wb

    ws = wb.open(tempfile.mkdtemp(prefix="bench-tune-"))
    project = ws.create_project("bench", "user_id", "item_id")
    data = ws.import_training_data(project, load_frame(dataset))
    tuning = ws.tune(data, algorithms=ALGORITHMS, n_trials=trials, metric="ndcg", cutoff=20, split=SPLIT)
    return {"best_score": tuning.best_score, "best_algorithm": tuning.best_algorithm,
            "trials": len(tuning.trials), "pruned": int((tuning.trials["state"] == "PRUNED").sum())}


def child_irspack(dataset: str, trials: int) -> dict:
    import irspack
    import numpy as np

    from workbench.evaluation import SplitConfig, make_split

    frame = load_frame(dataset)
    X, user_ids, item_ids = irspack.df_to_sparse(frame, "user_id", "item_id")
    X.data[:] = 1.0
    split = make_split(X, np.asarray(user_ids), np.asarray(item_ids), SplitConfig(**SPLIT))
    evaluator = split.evaluator(cutoff=20, target_metric="ndcg")
    shares = [trials // len(ALGORITHMS) + (i < trials % len(ALGORITHMS)) for i in range(len(ALGORITHMS))]
    best = (-1.0, None, None)
    for name, n in zip(ALGORITHMS, shares):
        cls = irspack.get_recommender_class(f"{name}Recommender")
        params, history = cls.tune(split.X_train, evaluator, n_trials=n, tuning_random_seed=0)
        score = float(-history["value"].min())
        if score > best[0]:
            best = (score, name, params)
    cls = irspack.get_recommender_class(f"{best[1]}Recommender")
    cls(X, **best[2]).learn()
    return {"best_score": best[0], "best_algorithm": best[1], "trials": trials, "pruned": None}


def run_recotem(dataset: str, trials: int, work: Path) -> dict:
    frame = load_frame(dataset)
    csv = work / f"{dataset}.csv"
    frame.to_csv(csv, index=False)
    recipe = work / "recipe.yaml"
    recipe.write_text(
        f"name: bench_{dataset.replace('-', '_')}\n"
        f"source: {{type: csv, path: {csv}}}\n"
        "schema: {user_column: user_id, item_column: item_id}\n"
        f"training:\n  algorithms: {ALGORITHMS}\n  metric: ndcg\n  cutoff: 20\n  n_trials: {trials}\n"
        "  split: {scheme: random, heldout_ratio: 0.1, seed: 42}\n"
        f"output: {{path: {work / 'out'}}}\n"
    )
    env = dict(os.environ, RECOTEM_SIGNING_KEYS=f"bench:{secrets.token_hex(32)}", RECOTEM_LOG_FORMAT="json",
               RECOTEM_LOCK_DIR=str(work))
    measured = measure([str(RECOTEM), "train", "--no-lock", str(recipe)], env=env)
    done = [json.loads(line) for line in measured.pop("stdout").splitlines() + measured.pop("stderr").splitlines()
            if line.startswith("{") and '"train_done"' in line]
    if not done:
        return {**measured, "error": "no train_done event"}
    return {**measured, "best_score": done[-1]["best_score"], "best_algorithm": done[-1]["best_class"],
            "trials": done[-1]["trials"], "pruned": None}


def measure(command: list[str], env: dict | None = None) -> dict:
    """Wall time and peak RSS of a child process (its own, from wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
                "returncode": process.returncode,
                "stdout": out.read(), "stderr": err.read()}


def run_child(system: str, dataset: str, trials: int) -> dict:
    measured = measure([sys.executable, __file__, "--child", system, "--datasets", dataset, "--trials", str(trials)])
    stdout, stderr = measured.pop("stdout"), measured.pop("stderr")
    match = re.search(r"RESULT (\{.*\})", stdout)
    if not match:
        return {**measured, "error": stderr[-500:]}
    return {**measured, **json.loads(match.group(1))}


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (dataset, system): medians over its runs, and the scores of every run."""
    rows = []
    for key in dict.fromkeys((r["dataset"], r["system"]) for r in runs):
        mine = [r for r in runs if (r["dataset"], r["system"]) == key]
        best = max(mine, key=lambda r: r["best_score"])
        rows.append({"dataset": key[0], "system": key[1], "runs": len(mine),
                     **{k: statistics.median(r[k] for r in mine) for k in ("best_score", "wall_s", "cpu_s", "peak_rss_mb")},
                     "scores": [r["best_score"] for r in mine], "walls": [r["wall_s"] for r in mine],
                     "best_algorithm": best["best_algorithm"], "trials": best["trials"], "pruned": best["pruned"]})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--systems", default="workbench,irspack,recotem")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each system (medians are reported)")
    parser.add_argument("--smoke", action="store_true", help="synthetic data, 6 trials, no Recotem, one run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.child:
        result = {"workbench": child_workbench, "irspack": child_irspack}[args.child](args.datasets, args.trials)
        print("RESULT " + json.dumps(result))
        return result
    if args.smoke:
        args.datasets, args.trials, args.systems, args.repeat = "synthetic", 6, "workbench,irspack", 1

    runs = []  # every run; the systems take turns so that load drifts hit them alike
    for dataset in args.datasets.split(","):
        if dataset != "synthetic" and not DATASETS[dataset]["file"].exists():
            print(f"skipping {dataset}: {DATASETS[dataset]['file']} is absent")
            continue
        for _ in range(args.repeat):
            for system in args.systems.split(","):
                if system == "recotem":
                    if not RECOTEM.exists():
                        print(f"skipping Recotem: {RECOTEM} is absent (see the docstring)")
                        continue
                    with tempfile.TemporaryDirectory() as work:
                        result = run_recotem(dataset, args.trials, Path(work))
                else:
                    result = run_child(system, dataset, args.trials)
                if "error" in result:
                    raise SystemExit(f"{system} on {dataset} failed: {result['error']}")
                runs.append({"dataset": dataset, "system": system, **result})
                print(json.dumps(runs[-1]), flush=True)
    rows = summarize(runs)
    by_key = {(r["dataset"], r["system"]): r for r in rows}
    print(f"\nmedians of {args.repeat} run(s)")
    print("\n| dataset | system | best nDCG@20 | best algorithm | wall s | CPU s | peak RSS MB | wall vs Recotem "
          "| CPU vs Recotem | quality vs Recotem |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peer = by_key.get((r["dataset"], "recotem"), {})
        ratio = f"{r['wall_s'] / peer['wall_s']:.2f}x" if peer.get("wall_s") else "-"
        cpu = f"{r['cpu_s'] / peer['cpu_s']:.2f}x" if peer.get("cpu_s") else "-"
        quality = (f"{r['best_score'] / peer['best_score']:.3f}x"
                   if peer.get("best_score") and r.get("best_score") is not None else "-")
        print(f"| {r['dataset']} | {r['system']} | {r.get('best_score', float('nan')):.4f} | {r.get('best_algorithm')} "
              f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {ratio} | {cpu} | {quality} |")
    results = {"repeat": args.repeat, "trials": args.trials, "rows": rows, "runs": runs}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
