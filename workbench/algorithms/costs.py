"""What a fit will cost, before it runs: seconds and peak memory from the data's shape, the
configuration and this machine's measured speed (:class:`Machine`). A search uses the estimates
to run what fits its time and memory budget and to say why it skips the rest.

Each registry entry's ``estimate(kw, shape, machine)`` hook returns an :class:`Estimate` for
irspack's keyword arguments ``kw`` (sizes already fitted to the data). Work is counted in a few
units the machine measures once per process (:func:`machine`): float32 matrix-product flops on
one thread, sparse multiply-adds on one thread, and bytes streamed through memory. Constants
(``COST``) were fitted to fits measured on ml-100k, lastfm-2k and synthetic logs up to 1M
interactions on a 2-core machine (``tests/test_costs.py`` holds estimates and measurements
within a factor of four of each other); a search also rescales an algorithm's estimates by how
its own finished trials compared with their estimates.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sps

from ..threads import default_n_threads

# Fitted constants: the share of a unit's measured rate a step reaches, or its work per element.
COST: dict[str, float] = {
    "fit_overhead_s": 0.003,  # building the recommender, Python around the fit
    "score_overhead_s": 2e-6,  # per user scored: the block's Python and copies
    "ials_rate": 0.07,  # share of threads x GEMM rate irspack's IALS epoch reaches
    "svd_rate": 0.2,  # share of the float64 (half the float32) GEMM rate of sklearn's randomized SVD
    # irspack's similarities (sparse-rate operations): a sparse product per chunk of rows, each
    # row's distinct candidates ranked for its top_k, then the kept entries written and converted
    "similarity_pair": 11.0,  # per co-occurring pair (with multiplicity: sum of n_u^2)
    "similarity_candidate": 29.0,  # per distinct candidate (at most rows^2)
    "similarity_cell": 1.5,  # per cell of rows x rows: irspack passes over a dense row per row (200k items: ~17 s)
    "similarity_kept": 190.0,  # per similarity kept (and its conversion to CSR for scoring)
    "sparse_product": 20.0,  # per multiply-add of a sparse x sparse product (scoring through a sparse W)
    # SLIM: coordinate descent, per pass, over the co-occurring pairs and a dense row per item
    "slim_pair": 7.0,
    "slim_cell": 19.0,
    "slim_passes": 10.0,  # passes SLIM typically needs (at most n_iter)
    "nmf_rate": 0.15,  # share of the float64 GEMM rate sklearn's NMF reaches
    "nmf_iterations": 100.0,  # iterations sklearn's NMF typically runs (at most max_iter=200)
    "cholesky_rate": 0.5,  # share of the GEMM rate of an in-place Cholesky inverse (n^3 flops)
    "rank_per_item": 16.0,  # bytes streamed per item and user when ranking a user's scores (irspack: ~7 ns an item)
}


@dataclass(frozen=True)
class DataShape:
    """What drives the cost of a fit: the matrix's size and how its interactions pair up."""

    n_users: int
    n_items: int
    nnz: int
    item_pairs: float  # sum over users of n_u^2: co-occurring item pairs (item-item similarities, X^T X)
    user_pairs: float  # sum over items of n_i^2: co-occurring user pairs (user-user similarities, X X^T)

    @classmethod
    def of(cls, X: Any) -> DataShape:
        X = sps.csr_matrix(X)
        per_user = np.diff(X.indptr).astype(np.float64)
        per_item = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        return cls(int(X.shape[0]), int(X.shape[1]), int(X.nnz), float(per_user @ per_user),
                   float(per_item @ per_item))

    @classmethod
    def uniform(cls, n_users: int, n_items: int, nnz: int) -> DataShape:
        """A shape without the matrix: interactions spread evenly."""
        u, i, z = max(int(n_users), 1), max(int(n_items), 1), int(nnz)
        return cls(int(n_users), int(n_items), z, z * z / u, z * z / i)


@dataclass(frozen=True)
class Machine:
    """This machine's measured speed (one thread) and the threads irspack's C++ parts use."""

    gemm_flops: float  # float32 matrix product, flop/s
    sparse_rate: float  # sparse x dense multiply-adds per second
    memory_rate: float  # bytes/s of a large copy
    threads: int

    def describe(self) -> str:
        return (f"{self.gemm_flops / 1e9:.0f} GFLOP/s float32 GEMM, {self.sparse_rate / 1e9:.2f} G sparse "
                f"multiply-adds/s, {self.memory_rate / 1e9:.1f} GB/s memory, {self.threads} threads")


@dataclass(frozen=True)
class Estimate:
    """A fit's expected cost. ``seconds`` = setup + epochs x epoch (iterative algorithms run
    epochs); ``peak_bytes`` is what the fit allocates beyond what the process already holds;
    ``model_bytes`` what the learnt model holds (about its file size); ``score_seconds`` the
    time to score one user over all items; ``driver`` names the dominant step."""

    setup_seconds: float
    peak_bytes: float
    model_bytes: float
    score_seconds: float
    driver: str = ""
    epoch_seconds: float = 0.0
    epochs: int = 0

    @property
    def seconds(self) -> float:
        return self.setup_seconds + self.epochs * self.epoch_seconds

    def describe(self) -> str:
        return f"~{_seconds(self.seconds)}, ~{_bytes(self.peak_bytes)} peak" + (f"; {self.driver}" if self.driver else "")


def _seconds(s: float) -> str:
    return f"{s:.2g} s" if s < 10 else f"{s:,.0f} s"


def _bytes(b: float) -> str:
    if b >= 1e8:
        return f"{b / 1e9:.2f} GB"
    return f"{b / 1e6:.0f} MB" if b >= 1e7 else f"{b / 1e6:.1f} MB"


def describe_bytes(b: float) -> str:
    return _bytes(b)


# ---- the machine ----------------------------------------------------------------------------------

_MEASURED: Machine | None = None


def machine() -> Machine:
    """This machine's speed, measured once per process (0.1-0.2 s)."""
    global _MEASURED
    if _MEASURED is None:
        _MEASURED = measure_machine()
    return _MEASURED


def measure_machine(repeat: int = 5) -> Machine:
    """Median rates of a 768-square float32 product, a sparse x dense product and a 32 MB copy,
    BLAS on one thread."""
    from ..threads import single_threaded_blas

    rng = np.random.default_rng(0)
    a = rng.random((768, 768), dtype=np.float32)
    # 20 random items in each of 20,000 rows (1% of 2,000 columns), built directly: scipy's sps.random draws
    # its cells without replacement from all 40M and takes seconds
    columns = np.sort(rng.integers(0, 2_000, size=(20_000, 20), dtype=np.int32), axis=1).ravel()
    X = sps.csr_matrix((rng.random(columns.size), columns, np.arange(0, columns.size + 1, 20)), shape=(20_000, 2_000))
    B = rng.random((2_000, 16))
    big = np.ones(4 << 20)
    copy = np.empty_like(big)

    def rate(work: float, run) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return work / max(statistics.median(times), 1e-9)

    with single_threaded_blas():
        a @ a  # warm up
        gemm = rate(2 * 768**3, lambda: a @ a)
    sparse = rate(X.nnz * B.shape[1], lambda: X @ B)
    memory = rate(2 * big.nbytes, lambda: np.copyto(copy, big))
    return Machine(gemm_flops=gemm, sparse_rate=sparse, memory_rate=memory, threads=default_n_threads())


# ---- estimates of each algorithm ------------------------------------------------------------------

F32, F64, IDX = 4, 8, 4


def csr_bytes(nnz: float, rows: float, value_bytes: int = F64) -> float:
    return nnz * (value_bytes + IDX) + (rows + 1) * IDX


def _gemm_seconds(flops: float, m: Machine, threads: int = 1, share: float = 1.0) -> float:
    return flops / (m.gemm_flops * threads * share)


def top_pop(kw: dict, s: DataShape, m: Machine) -> Estimate:
    return Estimate(COST["fit_overhead_s"] + s.nnz / m.sparse_rate, s.n_items * F64, s.n_items * F64,
                    s.n_items * F64 / m.memory_rate)


def ials(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """Per epoch, each side: conjugate-gradient steps over every interaction (k each) and the
    k x k Gramian products of every row."""
    k, steps = int(kw["n_components"]), int(kw.get("max_cg_steps", 3))
    if kw.get("solver_type") == "CHOLESKY":
        per_row = k**3 / 3 + 2 * k * k
    else:
        per_row = 2 * k * k * (steps + 1)
    flops = 4 * s.nnz * k * (steps + 2) + (s.n_users + s.n_items) * per_row
    epoch = _gemm_seconds(flops, m, m.threads, COST["ials_rate"])
    factors = (s.n_users + s.n_items) * k * F32
    matrix = 3 * csr_bytes(s.nnz, s.n_users, F32)  # a float32 copy, then irspack's CSR and CSC of it
    return Estimate(COST["fit_overhead_s"] + 2 * factors / m.memory_rate, matrix + 2 * factors,
                    factors + csr_bytes(s.nnz, s.n_users), _gemm_seconds(2 * k * s.n_items, m),
                    f"{s.nnz:,} interactions x {k} factors per epoch", epoch, int(kw.get("train_epochs", 1)))


def item_similarity(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """irspack's item-item similarities (KNN, RP3beta, P3alpha): every co-occurring pair of items,
    then the top_k of each item's candidates; W keeps top_k per item. irspack also passes over a
    dense row per item: quadratic in items, whatever the data's sparsity."""
    return _similarity(kw, s, m, s.n_items, s.item_pairs, s.nnz / max(s.n_users, 1), "item")


def user_similarity(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """User-user similarities: every co-occurring pair of users; scoring multiplies the user's
    neighbours' rows."""
    return _similarity(kw, s, m, s.n_users, s.user_pairs, s.nnz / max(s.n_users, 1), "user")


def _similarity(kw: dict, s: DataShape, m: Machine, rows: int, pairs: float, per_user: float, side: str) -> Estimate:
    top_k = rows if kw.get("top_k") is None else min(int(kw["top_k"]), rows)
    candidates = min(float(rows) * rows, pairs)
    kept = min(rows * float(top_k), candidates)
    work = (COST["similarity_pair"] * pairs + COST["similarity_candidate"] * candidates
            + COST["similarity_cell"] * float(rows) * rows + COST["similarity_kept"] * kept)
    W = csr_bytes(kept, rows) * 2  # the similarity, and its conversion to the stored format
    buffers = m.threads * 128 * rows * F64  # a dense chunk of rows per thread
    if side == "item":
        products = per_user * kept / max(rows, 1)
    else:
        products = min(top_k, kept / max(rows, 1)) * per_user
    score = (COST["sparse_product"] * products + s.n_items) / m.sparse_rate
    return Estimate(COST["fit_overhead_s"] + work / m.sparse_rate, W + buffers,
                    kept * (F64 + IDX) + csr_bytes(s.nnz, s.n_users), score,
                    f"{pairs:,.0f} co-occurring {side} pairs, top {top_k:,} of {rows:,} {side}s kept")


def dense_items(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """DenseSLIM / EDLAE as :mod:`.fits` computes them: through the users' side (fewer users than
    items) or a Cholesky inverse of the dense X^T X (whose memory a search keeps across trials)."""
    u, n = s.n_users, s.n_items
    W = float(n) * n * F32
    if u < n:
        seconds = (s.user_pairs / m.sparse_rate + _gemm_seconds(2 * u**3 / 3, m, share=0.5)
                   + s.nnz * u / m.sparse_rate + _gemm_seconds(2.0 * n * n * u, m) + 6 * W / m.memory_rate)
        peak = max(W + n * u * F32, n * u * (F64 + F32)) + 2 * u * u * F64 + csr_bytes(s.nnz, u)
        driver = f"W: {n:,} x {n:,} items ({_bytes(W)}) through {u:,} users"
    else:
        seconds = (3 * s.item_pairs / m.sparse_rate + _gemm_seconds(float(n) ** 3, m, share=COST["cholesky_rate"])
                   + 6 * W / m.memory_rate)
        peak = 2 * W + 2 * csr_bytes(s.nnz, n, F32) + W / 8  # X^T X (kept by a search), its inverse, blocks
        driver = f"inverts a dense {n:,} x {n:,} matrix ({_bytes(W)})"
    per_user = s.nnz / max(u, 1)
    return Estimate(COST["fit_overhead_s"] + seconds, peak, W + csr_bytes(s.nnz, u, F32),
                    per_user * n / m.sparse_rate, driver)


def slim(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """One elastic net per item by coordinate descent (a dense coefficient row per item)."""
    passes = min(COST["slim_passes"], float(kw.get("n_iter", 100)))
    work = passes * (COST["slim_pair"] * s.item_pairs + COST["slim_cell"] * float(s.n_items) * s.n_items)
    top_k = s.n_items if kw.get("top_k") is None else min(int(kw["top_k"]), s.n_items)
    kept = min(float(s.n_items) * top_k, s.item_pairs)
    per_user = s.nnz / max(s.n_users, 1)
    return Estimate(COST["fit_overhead_s"] + work / m.sparse_rate,
                    2 * csr_bytes(kept, s.n_items) + m.threads * s.n_items * 3 * F64,
                    kept * (F64 + IDX) + csr_bytes(s.nnz, s.n_users),
                    (COST["sparse_product"] * per_user * kept / max(s.n_items, 1) + s.n_items) / m.sparse_rate,
                    f"{s.n_items:,} elastic nets over {s.item_pairs:,.0f} co-occurring pairs")


def truncated_svd(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """sklearn's randomized SVD: 7 sparse passes over k + 10 columns and their QR factorisations."""
    k = int(kw["n_components"]) + 10
    work = 14 * s.nnz * k / m.sparse_rate + _gemm_seconds(14 * (s.n_users + s.n_items) * k * k, m,
                                                          share=COST["svd_rate"])
    factors = (s.n_users + s.n_items) * k * F64
    return Estimate(COST["fit_overhead_s"] + work, 4 * factors, factors + csr_bytes(s.nnz, s.n_users),
                    _gemm_seconds(4 * k * s.n_items, m), f"{k - 10} components of {s.nnz:,} interactions")


def nmf(kw: dict, s: DataShape, m: Machine) -> Estimate:
    """sklearn's coordinate-descent NMF, fitted twice by irspack."""
    k = int(kw["n_components"])
    per_iteration = 4 * s.nnz * k + 4 * (s.n_users + s.n_items) * k * k
    seconds = 2 * COST["nmf_iterations"] * _gemm_seconds(per_iteration, m, share=COST["nmf_rate"] / 2)
    factors = (s.n_users + s.n_items) * k * F64
    return Estimate(COST["fit_overhead_s"] + seconds, 3 * factors + 2 * csr_bytes(s.nnz, s.n_users),
                    2 * factors + csr_bytes(s.nnz, s.n_users), _gemm_seconds(4 * k * s.n_items, m),
                    f"{k} components, up to 200 iterations over {s.nnz:,} interactions, fitted twice")


def ranking_seconds(n_items: int, m: Machine) -> float:
    """Ranking one user's scores over all items (mask, top-k, metrics), and the block's overhead."""
    return COST["score_overhead_s"] + COST["rank_per_item"] * n_items * F64 / m.memory_rate
