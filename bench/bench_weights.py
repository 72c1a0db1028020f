"""What interaction weights gain: MovieLens ratings and Last.fm play counts, on a test set no tuning saw.

    .venv/bin/python bench/bench_weights.py [--datasets ml-100k,lastfm-2k] [--trials 40] [--json F]
    .venv/bin/python bench/bench_weights.py --smoke      # synthetic weights, few trials: checks that it runs

Protocol (bench/protocol.py, as bench_tuning.py): one fixed test split per dataset (20% of the
interactions of every user with >= 5, numpy seed 2026); everything below sees only the rest,
imported with its weights (`weight_column`: the rating, or the play count). Arms, each in a fresh
workspace:
- tuned, binary: `tune` over the six algorithms of bench_tuning.py, `--trials` trials (the default:
  every configuration binary);
- tuned, weighted: the same with `search_weighting=True` (binary, log1p confidence, threshold);
- tuned IALS, binary / weighted: the same two, IALS alone, `--trials` / 2 trials (a weighting
  gets the trials it needs to be tuned with IALS's own parameters);
- fixed IALS (the default configuration) with each weighting: binary, log1p (alpha 1), and the
  threshold 4 (ratings) or the median play count (Last.fm): the weighting alone, no search noise.
Each final model's top-20 for the test users (training items excluded) is scored by
`protocol.evaluate` with binary relevance: every held-out interaction counts, whatever its weight.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import protocol  # noqa: E402

ALGORITHMS = ["IALS", "RP3beta", "CosineKNN", "TopPop", "TruncatedSVD", "DenseSLIM"]
VALIDATION = {"scheme": "random", "heldout_ratio": 0.1, "val_user_ratio": 1.0, "seed": 42}
WEIGHT_COLUMNS = {"u.data": "rating", "user_artists.dat": "weight"}  # each dataset's weight, by file name


def load_weighted(dataset: str):
    """user_id, item_id, weight of a dataset (the synthetic one: play counts drawn per row)."""
    import numpy as np
    import pandas as pd

    if dataset == "synthetic":
        frame = protocol.synthetic()[["user_id", "item_id"]].drop_duplicates(ignore_index=True)
        return frame.assign(weight=np.random.default_rng(0).geometric(0.2, len(frame)).astype(float))
    path = protocol.datasets().get(dataset)
    if path is None or path.name not in WEIGHT_COLUMNS:
        raise SystemExit(f"no weighted dataset {dataset!r} (known: {', '.join(WEIGHT_COLUMNS)} files in {protocol.SHARED})")
    frame = pd.read_csv(path, **protocol.INTERACTION_FILES[path.name])
    user, item = (next(c for c in names if c in frame.columns) for names in (protocol.USER_COLUMNS, protocol.ITEM_COLUMNS))
    frame = frame.rename(columns={user: "user_id", item: "item_id", WEIGHT_COLUMNS[path.name]: "weight"})
    return frame.groupby(["user_id", "item_id"], as_index=False, sort=False)["weight"].sum()


def arms(rest, trials: int) -> list[tuple[str, dict]]:
    threshold = 4.0 if rest["weight"].max() <= 5 else float(rest["weight"].median())
    return [
        ("tuned, binary", {"tune": {"n_trials": trials}}),
        ("tuned, weighted", {"tune": {"n_trials": trials, "search_weighting": True}}),
        ("tuned IALS, binary", {"tune": {"n_trials": trials // 2, "algorithms": ["IALS"]}}),
        ("tuned IALS, weighted", {"tune": {"n_trials": trials // 2, "algorithms": ["IALS"], "search_weighting": True}}),
        ("IALS, binary", {"train": {"weighting": "binary"}}),
        ("IALS, log1p", {"train": {"weighting": "log1p", "weighting_alpha": 1.0}}),
        (f"IALS, threshold {threshold:g}", {"train": {"weighting": "threshold", "weighting_threshold": threshold}}),
    ]


def run_arm(rest, test, arm: dict, work: Path) -> dict:
    import workbench as wb

    ws = wb.open(work)
    project = ws.create_project("bench", "user_id", "item_id")
    data = ws.import_training_data(project, rest, weight_column="weight")
    started = time.perf_counter()
    if "tune" in arm:
        tuning = ws.tune(data, **{"algorithms": ALGORITHMS, "metric": "ndcg", "cutoff": protocol.CUTOFF,
                                  "split": VALIDATION, **arm["tune"]})
        model_id, validation = tuning.model_id, tuning.best_score
        config = ws.configuration(tuning.best_configuration_id)
        weightings = tuning.trials["params"].map(lambda p: p.get("weighting")).value_counts().to_dict()
    else:
        config = ws.create_configuration(project, "IALS", arm["train"])
        model_id, validation, weightings = ws.train(config, data).id, None, None
    seconds = time.perf_counter() - started
    users = test["user_id"].drop_duplicates().tolist()
    recs = ws.load_model(model_id).recommend_many(users, cutoff=protocol.CUTOFF)
    scores = protocol.evaluate(recs, test[["user_id", "item_id"]], rest[["user_id", "item_id"]])
    chosen = {k: v for k, v in config.params.items() if k.startswith("weighting")}
    return {"algorithm": config.algorithm, "weighting": chosen, "validation_ndcg": validation, "seconds": seconds,
            "trial_weightings": weightings, **scores}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k,lastfm-2k")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="synthetic weights, 4 trials")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.datasets, args.trials = "synthetic", 4
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        for dataset in args.datasets.split(","):
            rest, test = protocol.split_test(load_weighted(dataset))
            for number, (name, arm) in enumerate(arms(rest, args.trials)):
                row = {"dataset": dataset, "arm": name, **run_arm(rest, test, arm, Path(tmp) / f"{dataset}-{number}")}
                rows.append(row)
                print(json.dumps(row, default=str), file=sys.stderr, flush=True)
    results = {"trials": args.trials, "validation": VALIDATION, "algorithms": ALGORITHMS, "rows": rows}
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return results


def table(results: dict) -> str:
    lines = [f"Test metrics @{protocol.CUTOFF} (binary relevance) of each arm's final model; tuned arms: "
             f"{results['trials']} trials.", "",
             "| dataset | arm | model | weighting | test nDCG | recall | hit | validation nDCG | seconds |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        weighting = describe(r["weighting"])
        validation = "-" if r["validation_ndcg"] is None else f"{r['validation_ndcg']:.4f}"
        lines.append(f"| {r['dataset']} | {r['arm']} | {r['algorithm']} | {weighting} | {r['ndcg@20']:.4f} "
                     f"| {r['recall@20']:.4f} | {r['hit@20']:.4f} | {validation} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def describe(params: dict) -> str:
    kind = params.get("weighting", "binary")
    if kind == "log1p":
        return f"log1p, alpha {params['weighting_alpha']:.3g}"
    return f"threshold {params['weighting_threshold']:.3g}" if kind == "threshold" else kind


if __name__ == "__main__":
    main(sys.argv[1:])
