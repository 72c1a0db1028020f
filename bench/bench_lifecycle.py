"""Model lifecycle benchmarks: train() overhead, single-user latency, all-users throughput.

    .venv/bin/python bench/bench_lifecycle.py            # full run (a few minutes)
    .venv/bin/python bench/bench_lifecycle.py --smoke    # seconds: checks that it runs

Every comparison is against a baseline measured in the same run:
- `train()` end to end (matrix from the snapshot, learn, sign, write, catalog) against bare
  irspack `learn()` on the same matrix; target overhead <= 10% + 0.5 s;
- `recommend()` one user top-10 p50/p99 on a 10.7k-item model; target p50 <= 1 ms;
- `recommend_many()` all users top-10 on 70k x 10.7k; target >= 50k users/s, against irspack's
  own `IDMapper.recommend_for_known_user_batch`;
- `export_recommendations()` of the active model, every user's top-10 to Parquet, CSV and DuckDB,
  end to end (file written and renamed into place), in users/s beside `recommend_many()`.
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
import pandas as pd
from irspack import IDMapper

import workbench as wb
from workbench import algorithms, data

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic(n_users: int, n_items: int, per_user: int, seed: int = 0) -> pd.DataFrame:
    """Long-tail interactions with taste clusters (users of a cluster share favourite items)."""
    rng = np.random.default_rng(seed)
    n_clusters = 20
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    boost = rng.integers(0, n_clusters, n_items)
    users = np.repeat(np.arange(n_users), per_user)
    cluster = users % n_clusters
    base = rng.choice(n_items, size=len(users), p=popularity / popularity.sum())
    in_cluster = rng.random(len(users)) < 0.6
    cluster_items = [np.flatnonzero(boost == c) for c in range(n_clusters)]
    picks = np.array([cluster_items[c][rng.integers(len(cluster_items[c]))] for c in cluster[in_cluster]])
    base[in_cluster] = picks
    return pd.DataFrame({"user_id": users.astype(str), "item_id": base.astype(str)})


def ml100k() -> pd.DataFrame | None:
    path = SHARED / "ml-100k" / "u.data"
    if not path.exists():
        return None
    return pd.read_csv(path, sep="\t", names=["user_id", "item_id", "rating", "timestamp"])[["user_id", "item_id"]]


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_train_overhead(ws, project, frame: pd.DataFrame, repeat: int, configs: dict) -> list[dict]:
    dataset = ws.import_training_data(project, frame)
    rows = []
    for name, params in configs.items():
        config = ws.create_configuration(project, name, params)
        bare, full = [], []
        for _ in range(repeat):
            X, _, _ = data.interaction_matrix(dataset.path)
            recommender = algorithms.build_recommender(name, X, config.params)
            started = time.perf_counter()
            recommender.learn()
            bare.append(time.perf_counter() - started)
            started = time.perf_counter()
            model = ws.train(config, dataset)
            full.append(time.perf_counter() - started)
            ws.delete_model(model.id)
        b, f = median(bare), median(full)
        rows.append({"algorithm": name, "bare learn s": b, "train() s": f, "overhead s": f - b,
                     "budget s": 0.1 * b + 0.5, "pass": f - b <= 0.1 * b + 0.5})
    return rows


def gemm_gflops(users: int, factors: int, items: int, repeat: int = 20) -> float:
    """Median float32 GEMM speed on the all-users scoring shape (blocks of 2048 users), GFLOP/s."""
    rng = np.random.default_rng(0)
    U = rng.standard_normal((min(users, 2048), factors), dtype=np.float32)
    V = rng.standard_normal((items, factors), dtype=np.float32)
    U @ V.T
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        U @ V.T
        times.append(time.perf_counter() - started)
    return 2 * U.shape[0] * factors * items / median(times) / 1e9


def bench_recommend(ws, project, frame: pd.DataFrame, n_single: int, params: dict, repeat: int) -> dict:
    dataset = ws.import_training_data(project, frame)
    config = ws.create_configuration(project, "IALS", params)
    model = ws.train(config, dataset)
    recommender = ws.load_model(model.id)
    rng = np.random.default_rng(0)
    users = recommender.user_ids[rng.integers(0, len(recommender.user_ids), n_single)]
    recommender.recommend(users[0])
    latencies = []
    for user in users:
        started = time.perf_counter()
        recommender.recommend(user, cutoff=10)
        latencies.append(time.perf_counter() - started)

    n_users = len(recommender.user_ids)
    mapper = IDMapper(list(recommender.user_ids), list(recommender.item_ids))
    all_users = list(recommender.user_ids)
    ours, theirs = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        batch = recommender.recommend_many(cutoff=10)
        ours.append(time.perf_counter() - started)
        assert len(batch) == 10 * n_users
        started = time.perf_counter()
        mapper.recommend_for_known_user_batch(recommender.recommender, all_users, cutoff=10)
        theirs.append(time.perf_counter() - started)
    ours_s, theirs_s = median(ours), median(theirs)
    ws.activate(model.id)
    exports = {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as out:
        for suffix in (".parquet", ".csv", ".duckdb"):
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                ws.export_recommendations(project, Path(out) / f"recs{suffix}", cutoff=10)
                seconds.append(time.perf_counter() - started)
            exports[suffix.lstrip(".")] = n_users / median(seconds)
    return {
        "users": n_users, "items": len(recommender.item_ids), "factors": params["n_components"],
        "single p50 ms": 1000 * float(np.percentile(latencies, 50)),
        "single p99 ms": 1000 * float(np.percentile(latencies, 99)),
        "all users s": ours_s, "users/s": n_users / ours_s,
        "irspack IDMapper users/s": n_users / theirs_s, "speed-up": theirs_s / ours_s,
        "gemm_gflops": gemm_gflops(n_users, params["n_components"], len(recommender.item_ids)),
        **{f"export {kind} users/s": rate for kind, rate in exports.items()},
    }


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    ws = wb.open(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    project = ws.create_project("bench", "user_id", "item_id")
    if args.smoke:
        train_frame, big, repeat, n_single = synthetic(300, 200, 10), synthetic(500, 300, 10), 1, 20
        configs = {"TopPop": None, "IALS": {"n_components": 8, "train_epochs": 2}}
        ials = {"n_components": 8, "train_epochs": 2}
    else:
        train_frame = ml100k() if ml100k() is not None else synthetic(943, 1682, 106)
        big, repeat, n_single = synthetic(70_000, 10_700, 20), args.repeat, 2000
        configs = {"TopPop": None, "IALS": None, "RP3beta": None, "CosineKNN": None,
                   "TruncatedSVD": None, "DenseSLIM": None}
        ials = {"n_components": 64, "train_epochs": 4}

    results = {
        "repeat": repeat,
        "train_overhead": bench_train_overhead(ws, project, train_frame, repeat, configs),
        "recommend": bench_recommend(ws, project, big, n_single, ials, repeat),
    }
    print("## train() overhead over bare irspack learn() (median of", repeat, "runs)\n")
    print(table(results["train_overhead"]))
    print(f"\n## Recommendations (IALS, top-10; all users: median of {repeat} runs)\n")
    print(table([results["recommend"]]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
