"""Cost estimates against measured fits on this machine (generous factors: no wall-clock thresholds)."""

from __future__ import annotations

import contextlib
import io
import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sps

from workbench import algorithms as A
from workbench.threads import single_threaded_blas

FACTOR = 6.0  # estimate and measurement agree within this factor either way


def long_tail(n_users, n_items, nnz, seed=0):
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users = rng.integers(0, n_users, nnz)
    items = rng.choice(n_items, nnz, p=popularity / popularity.sum())
    X = sps.csr_matrix((np.ones(nnz), (users, items)), shape=(n_users, n_items))
    X.data[:] = 1.0
    return X


def fit_seconds(name, X, params):
    """The best of two fits, BLAS on one thread as in a search."""
    times = []
    for _ in range(2):
        rec = A.build_recommender(name, X, params)
        with single_threaded_blas(), contextlib.redirect_stderr(io.StringIO()):
            started = time.perf_counter()
            A.learn(rec) if not A.get_algorithm(name).iterative else rec.learn()
            times.append(time.perf_counter() - started)
    return min(times)


CASES = [
    ("DenseSLIM", {}, (800, 3000, 60_000)),  # through the users' side
    ("DenseSLIM", {}, (4000, 1500, 80_000)),  # an inverse of X^T X
    ("IALS", {"n_components": 64, "train_epochs": 6}, (5000, 2000, 150_000)),
    ("RP3beta", {"top_k": 200}, (3000, 2000, 100_000)),
    ("CosineKNN", {}, (3000, 2000, 100_000)),
    ("TruncatedSVD", {"n_components": 48}, (5000, 2000, 150_000)),
]


@pytest.mark.parametrize("name,params,shape", CASES, ids=[f"{c[0]}-{c[2][0]}x{c[2][1]}" for c in CASES])
def test_estimated_seconds_agree_with_measured_fits(name, params, shape):
    X = long_tail(*shape)
    speed = A.costs.measure_machine()  # now, under whatever load the fit meets too
    estimate = A.estimate_cost(name, params, A.DataShape.of(X), speed)
    measured = fit_seconds(name, X, params)
    assert 1 / FACTOR <= measured / estimate.seconds <= FACTOR, (measured, estimate.describe())


@pytest.mark.parametrize("shape", [(800, 3000, 60_000), (4000, 1500, 80_000)])
def test_estimated_peak_memory_of_dense_item_fits_agrees_with_their_allocations(shape):
    X = long_tail(*shape)
    estimate = A.estimate_cost("DenseSLIM", {}, A.DataShape.of(X), A.machine())
    cache = A.FitCache(X)  # a search's trial: X^T X kept between trials on the items' side
    rec = A.build_recommender("DenseSLIM", X)
    tracemalloc.start()
    A.get_algorithm("DenseSLIM").fit_trial(rec, cache)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0.7 <= peak / estimate.peak_bytes <= 1.3, (peak, estimate.peak_bytes)
    assert rec.W.nbytes <= estimate.model_bytes


def test_the_machine_is_measured_once_per_process(monkeypatch):
    monkeypatch.setattr(A.costs, "_MEASURED", None)
    first = A.machine()
    assert first.gemm_flops > 1e8 and first.sparse_rate > 1e6 and first.memory_rate > 1e7 and first.threads >= 1
    monkeypatch.setattr(A.costs, "measure_machine", lambda: pytest.fail("measured again"))
    assert A.machine() is first
