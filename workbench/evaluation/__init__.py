"""Validation splits and offline metrics.

A :class:`Split` keeps the full user x item space of a snapshot: ``X_train`` has one row per
user (in the snapshot's user-code order) and one column per item, with the held-out interactions
removed; its values are the pairs' weights (a ``weight`` column's sums, else the number of
rows of the pair). Ground truth is binary. The held-out interactions of the *validation users* form ``X_val_ground_truth`` (one row
per validation user, in the order of ``val_user_indices``).

Schemes (:class:`SplitConfig`):

``"random"``
    A share ``val_user_ratio`` of the users that have at least two interactions become validation
    users; for each, ``max(1, floor(n_u * heldout_ratio))`` random interactions (never all of
    them) are held out. Same scheme as irspack's ``split_dataframe_partial_user_holdout`` (and
    Recotem's "random" split, which uses ``val_user_ratio=1.0``), with its own seeded RNG so the
    result depends only on the data, the configuration and the seed.
``"latest"``
    Validation users are drawn as for ``"random"``; each holds out its *latest*
    ``max(1, floor(n_u * heldout_ratio))`` interactions (needs times).
``"time"``
    A global cut: every interaction later than the ``time_quantile`` quantile of all interaction
    times is held out. Validation users are the users with held-out interactions *and* at least one
    training interaction (``val_user_ratio`` and ``heldout_ratio`` are ignored).

Duplicate (user, item) pairs are collapsed; a pair's time is its latest time.

Splits are deterministic and cached: the same data fingerprint and configuration always give the
same split (an in-process LRU returns the very same object; ``cache_dir`` adds an ``.npz`` cache on
disk). Treat the arrays of a split as read-only.
"""

from .beyond import METRIC_DEFINITIONS, beyond_accuracy, category_matrix
from .evaluator import ValidationEvaluator, evaluate, score_block_users
from .make import clear_split_cache, make_split
from .metrics import DEFAULT_METRICS, METRICS, TARGET_METRICS
from .split import SCHEMES, Split, SplitConfig

__all__ = [
    "SCHEMES",
    "METRICS",
    "DEFAULT_METRICS",
    "TARGET_METRICS",
    "SplitConfig",
    "Split",
    "ValidationEvaluator",
    "make_split",
    "evaluate",
    "score_block_users",
    "clear_split_cache",
    "METRIC_DEFINITIONS",
    "beyond_accuracy",
    "category_matrix",
]
