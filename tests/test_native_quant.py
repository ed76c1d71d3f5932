"""GGUF block quantizers (Q8_0, Q4_0, Q4_1): byte equality with gguf-py's NumPy quantizers.

The oracle is ``edge_runtime.reference.quantize_blocks`` / ``dequantize_blocks`` (thin wrappers over
``gguf.quants``). Both native paths are checked: the SIMD kernels (SSE2 / NEON) and the portable C++
ones (``portable=True``; the only ones on armv7).

Two kinds of block have CPU-dependent bytes in the oracle itself, and are compared by their dequantized
values instead (every other block byte for byte):
- blocks whose scale reciprocal overflows (ggml's C reference casts NaN/inf to integers there): on
  x86-64 NumPy's casts give 0, as the native kernels do, so there the bytes are compared too;
- Q4_1 blocks whose min or max is a zero present as both +0 and -0: which one NumPy returns follows its
  SIMD reduction order (lanes, vector width); the native kernels take the first, as ggml's C reference
  does, which ``test_q4_1_zero_ties_take_the_first_zero`` checks directly.
"""

from __future__ import annotations

import platform
import threading

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge_runtime import _native, reference
from edge_runtime.errors import InputError
from edge_runtime.llm.quant import BLOCK_BYTES, BLOCK_SIZE, QuantType, dequantize, quantize

# Shape legend: x (..., n) float32 with n % 32 == 0; q (..., n / 32 * BLOCK_BYTES[qtype]) uint8.

ALL_TYPES = list(QuantType)
NUMPY_CORNERS_ARE_X86 = platform.machine().lower() in ("x86_64", "amd64")
TINY = np.float32(1e-38)  # amax / 127 is subnormal and its reciprocal overflows to inf


def _corner_blocks(x: np.ndarray, qtype: QuantType) -> np.ndarray:
    """Per block: True where the oracle's bytes are CPU-dependent (see the module docstring)."""
    b = x.reshape(-1, BLOCK_SIZE).astype(np.float32)
    with np.errstate(all="ignore"):
        if qtype == QuantType.Q8_0:
            d = np.abs(b).max(axis=1) / np.float32(127)
            overflow = (d != 0) & ~np.isfinite(np.float32(1) / d)
        elif qtype == QuantType.Q4_0:
            d = np.take_along_axis(b, np.abs(b).argmax(axis=1)[:, None], axis=1)[:, 0] / np.float32(-8)
            overflow = (d != 0) & ~np.isfinite(np.float32(1) / d)
        else:
            lo, hi = b.min(axis=1), b.max(axis=1)
            d = (hi - lo) / np.float32(15)
            overflow = ~np.isfinite(d) | ((d != 0) & ~np.isfinite(np.float32(1) / d))
            zero = b == 0
            both_zeros = (zero & np.signbit(b)).any(axis=1) & (zero & ~np.signbit(b)).any(axis=1)
            zero_tie = both_zeros & ((lo == 0) | (hi == 0))
            return zero_tie | (overflow & (not NUMPY_CORNERS_ARE_X86))
    return overflow & (not NUMPY_CORNERS_ARE_X86)


def assert_same_blocks(ours: np.ndarray, ref: np.ndarray, x: np.ndarray, qtype: QuantType) -> None:
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    bb = BLOCK_BYTES[qtype]
    o, r = ours.reshape(-1, bb), ref.reshape(-1, bb)
    corner = _corner_blocks(x, qtype)
    np.testing.assert_array_equal(o[~corner], r[~corner])
    np.testing.assert_array_equal(reference.dequantize_blocks(o[corner], qtype),
                                  reference.dequantize_blocks(r[corner], qtype))


def assert_same_floats(a: np.ndarray, b: np.ndarray) -> None:
    """Equal as IEEE values, signed zeros included; NaNs match NaNs (payloads may differ by CPU)."""
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    nan = np.isnan(b)
    np.testing.assert_array_equal(np.isnan(a), nan)
    np.testing.assert_array_equal(a.view(np.uint32)[~nan], b.view(np.uint32)[~nan])


# --- strategies ------------------------------------------------------------------------------------


def _stored_exactly(value: float) -> bool:
    """Whether a float32 array element keeps ``value``: not on armv7, whose NumPy flushes subnormals."""
    a = np.zeros(1, np.float32)
    a[0] = value
    return float(a[0]) == value


# float32 values spelled exactly (3.4028235e38 as a Python float is not FLT_MAX, it only rounds to it).
_RAW_SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -2.5, 7.5, -8.0, 8.0, 127.0, -127.0, 65504.0, 65520.0,
                -65536.0, 3.4028235e38, -3.4028235e38, 1e-45, -1e-45, 1e-40, 1.1754944e-38, 1e-38, 6e-8, 3e-8]
SUBNORMALS_KEPT = _stored_exactly(float(np.float32(1e-45)))
SPECIAL = [v for v in (float(np.float32(r)) for r in _RAW_SPECIAL) if _stored_exactly(v)]
# Subnormals and huge values included wherever NumPy stores them (every target but armv7's Debian NumPy).
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=SUBNORMALS_KEPT)
halves = st.integers(-254, 254).map(lambda k: k / 2)  # with a +-127 in the block: exact .5 ties for Q8_0
values = st.one_of(finite32, st.sampled_from(SPECIAL), halves)


@st.composite
def tensors(draw) -> np.ndarray:
    lead = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    shape = (*lead, BLOCK_SIZE * draw(st.integers(0, 4)))
    kind = draw(st.sampled_from(["mixed", "normal", "ties", "constant", "scaled", "zeros"]))
    if kind == "normal":
        seed = draw(st.integers(0, 2**32 - 1))
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    elif kind == "ties":
        x = draw(arrays(np.float32, shape, elements=halves))
        if x.size:
            x.reshape(-1, BLOCK_SIZE)[:, draw(st.integers(0, BLOCK_SIZE - 1))] = draw(st.sampled_from([127.0, -127.0]))
    elif kind == "constant":
        x = np.full(shape, draw(values), np.float32)
    elif kind == "zeros":  # signed-zero ties in Q4_1's min/max and Q4_0's argmax
        x = draw(arrays(np.float32, shape, elements=st.sampled_from([0.0, -0.0, 0.0, -0.0, 1.0, -1.0])))
    else:
        x = draw(arrays(np.float32, shape, elements=values))
    if kind == "scaled":  # push whole blocks into the subnormal or the overflowing range
        with np.errstate(over="ignore", under="ignore"):
            x = (x * np.float32(draw(st.sampled_from([1e-38, 1e-42, 2.0**-130, 1e30, 1e37])))).astype(np.float32)
        x[~np.isfinite(x)] = np.float32(3e38)
    return x


# --- quantize: bit-exact with gguf-py ---------------------------------------------------------------


@given(x=tensors(), qtype=st.sampled_from(ALL_TYPES), portable=st.booleans())
def test_quantize_matches_gguf_py(x, qtype, portable):
    ours = _native.quantize_blocks(x, int(qtype), 1, portable)
    assert_same_blocks(ours, reference.quantize_blocks(x, qtype), x, qtype)


@given(x=tensors(), qtype=st.sampled_from(ALL_TYPES))
def test_simd_and_portable_kernels_agree(x, qtype):
    np.testing.assert_array_equal(_native.quantize_blocks(x, int(qtype), 1, False),
                                  _native.quantize_blocks(x, int(qtype), 1, True))


@pytest.mark.parametrize("qtype", ALL_TYPES)
@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize(
    "block",
    [
        pytest.param(np.zeros(32), id="zeros"),
        pytest.param(-np.zeros(32), id="negative-zeros"),
        pytest.param(np.r_[np.zeros(16), -np.zeros(16)], id="zeros-then-negative-zeros"),
        pytest.param(np.r_[-np.zeros(16), np.zeros(16)], id="negative-zeros-then-zeros"),
        pytest.param(np.r_[np.zeros(31), 1.0], id="min-zero"),
        pytest.param(np.r_[-1.0, -np.zeros(31)], id="max-negative-zero"),
        pytest.param(np.full(32, 1.5), id="constant"),
        pytest.param(np.full(32, -3.0), id="constant-negative"),
        pytest.param(np.r_[127.0, np.arange(-15.5, 15.5, 1.0)], id="q8-ties-away-from-zero"),
        pytest.param(np.r_[-8.0, np.arange(-7.75, 7.75, 0.5)], id="q4-trunc-boundaries"),
        pytest.param(np.r_[5.0, -5.0, np.zeros(30)], id="q4_0-first-of-equal-magnitudes"),
        pytest.param(np.r_[-5.0, 5.0, np.zeros(30)], id="q4_0-first-of-equal-magnitudes-negative"),
        pytest.param(np.r_[TINY, -TINY, np.zeros(30)], id="scale-reciprocal-overflows"),
        pytest.param(np.full(32, 1e-45), id="smallest-subnormal"),
        pytest.param(np.linspace(-1e-39, 2e-39, 32), id="subnormals"),
        pytest.param(np.r_[3e38, -3e38, np.zeros(30)], id="q4_1-range-overflows"),
        pytest.param(np.r_[3.4028235e38, np.ones(31)], id="float-max"),
        pytest.param(np.r_[65520.0 * 127, np.ones(31)], id="q8-scale-rounds-to-fp16-inf"),
        pytest.param(np.r_[65519.0 * 127, np.ones(31)], id="q8-scale-rounds-to-fp16-max"),
    ],
)
def test_quantize_corner_blocks(block, qtype, portable):
    x = np.asarray(block, np.float32).reshape(1, 32)
    ours = _native.quantize_blocks(x, int(qtype), 1, portable)
    assert_same_blocks(ours, reference.quantize_blocks(x, qtype), x, qtype)


def test_q8_0_rounds_half_away_from_zero():
    # amax 127 -> d = 1: x * id is exact, so these are true ties (banker's rounding would give 0, 2, -2).
    x = np.zeros((1, 32), np.float32)
    x[0, :4] = [127.0, 0.5, 1.5, -2.5]
    q = quantize(x, QuantType.Q8_0)
    assert q[0, :2].view(np.float16)[0] == 1.0
    assert q[0, 2:6].view(np.int8).tolist() == [127, 1, 2, -3]


def test_q4_layouts_pack_low_nibbles_first():
    x = np.r_[np.full(16, -8.0), np.full(16, 7.0)].astype(np.float32).reshape(1, 32)
    q4_0 = quantize(x, QuantType.Q4_0)  # d = -8 / -8 = 1: codes 0 (x = -8) and 15 (x = 7)
    assert q4_0[0, :2].view(np.float16)[0] == 1.0 and set(q4_0[0, 2:].tolist()) == {0xF0}
    q4_1 = quantize(x, QuantType.Q4_1)  # d = 15 / 15 = 1, m = -8: codes 0 and 15
    assert q4_1[0, :4].view(np.float16).tolist() == [1.0, -8.0] and set(q4_1[0, 4:].tolist()) == {0xF0}


@pytest.mark.parametrize("portable", [False, True])
def test_q4_1_zero_ties_take_the_first_zero(portable):
    def q4_1(block):
        x = np.zeros((4, 32), np.float32)  # a group of four: the one-block path handles the tie
        x[1:] = np.linspace(-1, 1, 32)
        x[0] = block
        return _native.quantize_blocks(x, int(QuantType.Q4_1), 1, portable)[0, :4].view(np.float16)

    ones = np.ones(30, np.float32)
    d, m = q4_1(np.r_[0.0, -0.0, ones])
    assert not np.signbit(m) and m == 0 and d == np.float16(1 / 15)
    d, m = q4_1(np.r_[-0.0, 0.0, ones])
    assert np.signbit(m) and m == 0
    d, m = q4_1(np.r_[-0.0, np.zeros(31)])  # all zeros: d = max - min = (-0) - (-0) = +0
    assert np.signbit(m) and not np.signbit(d)
    d, m = q4_1(np.r_[0.0, -np.zeros(31)])
    assert not np.signbit(m) and not np.signbit(d)
    d, m = q4_1(np.r_[-1.0, 0.0, -0.0, -ones[:29]])  # max is a zero: the first one, +0
    assert m == -1 and d == np.float16(1 / 15)


# --- the public API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", ALL_TYPES)
@pytest.mark.parametrize("shape", [(0, 32), (5, 0), (64,), (2, 3, 96)])
def test_quantize_shapes_follow_gguf_py(qtype, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    q = quantize(x, qtype)
    assert q.shape == shape[:-1] + (shape[-1] // 32 * BLOCK_BYTES[qtype],)
    assert_same_blocks(q, reference.quantize_blocks(x, qtype), x, qtype)
    back = dequantize(q, qtype)
    assert back.shape == shape and back.dtype == np.float32


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_quantize_converts_other_float_dtypes_like_gguf_py(qtype):
    x = np.random.default_rng(1).standard_normal((3, 64))
    for arr in (x, x.astype(np.float16), x.astype(np.float32)[:, ::-1], x.tolist()):
        ref = reference.quantize_blocks(np.asarray(arr, np.float32), qtype)
        np.testing.assert_array_equal(quantize(arr, qtype), ref)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_non_finite_input_is_refused_by_index(bad, qtype):
    x = np.ones((3, 64), np.float32)
    x[1, 37] = bad
    x[2, 5] = bad  # a later one: the first is reported
    with pytest.raises(InputError, match=r"\[1, 37\]"):
        quantize(x, qtype)
    with pytest.raises(InputError, match=r"\[1, 37\]"):
        quantize(x, qtype, threads=3)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.ones(31, np.float32), "multiple of 32"),
        (np.float32(1.0), "multiple of 32"),
        (np.ones(32, np.int32), "floats"),
        (np.array(["a"] * 32), "floats"),
    ],
)
def test_bad_arrays_raise_input_error(array, match):
    with pytest.raises(InputError, match=match):
        quantize(array, QuantType.Q8_0)


def test_bad_qtype_and_threads_raise_input_error():
    x = np.ones((1, 32), np.float32)
    with pytest.raises(InputError, match="qtype"):
        quantize(x, 12)
    with pytest.raises(InputError, match="qtype"):
        dequantize(np.zeros(34, np.uint8), "Q8_0")
    for threads in (0, -1, 1.5, True, 10_000):
        with pytest.raises(InputError, match="threads"):
            quantize(x, QuantType.Q4_0, threads=threads)
    with pytest.raises(InputError, match="multiple of 18"):
        dequantize(np.zeros(20, np.uint8), QuantType.Q4_0)
    with pytest.raises(InputError, match="uint8"):
        dequantize(np.zeros(18, np.int8), QuantType.Q4_0)


def test_native_binding_refuses_silent_copies():
    x64 = np.ones((1, 32), np.float64)
    with pytest.raises(TypeError):
        _native.quantize_blocks(x64, 8)
    with pytest.raises(TypeError):
        _native.quantize_blocks(np.ones((32, 2), np.float32).T, 8)  # not C-contiguous
    with pytest.raises(ValueError, match="qtype"):
        _native.quantize_blocks(np.ones((1, 32), np.float32), 6)


@pytest.mark.parametrize("qtype", ALL_TYPES)
def test_threads_split_blocks_without_changing_bytes(qtype):
    x = np.random.default_rng(2).standard_normal((300, 1024)).astype(np.float32)  # 9600 blocks
    one = quantize(x, qtype)
    for threads in (2, 3, 7):
        np.testing.assert_array_equal(quantize(x, qtype, threads=threads), one)
        np.testing.assert_array_equal(dequantize(one, qtype, threads=threads), dequantize(one, qtype))


def test_concurrent_callers_get_their_own_results():
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal((64, 512)).astype(np.float32) * (i + 1) for i in range(4)]
    expected = [reference.quantize_blocks(x, QuantType.Q4_1) for x in inputs]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(5):
            results[i] = quantize(inputs[i], QuantType.Q4_1)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


# --- dequantize: exact, for every byte pattern -----------------------------------------------------


@given(n_blocks=st.integers(0, 6), qtype=st.sampled_from(ALL_TYPES), data=st.data())
def test_dequantize_matches_gguf_py_on_any_bytes(n_blocks, qtype, data):
    raw = data.draw(st.binary(min_size=n_blocks * BLOCK_BYTES[qtype], max_size=n_blocks * BLOCK_BYTES[qtype]))
    q = np.frombuffer(raw, np.uint8).reshape(n_blocks, BLOCK_BYTES[qtype])
    assert_same_floats(dequantize(q, qtype), reference.dequantize_blocks(q, qtype))
    assert_same_floats(dequantize(raw, qtype).reshape(n_blocks, 32), reference.dequantize_blocks(q, qtype))


@given(x=tensors(), qtype=st.sampled_from(ALL_TYPES))
def test_round_trip_error_is_bounded_by_the_step(x, qtype):
    blocks = x.reshape(-1, BLOCK_SIZE).astype(np.float64)
    assume(blocks.size and np.abs(blocks).max() < 1e4)  # scales stay in fp16's range
    back = dequantize(quantize(x, qtype), qtype).reshape(-1, BLOCK_SIZE).astype(np.float64)
    err = np.abs(back - blocks).max(axis=1)
    amax = np.abs(blocks).max(axis=1)
    lo, hi = blocks.min(axis=1), blocks.max(axis=1)

    def fp16_error(v):  # rounding a scale to fp16: relative 2^-11, absolute 2^-25 in the subnormal range
        return np.maximum(np.abs(v) * 2.0**-11, 2.0**-25)

    if qtype == QuantType.Q8_0:  # half a step, plus 127 codes times the scale's rounding
        d = amax / 127
        bound = d / 2 + 127 * fp16_error(d)
    elif qtype == QuantType.Q4_0:  # the value opposite the scale's sign is clipped: one full step
        d = amax / 8
        bound = d + 8 * fp16_error(d)
    else:
        d = (hi - lo) / 15
        bound = d / 2 + 15 * fp16_error(d) + fp16_error(lo)
    assert np.all(err <= bound * (1 + 1e-5) + 1e-12), (err - bound).max()


# --- the fp16 scale codec ----------------------------------------------------------------------------


def test_fp16_to_fp32_is_exact_for_every_half():
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    with np.errstate(invalid="ignore"):  # NumPy's own cast of the NaN halves warns on some CPUs (aarch64)
        expected = h.view(np.float16).astype(np.float32)
    assert_same_floats(_native.fp16_to_fp32(h), expected)


def test_fp32_to_fp16_matches_numpy_on_every_rounding_case():
    # Every exponent; per exponent the mantissas around each rounding boundary of the half grid (ties,
    # one ulp either side) for the normal and subnormal cases, plus a random sample.
    rng = np.random.default_rng(4)
    low = np.array([0, 1, 2, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001, 0x3000, 0x7FFFFF, 0x7FF000,
                    0x7FEFFF, 0x7FE000], np.uint32)
    shifts = np.arange(13, 25, dtype=np.uint32)  # subnormal halves drop 14..24 mantissa bits
    ties = np.concatenate([(1 << shifts) >> 1, ((1 << shifts) >> 1) + 1, ((1 << shifts) >> 1) - 1,
                           ((3 << shifts) >> 1), 1 << shifts]) & 0x7FFFFF
    mant = np.unique(np.concatenate([low, ties, rng.integers(0, 1 << 23, 4000, dtype=np.uint32)]))
    exps = np.arange(256, dtype=np.uint32)
    bits = ((exps[:, None] << 23) | mant[None, :]).ravel()
    bits = np.concatenate([bits, bits | 0x80000000]).astype(np.uint32)
    f = bits.view(np.float32)
    ours = _native.fp32_to_fp16(f)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = f.astype(np.float16).view(np.uint16)
    finite_or_inf = ~np.isnan(f)
    np.testing.assert_array_equal(ours[finite_or_inf], ref[finite_or_inf])
    nan_half = ours[~finite_or_inf]
    assert np.all((nan_half & 0x7C00) == 0x7C00) and np.all((nan_half & 0x3FF) != 0)


@given(st.lists(finite32, min_size=0, max_size=64))
def test_fp32_to_fp16_matches_numpy_on_any_float(xs):
    f = np.asarray(xs, np.float32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(_native.fp32_to_fp16(f), f.astype(np.float16).view(np.uint16))
