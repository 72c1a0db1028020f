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


# opcode byte -> (name, argument layout): a fixed size >= 0, or one of pickletools' variable layouts
_OPCODES = {op.code.encode("latin-1")[0]: (op.name, 0 if op.arg is None else op.arg.n) for op in pickletools.opcodes}
_LENGTH_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
                  pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}
_STRING_OPS = frozenset({"UNICODE", "BINUNICODE", "BINUNICODE8"})  # and SHORT_BINUNICODE, read apart
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_SHORT_BINUNICODE, _MEMOIZE = 0x8C, 0x94


def _pickle_globals(data: bytes) -> Iterator[tuple[str, str]] | None:
    """The (module, name) globals a pickle refers to, from its opcodes (no unpickling).

    Returns None if a STACK_GLOBAL operand cannot be traced to a string, or the bytes are not the
    opcodes of a whole pickle (up to its STOP). Strings are decoded only when a STACK_GLOBAL uses
    them and byte arguments are not copied: a payload of 1.4 million string ids and 800 MB of arrays
    is read in 0.4-0.8 s, where pickletools.genops took 4.7-6.9 s and copied every array.
    """
    memo: dict[int, Any] = {}  # MEMOIZE stores at the memo's length, as the unpickler does
    prev = last = None  # the last two values pushed: str, a string's place in `data`, or None
    found: list[tuple[str, str]] = []
    pos, end = 0, len(data)
    try:
        while pos < end:
            code = data[pos]
            if code == _SHORT_BINUNICODE:  # most opcodes of a model: its ids, each memoized
                value, pos = pos + 1, pos + 2 + data[pos + 1]
                if pos < end and data[pos] == _MEMOIZE:
                    memo[len(memo)] = value
                    pos += 1
                prev, last = last, value
                continue
            name, layout = _OPCODES[code]
            pos += 1
            if layout >= 0:
                arg, pos = data[pos : pos + layout], pos + layout
            elif layout == pickletools.UP_TO_NEWLINE:
                stop = data.index(b"\n", pos) + 1
                if name in ("GLOBAL", "INST"):  # two lines: module, name
                    stop = data.index(b"\n", stop) + 1
                arg, pos = data[pos : stop - 1], stop
            else:
                width, signed = _LENGTH_PREFIX[layout]
                size = int.from_bytes(data[pos : pos + width], "little", signed=signed)
                if size < 0:
                    return None
                arg, pos = (pos + width, pos + width + size), pos + width + size
            if name in _STRING_OPS:
                value = arg if isinstance(arg, tuple) else arg.decode("raw-unicode-escape")
            elif name == "MEMOIZE":
                memo[len(memo)] = last
                continue
            elif name in _PUT_OPS:
                memo[_memo_index(name, arg)] = last
                continue
            elif name in _GET_OPS:
                value = memo.get(_memo_index(name, arg))
            elif name in ("GLOBAL", "INST"):
                module, _, qualname = arg.decode("utf-8").partition("\n")
                found.append((module, qualname))
                value = None
            elif name == "STACK_GLOBAL":
                module, qualname = _text(data, prev), _text(data, last)
                if not (isinstance(module, str) and isinstance(qualname, str)):
                    return None
                found.append((module, qualname))
                value = None
            elif name in ("EXT1", "EXT2", "EXT4"):
                return None
            elif name == "STOP":
                return iter(found)
            elif name in ("PROTO", "FRAME"):
                continue
            else:
                value = None
            prev, last = last, value
    except (KeyError, IndexError, ValueError, UnicodeDecodeError):
        pass
    return None  # not the opcodes of a whole pickle: the caller unpickles it (restricted) instead


def _memo_index(name: str, arg: bytes) -> int:
    """The memo index of a PUT/GET (a decimal line) or of their binary forms (little-endian)."""
    return int(arg) if name in ("PUT", "GET") else int.from_bytes(arg, "little")


def _text(data: bytes, value: Any) -> Any:
    """A pushed value as text: a SHORT_BINUNICODE (its length byte's place) or a (start, stop)
    span of `data` decoded from UTF-8; anything else as it is."""
    if isinstance(value, int):
        value = (value + 1, value + 1 + data[value])
    return data[value[0] : value[1]].decode("utf-8", "surrogatepass") if isinstance(value, tuple) else value


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
