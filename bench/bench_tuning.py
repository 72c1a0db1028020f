"""What a user gets from tuning: each system's final model scored on a test set no system saw.

    .venv/bin/python bench/bench_tuning.py                        # every dataset in ../shared/data, 3 systems
    .venv/bin/python bench/bench_tuning.py --datasets ml-100k --trials 40 --repeat 1
    .venv/bin/python bench/bench_tuning.py --smoke                # synthetic, workbench + irspack, seconds

Protocol (bench/protocol.py): one fixed test split per dataset (20% of the interactions of every
user with >= 5, numpy seed 2026). Each system gets only the rest, as a CSV (user_id,item_id),
and in its own process tunes on it: the six algorithms IALS, RP3beta, CosineKNN, TopPop,
TruncatedSVD, DenseSLIM, `--trials` trials, nDCG@20 on its own random validation split holding
out 10% of every user's interactions (seed 42); then it trains its best configuration on all of
the rest and writes its model file. That process is timed (wall and CPU seconds, peak memory of
its process tree). A second process loads the model file with the system's own reader and writes
the top-20 of every test user, training items excluded; `protocol.evaluate`, the one evaluator,
scores every system's lists: nDCG@20, recall@20, hit@20. Each system's best validation nDCG@20
is kept beside them, as such. Systems take turns, `--repeat` rounds.

- workbench: its public API only (`workbench_fit`, `workbench_recommend`: the adapter);
- irspack: per-class `tune` (irspack's optimizer) on `rowwise_train_test_split`, the trials
  shared among the six classes; the best class refit on the rest, pickled;
- Recotem 2.1: `recotem train` (in-process, through its CLI) from a recipe; its artifact read by
  `recotem.artifact.io.read_artifact` under its default cap (512 MiB, as `recotem serve`); a
  refusal is recorded, and the same reader is then asked again with the cap at Recotem's maximum
  (16 GiB, as RECOTEM_MAX_PAYLOAD_BYTES would set it). The top-20 come from the irspack IDMapper
  that Recotem's served model wraps, in its batch form. Recotem needs Python 3.12, in
  bench/.venv-recotem (ignored by git):
  `python3.12 -m venv bench/.venv-recotem && bench/.venv-recotem/bin/pip install recotem==2.1.0`;
  it is skipped when absent.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import protocol  # noqa: E402  (standard library only at import: Recotem's Python imports it too)

RECOTEM_PYTHON = HERE / ".venv-recotem" / "bin" / "python"
ALGORITHMS = ["IALS", "RP3beta", "CosineKNN", "TopPop", "TruncatedSVD", "DenseSLIM"]
VALIDATION = {"scheme": "random", "heldout_ratio": 0.1, "val_user_ratio": 1.0, "seed": 42}
CUTOFF = protocol.CUTOFF
RECOTEM_MAX_CAP = 16 * 2**30  # the largest RECOTEM_MAX_PAYLOAD_BYTES Recotem accepts


# --- the workbench's adapter: the only code here that calls its API ---------------------------

def workbench_fit(rest_csv: Path, work: Path, trials: int) -> dict:
    import workbench as wb

    ws = wb.open(work / "workbench")
    data = ws.import_training_data(ws.create_project("bench", "user_id", "item_id"), rest_csv)
    tuning = ws.tune(data, algorithms=ALGORITHMS, n_trials=trials, metric="ndcg", cutoff=CUTOFF, split=VALIDATION)
    tried = tuning.trials
    return {"validation_ndcg": tuning.best_score, "algorithm": tuning.best_algorithm,
            "params": tried.loc[tried["score"].idxmax(), "params"],
            "trials": tried["algorithm"].value_counts().to_dict(), "model": tuning.model_id}


def workbench_recommend(work: Path, model, users: list):
    import workbench as wb

    return wb.open(work / "workbench").load_model(model).recommend_many(users, cutoff=CUTOFF)


# --- irspack: per-class tune ------------------------------------------------------------------

def irspack_fit(rest_csv: Path, work: Path, trials: int) -> dict:
    import irspack
    import pandas as pd
    from irspack.split import rowwise_train_test_split

    X, user_ids, item_ids = irspack.df_to_sparse(pd.read_csv(rest_csv), "user_id", "item_id")
    X.data[:] = 1.0
    X_train, X_val = rowwise_train_test_split(X, test_ratio=VALIDATION["heldout_ratio"],
                                              random_state=VALIDATION["seed"])
    evaluator = irspack.Evaluator(X_val, cutoff=CUTOFF, target_metric="ndcg")
    shares = [trials // len(ALGORITHMS) + (i < trials % len(ALGORITHMS)) for i in range(len(ALGORITHMS))]
    best = (-1.0, None, None)
    for name, n in zip(ALGORITHMS, shares):
        if n == 0:
            continue
        params, history = irspack.get_recommender_class(f"{name}Recommender").tune(
            X_train, evaluator, n_trials=n, tuning_random_seed=0)
        score = float(-history["value"].min())
        if score > best[0]:
            best = (score, name, params)
    recommender = irspack.get_recommender_class(f"{best[1]}Recommender")(X, **best[2])
    recommender.learn()
    model = work / "irspack.pkl"
    model.write_bytes(pickle.dumps({"recommender": recommender, "user_ids": list(user_ids),
                                    "item_ids": list(item_ids)}, protocol=pickle.HIGHEST_PROTOCOL))
    return {"validation_ndcg": best[0], "algorithm": best[1], "params": best[2],
            "trials": {name: n for name, n in zip(ALGORITHMS, shares) if n}, "model": str(model)}


def irspack_recommend(work: Path, model, users: list):
    import pandas as pd
    from irspack import IDMapper

    saved = pickle.loads(Path(model).read_bytes())
    lists = IDMapper(saved["user_ids"], saved["item_ids"]).recommend_for_known_user_batch(
        saved["recommender"], users, cutoff=CUTOFF)
    return pd.DataFrame([(user, item, rank) for user, ranked in zip(users, lists)
                         for rank, (item, _) in enumerate(ranked)], columns=["user_id", "item_id", "rank"])


# --- Recotem 2.1 (runs in bench/.venv-recotem) -------------------------------------------------

def recotem_fit(rest_csv: Path, work: Path, trials: int) -> dict:
    from recotem.cli import app

    recipe = work / "recipe.yaml"
    recipe.write_text(
        "name: bench\n"
        f"source: {{type: csv, path: {rest_csv}}}\n"
        "schema: {user_column: user_id, item_column: item_id}\n"
        f"training:\n  algorithms: {ALGORITHMS}\n  metric: ndcg\n  cutoff: {CUTOFF}\n  n_trials: {trials}\n"
        f"  split: {{scheme: random, heldout_ratio: {VALIDATION['heldout_ratio']}, seed: {VALIDATION['seed']}}}\n"
        f"output: {{path: {work / 'bench.recotem'}}}\n"
    )
    try:
        code = app(["train", "--no-lock", str(recipe)], standalone_mode=False)
    except SystemExit as exit_:
        code = exit_.code
    if code:
        raise SystemExit(f"recotem train exited with {code}")
    return {}  # the parent reads the rest from Recotem's train_done log event


def recotem_recommend(work: Path, model, users: list):
    import pandas as pd
    from irspack import IDMapper
    from recotem.artifact.format import ArtifactError
    from recotem.artifact.io import read_artifact
    from recotem.artifact.signing import KeyRing, unpickle_payload
    from recotem.config import get_max_payload_bytes

    ring = KeyRing(os.environ["RECOTEM_SIGNING_KEYS"])
    try:
        header, payload = read_artifact(model, ring, max_bytes=get_max_payload_bytes())
        refused = None
    except ArtifactError as error:
        refused = str(error)
        header, payload = read_artifact(model, ring, max_bytes=RECOTEM_MAX_CAP)
    chosen = json.loads(header.header_data)
    print("LOADER " + json.dumps({"refused": refused, "payload_mb": len(payload) / 2**20, "params": chosen.get("best_params"),
                                  "tried": chosen.get("tuning", {}).get("tried_algorithms")}))
    served = unpickle_payload(payload)  # recotem's IDMappedRecommender
    # Its per-user call is IDMapper.recommend_for_known_user_id; the batch form gives the same lists
    # in one pass (per user, a DenseSLIM model copies its whole weight matrix: ~40 s a user on lastfm-2k).
    lists = IDMapper(served.user_ids, served.item_ids).recommend_for_known_user_batch(
        served.recommender, [str(user) for user in users], cutoff=CUTOFF)
    return pd.DataFrame([(user, item, rank) for user, ranked in zip(users, lists) for rank, (item, _) in enumerate(ranked)],
                        columns=["user_id", "item_id", "rank"])


SYSTEMS = {"workbench": (workbench_fit, workbench_recommend), "irspack": (irspack_fit, irspack_recommend),
           "recotem": (recotem_fit, recotem_recommend)}


# --- the two processes of each run -------------------------------------------------------------

def child(system: str, step: str, work: Path, trials: int, model: str | None) -> None:
    """The body of a child process: fit (timed by the parent) or recommend (then scored)."""
    fit, recommend = SYSTEMS[system]
    if step == "fit":
        print("RESULT " + json.dumps(fit(work.parent / "rest.csv", work, trials), default=str), flush=True)
    else:
        import pandas as pd

        users = pd.read_csv(work.parent / "test_users.csv")["user_id"].tolist()
        recs = recommend(work, json.loads(model), users)
        recs[["user_id", "item_id", "rank"]].to_csv(work / "recommendations.csv", index=False)
    protocol.report_peak()


def interpreter(system: str) -> tuple[str, dict]:
    """The Python a system runs in and its environment: Recotem's venv without our PYTHONPATH, the
    others this Python with the repository on it."""
    if system == "recotem":
        return str(RECOTEM_PYTHON), {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return sys.executable, dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))


def run_child(system: str, step: str, work: Path, trials: int, model=None) -> dict:
    python, env = interpreter(system)
    command = [python, __file__, "--child", system, step, str(work), "--trials", str(trials)]
    if system == "recotem":
        env.update(RECOTEM_SIGNING_KEYS=(work.parent / "recotem.key").read_text(), RECOTEM_LOG_FORMAT="json",
                   RECOTEM_LOCK_DIR=str(work))
    if model is not None:
        command += ["--model", json.dumps(model)]
    measured = protocol.measure(command, env=env)
    stdout, stderr = measured.pop("stdout"), measured.pop("stderr")
    if measured["returncode"] != 0:
        raise SystemExit(f"{system} {step} in {work} failed:\n{stderr[-3000:]}")
    if system == "recotem" and step == "fit":
        done = [json.loads(line) for line in (stdout + "\n" + stderr).splitlines()
                if line.startswith("{") and '"train_done"' in line]
        if not done:
            raise SystemExit(f"Recotem wrote no train_done event:\n{stderr[-3000:]}")
        return {**measured, "validation_ndcg": done[-1]["best_score"],
                "algorithm": done[-1]["best_class"].removesuffix("Recommender"),
                "trials": {"total": done[-1]["trials"]}, "model": done[-1]["artifact"]}
    found = {tag: json.loads(m.group(1)) for tag, m in
             ((tag, re.search(rf"{tag} (\{{.*\}})$", stdout, re.M)) for tag in ("RESULT", "LOADER")) if m}
    return {**measured, **found.get("RESULT", {}), **({"loader": found["LOADER"]} if "LOADER" in found else {})}


FLOOR_IMPORTS = {"irspack": "import irspack", "workbench": "import workbench.workspace"}


def measure_floors(systems: list[str], repeat: int = 3) -> dict:
    """What a process pays before it reads any data: medians of `repeat` fresh processes importing
    irspack (every system trains with it), in each system's Python, and the workbench's own imports.
    {system: {what: {"wall_s", "peak_mb"}}}."""
    floors = {}
    for system in systems:
        python, env = interpreter(system)
        wanted = ["irspack", "workbench"] if system == "workbench" else ["irspack"]
        floors[system] = {}
        for what in wanted:
            code = f"import sys; sys.path.insert(0, {str(HERE)!r}); {FLOOR_IMPORTS[what]}; import protocol; protocol.report_peak()"
            runs = [protocol.measure([python, "-c", code], env=env) for _ in range(repeat)]
            failed = [r for r in runs if r["returncode"] != 0]
            if failed:
                raise SystemExit(f"{system}: {FLOOR_IMPORTS[what]} failed:\n{failed[0]['stderr'][-2000:]}")
            floors[system][what] = {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "peak_mb")}
    return floors


def run_system(system: str, dataset_dir: Path, trials: int, rest, test) -> dict:
    """One run of one system on one dataset: fit (timed), recommend from its model file, score."""
    import pandas as pd

    work = Path(tempfile.mkdtemp(dir=dataset_dir, prefix=f"{system}-"))
    fit = run_child(system, "fit", work, trials)
    row = {k: fit.get(k) for k in ("wall_s", "cpu_s", "peak_mb", "processes", "validation_ndcg", "algorithm", "params",
                                   "trials")}
    try:
        scored = run_child(system, "recommend", work, trials, model=fit["model"])
        loader = scored.get("loader", {})
        row["params"] = row["params"] or loader.pop("params", None)  # Recotem's, from its artifact's header
    except SystemExit as error:  # its own reader refused (or crashed on) its model file: nothing to score
        return {**row, "model_loaded": False, "loader": {"refused": str(error)[-1000:]}}
    metrics = protocol.evaluate(pd.read_csv(work / "recommendations.csv"), test, rest)
    return {**row, **metrics, "model_loaded": not loader.get("refused"), "loader": loader,
            "recommend_wall_s": scored["wall_s"], "model_file_mb": _size_mb(work)}


def _size_mb(work: Path) -> float | None:
    """Size of the model file the system wrote (the largest file of its work folder)."""
    files = [p for p in work.rglob("*") if p.is_file() and p.suffix in (".wbm", ".pkl", ".recotem")]
    return max((p.stat().st_size for p in files), default=0) / 2**20 or None


# --- the run -----------------------------------------------------------------------------------

METRICS = ("ndcg@20", "recall@20", "hit@20", "validation_ndcg", "wall_s", "cpu_s", "peak_mb", "model_file_mb")


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (dataset, system): medians over its runs, and every run's test nDCG@20."""
    rows = []
    for key in dict.fromkeys((r["dataset"], r["system"]) for r in runs):
        mine = [r for r in runs if (r["dataset"], r["system"]) == key]
        rows.append({"dataset": key[0], "system": key[1], "runs": len(mine),
                     **{k: _median(r.get(k) for r in mine) for k in METRICS},
                     "test_ndcg_runs": [r.get("ndcg@20") for r in mine], "walls": [r["wall_s"] for r in mine],
                     "algorithms": [r["algorithm"] for r in mine], "params": mine[-1].get("params"),
                     "models_loaded": sum(r["model_loaded"] for r in mine),
                     "refusals": [r["loader"]["refused"] for r in mine if r["loader"].get("refused")]})
    return rows


def _median(values) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def print_table(rows: list[dict]) -> None:
    print("\n| dataset | system | test nDCG@20 | recall@20 | hit@20 | validation nDCG@20 (own split) | wall s "
          "| CPU s | peak MB | algorithm | model file MB, loaded |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.4f}" if r[k] is not None else "-" for k in ("ndcg@20", "recall@20", "hit@20", "validation_ndcg")]
        print(f"| {r['dataset']} | {r['system']} | {' | '.join(cells)} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
              f"| {r['peak_mb']:.0f} | {', '.join(dict.fromkeys(r['algorithms']))} "
              f"| {r['model_file_mb'] or 0:,.1f}, {r['models_loaded']}/{r['runs']} |")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="all", help="comma-separated folder names of ../shared/data, or all")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--systems", default="workbench,irspack,recotem")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all systems (medians are reported)")
    parser.add_argument("--smoke", action="store_true", help="synthetic data, 6 trials, no Recotem, one round")
    parser.add_argument("--work", type=Path, help="keep the runs' files here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("SYSTEM", "STEP", "WORK"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]), args.trials, args.model)
        return {}
    if args.smoke:
        args.datasets, args.trials, args.systems, args.repeat = "synthetic", 6, "workbench,irspack", 1
    names = list(protocol.datasets()) if args.datasets == "all" else args.datasets.split(",")
    systems = args.systems.split(",")
    if "recotem" in systems and not RECOTEM_PYTHON.exists():
        print(f"skipping Recotem: {RECOTEM_PYTHON} is absent (see the docstring)", flush=True)
        systems.remove("recotem")

    floors = measure_floors(systems)
    print(f"floors: {json.dumps(floors)}", flush=True)
    runs, splits = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-tuning-", dir=args.work) as tmp:
        for dataset in names:
            rest, test = protocol.split_test(protocol.load_interactions(dataset))
            dataset_dir = Path(tmp) / dataset
            dataset_dir.mkdir()
            rest.to_csv(dataset_dir / "rest.csv", index=False)
            test[["user_id"]].drop_duplicates().to_csv(dataset_dir / "test_users.csv", index=False)
            (dataset_dir / "recotem.key").write_text(f"bench:{secrets.token_hex(32)}")
            splits[dataset] = {"rest": len(rest), "test": len(test), "test_users": int(test["user_id"].nunique()),
                               "users": int(rest["user_id"].nunique()), "items": int(rest["item_id"].nunique())}
            print(f"{dataset}: {json.dumps(splits[dataset])}", flush=True)
            for _ in range(args.repeat):  # the systems take turns, so that load drifts hit them alike
                for system in systems:
                    runs.append({"dataset": dataset, "system": system,
                                 **run_system(system, dataset_dir, args.trials, rest, test)})
                    print(json.dumps(runs[-1]), flush=True)
    rows = summarize(runs)
    print(f"\nmedians of {args.repeat} round(s), {args.trials} trials")
    print_table(rows)
    results = {"repeat": args.repeat, "trials": args.trials, "splits": splits, "rows": rows, "runs": runs, "floors": floors,
               "protocol": {"test_ratio": protocol.TEST_RATIO, "test_min_interactions": protocol.TEST_MIN_INTERACTIONS,
                            "test_seed": protocol.TEST_SEED, "validation": VALIDATION, "algorithms": ALGORITHMS,
                            "cutoff": CUTOFF}}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
