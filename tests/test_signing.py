"""Tests for workbench.signing: the signed model file format."""

from __future__ import annotations

import io
import os
import pickle
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import irspack
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import error_without_waiting
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import signing, unpickling
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
from workbench.signing import (
    ENV_VAR,
    MAGIC,
    KeyRing,
    SigningKey,
    inspect_model_file,
    read_model_file,
    restricted_loads,
    write_model_file,
)

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(100, 132))
SECRET_OLD = b"\x07" * 32


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([SigningKey("k1", SECRET_A)])


def _signed_raw(path: Path, payload: bytes, key: SigningKey, header: bytes = b'{"x": 1}') -> None:
    """Write a correctly signed file around arbitrary payload bytes."""
    path.write_bytes(b"".join(signing._encode(header, payload, key)))


def _small_file(path: Path, ring: KeyRing) -> bytes:
    write_model_file(path, {"name": "small", "n": 3}, {"a": np.arange(3), "b": [1, "x"]}, ring)
    return path.read_bytes()


def _fail(*args, **kwargs):
    raise AssertionError("the unpickler must not be reached")


def _forbid_unpickling(monkeypatch) -> None:
    monkeypatch.setattr(signing, "restricted_loads", _fail)
    monkeypatch.setattr(unpickling.RestrictedUnpickler, "load", _fail)
    monkeypatch.setattr(pickle, "loads", _fail)
    monkeypatch.setattr(pickle, "load", _fail)


# ---------------------------------------------------------------- round trips

RECOMMENDERS = {
    "IALS": dict(n_components=4, train_epochs=3, n_threads=1),
    "RP3beta": {},
    "P3alpha": {},
    "CosineKNN": {},
    "AsymmetricCosineKNN": {},
    "JaccardKNN": {},
    "TverskyIndexKNN": {},
    "CosineUserKNN": {},
    "AsymmetricCosineUserKNN": {},
    "DenseSLIM": {},
    "EDLAE": {},
    "SLIM": {},
    "TopPop": {},
    "TruncatedSVD": dict(n_components=4),
    "NMF": dict(n_components=4),
}


@pytest.fixture(scope="module")
def X() -> sps.csr_matrix:
    rng = np.random.default_rng(0)
    return sps.csr_matrix((rng.random((24, 16)) < 0.25).astype(np.float64))


def _dense(a):
    return a.toarray() if sps.issparse(a) else np.asarray(a)


@pytest.mark.parametrize("name", sorted(RECOMMENDERS))
def test_round_trip_every_recommender(name, X, ring, tmp_path):
    params = dict(RECOMMENDERS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = getattr(irspack, f"{name}Recommender")(X, **params).learn()
    user_ids = np.array([f"u{i}" for i in range(X.shape[0])], dtype=object)
    item_ids = np.array([f"i{i}" for i in range(X.shape[1])])
    header = {"recommender": name, "metrics": {"ndcg@10": 0.25}, "tags": ["a", "é"]}
    path = tmp_path / "model.rwb"
    payload = {"recommender": rec, "user_ids": user_ids, "item_ids": item_ids}
    size = write_model_file(path, header, payload, ring, check_allowlist=True)
    assert size == path.stat().st_size
    got_header, payload = read_model_file(path, ring)
    assert got_header == header
    assert inspect_model_file(path, ring) == header
    assert type(payload["recommender"]) is type(rec)
    np.testing.assert_array_equal(payload["user_ids"], user_ids)
    np.testing.assert_array_equal(payload["item_ids"], item_ids)
    users = np.arange(X.shape[0])
    np.testing.assert_array_equal(_dense(payload["recommender"].get_score(users)), _dense(rec.get_score(users)))


def test_ials_round_trips_its_cpp_trainer(X, ring, tmp_path):
    rec = irspack.IALSRecommender(X, **RECOMMENDERS["IALS"]).learn()
    assert type(rec.trainer.core_trainer).__module__ == "irspack.recommenders._ials_core"
    write_model_file(tmp_path / "m", {}, rec, ring)
    _, loaded = read_model_file(tmp_path / "m", ring)
    np.testing.assert_array_equal(loaded.get_item_embedding(), rec.get_item_embedding())
    # the C++ solver configs survived too: fold-in of new users works identically
    np.testing.assert_allclose(loaded.get_score_cold_user(X[:3]), rec.get_score_cold_user(X[:3]), rtol=1e-5)


def test_plain_containers_and_sparse_formats_round_trip(ring, tmp_path):
    import collections

    base = sps.random(5, 4, density=0.5, format="csr", random_state=0)
    obj = {
        "od": collections.OrderedDict(a=1),
        "set": {1, 2},
        "fs": frozenset({3}),
        "slice": slice(1, 5, 2),
        "c": 1 + 2j,
        "ba": bytearray(b"xy"),
        "scalars": [np.float32(1.5), np.int64(3), np.datetime64("2024-01-02")],
        "strings": np.array(["a", "bc"]),
        "sdt": np.array(["x"], dtype=np.dtypes.StringDType()),
        "sparse": [base, base.tocsc(), base.tocoo(), base.todok(), base.tolil(), sps.csr_array(base)],
    }
    write_model_file(tmp_path / "m", {}, obj, ring)
    _, got = read_model_file(tmp_path / "m", ring)
    assert got["od"] == obj["od"] and got["set"] == obj["set"] and got["ba"] == obj["ba"]
    assert got["scalars"] == obj["scalars"]
    for a, b in zip(got["sparse"], obj["sparse"]):
        assert type(a) is type(b)
        np.testing.assert_array_equal(a.toarray(), b.toarray())


def test_numpy1_pickle_names_are_accepted():
    # numpy 1.x pickles name numpy.core.multiarray._reconstruct; rewrite a
    # protocol 4 pickle (frame dropped, string length fixed) to look like one.
    data = pickle.dumps(np.arange(4), protocol=4)
    assert data[2] == 0x95  # FRAME + 8-byte length, optional for readers
    data = data[:2] + data[11:]
    old, new = b"numpy._core.multiarray", b"numpy.core.multiarray"
    data = data.replace(bytes([0x8C, len(old)]) + old, bytes([0x8C, len(new)]) + new)
    assert new in data and old not in data
    np.testing.assert_array_equal(restricted_loads(data), np.arange(4))


# ------------------------------------------------------------------ tampering


def _region_offsets(data: bytes) -> dict[str, int]:
    kid_len = data[10]
    lengths = 11 + kid_len
    header_len = int.from_bytes(data[lengths : lengths + 4], "big")
    mac = lengths + 12
    header = mac + 32
    return {
        "magic": 1,
        "version": 9,
        "key id": 11,
        "mac": mac + 5,
        "header": header + 2,
        "payload": header + header_len + 10,
    }


EXPECTED = {
    "magic": NotAModelFileError,
    "version": UnsupportedModelVersionError,
    "key id": UnknownKeyError,
    "mac": SignatureMismatchError,
    "header": SignatureMismatchError,
    "payload": SignatureMismatchError,
}


@pytest.mark.parametrize("region", list(EXPECTED))
@pytest.mark.parametrize("bit", [0, 7])
def test_flipped_bit_in_each_region(region, bit, ring, tmp_path, monkeypatch):
    path = tmp_path / "m"
    data = bytearray(_small_file(path, ring))
    data[_region_offsets(bytes(data))[region]] ^= 1 << bit
    path.write_bytes(bytes(data))
    _forbid_unpickling(monkeypatch)
    with pytest.raises(EXPECTED[region]):
        read_model_file(path, ring)
    with pytest.raises(EXPECTED[region]):
        inspect_model_file(path, ring)


def test_every_single_bit_flip_is_rejected(ring, tmp_path, monkeypatch):
    path = tmp_path / "m"
    original = _small_file(path, ring)
    _forbid_unpickling(monkeypatch)
    for offset in range(len(original)):
        data = bytearray(original)
        data[offset] ^= 0x10
        path.write_bytes(bytes(data))
        with pytest.raises(ModelFileError):
            read_model_file(path, ring)


def test_trailing_bytes_are_rejected(ring, tmp_path):
    path = tmp_path / "m"
    path.write_bytes(_small_file(path, ring) + b"\0")
    with pytest.raises(SignatureMismatchError):
        read_model_file(path, ring)


def test_truncation_at_every_offset(ring, tmp_path, monkeypatch):
    path = tmp_path / "m"
    original = _small_file(path, ring)
    _forbid_unpickling(monkeypatch)
    for cut in range(len(original)):
        path.write_bytes(original[:cut])
        expected = NotAModelFileError if cut < len(MAGIC) else TruncatedModelFileError
        with pytest.raises(expected):
            read_model_file(path, ring)
        with pytest.raises(expected):
            inspect_model_file(path, ring)


# ----------------------------------------------------------------------- keys


def test_wrong_secret_same_kid(ring, tmp_path):
    path = tmp_path / "m"
    _small_file(path, ring)
    other = KeyRing([SigningKey("k1", SECRET_B)])
    with pytest.raises(SignatureMismatchError):
        read_model_file(path, other)
    with pytest.raises(SignatureMismatchError):
        inspect_model_file(path, other)


def test_unknown_and_retired_kid(ring, tmp_path):
    path = tmp_path / "m"
    _small_file(path, ring)
    with pytest.raises(UnknownKeyError, match="k1"):
        read_model_file(path, KeyRing([SigningKey("k2", SECRET_A)]))
    with pytest.raises(UnknownKeyError):
        inspect_model_file(path, KeyRing([SigningKey("k2", SECRET_A)]))


def test_rotation_via_environment(tmp_path, monkeypatch):
    key_file = tmp_path / "key"
    monkeypatch.setenv(ENV_VAR, f"old:{SECRET_OLD.hex()}")
    old_ring = KeyRing.load(key_file)
    assert not key_file.exists()
    write_model_file(tmp_path / "old.rwb", {"v": "old"}, [1], old_ring)

    monkeypatch.setenv(ENV_VAR, f" new:{SECRET_A.hex()} , old:{SECRET_OLD.hex()} ")
    ring = KeyRing.load(key_file)
    assert ring.signing_key.kid == "new" and ring.kids == ["new", "old"]
    assert read_model_file(tmp_path / "old.rwb", ring) == ({"v": "old"}, [1])
    write_model_file(tmp_path / "new.rwb", {"v": "new"}, [2], ring)
    assert read_model_file(tmp_path / "new.rwb", KeyRing([SigningKey("new", SECRET_A)]))[1] == [2]
    with pytest.raises(UnknownKeyError):  # new files are not signed by the old key
        read_model_file(tmp_path / "new.rwb", old_ring)

    monkeypatch.setenv(ENV_VAR, f"new:{SECRET_A.hex()}")  # old key retired
    with pytest.raises(UnknownKeyError):
        read_model_file(tmp_path / "old.rwb", KeyRing.load(key_file))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "k1",
        f"{SECRET_B.hex()}",
        f"k1:{SECRET_B.hex()[:-1]}",
        f"k1:{SECRET_B.hex()}00",
        f"k1:{SECRET_B.hex()[:-2]}zz",
        f"bad kid!:{SECRET_B.hex()}",
        f":{SECRET_B.hex()}",
        f"k1:{SECRET_B.hex()},",
        f"k1:{SECRET_B.hex()},k1:{SECRET_B.hex()}",
        f"{SECRET_B.hex()}:k1",
        f"{'a' * 65}:{SECRET_B.hex()}",
    ],
)
def test_malformed_environment_value(value, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(ValidationError) as info:
        KeyRing.load(tmp_path / "key")
    message = str(info.value)
    assert ENV_VAR in message
    assert SECRET_B.hex()[:16] not in message.lower()
    assert not (tmp_path / "key").exists()


def test_key_file_created_0600_and_reused(tmp_path):
    key_file = tmp_path / "sub" / "signing.key"
    ring = KeyRing.load(key_file)
    mode = stat.S_IMODE(key_file.stat().st_mode)
    assert mode == 0o600
    again = KeyRing.load(key_file)
    assert again.signing_key == ring.signing_key
    assert len(ring.signing_key.secret) == 32
    assert sorted(os.listdir(key_file.parent)) == ["signing.key"]
    write_model_file(tmp_path / "m", {}, 1, ring)
    assert read_model_file(tmp_path / "m", again) == ({}, 1)


def test_key_file_concurrent_creation_agrees(tmp_path):
    key_file = tmp_path / "signing.key"
    barrier = threading.Barrier(6)
    results: list = []

    def worker():
        barrier.wait()
        results.append(KeyRing.load(key_file).signing_key)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert os.listdir(tmp_path) == ["signing.key"]


def test_key_file_two_processes(tmp_path):
    key_file = tmp_path / "signing.key"
    code = (
        f"import sys; sys.path[:0] = {sys.path!r}; from pathlib import Path;"
        "from workbench.signing import KeyRing;"
        "print(KeyRing.load(Path(sys.argv[1])).signing_key.kid)"
    )
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(key_file)],
            stdout=subprocess.PIPE, env=env, text=True, cwd=tmp_path,
        )
        for _ in range(2)
    ]
    kids = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(kids) == 1 and kids != {""}
    assert kids == {KeyRing.load(key_file).signing_key.kid}


def test_malformed_key_file(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("garbage-without-colon\n")
    with pytest.raises(ValidationError, match="key file"):
        KeyRing.load(key_file)


def test_repr_never_shows_secret(tmp_path, monkeypatch):
    key = SigningKey("k1", SECRET_A)
    ring = KeyRing([key, SigningKey("k0", SECRET_B)])
    monkeypatch.setenv(ENV_VAR, f"e1:{SECRET_B.hex()}")
    env_ring = KeyRing.load(tmp_path / "key")
    for obj in (key, ring, env_ring, env_ring.signing_key):
        for text in (repr(obj), str(obj), f"{obj}"):
            for secret in (SECRET_A, SECRET_B):
                assert secret.hex() not in text.lower()
                assert repr(secret) not in text
    assert "k1" in repr(ring) and "k1" in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_keyring_validation():
    with pytest.raises(ValidationError):
        KeyRing([])
    with pytest.raises(ValidationError):
        KeyRing([SigningKey("a", SECRET_A), SigningKey("a", SECRET_B)])
    with pytest.raises(ValidationError):
        SigningKey("a", b"short")
    with pytest.raises(ValidationError):
        SigningKey("bad kid", SECRET_A)


# ------------------------------------------------------------- restricted pickle


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _side_effect_payloads(marker: Path, tmp_path: Path) -> dict[str, bytes]:
    import builtins
    import importlib

    module = tmp_path / "wb_evil_module.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\n")
    return {
        "os.system": f"cos\nsystem\n(V touch {marker}\ntR.".encode(),
        "posix.system": pickle.dumps(_Reduce(os.system, f"touch {marker}"), protocol=5),
        "builtins.eval": pickle.dumps(
            _Reduce(builtins.eval, f"open({str(marker)!r}, 'w').close()"), protocol=5
        ),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, ["touch", str(marker)]), protocol=5),
        "importlib.import_module": pickle.dumps(
            _Reduce(importlib.import_module, "wb_evil_module"), protocol=5
        ),
    }


@pytest.mark.parametrize(
    "target", ["os.system", "posix.system", "builtins.eval", "subprocess.Popen", "importlib.import_module"]
)
def test_signed_malicious_payload_is_refused(target, ring, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.syspath_prepend(str(tmp_path))
    payload = _side_effect_payloads(marker, tmp_path)[target]
    path = tmp_path / "evil.rwb"
    _signed_raw(path, payload, ring.signing_key)
    assert inspect_model_file(path, ring) == {"x": 1}  # correctly signed
    with pytest.raises(ForbiddenPickleError, match=target.replace(".", r"\.")):
        read_model_file(path, ring)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name",
    [
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("subprocess", "check_output"),
        ("runpy", "run_path"),
        ("importlib", "reload"),
        ("numpy", "load"),
        ("numpy", "loadtxt"),
        ("numpy.lib.npyio", "load"),
        ("numpy.testing", "assert_equal"),
        ("numpy.f2py", "compile"),
        ("numpy.distutils", "exec_command"),
        ("numpy._core.multiarray", "_reconstruct.__globals__"),
        ("pickle", "loads"),
        ("copyreg", "_reconstructor.__globals__"),
        ("irspack.recommenders.ials", "pickle"),  # a module imported there
        ("irspack.recommenders.ials", "pickle.loads"),  # dotted path out of it
        ("irspack.recommenders.ials", "Evaluator"),  # class imported from elsewhere
        ("irspack.recommenders.ials", "str_to_solver_type"),  # a function
        ("irspack.recommenders.base", "RecommenderMeta"),  # a metaclass
        ("irspack.utils", "IDMapper"),
        ("sklearn.utils", "_joblib"),
        ("scipy.sparse", "load_npz"),
        ("numpy.dtypes", "np"),
    ],
)
def test_forbidden_globals(module, name):
    data = f"c{module}\n{name}\n.".encode()
    with pytest.raises(ForbiddenPickleError) as info:
        restricted_loads(data)
    assert f"{module}.{name}" in str(info.value)
    data5 = b"\x80\x05" + _short_str(module) + _short_str(name) + b"\x93."
    with pytest.raises(ForbiddenPickleError):
        restricted_loads(data5)


def _short_str(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def test_allowed_irspack_classes_resolve():
    from irspack.recommenders import _ials_core, ials, knn

    assert unpickling.resolve_allowed("irspack.recommenders.ials", "IALSConfig") is ials.IALSConfig
    assert unpickling.resolve_allowed("irspack.recommenders.knn", "FeatureWeightingScheme") is knn.FeatureWeightingScheme
    assert unpickling.resolve_allowed("irspack.recommenders._ials_core", "IALSTrainer") is _ials_core.IALSTrainer


def test_write_with_check_allowlist_refuses_unreadable_objects(ring, tmp_path):
    marker = tmp_path / "pwned"
    evil = _Reduce(os.system, f"touch {marker}")
    with pytest.raises(ForbiddenPickleError, match="posix.system"):
        write_model_file(tmp_path / "m", {}, evil, ring, check_allowlist=True)
    with pytest.raises(ForbiddenPickleError):
        write_model_file(tmp_path / "m", {}, {"f": Path("x")}, ring, check_allowlist=True)
    assert os.listdir(tmp_path) == []
    write_model_file(tmp_path / "ok", {}, {"a": np.arange(3), "s": {1}}, ring, check_allowlist=True)
    # by default the writer does not check: the reader is the gate
    write_model_file(tmp_path / "m", {"a": 1}, evil, ring)
    assert inspect_model_file(tmp_path / "m", ring) == {"a": 1}
    with pytest.raises(ForbiddenPickleError):
        read_model_file(tmp_path / "m", ring)
    assert not marker.exists()


def _globals_the_unpickler_resolves(payload: bytes) -> set:
    seen = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(payload)).load()
    return seen


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])  # 0: text opcodes (GLOBAL, PUT, GET)
@pytest.mark.parametrize("name", sorted(RECOMMENDERS))
def test_the_globals_a_model_needs_are_read_from_its_opcodes(name, protocol, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # irspack's C++ trainers pickle from protocol 2 on
        rec = getattr(irspack, f"{name}Recommender")(X, **RECOMMENDERS[name]).learn() if protocol else X
    ids = np.array([f"user-{i}" * (1 + i % 90) for i in range(X.shape[0])], dtype=object)  # short and long strings
    payload = pickle.dumps({"recommender": rec, "user_ids": ids, "item_ids": np.arange(X.shape[1]),
                            "paths": [Path("a"), Path("b")], "ids_again": ids}, protocol=protocol)
    found = unpickling._pickle_globals(payload)
    assert found is not None
    assert set(found) == _globals_the_unpickler_resolves(payload)
    assert ("pathlib", "PosixPath") in _globals_the_unpickler_resolves(payload)


def test_globals_named_by_long_strings_and_unreadable_opcodes():
    module, name = "m" * 300, "n" * 70_000  # BINUNICODE (4-byte length) operands of STACK_GLOBAL
    crafted = (b"\x80\x04" + b"X" + len(module).to_bytes(4, "little") + module.encode() + b"\x94"
               + b"X" + len(name).to_bytes(4, "little") + name.encode() + b"\x94\x93.")
    assert list(unpickling._pickle_globals(crafted)) == [(module, name)]
    assert unpickling._pickle_globals(b"\x80\x05\xff.") is None  # not an opcode
    assert unpickling._pickle_globals(b"\x80\x05\x8c\x01x\x8c") is None  # ends inside a string
    assert unpickling._pickle_globals(b"\x80\x05\x8c\x05ab") is None  # a string longer than what is left
    assert unpickling._pickle_globals(crafted[:-1]) is None  # no STOP
    assert unpickling._pickle_globals(b"\x80\x05N\x8c\x01x\x93.") is None  # a global named by None
    with pytest.raises(ModelFileError):  # what cannot be read is unpickled (restricted) instead: refused
        unpickling.check_payload_globals(b"\x80\x05\xff.")


def test_restricted_loads_garbage_and_persistent_ids():
    with pytest.raises(ModelFileError):
        restricted_loads(b"\x80\x05garbage")
    with pytest.raises(ForbiddenPickleError):
        restricted_loads(b"\x80\x05\x8c\x01x\x94Q.")  # BINPERSID


def test_payload_tamper_never_reaches_unpickler(ring, tmp_path, monkeypatch):
    path = tmp_path / "m"
    data = bytearray(_small_file(path, ring))
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    _forbid_unpickling(monkeypatch)
    with pytest.raises(SignatureMismatchError):
        read_model_file(path, ring)


def test_inspect_never_unpickles(ring, tmp_path, monkeypatch):
    path = tmp_path / "m"
    _small_file(path, ring)
    _forbid_unpickling(monkeypatch)
    assert inspect_model_file(path, ring) == {"name": "small", "n": 3}


# ------------------------------------------------------------- not a model file


def test_not_a_model_file(ring, tmp_path):
    rng = np.random.default_rng(1)
    cases = {
        "random": rng.bytes(500),
        "empty": b"",
        "text": b"hello, world\n" * 10,
        "pickle": pickle.dumps({"a": 1}),
    }
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"a": [1, 2, 3]}), tmp_path / "t.parquet")
        cases["parquet"] = (tmp_path / "t.parquet").read_bytes()
    except ImportError:  # pragma: no cover
        cases["parquet"] = b"PAR1" + rng.bytes(100) + b"PAR1"
    for name, data in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(data)
        with pytest.raises(NotAModelFileError):
            read_model_file(path, ring)
        with pytest.raises(NotAModelFileError):
            inspect_model_file(path, ring)
    with pytest.raises(NotAModelFileError):
        read_model_file(tmp_path, ring)
    with pytest.raises(NotAModelFileError):
        inspect_model_file(Path("/dev/zero"), ring)


def test_oversized(ring, tmp_path):
    path = tmp_path / "m"
    write_model_file(path, {}, np.zeros(1000), ring)
    with pytest.raises(OversizedModelFileError):
        read_model_file(path, ring, max_payload_bytes=500)
    with pytest.raises(OversizedModelFileError):
        inspect_model_file(path, ring, max_payload_bytes=500)
    with pytest.raises(OversizedModelFileError):
        write_model_file(tmp_path / "n", {}, np.zeros(1000), ring, max_payload_bytes=500)
    with pytest.raises(OversizedModelFileError):
        write_model_file(tmp_path / "n", {"big": "x" * (signing.MAX_HEADER_BYTES + 1)}, 1, ring)
    # a forged header length beyond 1 MiB, and a payload length far beyond the file
    data = bytearray(path.read_bytes())
    lengths = 11 + data[10]
    forged = bytearray(data)
    forged[lengths : lengths + 4] = (signing.MAX_HEADER_BYTES + 1).to_bytes(4, "big")
    path.write_bytes(bytes(forged))
    with pytest.raises(OversizedModelFileError):
        read_model_file(path, ring)
    forged = bytearray(data)
    forged[lengths + 4 : lengths + 12] = (2**63).to_bytes(8, "big")
    path.write_bytes(bytes(forged))
    with pytest.raises(OversizedModelFileError):
        read_model_file(path, ring)
    forged[lengths + 4 : lengths + 12] = (10**6).to_bytes(8, "big")
    path.write_bytes(bytes(forged))
    with pytest.raises(TruncatedModelFileError):
        read_model_file(path, ring)


def test_invalid_header_is_a_validation_error(ring, tmp_path):
    with pytest.raises(ValidationError):
        write_model_file(tmp_path / "m", ["not", "a", "dict"], 1, ring)
    with pytest.raises(ValidationError):
        write_model_file(tmp_path / "m", {"x": object()}, 1, ring)
    with pytest.raises(ValidationError):
        write_model_file(tmp_path / "m", {}, lambda: 1, ring)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------- atomic writes


def test_atomic_write_leaves_no_temp_files(ring, tmp_path, monkeypatch):
    path = tmp_path / "model.rwb"
    write_model_file(path, {"v": 1}, [1], ring)
    write_model_file(path, {"v": 2}, [2], ring)  # overwrite
    assert os.listdir(tmp_path) == ["model.rwb"]
    assert read_model_file(path, ring) == ({"v": 2}, [2])

    seen = []
    real_replace = os.replace

    def spy_replace(src, dst):
        seen.append(Path(src).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy_replace)
    write_model_file(path, {"v": 3}, [3], ring)
    assert seen and seen[0].startswith(".model.rwb.tmp-") and not seen[0].endswith(".rwb")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_model_file(path, {"v": 4}, [4], ring)
    with pytest.raises(OSError):
        write_model_file(tmp_path / "other.rwb", {"v": 4}, [4], ring)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.rwb"]
    assert read_model_file(path, ring) == ({"v": 3}, [3])


# ---------------------------------------------------------------- properties


@pytest.fixture(scope="module")
def prop_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("prop")


@pytest.fixture(scope="module")
def valid_bytes(prop_dir) -> bytes:
    ring = KeyRing([SigningKey("k1", SECRET_A)])
    return _small_file(prop_dir / "valid", ring)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_bytes_only_raise_model_file_errors(data, prop_dir, valid_bytes, ring):
    kind = data.draw(st.sampled_from(["random", "magic", "mutated"]))
    if kind == "random":
        blob = data.draw(st.binary(max_size=200))
    elif kind == "magic":
        blob = MAGIC + data.draw(st.binary(max_size=200))
    else:
        blob = bytearray(valid_bytes)
        for _ in range(data.draw(st.integers(1, 4))):
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(blob)))
        blob = bytes(blob[:cut])
    path = prop_dir / "fuzz"
    path.write_bytes(blob)
    for fn in (read_model_file, inspect_model_file):
        try:
            fn(path, ring)
        except ModelFileError:
            pass
        else:
            assert blob == valid_bytes


# ---------------------------------------------------------------- special files


@pytest.mark.parametrize("read", [inspect_model_file, read_model_file], ids=["inspect", "read"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(read, ring, tmp_path):
    path = tmp_path / "model.wbm"
    os.mkfifo(path)
    error = error_without_waiting(lambda: read(path, ring), path)
    assert isinstance(error, NotAModelFileError) and "FIFO" in str(error)
