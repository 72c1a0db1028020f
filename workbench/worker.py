"""Background processes of the workbench.

    python -m workbench.worker CATALOG JOB_ID
        runs one recorded job; `jobs.start_worker` starts it detached, so a training or tuning
        job outlives the notebook or dashboard kernel that asked for it. The job's kind says
        which module does the work.
    python -m workbench.worker --join-tuning CATALOG TUNING_ID N_TRIALS WORKER [STORAGE]
        adds N_TRIALS trials to a running tuning job's study (a tuning job with n_jobs > 1).
"""

from __future__ import annotations

import sys

from . import training, tuning
from .jobs import run_job
from .workspace import Workspace

HANDLERS = {"train": training.run_training_job, "tune": tuning.run_tuning_job}


def main(catalog_path: str, job_id: str) -> int:
    workspace = Workspace(catalog_path)
    try:
        run_job(workspace.catalog, int(job_id),
                lambda job, reporter: HANDLERS[job["kind"]](workspace, job, reporter))
    except BaseException:  # already recorded in the catalog by run_job
        return 1
    return 0


def join_tuning(catalog_path: str, tuning_id: str, n_trials: str, worker: str, storage: str = "") -> int:
    tuning.join_tuning_job(Workspace(catalog_path), int(tuning_id), int(n_trials), int(worker), storage or None)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--join-tuning"]:
        sys.exit(join_tuning(*sys.argv[2:]))
    sys.exit(main(*sys.argv[1:3]))
