"""Model-file fuzzing (10,000+ hypothesis cases) and the unpickling allow-list against numpy internals.

What tests/test_signing.py already has (every single bit flip and truncation of one small file,
300 random-blob examples, the classic os.system/eval/subprocess/importlib payloads) is not
repeated. Here every property runs thousands of cases and checks two things:

* only the package's own errors (ModelFileError subclasses) come out of read_model_file and
  inspect_model_file, whatever the bytes;
* the restricted unpickler is reached only when an independent oracle says the HMAC verifies
  (and inspect_model_file never reaches it at all).

A last property takes correctly signed, unpickled models whose arrays disagree with the header
(sparse indices out of range, other shapes) and checks that they are refused before any use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench import signing, unpickling
from workbench.errors import ForbiddenPickleError, ModelFileError
from workbench.signing import MAGIC, KeyRing, SigningKey, inspect_model_file, read_model_file

SECRET = bytes(range(7, 39))
OTHER_SECRET = bytes(range(50, 82))
RING = KeyRing([SigningKey("k1", SECRET), SigningKey("old.key-2", OTHER_SECRET)])
HEADER = {"model_id": 7, "algorithm": "TopPop"}
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            database=None)
EXAMPLES = {  # 10,000 cases in total
    "random": 2000, "regions": 2500, "cuts": 1500, "lying": 2500, "signed_payload": 1500, "loaded_models": 300,
}


# ------------------------------------------------------------------------------- the harness

class _Spy:
    """Counts calls that reach the restricted unpickler, around the real one."""

    calls = 0


@pytest.fixture(scope="module", autouse=True)
def _record_unpickling():
    real_loads, real_load = signing.restricted_loads, unpickling.RestrictedUnpickler.load

    def loads(data):
        _Spy.calls += 1
        return real_loads(data)

    def load(self):
        _Spy.calls += 1
        return real_load(self)

    signing.restricted_loads, unpickling.RestrictedUnpickler.load = loads, load
    try:
        yield
    finally:
        signing.restricted_loads, unpickling.RestrictedUnpickler.load = real_loads, real_load


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "model.wbm"


def _valid_file(payload_obj=None, key: SigningKey | None = None, header: dict | None = None) -> bytes:
    payload = pickle.dumps({"a": np.arange(4), "b": [1, "x"]} if payload_obj is None else payload_obj, protocol=5)
    return b"".join(signing._encode(json.dumps(header or HEADER).encode(), payload, key or RING.signing_key))


VALID = _valid_file()


def _layout(blob: bytes) -> dict | None:
    """An independent parse of the layout: offsets and lengths, or None if it is not even that."""
    if len(blob) < 11 or blob[:8] != MAGIC:
        return None
    kid_len = blob[10]
    lengths_at = 11 + kid_len
    if len(blob) < lengths_at + 12 + 32:
        return None
    header_len, payload_len = struct.unpack(">IQ", blob[lengths_at:lengths_at + 12])
    return {"version": int.from_bytes(blob[8:10], "big"), "kid": blob[11:lengths_at], "lengths_at": lengths_at,
            "header_len": header_len, "payload_len": payload_len, "body": lengths_at + 44}


def _mac_verifies(blob: bytes) -> bool:
    """The oracle: does this file carry a valid HMAC under one of RING's keys, with consistent lengths?"""
    layout = _layout(blob)
    if layout is None or layout["version"] != signing.FORMAT_VERSION:
        return False
    if layout["body"] + layout["header_len"] + layout["payload_len"] != len(blob):
        return False
    try:
        key = RING.get(layout["kid"].decode("ascii"))
    except UnicodeDecodeError:
        return False
    if key is None:
        return False
    at = layout["lengths_at"] + 12
    expected = hmac.new(key.secret, blob[:at] + blob[at + 32:], hashlib.sha256).digest()
    return hmac.compare_digest(expected, blob[at:at + 32])


def _check(path: Path, blob: bytes) -> str:
    """Read and inspect `blob`; assert the two invariants; return "ok" or the error class name."""
    path.write_bytes(blob)
    verifies = _mac_verifies(blob)
    _Spy.calls = 0
    try:
        inspect_model_file(path, RING)
        inspected = "ok"
    except ModelFileError as error:
        inspected = type(error).__name__
    assert _Spy.calls == 0, "inspect_model_file reached the unpickler"
    assert (inspected == "ok") <= verifies, "inspect accepted a file whose MAC does not verify"
    try:
        read_model_file(path, RING)
        outcome = "ok"
    except ModelFileError as error:
        outcome = type(error).__name__
    if _Spy.calls:
        assert verifies, "the unpickler was reached for a file whose HMAC does not verify"
    if not verifies:
        assert outcome != "ok" and _Spy.calls == 0
    return outcome


# ---------------------------------------------------------------------------- the properties

@settings(max_examples=EXAMPLES["random"], **FAST)
@given(blob=st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=200).map(lambda b: MAGIC + b),
    st.binary(max_size=200).map(lambda b: MAGIC + b"\x00\x01" + b),
    st.binary(max_size=200).map(lambda b: VALID[:11 + VALID[10]] + b),  # a real prelude and key id, then noise
))
def test_random_bytes(blob, fuzz_path):
    assert _check(fuzz_path, blob) != "ok"


def _regions(blob: bytes) -> dict[str, tuple[int, int]]:
    layout = _layout(blob)
    at = layout["lengths_at"]
    body = layout["body"]
    return {
        "magic": (0, 8), "version": (8, 10), "kid length": (10, 11), "kid": (11, at),
        "header length": (at, at + 4), "payload length": (at + 4, at + 12), "mac": (at + 12, at + 44),
        "header": (body, body + layout["header_len"]), "payload": (body + layout["header_len"], len(blob)),
    }


REGIONS = list(_regions(VALID))


@settings(max_examples=EXAMPLES["regions"], **FAST)
@given(data=st.data(), region=st.sampled_from(REGIONS), n=st.integers(1, 3))
def test_changes_in_every_region_are_refused(data, region, n, fuzz_path):
    blob = bytearray(VALID)
    start, end = _regions(VALID)[region]
    for _ in range(n):
        offset = data.draw(st.integers(start, end - 1), label="offset")
        blob[offset] ^= data.draw(st.integers(1, 255), label="xor")
    if bytes(blob) == VALID:  # two changes undid each other
        return
    assert _check(fuzz_path, bytes(blob)) != "ok"


@settings(max_examples=EXAMPLES["cuts"], **FAST)
@given(cut=st.integers(0, len(VALID)), tail=st.binary(max_size=64), drop=st.integers(0, 16))
def test_truncations_extensions_and_splices(cut, tail, drop, fuzz_path):
    blob = VALID[:cut] + tail + VALID[min(cut + drop, len(VALID)):] if drop else VALID[:cut] + tail
    if blob == VALID:
        return
    assert _check(fuzz_path, blob) != "ok"


def _lie(draw, truth, lies):
    """The truth three times in four, else one of the lies."""
    return truth if draw(st.integers(0, 3)) else draw(lies)


@st.composite
def lying_files(draw):
    """Files whose length fields, version and key ids lie, some signed over the lie with a real key."""
    kid = _lie(draw, b"k1", st.one_of(
        st.sampled_from([b"old.key-2", b"k2", b"", b"K1", b"k1\x00", "ключ".encode(), b"x" * 64, b"y" * 65]),
        st.binary(max_size=70)))
    kid_len = _lie(draw, len(kid) % 256, st.integers(0, 255))
    header = _lie(draw, json.dumps(HEADER).encode(), st.one_of(
        st.binary(max_size=40), st.sampled_from([b"[]", b"null", b'"x"', b"{", b"{}", b"\xff\xfe", b"{}" * 9])))
    payload = _lie(draw, pickle.dumps([1, 2], protocol=5), st.binary(max_size=40))
    real = len(header), len(payload)
    header_len = _lie(draw, real[0], st.one_of(st.integers(0, 2**32 - 1), st.integers(max(real[0] - 4, 0), real[0] + 4),
                                               st.just(signing.MAX_HEADER_BYTES + 1)))
    shift = header_len - real[0]  # a header length that lies by a little, with a payload length that makes up for it
    payload_len = _lie(draw, max(real[1] - shift, 0), st.one_of(
        st.just(real[1]), st.integers(0, 2**64 - 1), st.integers(max(real[1] - 4, 0), real[1] + 4), st.just(2**63)))
    version = _lie(draw, signing.FORMAT_VERSION, st.integers(0, 2**16 - 1))
    prefix = MAGIC + struct.pack(">HB", version, kid_len) + kid + struct.pack(">IQ", header_len, payload_len)
    signer = _lie(draw, "k1", st.sampled_from(["old.key-2", "impostor", "zeros"]))
    if signer == "zeros":
        mac = bytes(32)
    else:
        secret = RING.get(signer).secret if signer != "impostor" else b"\x01" * 32
        mac = hmac.new(secret, prefix + header + payload, hashlib.sha256).digest()
    return prefix + mac + header + payload


@settings(max_examples=EXAMPLES["lying"], **FAST)
@given(blob=lying_files())
def test_lying_lengths_and_key_ids(blob, fuzz_path):
    event(f"{'verifies' if _mac_verifies(blob) else 'does not verify'}: {_check(fuzz_path, blob)}")


PICKLE_NOISE = st.one_of(
    st.binary(max_size=80),
    st.binary(max_size=60).map(lambda b: b"\x80\x05" + b + b"."),
    st.lists(st.sampled_from([  # opcode soup around allowed and forbidden globals
        b"\x80\x05", b"\x95\x10\x00\x00\x00\x00\x00\x00\x00", b"N", b"K\x01", b"J\xff\xff\xff\x7f", b"]", b"}",
        b"(", b"t", b"\x85", b"\x86", b"R", b"b", b"a", b"e", b"s", b"u", b"\x94", b"h\x00", b"0", b"2", b".",
        b"\x8c\x08builtins\x8c\tbytearray\x93", b"\x8c\x05numpy\x8c\x07ndarray\x93",
        b"\x8c\x02os\x8c\x06system\x93", b"cposix\nsystem\n", b"cbuiltins\neval\n", b"\x8c\x01x",
        b"C\x03abc", b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93", b"\x81", b"\x92", b"Q", b"\x88", b"\x89",
    ]), max_size=24).map(b"".join),
)


@settings(max_examples=EXAMPLES["signed_payload"], **FAST)
@given(payload=PICKLE_NOISE, kid=st.sampled_from(["k1", "old.key-2"]))
def test_correctly_signed_garbage_payloads_raise_only_model_file_errors(payload, kid, fuzz_path):
    blob = b"".join(signing._encode(json.dumps(HEADER).encode(), payload, RING.get(kid)))
    outcome = _check(fuzz_path, blob)
    event(outcome)
    if outcome == "ok":  # it was a harmless pickle of plain values
        assert _Spy.calls


def test_a_signed_pickle_declaring_a_huge_object_is_a_model_file_error(fuzz_path):
    # BINBYTES8 with a length of 2**56: the unpickler allocates before it reads (was a bare MemoryError).
    payload = b"\x80\x05\x8e" + (2**56).to_bytes(8, "little") + b"."
    fuzz_path.write_bytes(b"".join(signing._encode(b"{}", payload, RING.signing_key)))
    with pytest.raises(ModelFileError, match="more memory"):
        read_model_file(fuzz_path, RING)


def test_the_properties_add_up_to_10000_cases():
    assert sum(EXAMPLES.values()) >= 10_000


# ------------------------------------------- correctly signed models that disagree with their header

LOADED = ("RP3beta", "SLIM", "CosineUserKNN", "DenseSLIM", "TopPop", "IALS", "TruncatedSVD", "NMF")


@pytest.fixture(scope="module")
def learnt_models():
    """Small learnt models of every storage kind: sparse CSC/CSR weights, dense weights, factors."""
    import warnings

    import scipy.sparse as sps

    from workbench.algorithms import build_recommender

    rng = np.random.default_rng(0)
    X = sps.csr_matrix((rng.random((30, 20)) < 0.3).astype(np.float64))
    sizes = {"IALS": {"n_components": 4, "train_epochs": 2}, "TruncatedSVD": {"n_components": 4},
             "NMF": {"n_components": 4}}
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in LOADED:
            models[name] = pickle.dumps(build_recommender(name, X, sizes.get(name)).learn(), protocol=5)
    return X.shape, models


@settings(max_examples=EXAMPLES["loaded_models"], **FAST)
@given(name=st.sampled_from(LOADED), data=st.data())
def test_a_model_that_disagrees_with_its_header_is_refused_before_use(name, data, learnt_models):
    """A loaded (validly signed) model whose arrays do not fit its header's n_users x n_items, or
    whose sparse matrices index outside them, is refused with ModelFileError, never used."""
    import scipy.sparse as sps

    from workbench.recommend import Recommender
    from workbench.records import TrainedModel

    (n_users, n_items), models = learnt_models
    recommender = pickle.loads(models[name])
    header = {"algorithm": name, "n_users": n_users, "n_items": n_items}
    ids = {"user_ids": np.arange(n_users), "item_ids": np.arange(n_items)}
    arrays = {key: value for key, value in vars(recommender).items() if sps.issparse(value) and value.nnz}
    how = data.draw(st.sampled_from(["index", "indptr", "header", "ids"]))
    if how in ("index", "indptr"):
        key = data.draw(st.sampled_from(sorted(arrays)))
        matrix = arrays[key]
        if how == "index":
            minor = matrix.shape[1 if matrix.format == "csr" else 0]
            at = data.draw(st.integers(0, len(matrix.indices) - 1))
            matrix.indices[at] = data.draw(st.one_of(st.integers(-2**31, -1), st.integers(minor, 2**31 - 1)))
        else:
            matrix.indptr[-1] += data.draw(st.integers(1, 1000))
        event(f"{name} {key} {how}")
    elif how == "header":
        axis = data.draw(st.sampled_from(["n_users", "n_items"]))
        header[axis] = max(0, header[axis] + data.draw(st.integers(-5, 5).filter(bool)))
        event(f"{name} {axis}")
    else:
        kind = data.draw(st.sampled_from(sorted(ids)))
        ids[kind] = ids[kind][:data.draw(st.integers(0, len(ids[kind]) - 1))]
        event(f"{name} {kind}")
    with pytest.raises(ModelFileError):
        Recommender(TrainedModel(id=1, project_id=1, configuration_id=1, training_data_id=1), header, recommender,
                    ids["user_ids"], ids["item_ids"])


# ------------------------------------------------------- numpy internals, correctly signed

class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _numpy_payloads(tmp: Path, marker: Path) -> dict[str, bytes]:
    """Correctly pickled calls into numpy functions that execute code, load code or touch files."""
    import numpy.ctypeslib
    import numpy.f2py
    import numpy.lib._utils_impl
    import numpy.lib.format
    import numpy.testing._private.utils as np_testing_utils
    from numpy._core import _methods

    code = f"open({str(marker)!r}, 'w').close()"
    evil_npy = tmp / "evil.npy"  # an object array whose pickle runs os.system: numpy.load(allow_pickle=True) would
    np.save(evil_npy, np.array([_Reduce(os.system, f"touch {marker}")], dtype=object), allow_pickle=True)
    payloads = {
        "numpy.testing._private.utils.runstring": (np_testing_utils.runstring, code, {}),
        "numpy.load": (np.load, str(evil_npy), None, True),
        "numpy.lib.format.read_array": (numpy.lib.format.read_array, open(evil_npy, "rb"), True),
        "numpy.ctypeslib.load_library": (numpy.ctypeslib.load_library, "libevil", str(tmp)),
        "numpy.f2py.run_main": (numpy.f2py.run_main, ["-c", str(tmp / "evil.f90")]),
        "numpy.lib._utils_impl.safe_eval": (numpy.lib._utils_impl.safe_eval, code),
        "numpy.fromfile": (np.fromfile, str(evil_npy)),
        "numpy.save": (np.save, str(marker), np.arange(3)),
        "numpy.frompyfunc": (np.frompyfunc, os.system, 1, 1),
        "numpy.vectorize": (np.vectorize, os.system),
        "numpy._core._methods._dump": (_methods._dump, np.arange(3), str(marker)),
    }
    try:
        from numpy.testing._private import extbuild

        payloads["numpy.testing._private.extbuild.build_and_import_extension"] = (
            extbuild.build_and_import_extension, "evil", [])
    except ImportError:  # pragma: no cover
        pass
    out = {}
    for name, (func, *args) in payloads.items():
        try:
            out[name] = pickle.dumps(_Reduce(func, *args), protocol=5)
        except Exception:  # e.g. an open file cannot be pickled: refer to the global by name instead
            module, _, attr = name.rpartition(".")
            out[name] = f"c{module}\n{attr}\n(tR.".encode()
    return out


NUMPY_TARGETS = [
    "numpy.testing._private.utils.runstring", "numpy.load", "numpy.lib.format.read_array",
    "numpy.ctypeslib.load_library", "numpy.f2py.run_main", "numpy.lib._utils_impl.safe_eval",
    "numpy.fromfile", "numpy.save", "numpy.frompyfunc", "numpy.vectorize", "numpy._core._methods._dump",
    "numpy.testing._private.extbuild.build_and_import_extension",
]


@pytest.mark.parametrize("target", NUMPY_TARGETS)
def test_signed_payloads_reaching_numpy_internals_are_refused(target, tmp_path):
    marker = tmp_path / "pwned"
    payloads = _numpy_payloads(tmp_path, marker)
    if target not in payloads:
        pytest.skip(f"{target} does not exist in this numpy")
    path = tmp_path / "evil.wbm"
    path.write_bytes(b"".join(signing._encode(b'{"model_id": 1}', payloads[target], RING.signing_key)))
    assert inspect_model_file(path, RING) == {"model_id": 1}  # the signature is good: only the allow-list stands
    _Spy.calls = 0
    with pytest.raises(ForbiddenPickleError) as info:
        read_model_file(path, RING)
    assert _Spy.calls  # it did reach the unpickler, which refused the global
    module, _, name = target.rpartition(".")
    assert f"{module}.{name}" in str(info.value) or name in str(info.value)
    assert not marker.exists() and not (tmp_path / "pwned.npy").exists()


@pytest.mark.parametrize("module,name", [
    ("numpy", "testing"), ("numpy.testing", "_private"), ("numpy.lib", "_utils_impl"), ("numpy", "ctypeslib"),
    ("numpy", "f2py"), ("numpy._core.multiarray", "_reconstruct.__call__"), ("numpy", "ndarray.__reduce_ex__"),
    ("numpy.dtypes", "__builtins__"), ("numpy.dtypes", "np"), ("numpy", "__builtins__"),
    ("numpy._core.numeric", "_frombuffer.__globals__"), ("numpy.core.multiarray", "_reconstruct.__globals__"),
    ("numpy.core", "multiarray"), ("numpy.core.multiarray", "runstring"),
])
def test_numpy_modules_and_attribute_paths_are_refused(module, name):
    for data in (f"c{module}\n{name}\n.".encode(),
                 b"\x80\x05\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)])
                 + name.encode() + b"\x93."):
        with pytest.raises(ForbiddenPickleError):
            signing.restricted_loads(data)
