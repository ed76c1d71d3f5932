"""The hardened GGUF reader: hostile files raise ModelFormatError, real files read like gguf-py reads them.

Crafted files are built byte by byte here (``build``), so each test says exactly which field is wrong;
the fuzzer mutates a valid file written by gguf-py's own GGUFWriter. The real-model tests (SmolLM2's
metadata and tensors against gguf-py's GGUFReader; its token embedding re-quantized by the native
quantizers against gguf-py's) live here rather than in test_native_quant.py because they need the cached
model, which the emulated-ARM kernel runs do not have.
"""

from __future__ import annotations

import functools
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime import reference
from edge_runtime.errors import InputError, ModelFormatError
from edge_runtime.llm import gguf_file
from edge_runtime.llm.gguf_file import GGML_TYPE_SIZES, GGMLType, GGUFFile, GGUFValueType, validate
from edge_runtime.llm.quant import QuantType, dequantize, quantize

V = GGUFValueType

# --- a byte-level GGUF builder (gguf.md layout) --------------------------------------------------------


def s(text) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def u32(x: int) -> bytes:
    return struct.pack("<I", x)


def u64(x: int) -> bytes:
    return struct.pack("<Q", x)


def arr(etype: int, items: Sequence[bytes]) -> bytes:
    return u32(etype) + u64(len(items)) + b"".join(items)


def tinfo(name, dims: Sequence[int], gtype: int, offset: int) -> bytes:
    return s(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(gtype) + u64(offset)


def build(kvs: List[bytes], infos: List[bytes], data: bytes = b"", *, magic=b"GGUF", version=3, n_kv=None,
          n_tensors=None, alignment=32) -> bytes:
    head = magic + u32(version) + u64(len(infos) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    return body + b"\0" * (-len(body) % alignment) + data


# The valid file every crafted one is a variation of: two tensors, packed, the last ending at EOF.
A_BYTES = 2 * 32 * 4  # F32 (2, 32)
B_BYTES = 2 * 34  # Q8_0 (64,)
GOOD_KVS = [
    kv("general.architecture", V.STRING, s("llama")),
    kv("general.alignment", V.UINT32, u32(32)),
    kv("llama.context_length", V.UINT32, u32(128)),
    kv("test.scores", V.ARRAY, arr(V.FLOAT32, [struct.pack("<f", x) for x in (0.5, -1.0)])),
    kv("test.tokens", V.ARRAY, arr(V.STRING, [s("<s>"), s("héllo")])),
    kv("test.flag", V.BOOL, b"\x01"),
]
GOOD_INFOS = [tinfo("a", [32, 2], GGMLType.F32, 0), tinfo("b", [64], GGMLType.Q8_0, 256)]
GOOD_DATA = np.arange(64, dtype=np.float32).tobytes() + bytes(range(B_BYTES))


def good(**kw) -> bytes:
    return build(kw.pop("kvs", GOOD_KVS), kw.pop("infos", GOOD_INFOS), kw.pop("data", GOOD_DATA), **kw)


def write(tmp_path: Path, raw: bytes, name="x.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def refused(tmp_path: Path, raw: bytes, *match: str) -> str:
    with pytest.raises(ModelFormatError) as info:
        GGUFFile.open(write(tmp_path, raw))
    msg = str(info.value)
    assert str(tmp_path / "x.gguf") in msg and "offset" in msg, msg
    for m in match:
        assert m in msg, msg
    return msg


# --- the valid file --------------------------------------------------------------------------------


def test_valid_crafted_file_parses_with_zero_copy_views(tmp_path):
    raw = good()
    with GGUFFile.open(write(tmp_path, raw)) as f:
        assert f.version == 3 and f.alignment == 32 and f.architecture == "llama"
        assert f.metadata["llama.context_length"] == 128 and f.metadata["test.flag"] is True
        assert f.metadata["test.tokens"] == ["<s>", "héllo"]
        np.testing.assert_array_equal(f.metadata["test.scores"], np.array([0.5, -1.0], np.float32))
        assert f.fields["test.scores"].element_type == V.FLOAT32
        a, b = f.tensors["a"], f.tensors["b"]
        assert (a.dims, a.shape, a.n_elements, a.n_bytes) == ((32, 2), (2, 32), 64, A_BYTES)
        assert (b.ggml_type, b.n_bytes, b.offset - a.offset) == (GGMLType.Q8_0, B_BYTES, 256)
        va, vb = f.tensor("a"), f.tensor("b")
        np.testing.assert_array_equal(va, np.arange(64, dtype=np.float32).reshape(2, 32))
        assert vb.dtype == np.uint8 and vb.shape == (68,) and vb.tobytes() == bytes(range(B_BYTES))
        assert not va.flags.writeable and not va.flags.owndata
        assert f.data_offset + a.n_bytes + b.n_bytes == len(raw)
        with pytest.raises(InputError, match="no tensor named"):
            f.tensor("c")
    with pytest.raises(InputError, match="closed"):
        f.tensor("a")
    np.testing.assert_array_equal(va[0, :3], [0, 1, 2])  # views outlive close()
    validate(tmp_path / "x.gguf")


def test_version_2_and_other_alignments_parse(tmp_path):
    kvs = [GOOD_KVS[0], kv("general.alignment", V.UINT32, u32(64))]
    infos = [tinfo("a", [32, 2], GGMLType.F32, 0), tinfo("b", [64], GGMLType.Q8_0, 256)]
    with GGUFFile.open(write(tmp_path, build(kvs, infos, GOOD_DATA, version=2, alignment=64))) as f:
        assert f.version == 2 and f.alignment == 64 and f.data_offset % 64 == 0


def test_type_table_matches_gguf_py():
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    assert {t.name: v for t, v in GGML_QUANT_SIZES.items()} == {t.name: v for t, v in GGML_TYPE_SIZES.items()}
    assert {t.name: int(t) for t in GGMLQuantizationType} == {t.name: int(t) for t in GGMLType}


# --- crafted hostile files: each one raises ModelFormatError naming the field -----------------------


def test_every_truncation_is_refused(tmp_path):
    raw = good()
    for cut in range(len(raw)):
        with pytest.raises(ModelFormatError):
            GGUFFile.open(write(tmp_path, raw[:cut]))


@pytest.mark.parametrize(
    "raw, match",
    [
        (good(magic=b"GGUX"), ["magic", "b'GGUF'"]),
        (good(magic=b"\0\0\0\0"), ["magic"]),
        (good(version=1), ["version", "expected 2 or 3", "found 1"]),
        (good(version=4), ["version", "found 4"]),
        (good(version=0x03000000), ["version", "big-endian"]),
        (good(n_tensors=2**63), ["tensor count"]),
        (good(n_tensors=2**64 - 1), ["tensor count"]),
        (good(n_kv=2**40), ["metadata count"]),
        (good(n_kv=7), []),  # one more pair than present: runs into the tensor infos
        (good(n_tensors=3), []),
        (good(kvs=[kv("k" * 3, V.STRING, u64(2**40) + b"x")]), ["value of 'kkk' length"]),
        (good(kvs=[kv("k", V.STRING, u64(10_000) + b"short")]), ["truncated"]),
        (good(kvs=[u64(2**63) + b"key"]), ["metadata key #0 length"]),
        (good(kvs=[kv("", V.UINT8, b"\0")]), ["metadata key #0 length", "1..65535"]),
        (good(kvs=[kv(b"\xff\xfekey", V.UINT8, b"\0")]), ["UTF-8", "0xff"]),
        (good(kvs=[kv("k", 13, b"\0")]), ["type of 'k'", "found 13"]),
        (good(kvs=[kv("k", 2**31, b"\0")]), ["type of 'k'"]),
        (good(kvs=[kv("k", V.BOOL, b"\x02")]), ["bool", "found 2"]),
        (good(kvs=[kv("k", V.ARRAY, arr(V.BOOL, [b"\x01", b"\x07"]))]), ["value of 'k'[1]", "bool"]),
        (good(kvs=[kv("k", V.ARRAY, u32(99) + u64(1) + b"\0")]), ["element type", "found 99"]),
        (good(kvs=[kv("k", V.ARRAY, u32(V.UINT32) + u64(2**62))]), ["item count"]),
        (good(kvs=[kv("k", V.ARRAY, u32(V.STRING) + u64(2**40))]), ["item count"]),
        (good(kvs=[kv("k", V.ARRAY, u32(V.ARRAY) + u64(2**60))]), ["item count"]),  # nested-array bomb
        (good(kvs=[kv("k", V.ARRAY, u32(V.ARRAY) + u64(1) + u32(V.ARRAY) + u64(1) + u32(V.ARRAY) + u64(1)
                      + u32(V.UINT8) + u64(1) + b"\0")]), ["nested at most 3"]),
        (good(kvs=[kv("k", V.ARRAY, arr(V.STRING, [s("ok"), u64(2**50)]))]), ["value of 'k'[1] length"]),
        (good(kvs=[kv("k", V.UINT8, b"\0"), kv("j", V.UINT8, b"\0"), kv("k", V.UINT8, b"\1")]),
         ["unique keys", "'k' again", "first at offset 24"]),
        (good(kvs=[kv("general.alignment", V.UINT32, u32(48))]), ["general.alignment", "power of two", "48"]),
        (good(kvs=[kv("general.alignment", V.UINT32, u32(0))]), ["general.alignment"]),
        (good(kvs=[kv("general.alignment", V.UINT64, u64(32))]), ["general.alignment", "UINT64"]),
        (good(kvs=[kv("general.alignment", V.ARRAY, arr(V.UINT32, [u32(32)]))]), ["general.alignment", "an array"]),
        (good(infos=[tinfo("a", [32, 2], GGMLType.F32, 0), tinfo("a", [64], GGMLType.Q8_0, 256)]),
         ["unique tensor names", "'a' again"]),
        (good(infos=[tinfo("", [32, 2], GGMLType.F32, 0), GOOD_INFOS[1]]), ["tensor #0 name length"]),
        (good(infos=[tinfo("n" * 64, [32, 2], GGMLType.F32, 0), GOOD_INFOS[1]]), ["tensor #0 name length", "1..63"]),
        (good(infos=[tinfo("a", [32, 2, 1, 1, 1], GGMLType.F32, 0), GOOD_INFOS[1]]), ["n_dims", "at most 4", "5"]),
        (good(infos=[tinfo("a", [32, 0], GGMLType.F32, 0), GOOD_INFOS[1]]), ["'a' dim 1", "found 0"]),
        (good(infos=[tinfo("a", [32, 2**63], GGMLType.F32, 0), GOOD_INFOS[1]]), ["'a' dim 1"]),
        (good(infos=[tinfo("a", [2**31, 2**31, 2**2], GGMLType.F32, 0), GOOD_INFOS[1]]), ["'a' dim 2", "2^63-1"]),
        (good(infos=[tinfo("a", [2**32, 2**32], GGMLType.F32, 0), GOOD_INFOS[1]]), ["'a' dim 1"]),
        (good(infos=[tinfo("a", [32, 2], 4, 0), GOOD_INFOS[1]]), ["'a' type", "known ggml type", "found 4"]),
        (good(infos=[tinfo("a", [32, 2], 2**32 - 1, 0), GOOD_INFOS[1]]), ["'a' type"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [33], GGMLType.Q8_0, 256)]), ["'b' dim 0", "block size 32", "33"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [64], GGMLType.Q8_0, 260)]), ["'b' offset", "alignment 32", "260"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [64], GGMLType.Q8_0, 0)]), ["offset", "no overlap"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [64], GGMLType.Q8_0, 224)]), ["'b' offset", "no overlap with tensor 'a'"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [64], GGMLType.Q8_0, 2**63)]), ["'b' offset", "within the file"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [128], GGMLType.Q8_0, 256)]), ["'b' offset", "within the file"]),
        (good(infos=[GOOD_INFOS[0], tinfo("b", [256, 2**40], GGMLType.Q4_K, 256)]), ["'b' offset", "within the file"]),
    ],
)
def test_crafted_file_is_refused(tmp_path, raw, match):
    refused(tmp_path, raw, *match)


def test_string_and_nested_array_totals_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_file, "MAX_NESTED_ARRAYS", 10)
    monkeypatch.setattr(gguf_file, "MAX_STRING_ITEMS", 10)
    empty = u32(V.UINT8) + u64(0)
    nested = kv("k", V.ARRAY, arr(V.ARRAY, [empty] * 11))
    refused(tmp_path, good(kvs=[nested]), "at most 10 nested arrays")
    strings = [kv(f"k{i}", V.ARRAY, arr(V.STRING, [s("t")] * 6)) for i in range(2)]
    refused(tmp_path, good(kvs=strings), "at most 10 strings")
    with GGUFFile.open(write(tmp_path, good(kvs=[kv("k", V.ARRAY, arr(V.ARRAY, [empty] * 10))]))) as f:
        assert len(f.metadata["k"]) == 10 and all(a.dtype == np.uint8 and a.size == 0 for a in f.metadata["k"])


def test_missing_empty_and_special_paths_are_refused(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot open"):
        GGUFFile.open(tmp_path / "absent.gguf")
    with pytest.raises(ModelFormatError, match="empty file"):
        GGUFFile.open(write(tmp_path, b""))
    with pytest.raises(ModelFormatError, match="not a regular file"):
        GGUFFile.open(tmp_path)
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(ModelFormatError, match="not a regular file"):  # and no hang waiting for a writer
        GGUFFile.open(fifo)
    assert time.monotonic() - t0 < 5


# --- validate(): what llama.cpp's loader needs on top ---------------------------------------------------


def test_validate_requires_packed_order_flat_arrays_and_an_architecture(tmp_path):
    swapped = [tinfo("a", [32, 2], GGMLType.F32, 96), tinfo("b", [64], GGMLType.Q8_0, 0)]
    data = bytes(range(B_BYTES)) + b"\0" * 28 + np.arange(64, dtype=np.float32).tobytes()
    p = write(tmp_path, good(infos=swapped, data=data))
    with GGUFFile.open(p) as f:  # well-formed ...
        np.testing.assert_array_equal(f.tensor("a").ravel(), np.arange(64, dtype=np.float32))
    with pytest.raises(ModelFormatError, match="tensor 'a' data: expected at offset"):
        validate(p)  # ... but not in the order llama.cpp reads

    gap = [GOOD_INFOS[0], tinfo("b", [64], GGMLType.Q8_0, 288)]
    with pytest.raises(ModelFormatError, match="packed in file order"):
        validate(write(tmp_path, good(infos=gap, data=GOOD_DATA[:A_BYTES] + b"\0" * 32 + GOOD_DATA[A_BYTES:])))

    nested = GOOD_KVS + [kv("k", V.ARRAY, arr(V.ARRAY, [u32(V.UINT8) + u64(1) + b"\0"]))]
    with pytest.raises(ModelFormatError, match="array of arrays"):
        validate(write(tmp_path, good(kvs=nested)))

    no_arch = write(tmp_path, good(kvs=GOOD_KVS[1:]))
    with pytest.raises(ModelFormatError, match="general.architecture"):
        validate(no_arch)
    validate(no_arch, require_architecture=False)
    bad_arch = write(tmp_path, good(kvs=[kv("general.architecture", V.UINT32, u32(1))]))
    with pytest.raises(ModelFormatError, match="general.architecture: expected a non-empty string, found UINT32"):
        validate(bad_arch)


# --- a file written by gguf-py, and the real model -------------------------------------------------------


def write_with_gguf_py(path: Path, nested: bool = True) -> Path:
    import gguf

    w = gguf.GGUFWriter(path, arch="llama")
    w.add_context_length(256)
    w.add_uint8("test.u8", 7)
    w.add_int64("test.i64", -(2**40))
    w.add_float64("test.f64", 1.25)
    w.add_bool("test.bool", False)
    w.add_string("tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_array("test.tokens", ["a", "bc", "déf"])
    w.add_array("test.ints", [1, 2, 3])
    if nested:  # legal GGUF, but llama.cpp cannot read it (validate refuses it)
        w.add_array("test.nested", [[1, 2], [3]])
    rng = np.random.default_rng(0)
    w.add_tensor("f32", rng.standard_normal((3, 32)).astype(np.float32))
    w.add_tensor("f16", rng.standard_normal((2, 64)).astype(np.float16))
    q = gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q4_1)
    w.add_tensor("q4_1", q, raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def assert_matches_gguf_py(f: GGUFFile, path: Path) -> None:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    theirs = {k: fld for k, fld in reader.fields.items() if not k.startswith("GGUF.")}
    assert list(theirs) == list(f.fields)
    for key, fld in theirs.items():
        ours = f.fields[key]
        assert int(fld.types[0]) == ours.type, key
        if ours.type == V.ARRAY:
            assert int(fld.types[1]) == ours.element_type, key
        value = fld.contents()
        if isinstance(ours.value, np.ndarray):
            np.testing.assert_array_equal(ours.value, np.asarray(value), err_msg=key)
        elif ours.element_type == V.ARRAY:
            assert [v for inner in ours.value for v in inner.tolist()] == value, key  # gguf-py flattens nesting
        else:
            assert ours.value == value, key
    assert [t.name for t in reader.tensors] == list(f.tensors)
    for t in reader.tensors:
        ours = f.tensors[t.name]
        assert (int(t.tensor_type), tuple(int(d) for d in t.shape)) == (ours.ggml_type, ours.dims)
        assert (t.data_offset, t.n_bytes, t.n_elements) == (ours.offset, ours.n_bytes, ours.n_elements)
    for t in reader.tensors[:3] + reader.tensors[-2:]:
        np.testing.assert_array_equal(f.tensor(t.name), t.data, err_msg=t.name)


def test_file_written_by_gguf_py_reads_like_gguf_py_reads_it(tmp_path):
    path = write_with_gguf_py(tmp_path / "w.gguf")
    with GGUFFile.open(path) as f:
        assert f.architecture == "llama" and f.metadata["test.i64"] == -(2**40)
        assert f.metadata["test.nested"][0].tolist() == [1, 2]
        assert_matches_gguf_py(f, path)
    with pytest.raises(ModelFormatError, match="array of arrays"):  # llama.cpp cannot read test.nested
        validate(path)


@pytest.mark.slow
def test_real_smollm2_metadata_and_tensors_match_gguf_py():
    from edge_runtime.assets import ensure

    path = ensure("smollm2-135m")
    validate(path)
    with GGUFFile.open(path) as f:
        assert f.architecture == "llama" and f.metadata["llama.context_length"] == 8192
        assert len(f.metadata["tokenizer.ggml.tokens"]) == 49152 and len(f.tensors) == 272
        assert f.tensors["token_embd.weight"].ggml_type == GGMLType.Q8_0
        assert_matches_gguf_py(f, path)


# --- a real tensor from a real GGUF: re-quantized like gguf-py does it (host only: it needs the cached model) ---


@pytest.fixture(scope="module")
def smollm2_token_embedding():
    from edge_runtime.assets import ensure

    with GGUFFile.open(ensure("smollm2-135m")) as f:
        assert f.tensors["token_embd.weight"].ggml_type == GGMLType.Q8_0
        stored = np.array(f.tensor("token_embd.weight"))  # (49152, 612) uint8: Q8_0 blocks written by llama.cpp
    assert stored.shape == (49152, 612)
    return stored, reference.dequantize_blocks(stored, QuantType.Q8_0)  # (49152, 576) float32


@pytest.mark.slow
@pytest.mark.parametrize("qtype", list(QuantType))
def test_real_embedding_requantizes_like_gguf_py(smollm2_token_embedding, qtype):
    stored, x = smollm2_token_embedding
    np.testing.assert_array_equal(dequantize(stored, QuantType.Q8_0), x)
    ours = quantize(x, qtype, threads=2)
    np.testing.assert_array_equal(ours, reference.quantize_blocks(x, qtype))
    if qtype == QuantType.Q8_0:  # llama.cpp's C quantizer wrote these bytes: Q8_0 of its own output is a fixed point
        np.testing.assert_array_equal(ours, stored)


# --- the fuzzer: mutations of a valid file either parse or raise ModelFormatError --------------------------


@functools.lru_cache(maxsize=None)
def seed_file(nested: bool = True) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return write_with_gguf_py(Path(tmp) / "seed.gguf", nested).read_bytes()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


EOF_MARK = -1  # "the current file length" as a value to plant
position = st.integers(0, 1 << 16)  # taken modulo the current length
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(0, 7)),
    st.tuples(st.just("truncate"), position),
    st.tuples(st.just("u64"), position, st.sampled_from([0, 1, 7, 31, 32, 255, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                                                           2**63 - 1, 2**63, 2**64 - 1, EOF_MARK])),
    st.tuples(st.just("u32"), position, st.sampled_from([0, 1, 4, 9, 12, 13, 42, 2**31, 2**32 - 1])),
    st.tuples(st.just("splice"), position, position, st.integers(1, 64), st.booleans()),
)


def mutate(raw: bytearray, op) -> bytearray:
    kind, n = op[0], len(raw)
    if n == 0:
        return raw
    if kind == "flip":
        raw[op[1] % n] ^= 1 << op[2]
    elif kind == "truncate":
        del raw[op[1] % n:]
    elif kind in ("u64", "u32"):
        size = 8 if kind == "u64" else 4
        if n >= size:
            at = op[1] % (n - size + 1)
            raw[at:at + size] = (n if op[2] == EOF_MARK else op[2]).to_bytes(size, "little")
    else:  # splice: copy a run of bytes elsewhere, overwriting or inserting
        src, dst, length, insert = op[1] % n, op[2] % n, op[3], op[4]
        chunk = bytes(raw[src:src + length])
        if insert:
            raw[dst:dst] = chunk
        else:
            raw[dst:dst + len(chunk)] = chunk
    return raw


@settings(max_examples=max(settings().max_examples * 3 // 2, 10))
@given(nested=st.booleans(), ops=st.lists(mutation, min_size=1, max_size=4))
def test_fuzzed_files_parse_or_raise_model_format_error(fuzz_dir, nested, ops):
    raw = bytearray(seed_file(nested))
    for op in ops:
        raw = mutate(raw, op)
    path = fuzz_dir / "mutant.gguf"
    path.write_bytes(bytes(raw))
    t0 = time.monotonic()
    try:
        with GGUFFile.open(path) as f:
            for name in f.tensors:  # every view lies inside the mapping and is readable
                int(np.asarray(f.tensor(name)).view(np.uint8).sum())
            list(f.metadata.items())
        validate(path, require_architecture=False)
    except ModelFormatError as exc:
        assert str(path) in str(exc)
    assert time.monotonic() - t0 < 5.0


def test_the_fuzz_seeds_are_valid_and_mutations_reach_every_byte(fuzz_dir):
    for nested in (True, False):
        raw = seed_file(nested)
        p = fuzz_dir / "seed.gguf"
        p.write_bytes(raw)
        with GGUFFile.open(p) as f:
            assert len(f.tensors) == 3 and len(f.fields) == 9 + nested
        if not nested:
            validate(p)
        assert len(raw) <= 1 << 16  # positions are drawn in [0, 2^16] and taken modulo the length


def test_crafted_files_never_crash_a_fresh_process(tmp_path):
    corpus = {
        "bomb.gguf": good(kvs=[kv("k", V.ARRAY, u32(V.ARRAY) + u64(2**60))]),
        "dims.gguf": good(infos=[tinfo("a", [2**32, 2**32], GGMLType.F32, 0), GOOD_INFOS[1]]),
        "past_eof.gguf": good(infos=[GOOD_INFOS[0], tinfo("b", [64], GGMLType.Q8_0, 2**63)]),
        "count.gguf": good(n_tensors=2**64 - 1),
        "string.gguf": good(kvs=[kv("k", V.STRING, u64(2**63))]),
        "truncated.gguf": good()[:100],
    }
    for name, raw in corpus.items():
        write(tmp_path, raw, name)
    script = (
        "import sys\n"
        "from edge_runtime.errors import ModelFormatError\n"
        "from edge_runtime.llm.gguf_file import validate\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        validate(p)\n"
        "        print('ACCEPTED', p)\n"
        "    except ModelFormatError as exc:\n"
        "        print('REFUSED', p)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, *(str(tmp_path / n) for n in corpus)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("REFUSED") == len(corpus), out.stdout + out.stderr


# --- edge-runtime inspect ----------------------------------------------------------------------------------


def write_small_model(path: Path) -> Path:
    import gguf

    w = gguf.GGUFWriter(path, arch="llama")
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_block_count(3)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_token_list(["<s>", "</s>", "a", "b", "c"])
    w.add_chat_template("line one\nline two\nline three\nline four")
    x = np.ones((4, 64), np.float32)
    w.add_tensor("token_embd.weight", gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(np.ones((2, 64), np.float32), gguf.GGMLQuantizationType.Q4_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("output_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_inspect_reports_the_quant_mix_and_the_kv_cache_formula(tmp_path):
    from edge_runtime.llm.inspect import DEFAULT_OVERHEAD_MIB, inspect_gguf

    path = write_small_model(tmp_path / "m.gguf")
    r = inspect_gguf(path, ctx=100)
    assert (r["architecture"], r["file_type"], r["tensors"]) == ("llama", "Q8_0", 3)
    assert r["quant_types"] == {"Q8_0": {"tensors": 1, "bytes": 4 * 68, "parameters": 256},
                                "F32": {"tensors": 1, "bytes": 256, "parameters": 64},
                                "Q4_0": {"tensors": 1, "bytes": 2 * 36, "parameters": 128}}
    assert r["parameters"] == 256 + 128 + 64 and r["weight_bytes"] == 272 + 72 + 256
    assert (r["layers"], r["heads"], r["kv_heads"], r["head_dim"], r["vocab_size"]) == (3, 4, 2, 16, 5)
    ram = r["ram_estimate"]
    kv = 2 * 3 * 100 * 2 * 16 * 2  # K and V x layers x ctx x KV heads x head dim x f16
    assert (ram["ctx"], ram["kv_cache_bytes"]) == (100, kv)
    assert ram["total_bytes"] == 600 + kv + DEFAULT_OVERHEAD_MIB * 2**20
    assert r["chat_template"] == {"present": True, "chars": 38, "first_lines": ["line one", "line two", "line three"]}
    assert r["llama_cpp_ready"]["ok"] is True
    assert inspect_gguf(path)["ram_estimate"]["ctx"] == 512  # default: the trained context


def test_inspect_command_prints_text_and_json_and_fails_cleanly(tmp_path, capsys):
    import json

    from edge_runtime.cli import main

    path = write_small_model(tmp_path / "m.gguf")
    assert main(["inspect", str(path), "--ctx", "100"]) == 0
    text = capsys.readouterr().out
    assert "Q4_0" in text and "RAM at ctx 100" in text and "| line one" in text and "loadable" in text
    assert main(["inspect", str(path), "--json", "--template-lines", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chat_template"]["first_lines"] == ["line one"]
    broken = write(tmp_path, good()[:50], "broken.gguf")
    assert main(["inspect", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.gguf" in err and "metadata count" in err and "Traceback" not in err


def test_inspect_reports_a_file_llama_cpp_would_refuse(tmp_path):
    from edge_runtime.llm.inspect import inspect_gguf

    nested = GOOD_KVS + [kv("k", V.ARRAY, arr(V.ARRAY, [u32(V.UINT8) + u64(1) + b"\0"]))]
    r = inspect_gguf(write(tmp_path, good(kvs=nested)))
    assert r["llama_cpp_ready"]["ok"] is False and "array of arrays" in r["llama_cpp_ready"]["reason"]
    assert r["ram_estimate"]["kv_cache_bytes"] is None  # no layer/head keys: no estimate, not a guess


@pytest.mark.slow
def test_inspect_real_smollm2():
    from edge_runtime.assets import ensure
    from edge_runtime.llm.inspect import inspect_gguf

    r = inspect_gguf(ensure("smollm2-135m"))
    assert (r["architecture"], r["file_type"], r["parameters"], r["vocab_size"]) == ("llama", "Q4_1", 134_515_008, 49152)
    assert r["quant_types"]["Q4_1"]["tensors"] == 210 and r["quant_types"]["Q8_0"]["tensors"] == 1
    assert (r["context_length"], r["layers"], r["heads"], r["kv_heads"], r["head_dim"]) == (8192, 30, 9, 3, 64)
    assert r["ram_estimate"]["kv_cache_bytes"] == 2 * 30 * 8192 * 3 * 64 * 2
    assert r["chat_template"]["present"] and "<|im_start|>" in r["chat_template"]["first_lines"][0]
