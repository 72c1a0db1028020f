"""What explaining a top-10 costs: `recommend(user, 10, explain=True)` against the same call without.

    .venv/bin/python bench/bench_insight.py            # ml-100k (synthetic stand-in when absent), ~1 min
    .venv/bin/python bench/bench_insight.py --smoke    # seconds: checks that it runs

For each model, the same sampled known users are recommended a top-10 with and without the
explanation, alternating which goes first, in one run; the figure is the difference of the two
medians (target: explaining adds <= 2 ms p50), beside the median of the per-user differences.
New-user profiles (`recommend_for_profile`, 20 items each) are measured the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_lifecycle import ml100k, synthetic, table

import workbench as wb

TARGET_MS = 2.0
MODELS = {"IALS": None, "CosineKNN": None, "RP3beta": None, "DenseSLIM": None, "TruncatedSVD": None}
SMOKE_MODELS = {"IALS": {"n_components": 8, "train_epochs": 2}, "CosineKNN": None}


def paired_ms(plain, explained, cases: list, repeat: int) -> tuple[list[float], list[float]]:
    """Milliseconds of `plain(case)` and `explained(case)` for every case, alternating the order."""
    a, b = [], []
    for _ in range(repeat):
        for k, case in enumerate(cases):
            for call, out in ((plain, a), (explained, b)) if k % 2 == 0 else ((explained, b), (plain, a)):
                started = time.perf_counter()
                call(case)
                out.append(1000 * (time.perf_counter() - started))
    return a, b


def row(algorithm: str, kind: str, plain: list[float], explained: list[float]) -> dict:
    added = statistics.median(explained) - statistics.median(plain)
    return {"algorithm": algorithm, "call": kind, "plain p50 ms": statistics.median(plain),
            "explain p50 ms": statistics.median(explained), "added p50 ms": added,
            "per-call added p50 ms": statistics.median(np.subtract(explained, plain)),
            "explain p99 ms": float(np.percentile(explained, 99)), "pass": added <= TARGET_MS}


def bench(models: dict, n_users: int, repeat: int, frame) -> list[dict]:
    ws = wb.open(tempfile.mkdtemp(prefix="bench-insight-"))
    project = ws.create_project("bench", "user_id", "item_id")
    data = ws.import_training_data(project, frame)
    rng = np.random.default_rng(0)
    rows = []
    for algorithm, params in models.items():
        r = ws.load_model(ws.train(ws.create_configuration(project, algorithm, params), data).id)
        users = list(r.user_ids[rng.integers(0, len(r.user_ids), n_users)])
        profiles = [list(r.item_ids[rng.choice(len(r.item_ids), 20, replace=False)]) for _ in range(n_users)]
        r.recommend(users[0], cutoff=10, explain=True)  # warm: the explainer is built once per loaded model
        plain, explained = paired_ms(lambda u: r.recommend(u, cutoff=10),
                                     lambda u: r.recommend(u, cutoff=10, explain=True), users, repeat)
        rows.append(row(algorithm, "recommend", plain, explained))
        plain, explained = paired_ms(lambda p: r.recommend_for_profile(p, cutoff=10),
                                     lambda p: r.recommend_for_profile(p, cutoff=10, explain=True), profiles, repeat)
        rows.append(row(algorithm, "recommend_for_profile", plain, explained))
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        frame, models, n_users, repeat, label = synthetic(300, 200, 10), SMOKE_MODELS, 20, 1, "synthetic 300 x 200"
    else:
        frame = ml100k()
        label = "ml-100k" if frame is not None else "synthetic 943 x 1682 (ml-100k absent)"
        frame = frame if frame is not None else synthetic(943, 1682, 106)
        models, n_users, repeat = MODELS, args.users, args.repeat
    results = {"data": label, "users": n_users, "repeat": repeat, "target_added_ms": TARGET_MS,
               "explain": bench(models, n_users, repeat, frame)}
    print(f"## Explaining a top-10 ({label}; {n_users} users x {repeat}, medians)\n")
    print(table(results["explain"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
