"""Restricted unpickling: a pickle may only resolve globals on an explicit allow-list (irspack
recommender classes, numpy/scipy/scikit-learn rebuild helpers, builtin containers), and the
globals a pickle needs can be listed from its opcodes without unpickling it."""

from __future__ import annotations

import importlib
import io
import pickle
import pickletools
import re
from collections.abc import Iterator
from typing import Any

from .errors import ForbiddenPickleError, ModelFileError

# Exact (module, name) pairs that may be resolved.
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # builtins containers and plain value types
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "slice"),
        ("builtins", "complex"),
        ("builtins", "bytearray"),
        ("collections", "OrderedDict"),
        ("copyreg", "_reconstructor"),  # e.g. scipy dok_matrix (a dict subclass)
        # numpy array / dtype / scalar reconstruction
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy._core._internal", "_convert_to_stringdtype_kwargs"),
        # scipy sparse matrices and arrays
        *(
            (f"scipy.sparse._{fmt}", f"{fmt}_{kind}")
            for fmt in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil")
            for kind in ("matrix", "array")
        ),
        # scikit-learn estimators held by irspack recommenders
        ("sklearn.decomposition._truncated_svd", "TruncatedSVD"),
        ("sklearn.decomposition._nmf", "NMF"),
    }
)

# Names written by numpy 1.x, resolved to their numpy 2 home without importing
# the deprecated ``numpy.core`` shim.
_LEGACY_ALIASES: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core._internal", "_convert_to_stringdtype_kwargs"): (
        "numpy._core._internal",
        "_convert_to_stringdtype_kwargs",
    ),
}

# Module rule: classes *defined in* a module of irspack.recommenders (recommenders,
# their trainers and pydantic configs, enums, and the nanobind C++ classes of
# _ials_core / _knn).  Not functions, not modules, not re-exported imports, not
# metaclasses, no dotted attribute paths.
_IRSPACK_MODULE_RE = re.compile(r"irspack\.recommenders(\.[A-Za-z_][A-Za-z0-9_]*)+")
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _forbidden(module: str, name: str, why: str = "it is not on the unpickling allow-list") -> ForbiddenPickleError:
    return ForbiddenPickleError(f"the payload refers to {module[:200]}.{name[:200]}; refused because {why}")


def resolve_allowed(module: str, name: str) -> Any:
    """The object a pickle global refers to, or ForbiddenPickleError."""
    key = _LEGACY_ALIASES.get((module, name), (module, name))
    if key in _ALLOWED_GLOBALS:
        mod = importlib.import_module(key[0])
        return getattr(mod, key[1])
    if module == "numpy.dtypes" and _IDENTIFIER_RE.fullmatch(name):
        import numpy as np

        obj = getattr(importlib.import_module("numpy.dtypes"), name, None)
        if isinstance(obj, type) and issubclass(obj, np.dtype):
            return obj
        raise _forbidden(module, name, "only dtype classes are allowed from numpy.dtypes")
    if _IRSPACK_MODULE_RE.fullmatch(module) and _IDENTIFIER_RE.fullmatch(name):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ModelFileError(f"the payload needs {module}, which cannot be imported: {exc}") from None
        obj = getattr(mod, name, None)
        if (
            isinstance(obj, type)
            and not issubclass(obj, type)
            and getattr(obj, "__module__", None) == module
        ):
            return obj
        raise _forbidden(
            module, name, "only classes defined in irspack.recommenders modules are allowed"
        )
    raise _forbidden(module, name)


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return resolve_allowed(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenPickleError("the payload uses a persistent id; refused")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data``, resolving only allow-listed globals.

    Raises ForbiddenPickleError for anything else; any other unpickling failure
    becomes a ModelFileError.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except ModelFileError:
        raise
    except MemoryError:
        # e.g. a BINBYTES8 opcode declaring 2**56 bytes: the unpickler allocates before it reads.
        raise ModelFileError(
            f"the payload could not be unpickled: it asks for more memory than this machine has "
            f"(the payload itself is {len(data):,} bytes)"
        ) from None
    except Exception as exc:
        raise ModelFileError(
            f"the payload could not be unpickled: {type(exc).__name__}: {exc}"
        ) from None


_STRING_OPS = frozenset({"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"})
_NON_PUSH_OPS = frozenset({"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"})


def _pickle_globals(data: bytes) -> Iterator[tuple[str, str]] | None:
    """The (module, name) globals a pickle refers to, from its opcodes (no unpickling).

    Returns None if a STACK_GLOBAL operand cannot be traced to a string.
    """
    memo: dict[int, Any] = {}
    pushed: list[Any] = []  # value of each push: str for strings, else None
    found: list[tuple[str, str]] = []
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in _STRING_OPS:
            pushed.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif name in ("GLOBAL", "INST"):
            module, _, qualname = arg.partition(" ")
            found.append((module, qualname))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushed) < 2 or not all(isinstance(v, str) for v in pushed[-2:]):
                return None
            found.append((pushed[-2], pushed[-1]))
            pushed.append(None)
        elif name in ("EXT1", "EXT2", "EXT4"):
            return None
        elif name not in _NON_PUSH_OPS:
            pushed.append(None)
        if len(pushed) > 64:
            del pushed[:-8]
    return iter(found)


def check_payload_globals(payload: bytes) -> None:
    found = _pickle_globals(payload)
    if found is None:  # could not trace statically: do a full dry run instead
        restricted_loads(payload)
        return
    for module, name in set(found):
        try:
            resolve_allowed(module, name)
        except ForbiddenPickleError as exc:
            raise ForbiddenPickleError(
                f"refusing to write a model file that could not be read back: {exc}"
            ) from None
