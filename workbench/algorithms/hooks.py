"""What the workbench knows about individual irspack algorithms, as hooks of their registry
entries (:class:`~workbench.algorithms.registry.Algorithm`): sizes fitted to the data, what an
algorithm cannot learn from, the factors and item-item weights that scoring can use directly, training statistics, and
the checks that a loaded model holds arrays of the shapes its file header declares."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sps

from ..errors import ModelFileError, ValidationError
from .spaces import ials_auto_reg


def nothing(*args: Any) -> None:
    """The hook of algorithms that have nothing to say."""
    return None


# ---- parameters fitted to the data (effective_params) -------------------------------------------


def ials_fit_to_data(kw: dict, n_users: int, n_items: int, nnz: int) -> None:
    if kw.get("reg") is None:
        kw["reg"] = ials_auto_reg(kw["alpha0"], n_users, n_items, nnz)
    kw["n_components"] = max(1, int(kw["n_components"]))


def truncated_svd_fit_to_data(kw: dict, n_users: int, n_items: int, nnz: int) -> None:
    if n_items < 2:
        raise ValidationError("TruncatedSVD needs at least 2 items")
    kw["n_components"] = max(1, min(int(kw["n_components"]), n_items - 1, max(n_users - 1, 1)))


def nmf_fit_to_data(kw: dict, n_users: int, n_items: int, nnz: int) -> None:
    kw["n_components"] = max(1, min(int(kw["n_components"]), n_items, n_users))


def item_neighbours_fit_to_data(kw: dict, n_users: int, n_items: int, nnz: int) -> None:
    if kw.get("top_k") is not None:
        kw["top_k"] = max(1, min(int(kw["top_k"]), max(n_items, 1)))


def user_neighbours_fit_to_data(kw: dict, n_users: int, n_items: int, nnz: int) -> None:
    if kw.get("top_k") is not None:
        kw["top_k"] = max(1, min(int(kw["top_k"]), max(n_users, 1)))


# ---- what an algorithm cannot learn from (unusable_reason) ----------------------------------------


def truncated_svd_unusable(n_users: int, n_items: int) -> str | None:
    return "TruncatedSVD needs at least 2 users and 2 items" if n_items < 2 or n_users < 2 else None


# ---- what scoring can use directly ----------------------------------------------------------------


def embedding_factors(recommender: Any) -> tuple[np.ndarray, np.ndarray]:
    """IALS, TruncatedSVD: ``get_score(users) == U[users] @ V.T`` with their embeddings."""
    return recommender.get_user_embedding(), recommender.get_item_embedding()


def nmf_factors(recommender: Any) -> tuple[np.ndarray, np.ndarray]:
    return recommender.W, recommender.H.T


def similarity_weights(recommender: Any) -> Any:
    """Item-item similarity models: ``get_score(users) == X[users] @ W`` (None before the fit)."""
    try:
        return recommender.W
    except RuntimeError:
        return None


# ---- training statistics --------------------------------------------------------------------------


def truncated_svd_statistics(recommender: Any) -> dict[str, float]:
    ratios = getattr(recommender.decomposer_, "explained_variance_ratio_", None)
    return {} if ratios is None else {"explained_variance_ratio": float(np.sum(ratios))}


def ials_statistics(recommender: Any) -> dict[str, float]:
    return {
        "final_loss": float(recommender.trainer.compute_loss()),
        "epochs": int(recommender.learnt_config.get("train_epochs", recommender.train_epochs)),
    }


def no_statistics(recommender: Any) -> dict[str, float]:
    return {}


# ---- checks of a loaded model against its header --------------------------------------------------


def check_interactions(recommender: Any, n_users: int, n_items: int) -> None:
    """What every recommender holds: its training matrix, users x items."""
    if (held(recommender, "n_users"), held(recommender, "n_items")) != (n_users, n_items):
        raise ModelFileError(
            f"the model has {recommender.n_users} x {recommender.n_items} users x items, "
            f"its header says {n_users} x {n_items}"
        )
    check_sparse(held(recommender, "X_train_all"), (n_users, n_items), "the training matrix", formats=("csr",))


def check_top_pop(recommender: Any, n_users: int, n_items: int) -> None:
    check_interactions(recommender, n_users, n_items)
    check_dense(held(recommender, "score_"), (1, n_items), "the popularity scores")


def check_item_similarity(recommender: Any, n_users: int, n_items: int) -> None:
    check_interactions(recommender, n_users, n_items)
    W = similarity_weights(recommender)
    what = "the item-item weights"
    if sps.issparse(W):
        check_sparse(W, (n_items, n_items), what)
    else:
        check_dense(W, (n_items, n_items), what)


def check_user_similarity(recommender: Any, n_users: int, n_items: int) -> None:
    check_interactions(recommender, n_users, n_items)
    check_sparse(held(recommender, "U_"), (n_users, n_users), "the user-user weights")
    check_sparse(held(recommender, "_X_csc"), (n_users, n_items), "the training matrix (by item)", formats=("csc",))


def check_ials(recommender: Any, n_users: int, n_items: int) -> None:
    check_interactions(recommender, n_users, n_items)
    if held(recommender, "trainer") is None:
        raise ModelFileError("the IALS model holds no trained factors")
    check_factors(recommender.get_user_embedding(), recommender.get_item_embedding(), n_users, n_items)


def check_truncated_svd(recommender: Any, n_users: int, n_items: int) -> None:
    check_interactions(recommender, n_users, n_items)
    components = held(held(recommender, "decomposer_"), "components_")
    check_dense(components, (None, n_items), "the SVD components")
    check_factors(held(recommender, "z_"), components.T, n_users, n_items)


def check_nmf(recommender: Any, n_users: int, n_items: int) -> None:
    check_interactions(recommender, n_users, n_items)
    H = held(recommender, "H")
    check_dense(H, (None, n_items), "the NMF item factors")
    check_factors(held(recommender, "W"), H.T, n_users, n_items)
    check_dense(held(held(recommender, "nmf_model"), "components_"), H.shape, "the NMF components")


def check_factors(users: Any, items: Any, n_users: int, n_items: int) -> None:
    check_dense(users, (n_users, None), "the user factors")
    check_dense(items, (n_items, users.shape[1]), "the item factors")


def held(obj: Any, name: str) -> Any:
    """``obj.name``, or ModelFileError when a loaded model lacks it."""
    try:
        return getattr(obj, name)
    except AttributeError:
        raise ModelFileError(f"the model holds no {name!r}: not what {type(obj).__name__} holds after a fit") from None


def check_dense(array: Any, shape: tuple, what: str) -> None:
    """A float ndarray of ``shape`` (None: any length on that axis)."""
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise ModelFileError(f"{what} are not a float array but {type(array).__name__}")
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        raise ModelFileError(f"{what} have shape {array.shape}, the header implies {shape}")


def check_sparse(matrix: Any, shape: tuple[int, int], what: str, formats: tuple[str, ...] = ("csr", "csc")) -> None:
    """A CSR/CSC matrix of ``shape`` whose index arrays stay inside it (scipy's full check)."""
    if not sps.issparse(matrix) or matrix.format not in formats:
        raise ModelFileError(f"{what} are not a {'/'.join(formats)} sparse matrix but {type(matrix).__name__}")
    if matrix.shape != shape:
        raise ModelFileError(f"{what} have shape {matrix.shape}, the header implies {shape}")
    try:
        matrix.check_format(full_check=True)
    except Exception as exc:  # noqa: BLE001 -- scipy raises ValueError, TypeError, ...
        raise ModelFileError(f"{what} are not a valid sparse matrix: {exc}") from None
    # Whether the indices are sorted is cached in the pickle; let scipy work it out again.
    for flag in ("_has_sorted_indices", "_has_canonical_format"):
        matrix.__dict__.pop(flag, None)
