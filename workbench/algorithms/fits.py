"""Fits that share work between tuning trials, and lean fits of the dense item-item models. The only
place that sets a learnt irspack model's state directly.

* DenseSLIM (EASE) and EDLAE: W = -P / diag(P) with a zero diagonal, P = (X^T X + diag(lam))^-1
  (DenseSLIM: lam = reg; EDLAE: lam_i = reg + p / (1 - p) (X^T X)_ii), irspack's formula and
  weights (float32, within 1e-4 of irspack's), computed one of two ways:

  - with fewer users than items, through the users' side (Woodbury): with Y = X lam^-1/2 and
    K = Y Y^T + I = R R^T, P = lam^-1/2 (I - A A^T) lam^-1/2 where A = Y^T R^-T (items x users).
    Time: one float32 product of 2 x n_items^2 x n_users flops, no n_items^3 inverse; memory: W
    itself and A. ml-latest-small's shape (610 x 9,724): about 1 s against 10-20 s for the inverse;
    lastfm-2k (1,892 x 17,632): 9 s against irspack's 90-116 s;
  - otherwise through the items' side: X^T X is built densely in blocks of items (never as a
    sparse product of up to n_items^2 entries), then inverted in place as symmetric positive
    definite. Tuning trials keep X^T X and invert a copy.

  irspack's own fit holds a sparse X^T X and a dense copy at once and inverts a general matrix.
* TruncatedSVD with many components, when the matrix has at most 2,048 users or items: the
  exact SVD is computed once (from the eigendecomposition of the smaller Gram matrix; ml-100k:
  0.14 s, against 0.4-0.8 s for one randomized fit of 400-500 components) and each trial
  takes its top ``n_components``. irspack's randomized SVD approximates the same factors: the
  scores agree within 0.003 nDCG@20 on ml-100k and lastfm-2k.

Every other algorithm is fitted by irspack's own ``learn()``; final models of DenseSLIM and EDLAE
use the lean fit (:func:`learn_dense_items`), every other final model irspack's ``learn()``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sps

EXACT_SVD_FROM = 64  # fewer components: irspack's randomized SVD is cheaper than the exact one
EXACT_SVD_MAX_SIDE = 2048  # the eigendecomposition of a 2,048-square Gram matrix takes about 1 s


class FitCache:
    """What the trial fits on one training matrix share, computed on first use. With ``keep=False``
    (one final fit) nothing is kept, and fits may work in place on what they get."""

    def __init__(self, X: Any, keep: bool = True) -> None:
        self.X = X
        self.keep = keep
        self._values: dict[str, Any] = {}

    def get(self, key: str, compute: Callable[[Any], Any]) -> Any:
        if not self.keep:
            return compute(self.X)
        if key not in self._values:
            self._values[key] = compute(self.X)
        return self._values[key]

    def __contains__(self, key: str) -> bool:
        return key in self._values


def learn(recommender: Any, cache: FitCache | None = None) -> None:
    """irspack's own fit."""
    recommender.learn()


def fit_dense_items(recommender: Any, cache: FitCache) -> None:
    """DenseSLIM's or EDLAE's weights (see the module docstring), for a trial or a final model."""
    X = cache.X
    n_users, n_items = X.shape
    lam = dense_items_regularisation(recommender, X)
    if n_users < n_items:
        recommender._W = _weights_by_users(X, lam)
        return
    P = cache.get("gram", gram)
    if cache.keep:
        P = P.copy()
    P[np.diag_indices(n_items)] += lam.astype(np.float32)
    P = _inverse_positive_definite(P)
    P *= (-1.0 / np.diag(P)).astype(np.float32)[np.newaxis, :]
    P[np.diag_indices(n_items)] = 0
    recommender._W = P


def learn_dense_items(recommender: Any) -> None:
    """A final DenseSLIM or EDLAE fit: the lean fit, its training matrix kept in float32 so that
    scoring ``X[users] @ W`` never converts W (n_items^2 cells) to float64."""
    fit_dense_items(recommender, FitCache(recommender.X_train_all, keep=False))
    recommender.X_train_all = recommender.X_train_all.astype(np.float32)


def dense_items_regularisation(recommender: Any, X: Any) -> np.ndarray:
    """lam, the diagonal added to X^T X: ``reg``, plus p / (1 - p) (X^T X)_ii for EDLAE's dropout p."""
    lam = np.full(X.shape[1], float(recommender.reg))
    dropout = float(getattr(recommender, "dropout_p", 0.0))
    if dropout:
        lam += dropout / (1.0 - dropout) * np.asarray(X.multiply(X).sum(axis=0)).ravel()
    if not np.all(lam > 0):
        raise ValueError("DenseSLIM/EDLAE need a positive regularisation (reg > 0)")
    return lam


def _weights_by_users(X: Any, lam: np.ndarray) -> np.ndarray:
    """W through the users' side (fewer users than items), float32, in place of one n_items^2 array."""
    n_users, n_items = X.shape
    scale = 1.0 / np.sqrt(lam)
    Y = sps.csr_matrix(X, dtype=np.float64) @ sps.diags(scale)
    K = (Y @ Y.T).toarray()
    K[np.diag_indices(n_users)] += 1.0
    R = scipy.linalg.cholesky(K, lower=True, overwrite_a=True, check_finite=False)
    R_inv = scipy.linalg.solve_triangular(R, np.eye(n_users), lower=True, overwrite_b=True, check_finite=False)
    del K, R
    A = np.asarray(Y.T @ R_inv.T)  # items x users: A A^T = Y^T K^-1 Y
    del Y, R_inv
    diag_P = (1.0 - np.einsum("ij,ij->i", A, A)) / lam  # in float64: the diagonal is a difference
    A32 = np.asfortranarray(A, dtype=np.float32)
    del A
    W = A32 @ A32.T  # sgemm: as fast as OpenBLAS's ssyrk here, and no triangle to mirror
    del A32
    # W_ij = -P_ij / P_jj with P_ij = -(A A^T)_ij lam_i^-1/2 lam_j^-1/2 off the diagonal
    W *= scale.astype(np.float32)[:, np.newaxis]
    W *= (scale / diag_P).astype(np.float32)[np.newaxis, :]
    W[np.diag_indices(n_items)] = 0
    return W


def gram(X: Any) -> np.ndarray:
    """X^T X as a dense float32 array, built a block of items at a time (peak: the result and a
    block of 1/64 of it, never a sparse product with up to n_items^2 entries)."""
    n_items = X.shape[1]
    block = max(64, n_items // 64)
    Xc = sps.csc_matrix(X, dtype=np.float32)
    Xt = Xc.T.tocsr()
    out = np.empty((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        out[:, start:stop] = (Xt @ Xc[:, start:stop]).toarray()
    return out


def _inverse_positive_definite(P: np.ndarray) -> np.ndarray:
    """The inverse of the symmetric positive definite, C-ordered P, in place (LAPACK potrf, potri)."""
    factor, info = scipy.linalg.lapack.spotrf(P.T, lower=1, clean=0, overwrite_a=1)  # P.T: the same matrix, F-ordered
    if info == 0:
        _, info = scipy.linalg.lapack.spotri(factor, lower=1, overwrite_c=1)
    if info != 0:
        raise ValueError("X^T X + diag(reg) is not positive definite in float32 precision; use a larger reg")
    _mirror_upper(P)  # the lower triangle of P.T is the upper one of P
    return P


def _mirror_upper(M: np.ndarray, block: int = 256) -> None:
    """Copy the upper triangle of the square M into its lower one, in place, a block at a time."""
    n = M.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        M[start:stop, :start] = M[:start, start:stop].T
        corner = M[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        corner[lower] = corner.T[lower]


def fit_truncated_svd(recommender: Any, cache: FitCache) -> None:
    """The top ``n_components`` of the shared exact SVD, or irspack's randomized fit when that is cheaper."""
    if recommender.n_components < EXACT_SVD_FROM or min(cache.X.shape) > EXACT_SVD_MAX_SIDE:
        recommender.learn()
        return
    z, components = cache.get("svd", exact_svd)
    k = min(recommender.n_components, len(components))
    recommender.z_ = z[:, :k]
    recommender.decomposer_ = types.SimpleNamespace(components_=components[:k])  # all that scoring reads


def exact_svd(X: Any) -> tuple[np.ndarray, np.ndarray]:
    """(U * s, V^T) of X's singular value decomposition, largest first, without the null space."""
    X = X.astype(np.float64)
    by_users = X.shape[0] <= X.shape[1]
    gram = (X @ X.T if by_users else X.T @ X).toarray()
    eigenvalues, vectors = scipy.linalg.eigh(gram, overwrite_a=True, check_finite=False, driver="evd")
    s = np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))
    vectors = vectors[:, ::-1]
    rank = int(np.count_nonzero(s > s[0] * 1e-7)) if len(s) and s[0] > 0 else 0
    s, vectors = s[:rank], vectors[:, :rank]
    if by_users:  # vectors are U: V^T = (X^T U / s)^T
        return vectors * s, np.ascontiguousarray((X.T @ vectors).T / s[:, np.newaxis])
    return np.asarray(X @ vectors), np.ascontiguousarray(vectors.T)  # vectors are V: U s = X V
