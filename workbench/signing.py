"""Signed model files: an HMAC-SHA256 signed container around a pickled model.

File layout (all integers big-endian)::

    offset  size        field
    0       8           magic            b"\\x89RWB\\r\\n\\x1a\\n"
    8       2           format version   uint16, currently 1
    10      1           key id length    uint8, 1..64
    11      K           key id           ASCII [A-Za-z0-9_.-]
    11+K    4           header length    uint32, <= 1 MiB
    15+K    8           payload length   uint64, <= max_payload_bytes
    23+K    32          HMAC-SHA256      over every byte of the file except itself
    55+K    H           header           UTF-8 JSON object (the model record's metadata)
    55+K+H  P           payload          pickle, protocol 5

The MAC covers magic, version, key id, both length fields, header and payload,
so nothing in the file can be changed without the change being detected.  A
reader checks the declared lengths against their bounds and against the real
file size before reading a section, verifies the MAC with
:func:`hmac.compare_digest` before a single payload byte reaches the
unpickler, and then unpickles with :func:`restricted_loads`, which only
resolves globals on an explicit allow-list.

Keys: :class:`KeyRing` holds one or more :class:`SigningKey`; the first one
signs, every one verifies (key rotation).  :meth:`KeyRing.load` reads
``WORKBENCH_SIGNING_KEYS="kid:hex64,kid2:hex64"`` if it is set, otherwise a
key file that is generated (mode 0600) on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import importlib
import io
import json
import os
import pickle
import pickletools
import re
import secrets
import stat
import struct
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from workbench.errors import (
    ForbiddenPickleError,
    ModelFileError,
    NotAModelFileError,
    OversizedModelFileError,
    SignatureMismatchError,
    TruncatedModelFileError,
    UnknownKeyError,
    UnsupportedModelVersionError,
    ValidationError,
)

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "ENV_VAR",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_HEADER_BYTES",
    "KeyRing",
    "SigningKey",
    "inspect_model_file",
    "read_model_file",
    "restricted_loads",
    "write_model_file",
]

MAGIC = b"\x89RWB\r\n\x1a\n"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1024 * 1024
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024 * 1024
PICKLE_PROTOCOL = 5
ENV_VAR = "WORKBENCH_SIGNING_KEYS"

_MAC_SIZE = hashlib.sha256().digest_size  # 32
_MAX_KID_LEN = 64
_KID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,%d}" % _MAX_KID_LEN)
_HEX_SECRET_RE = re.compile(r"[0-9A-Fa-f]{64}")
_MIN_SECRET_BYTES = 16
_GENERATED_SECRET_BYTES = 32

_PRELUDE = struct.Struct(">8sHB")  # magic, version, key id length
_LENGTHS = struct.Struct(">IQ")  # header length, payload length
_CHUNK = 1024 * 1024


# --------------------------------------------------------------------------- keys


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """One HMAC key. ``repr``/``str`` show the key id only, never the secret."""

    kid: str
    secret: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not _KID_RE.fullmatch(self.kid):
            raise ValidationError(
                "a signing key id must be 1-64 characters from A-Z a-z 0-9 _ . -"
            )
        if not isinstance(self.secret, bytes):
            raise ValidationError(f"signing key {self.kid!r}: the secret must be bytes")
        if len(self.secret) < _MIN_SECRET_BYTES:
            raise ValidationError(
                f"signing key {self.kid!r}: the secret must be at least "
                f"{_MIN_SECRET_BYTES} bytes long"
            )

    def __reduce__(self) -> Any:  # keep secrets out of accidental pickles
        raise TypeError("SigningKey objects cannot be pickled")


class KeyRing:
    """Keys that verify model files; the first key also signs new files."""

    def __init__(self, keys: list[SigningKey]) -> None:
        keys = list(keys)
        if not keys:
            raise ValidationError("a key ring needs at least one signing key")
        by_kid: dict[str, SigningKey] = {}
        for key in keys:
            if not isinstance(key, SigningKey):
                raise ValidationError("a key ring holds SigningKey objects only")
            if key.kid in by_kid:
                raise ValidationError(f"the key id {key.kid!r} appears twice in the key ring")
            by_kid[key.kid] = key
        self._keys: tuple[SigningKey, ...] = tuple(keys)
        self._by_kid = by_kid

    @property
    def signing_key(self) -> SigningKey:
        return self._keys[0]

    @property
    def kids(self) -> list[str]:
        return [key.kid for key in self._keys]

    def get(self, kid: str) -> SigningKey | None:
        return self._by_kid.get(kid)

    def __repr__(self) -> str:
        return f"KeyRing(signing={self.signing_key.kid!r}, kids={self.kids!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("KeyRing objects cannot be pickled")

    @classmethod
    def load(cls, key_file: Path) -> "KeyRing":
        """The key ring from ``WORKBENCH_SIGNING_KEYS`` if set, else from ``key_file``.

        ``WORKBENCH_SIGNING_KEYS`` is ``"kid:hex64[,kid2:hex64...]"``: the first
        key signs, all verify.  Without it, ``key_file`` (same format) is read,
        and created with a fresh random key, mode 0600, if it does not exist.
        """
        value = os.environ.get(ENV_VAR)
        if value is not None:
            return cls(_parse_key_spec(value, source=f"the {ENV_VAR} environment variable"))
        key_file = Path(key_file)
        if not key_file.exists() and not key_file.is_symlink():
            _create_key_file(key_file)
        return cls(_read_key_file(key_file))


def _parse_key_spec(value: str, *, source: str) -> list[SigningKey]:
    """Parse ``kid:hex64,kid2:hex64``. Errors name entries by position, never echo them."""
    if not value.strip():
        raise ValidationError(f"{source} is set but empty; expected 'kid:hex64[,kid2:hex64...]'")
    keys: list[SigningKey] = []
    seen: dict[str, int] = {}
    for position, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise ValidationError(f"{source}: entry {position} is empty")
        kid, sep, hex_secret = entry.partition(":")
        kid, hex_secret = kid.strip(), hex_secret.strip()
        if not sep:
            raise ValidationError(
                f"{source}: entry {position} has no ':' between the key id and the secret; "
                "expected 'kid:hex64'"
            )
        if not _KID_RE.fullmatch(kid):
            raise ValidationError(
                f"{source}: entry {position} has an invalid key id; it must be 1-64 "
                "characters from A-Z a-z 0-9 _ . -"
            )
        if not _HEX_SECRET_RE.fullmatch(hex_secret):
            raise ValidationError(
                f"{source}: entry {position} has an invalid secret; it must be exactly "
                f"64 hexadecimal characters (32 bytes), got {len(hex_secret)} characters"
                + ("" if all(c in "0123456789abcdefABCDEF" for c in hex_secret) else
                   " including non-hexadecimal ones")
            )
        if kid in seen:
            raise ValidationError(
                f"{source}: entries {seen[kid]} and {position} use the same key id"
            )
        seen[kid] = position
        keys.append(SigningKey(kid, bytes.fromhex(hex_secret)))
    return keys


def _read_key_file(key_file: Path) -> list[SigningKey]:
    # A key file is published complete (hard link of a fully written temp file);
    # the retry only matters on file systems without hard links, where the
    # creator writes into the final name and a reader may see it still empty.
    deadline = time.monotonic() + 2.0
    while True:
        try:
            text = key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read the signing key file {key_file}: {type(exc).__name__}") from None
        if text.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if not text.strip():
        raise ValidationError(f"the signing key file {key_file} is missing or empty")
    return _parse_key_spec(text, source=f"the signing key file {key_file}")


def _create_key_file(key_file: Path) -> None:
    """Create ``key_file`` with a new random key, mode 0600, without ever exposing a partial file.

    The key is written to a private temp file (O_CREAT|O_EXCL, 0600), fsynced,
    then hard-linked to the final name: ``link`` is atomic and fails if the name
    exists, so when two processes race exactly one key wins and both use it.
    """
    key_file.parent.mkdir(parents=True, exist_ok=True)
    kid = secrets.token_hex(4)
    content = f"{kid}:{secrets.token_bytes(_GENERATED_SECRET_BYTES).hex()}\n".encode("ascii")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    tmp = key_file.with_name(f".{key_file.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            _write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, key_file)
        except FileExistsError:
            return  # another process won the race; use its key
        except OSError:
            # No hard links here: fall back to O_EXCL on the final name.
            try:
                fd = os.open(key_file, flags, 0o600)
            except FileExistsError:
                return
            try:
                _write_all(fd, content)
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _fsync_dir(key_file.parent)


# ----------------------------------------------------------------- file encoding


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prefix(kid: str, header_len: int, payload_len: int) -> bytes:
    kid_bytes = kid.encode("ascii")
    return (
        _PRELUDE.pack(MAGIC, FORMAT_VERSION, len(kid_bytes))
        + kid_bytes
        + _LENGTHS.pack(header_len, payload_len)
    )


def _encode(header_bytes: bytes, payload: bytes, key: SigningKey) -> list[bytes]:
    """The file as a list of chunks: signed prefix, MAC, header, payload."""
    prefix = _prefix(key.kid, len(header_bytes), len(payload))
    mac = hmac.new(key.secret, prefix, hashlib.sha256)
    mac.update(header_bytes)
    mac.update(payload)
    return [prefix, mac.digest(), header_bytes, payload]


def _encode_header(header: dict) -> bytes:
    if not isinstance(header, dict):
        raise ValidationError(f"the model file header must be a dict, not {type(header).__name__}")
    try:
        text = json.dumps(header, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the model file header is not JSON-serialisable: {exc}") from None
    data = text.encode("utf-8")
    if len(data) > MAX_HEADER_BYTES:
        raise OversizedModelFileError(
            f"the model file header is {len(data)} bytes of JSON; the limit is {MAX_HEADER_BYTES}"
        )
    return data


def write_model_file(
    path: Path,
    header: dict,
    obj: Any,
    keyring: KeyRing,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    check_allowlist: bool = False,
) -> int:
    """Pickle ``obj`` (protocol 5) and write it, signed, atomically to ``path``; return the file size.

    With ``check_allowlist=True`` an object whose pickle needs a global outside
    the unpickling allow-list is refused (ForbiddenPickleError) before anything
    is written, since such a file could never be read back; the check scans the
    pickle's opcodes and costs far less than unpickling.
    A crash leaves at most a hidden ``.<name>.tmp-<pid>-<random>`` file, never
    a partial file at ``path``.
    """
    path = Path(path)
    header_bytes = _encode_header(header)
    try:
        payload = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        raise ValidationError(f"the model cannot be pickled: {type(exc).__name__}: {exc}") from None
    if len(payload) > max_payload_bytes:
        raise OversizedModelFileError(
            f"the pickled model is {len(payload)} bytes; the limit is {max_payload_bytes}"
        )
    if check_allowlist:
        _check_payload_globals(payload)
    chunks = _encode(header_bytes, payload, keyring.signing_key)

    directory = path.parent
    tmp = directory / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        try:
            for chunk in chunks:
                _write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return sum(len(chunk) for chunk in chunks)


# ----------------------------------------------------------------- file decoding


@dataclasses.dataclass(frozen=True)
class _Layout:
    kid: str
    key: SigningKey
    prefix: bytes
    mac: bytes
    header_len: int
    payload_len: int


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise TruncatedModelFileError(f"the file ends inside the {what}")
    return data


def _parse_layout(f: BinaryIO, keyring: KeyRing, max_payload_bytes: int) -> _Layout:
    """Read and check everything before the header; leaves ``f`` at the header."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(_PRELUDE.size)
    if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
        raise NotAModelFileError("the file does not start with the workbench model magic bytes")
    if len(head) < _PRELUDE.size:
        raise TruncatedModelFileError("the file ends inside the format version")
    _magic, version, kid_len = _PRELUDE.unpack(head)
    if version != FORMAT_VERSION:
        raise UnsupportedModelVersionError(
            f"the model file has format version {version}; this workbench reads version "
            f"{FORMAT_VERSION}"
        )
    kid_bytes = _read_exact(f, kid_len, "key id")
    lengths = _read_exact(f, _LENGTHS.size, "section lengths")
    mac = _read_exact(f, _MAC_SIZE, "signature")
    header_len, payload_len = _LENGTHS.unpack(lengths)
    if header_len > MAX_HEADER_BYTES:
        raise OversizedModelFileError(
            f"the file declares a {header_len}-byte header; the limit is {MAX_HEADER_BYTES}"
        )
    if payload_len > max_payload_bytes:
        raise OversizedModelFileError(
            f"the file declares a {payload_len}-byte payload; the limit is {max_payload_bytes}"
        )
    body_start = _PRELUDE.size + kid_len + _LENGTHS.size + _MAC_SIZE
    declared = body_start + header_len + payload_len
    if declared > size:
        raise TruncatedModelFileError(
            f"the file is {size} bytes but its header and payload need {declared}"
        )
    if declared < size:
        raise SignatureMismatchError(
            f"the file has {size - declared} unexpected bytes after the signed payload; "
            "it was altered"
        )
    try:
        kid = kid_bytes.decode("ascii")
    except UnicodeDecodeError:
        kid = None
    key = keyring.get(kid) if kid is not None and _KID_RE.fullmatch(kid) else None
    if key is None:
        shown = kid_bytes.decode("ascii", "backslashreplace")
        raise UnknownKeyError(
            f"the file was signed with key id {shown!r}, which is not among the configured "
            f"keys {keyring.kids!r} (a retired key, or another installation's key)"
        )
    return _Layout(kid, key, head + kid_bytes + lengths, mac, header_len, payload_len)


def _verify(layout: _Layout, mac: "hmac.HMAC") -> None:
    if not hmac.compare_digest(mac.digest(), layout.mac):
        raise SignatureMismatchError(
            f"the signature does not match (key id {layout.kid!r}): the file was altered "
            "or signed with a different secret under the same key id"
        )


def _decode_header(header_bytes: bytes) -> dict:
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"the signed header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ModelFileError("the signed header is not a JSON object")
    return header


def _open(path: Path) -> BinaryIO:
    try:
        f = open(path, "rb")
    except IsADirectoryError:
        raise NotAModelFileError(f"{path} is a directory, not a model file") from None
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise NotAModelFileError(f"{path} is not a regular file")
    return f


def inspect_model_file(
    path: Path, keyring: KeyRing, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> dict:
    """Verify the signature of the whole file and return its header. Never unpickles."""
    with _open(Path(path)) as f:
        layout = _parse_layout(f, keyring, max_payload_bytes)
        mac = hmac.new(layout.key.secret, layout.prefix, hashlib.sha256)
        header_bytes = _read_exact(f, layout.header_len, "header")
        mac.update(header_bytes)
        remaining = layout.payload_len
        while remaining:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                raise TruncatedModelFileError("the file ends inside the payload")
            mac.update(chunk)
            remaining -= len(chunk)
        _verify(layout, mac)
    return _decode_header(header_bytes)


def read_model_file(
    path: Path, keyring: KeyRing, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> tuple[dict, Any]:
    """Verify the file, then return ``(header, restricted_loads(payload))``.

    The payload is read into memory once and the MAC is checked on exactly
    those bytes before they reach the unpickler.
    """
    with _open(Path(path)) as f:
        layout = _parse_layout(f, keyring, max_payload_bytes)
        header_bytes = _read_exact(f, layout.header_len, "header")
        payload = _read_exact(f, layout.payload_len, "payload")
    mac = hmac.new(layout.key.secret, layout.prefix, hashlib.sha256)
    mac.update(header_bytes)
    mac.update(payload)
    _verify(layout, mac)
    header = _decode_header(header_bytes)
    return header, restricted_loads(payload)


# -------------------------------------------------------------- restricted pickle

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


def _resolve_allowed(module: str, name: str) -> Any:
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


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _resolve_allowed(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenPickleError("the payload uses a persistent id; refused")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data``, resolving only allow-listed globals.

    Raises ForbiddenPickleError for anything else; any other unpickling failure
    becomes a ModelFileError.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
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


def _check_payload_globals(payload: bytes) -> None:
    found = _pickle_globals(payload)
    if found is None:  # could not trace statically: do a full dry run instead
        restricted_loads(payload)
        return
    for module, name in set(found):
        try:
            _resolve_allowed(module, name)
        except ForbiddenPickleError as exc:
            raise ForbiddenPickleError(
                f"refusing to write a model file that could not be read back: {exc}"
            ) from None
