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
resolves globals on an explicit allow-list (:mod:`workbench.unpickling`).

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
import json
import os
import pickle
import re
import secrets
import stat
import struct
from pathlib import Path
from typing import Any, BinaryIO

from .errors import (
    ModelFileError,
    NotAModelFileError,
    OversizedModelFileError,
    SignatureMismatchError,
    TruncatedModelFileError,
    UnknownKeyError,
    UnsupportedModelVersionError,
    ValidationError,
)
from .polling import StillWaiting, poll_until
from .unpickling import check_payload_globals, restricted_loads

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
_KID_RE = re.compile(rf"[A-Za-z0-9_.\-]{{1,{_MAX_KID_LEN}}}")
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
    def load(cls, key_file: Path) -> KeyRing:
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
    def read() -> str:
        try:
            return key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            raise ValidationError(f"cannot read the signing key file {key_file}: {type(exc).__name__}") from None

    try:
        text = poll_until(lambda: read().strip(), 2.0, 0.02)
    except StillWaiting:
        text = ""
    if not text.strip():
        raise ValidationError(f"the signing key file {key_file} is missing or empty")
    return _parse_key_spec(text, source=f"the signing key file {key_file}")


# A writer's unfinished file: `.<name>.tmp-<pid>-<random>` beside the file it becomes (model files,
# key files). `workbench doctor` and the job reaper find them by this pattern.
TEMP_FILE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")


def temp_path(path: Path) -> Path:
    """Where this process writes `path` before renaming it into place (matches TEMP_FILE)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


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
    tmp = temp_path(key_file)
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
        check_payload_globals(payload)
    chunks = _encode(header_bytes, payload, keyring.signing_key)

    directory = path.parent
    tmp = temp_path(path)
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


def _verify(layout: _Layout, mac: hmac.HMAC) -> None:
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
    """``path`` opened for reading, refused unless it is a regular file. Opened non-blocking, so
    a FIFO (or a device) is refused at once instead of waiting for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise NotAModelFileError(f"{path} is a directory, not a model file") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or special file"
        raise NotAModelFileError(f"{path} is {kind}, not a model file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


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
