"""Hyper-parameter and algorithm search with Optuna (pure: no catalog, no processes).

One study holds every algorithm: a trial's first parameter is the categorical ``algorithm``,
followed by that algorithm's own parameters prefixed ``"<algorithm>."``.

Strategy ``"bandit"`` (default):

1. every portfolio algorithm's sensible defaults are enqueued first, plus a few measured
   known-good seeds (``EXTRA_SEEDS``), so the search starts from good points;
2. then each trial's algorithm is chosen by a seeded bandit (:func:`.bandit.choose_algorithm`): an
   algorithm's share falls e-fold per 10 % relative gap to the best score so far, with
   1/sqrt(1 + its trials per tuned dimension), and with the square root of how much longer than
   twice the typical algorithm's its trials take (Last.fm-2k: DenseSLIM's 8 s trials against
   about 1 s; 3 of 40 trials instead of 6, tuning and final training 72 s instead of 99 s, the
   same final model);
   parameter-less TopPop runs once;
3. the chosen algorithm's parameters are, half of the time, a Gaussian perturbation of its best
   configuration (local refinement, shrinking steps) and otherwise sampled by a seeded
   multivariate, grouped TPE sampler (which models each algorithm's parameters separately).

Strategy ``"tpe"``: same seeds, then TPE also picks the algorithm. Measured on ml-100k at 40
trials both reach the same best score (IALS, nDCG@10 0.633-0.636 on 20 % validation users / 50 %
held out; nDCG@20 0.3643 on Recotem's split), the bandit with 10-30 % less CPU because it stops
spending trials on far-behind algorithms.

Speed:

* the split and its evaluator are prepared once per search, never per trial; on large catalogues
  a trial is scored on a fixed sample of the validation users (``TRIAL_EVAL_MAX_CELLS``);
* iterative algorithms (IALS) validate after every epoch, keep their best epoch (early stopping,
  patience ``PATIENCE``), and are pruned by :class:`PerAlgorithmMedianPruner`, which compares a
  trial only with earlier trials *of the same algorithm*, and not before the sixth epoch (slow
  starters often end best); the best epoch count becomes the final ``train_epochs``;
* a configuration already evaluated in the study is not trained again (its score is reused);
* before each trial its seconds and peak memory are estimated from the data's shape and this
  machine's measured speed; a trial that does not fit the time left, the memory limit or the
  largest model file is skipped (state SKIPPED, with the reason and the estimate), and an
  algorithm whose cheapest configuration does not fit is left out (see :mod:`.budget`);
* fits go through each algorithm's ``fit_trial`` hook, which shares work between trials (one Gram
  matrix for DenseSLIM, one exact SVD for TruncatedSVD; see :mod:`workbench.algorithms.fits`).

Time limits (in-process, so a running C++ fit cannot be interrupted):

* ``timeout`` (whole search) is checked between trials *and* between epochs; an iterative trial
  reaching it stops and keeps its best epoch; a trial whose estimate says it would overrun the
  deadline is skipped, and the bandit only picks algorithms whose cheapest trial still fits.
* ``per_trial_timeout``: an iterative trial is stopped at the first epoch boundary past the limit
  and keeps its best epoch so far (state COMPLETE, user attribute ``stopped``); a non-iterative
  trial estimated to take longer is skipped, and one that took longer is marked FAIL (too slow).

Several processes can run ``run_search`` on one study: give the same ``storage`` (an Optuna
storage, a URL, or a file path, which means a journal file) and ``study_name``.
"""

from .budget import MEMORY_LIMIT_VARIABLE, TrialBudget, memory_limit
from .pruner import PerAlgorithmMedianPruner
from .run import STRATEGIES, run_search
from .seeds import EXTRA_SEEDS
from .study import (
    SKIPPED_ATTR,
    SKIPPED_STATE_ATTR,
    TRIAL_COLUMNS,
    SearchError,
    SearchResult,
    open_storage,
    study_result,
    study_trial_count,
    trial_row,
)
from .trial import EPOCH_EVAL_MAX_USERS, MAX_EPOCHS, PATIENCE, TRIAL_EVAL_MAX_CELLS

__all__ = [
    "run_search",
    "study_result",
    "study_trial_count",
    "trial_row",
    "SearchResult",
    "SearchError",
    "PerAlgorithmMedianPruner",
    "open_storage",
    "STRATEGIES",
    "SKIPPED_ATTR",
    "SKIPPED_STATE_ATTR",
    "TRIAL_COLUMNS",
    "MEMORY_LIMIT_VARIABLE",
    "TrialBudget",
    "memory_limit",
    "EXTRA_SEEDS",
    "MAX_EPOCHS",
    "PATIENCE",
    "EPOCH_EVAL_MAX_USERS",
    "TRIAL_EVAL_MAX_CELLS",
]
