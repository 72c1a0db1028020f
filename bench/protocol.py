"""The tuning benchmark's protocol: datasets, one fixed test split, one evaluator, process measurement.

Every system in bench_tuning.py gets the same `rest` of a dataset (the test split removed), tunes
and trains on it alone, and hands back its final model's top-20 for the test users; `evaluate`
scores every system's lists the same way. Nothing here imports a system under test, and the
module level needs only the standard library: Recotem's own Python (3.12, bench/.venv-recotem)
imports it for `report_peak`.

Datasets: every folder of ../shared/data holding one of INTERACTION_FILES (the first found wins),
named after the folder; `synthetic` is the small generated log of the smoke run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CUTOFF = 20
TEST_RATIO, TEST_MIN_INTERACTIONS, TEST_SEED = 0.2, 5, 2026
# file name -> pandas.read_csv options (None: Parquet); a folder's first match is its interaction log
INTERACTION_FILES = {
    "u.data": dict(sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"]),  # MovieLens 100K
    "user_artists.dat": dict(sep="\t"),  # Last.fm 2K: userID artistID weight
    "ratings.dat": dict(sep="::", engine="python", header=None, names=["user_id", "item_id", "rating", "timestamp"]),
    "ratings.csv": {},  # MovieLens latest: userId,movieId,rating,timestamp
    "interactions.csv": {},
    "interactions.tsv": dict(sep="\t"),
    "interactions.parquet": None,
}
USER_COLUMNS = ("user_id", "userId", "userID", "user")
ITEM_COLUMNS = ("item_id", "itemId", "movieId", "artistID", "artist_id", "item")
PEAK_MARK = "PEAK_KB "


# --- datasets --------------------------------------------------------------------------------

def datasets(root: Path = SHARED) -> dict[str, Path]:
    """Folder name -> interaction file, for every folder of `root` holding a recognised file."""
    found = {}
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        file = next((folder / name for name in INTERACTION_FILES if (folder / name).is_file()), None)
        if file is not None:
            found[folder.name] = file
    return found


def load_interactions(dataset: str, root: Path = SHARED):
    """The dataset's distinct (user_id, item_id) pairs, in file order (binary relevance)."""
    import pandas as pd

    if dataset == "synthetic":
        frame = synthetic()
    else:
        path = datasets(root).get(dataset)
        if path is None:
            raise SystemExit(f"no dataset {dataset!r} in {root} (known: {', '.join(datasets(root)) or 'none'})")
        options = INTERACTION_FILES[path.name]
        frame = pd.read_parquet(path) if options is None else pd.read_csv(path, **options)
        frame = frame.rename(columns={_column(frame, USER_COLUMNS, path): "user_id",
                                      _column(frame, ITEM_COLUMNS, path): "item_id"})
    return frame[["user_id", "item_id"]].drop_duplicates(ignore_index=True)


def _column(frame, names: tuple[str, ...], path: Path) -> str:
    column = next((name for name in names if name in frame.columns), None)
    if column is None:
        raise SystemExit(f"{path}: none of the columns {', '.join(names)} (found {', '.join(map(str, frame.columns))})")
    return column


def synthetic():
    """A small log with structure to learn (the workbench's demo generator: taste clusters, long tail)."""
    from workbench.demo import generate_demo

    return generate_demo(seed=0, n_users=400, n_items=300)[0]


# --- the test split --------------------------------------------------------------------------

def split_test(frame, ratio: float = TEST_RATIO, min_interactions: int = TEST_MIN_INTERACTIONS,
               seed: int = TEST_SEED):
    """(rest, test): floor(ratio x n) random interactions of every user with n >= min_interactions
    go to test (numpy default_rng(seed) over the rows in file order); no system ever sees them."""
    import numpy as np

    counts = frame.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    keys = np.random.default_rng(seed).random(len(frame))
    order = frame.assign(_key=keys).groupby("user_id", sort=False)["_key"].rank(method="first").to_numpy() - 1
    in_test = (counts >= min_interactions) & (order < np.floor(ratio * counts))
    return frame[~in_test].reset_index(drop=True), frame[in_test].reset_index(drop=True)


# --- the one evaluator -----------------------------------------------------------------------

def evaluate(recommendations, test, rest, cutoff: int = CUTOFF) -> dict:
    """nDCG, recall and hit at `cutoff` of ranked lists (user_id, item_id, rank) against `test`.

    irspack's `evaluate_recommendation_df` (the metrics of its Evaluator; binary relevance) over
    the first `cutoff` items of each list. Ids compare as text (Recotem's are). A test user
    without a list scores 0 (irspack would leave them out); items of the user's training data
    in a list count as misses and are reported.
    """
    from irspack.evaluation.evaluate_df_to_df import evaluate_recommendation_df

    recs = recommendations.sort_values(["user_id", "rank"], kind="stable").astype({"user_id": str, "item_id": str})
    recs = recs.groupby("user_id", sort=False).head(cutoff)[["user_id", "item_id"]]
    truth = test.astype(str)
    seen = recs.merge(rest.astype(str), on=["user_id", "item_id"]).shape[0]
    n_users = truth["user_id"].nunique()
    covered = truth["user_id"][truth["user_id"].isin(recs["user_id"])].nunique()
    scores = evaluate_recommendation_df(recs, truth, "user_id", "item_id") if covered else {}
    share = covered / n_users
    return {f"{metric}@{cutoff}": scores.get(metric, 0.0) * share for metric in ("ndcg", "recall", "hit")} | {
        "test_users": n_users, "users_without_list": n_users - covered, "seen_items_recommended": seen}


# --- measuring a process tree ----------------------------------------------------------------

def report_peak() -> None:
    """Print this process's peak resident set (VmHWM) for `measure`; call it last."""
    print(f"{PEAK_MARK}{_vmhwm_kb('self') or 0}", flush=True)


def _vmhwm_kb(pid) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def measure(command: list[str], env: dict | None = None, poll_s: float = 0.1) -> dict:
    """Run `command`: wall seconds, CPU seconds (it and the descendants it waited for, from wait4),
    peak MB of its process tree, and its output.

    Peak MB is the sum of the VmHWM of every process of the tree: the root's as it reports it at
    exit (`report_peak`, else as last sampled), its descendants' as sampled every `poll_s`. A tree
    of one process, as every system here is, gives its exact VmHWM.
    """
    peaks: dict[int, int] = {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(poll_s):
                for pid in [process.pid, *_descendants(process.pid)]:
                    peaks[pid] = max(peaks.get(pid, 0), _vmhwm_kb(pid) or 0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    reported = [int(line[len(PEAK_MARK):]) for line in stdout.splitlines() if line.startswith(PEAK_MARK)]
    if reported:
        peaks[process.pid] = max(peaks.get(process.pid, 0), reported[-1])
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": sum(peaks.values()) / 1024,
            "processes": len(peaks), "returncode": process.returncode, "stdout": stdout, "stderr": stderr}
