"""Headless retraining: new interactions in, a challenger gated against the model serving now.

    from workbench.retrain import retrain
    outcome = retrain(ws, "movies", new_data="ratings-2025-06.csv", mode="retrain", activate="if_better")
    outcome.statistics, outcome.comparison, outcome.segments, outcome.decision, outcome.reason, outcome.new_model

`run` orchestrates one run, `gate` decides on the newest interactions, `batch` imports the new
data, `journal` locks a project and undoes a failed run, `report` shows the outcome.
"""

from .gate import Holdout, Interval
from .journal import ProjectLock, RetrainBusyError, project_lock, undo_run
from .report import RetrainOutcome, comparison_svg
from .run import MODES, POLICIES, decide, retrain

__all__ = ["MODES", "POLICIES", "Holdout", "Interval", "ProjectLock", "RetrainBusyError", "RetrainOutcome",
           "comparison_svg", "decide", "project_lock", "retrain", "undo_run"]
