// GGUF block quantizers Q8_0 / Q4_0 / Q4_1: see native/include/edge/quant.hpp for the contract.
//
// Each block kernel mirrors one `quantize_blocks` / `dequantize_blocks` of gguf-py/gguf/quants.py
// operation for operation. The portable kernels here are plain C++ (the reference, the armv7 path and the
// home of NumPy's corner-case semantics); quant_simd.inl has SSE2 / NEON quantizers that do the same
// operations four lanes at a time. Blocks are independent: threads take contiguous runs of them.

// Bit-exactness needs x * y + z to round twice, as NumPy does: never let the compiler fuse it into an
// FMA (GCC fuses across statements by default on aarch64 and armv7-vfpv4).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "edge/quant.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace edge {

bool quantize_simd_available() {
#if defined(__SSE2__) || (defined(__aarch64__) && defined(__ARM_NEON))
    return true;
#else
    return false;
#endif
}

namespace {

constexpr std::size_t QK = kQuantBlockSize;
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

inline std::uint32_t bits_of(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float float_of(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline std::uint16_t encode_fp16(float value) {
    const std::uint32_t x = bits_of(value);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) {  // NaN: quiet, keep the top payload bits (as F16C's vcvtps2ph does)
        return static_cast<std::uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
    }
    if (ax >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to inf
    if (ax >= 0x38800000u) {  // >= 2^-14: a normal half. Re-bias the exponent (127 -> 15), round 13 bits off.
        std::uint32_t r = ax - 0x38000000u;
        r += 0x0FFFu + ((r >> 13) & 1u);  // round to nearest, ties to even; a carry bumps the exponent
        return static_cast<std::uint16_t>(sign | (r >> 13));
    }
    if (ax < 0x33000000u) return sign;  // < 2^-25 (half of the smallest subnormal): rounds to zero
    // Subnormal half: the value in units of 2^-24 is mantissa * 2^(e - 126), e in [102, 112].
    const std::uint32_t e = ax >> 23;
    const std::uint32_t m = (ax & 0x007FFFFFu) | 0x00800000u;
    const std::uint32_t shift = 126 - e;  // 14..24
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: still right
    return static_cast<std::uint16_t>(sign | q);
}

inline void store_fp16(std::uint8_t* dst, float value) {
    const std::uint16_t h = encode_fp16(value);
    dst[0] = static_cast<std::uint8_t>(h & 0xFF);
    dst[1] = static_cast<std::uint8_t>(h >> 8);
}

inline float load_fp16(const std::uint8_t* src) {
    return fp16_to_fp32(static_cast<std::uint16_t>(src[0] | (src[1] << 8)));
}

// float32 -> int32 as x86's cvttss2si does it (what NumPy's float -> int8/uint8 casts reduce to on
// x86-64): truncation, and INT32_MIN for NaN and out-of-range values. Used only on the corner-case path;
// a plain C++ cast of those values would be undefined behaviour.
inline std::int32_t trunc_to_int32_x86(float v) {
    return (v > -2147483648.0f && v < 2147483648.0f) ? static_cast<std::int32_t>(v)
                                                       : std::numeric_limits<std::int32_t>::min();
}

// gguf-py's np_roundf (round half away from zero) step by step, for any float including inf/NaN.
inline float np_roundf(float n) {
    const float a = std::fabs(n);
    const float floored = std::floor(a);
    const float b = floored + std::floor(2.0f * (a - floored));
    const float sign = n > 0.0f ? 1.0f : n < 0.0f ? -1.0f : n == 0.0f ? 0.0f : n;  // np.sign (NaN stays NaN)
    return sign * b;
}

// True when all 32 values are finite (|x| <= FLT_MAX is false for inf and NaN).
inline bool block_is_finite(const float* x) {
    std::uint32_t bad = 0;
    for (std::size_t j = 0; j < QK; ++j) bad |= static_cast<std::uint32_t>(!(std::fabs(x[j]) <= FLT_MAX));
    return bad == 0;
}

inline float block_abs_max(const float* x) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (std::size_t j = 0; j < QK; j += 8) {
        for (std::size_t k = 0; k < 8; ++k) {
            const float a = std::fabs(x[j + k]);
            lane[k] = a > lane[k] ? a : lane[k];
        }
    }
    float m = lane[0];
    for (std::size_t k = 1; k < 8; ++k) m = lane[k] > m ? lane[k] : m;
    return m;
}

inline void pack_nibbles(const std::uint8_t* q, std::uint8_t* qs) {
    for (std::size_t j = 0; j < QK / 2; ++j) qs[j] = static_cast<std::uint8_t>(q[j] | (q[j + QK / 2] << 4));
}

// --- Q8_0: gguf-py Q8_0.quantize_blocks ---------------------------------------------------------------
// d = abs(x).max() / 127; id = where(d == 0, 0, 1 / d); qs = np_roundf(x * id).astype(int8)
void quantize_q8_0_scalar_unchecked(const float* x, std::uint8_t* y) {
    const float amax = block_abs_max(x);
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    store_fp16(y, d);
    std::int8_t* qs = reinterpret_cast<std::int8_t*>(y + 2);
    if (std::isfinite(id)) {
        // |x * id| <= 127 * (1 + 4 ulp) here, so the int32 truncation is defined and the rounding
        // (trunc, then +-1 when the exact remainder reaches one half) is np_roundf exactly.
        for (std::size_t j = 0; j < QK; ++j) {
            const float v = x[j] * id;
            std::int32_t t = static_cast<std::int32_t>(v);
            const float frac = v - static_cast<float>(t);  // exact
            t += static_cast<std::int32_t>(frac >= 0.5f) - static_cast<std::int32_t>(frac <= -0.5f);
            qs[j] = static_cast<std::int8_t>(t);
        }
    } else {
        for (std::size_t j = 0; j < QK; ++j) {
            qs[j] = static_cast<std::int8_t>(static_cast<std::uint8_t>(trunc_to_int32_x86(np_roundf(x[j] * id)) & 0xFF));
        }
    }
}

// --- Q4_0: gguf-py Q4_0.quantize_blocks ---------------------------------------------------------------
// max = x[argmax(abs(x))] (first index); d = max / -8; id = where(d == 0, 0, 1 / d)
// q = trunc(x * id + 8.5).astype(uint8).clip(0, 15)
void quantize_q4_0_scalar_unchecked(const float* x, std::uint8_t* y) {
    const float amax = block_abs_max(x);
    float vmax = x[0];
    for (std::size_t j = 0; j < QK; ++j) {
        if (std::fabs(x[j]) == amax) {
            vmax = x[j];
            break;
        }
    }
    const float d = vmax / -8.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    store_fp16(y, d);
    std::uint8_t q[QK];
    if (std::isfinite(id)) {
        // x * id lies in [-8, 8] (up to rounding), so x * id + 8.5 is in [0.5, 16.5]: truncation is defined.
        for (std::size_t j = 0; j < QK; ++j) {
            const float v = x[j] * id + 8.5f;
            const std::int32_t t = static_cast<std::int32_t>(v);
            q[j] = static_cast<std::uint8_t>(t > 15 ? 15 : t);
        }
    } else {
        for (std::size_t j = 0; j < QK; ++j) {
            const float v = std::trunc(x[j] * id + 8.5f);
            const auto u = static_cast<std::uint8_t>(trunc_to_int32_x86(v) & 0xFF);
            q[j] = u > 15 ? 15 : u;
        }
    }
    pack_nibbles(q, y + 2);
}

// --- Q4_1: gguf-py Q4_1.quantize_blocks ---------------------------------------------------------------
// max = x.max(); min = x.min(); d = (max - min) / 15; id = where(d == 0, 0, 1 / d)
// q = trunc((x - min) * id + 0.5).astype(uint8).clip(0, 15); stores d, then m = min.
void quantize_q4_1_scalar_unchecked(const float* x, std::uint8_t* y) {
    float lo[8], hi[8];
    for (std::size_t k = 0; k < 8; ++k) lo[k] = hi[k] = x[k];
    for (std::size_t j = 8; j < QK; j += 8) {
        for (std::size_t k = 0; k < 8; ++k) {
            const float v = x[j + k];
            lo[k] = v < lo[k] ? v : lo[k];
            hi[k] = v > hi[k] ? v : hi[k];
        }
    }
    float vmin = lo[0], vmax = hi[0];
    for (std::size_t k = 1; k < 8; ++k) {
        vmin = lo[k] < vmin ? lo[k] : vmin;
        vmax = hi[k] > vmax ? hi[k] : vmax;
    }
    // Which zero wins a tie between +0 and -0 is invisible to the comparisons above but not to the stored
    // bits. ggml's C reference (quantize_row_q4_1_ref: `if (v < min) min = v`) keeps the first; NumPy's
    // answer depends on its SIMD reduction order (so gguf-py's bytes for such a block vary by CPU).
    if (vmin == 0.0f || vmax == 0.0f) {
        for (std::size_t j = 0; j < QK; ++j) {
            if (x[j] == 0.0f) {
                if (vmin == 0.0f) vmin = x[j];
                if (vmax == 0.0f) vmax = x[j];
                break;
            }
        }
    }
    const float d = (vmax - vmin) / 15.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    store_fp16(y, d);
    store_fp16(y + 2, vmin);
    std::uint8_t q[QK];
    if (std::isfinite(d) && std::isfinite(id)) {
        // 0 <= x - min <= max - min (finite), so the value is in [0.5, 15.5] up to rounding.
        for (std::size_t j = 0; j < QK; ++j) {
            const float v = (x[j] - vmin) * id + 0.5f;
            const std::int32_t t = static_cast<std::int32_t>(v);
            q[j] = static_cast<std::uint8_t>(t > 15 ? 15 : t);
        }
    } else {
        for (std::size_t j = 0; j < QK; ++j) {
            const float v = std::trunc((x[j] - vmin) * id + 0.5f);
            const auto u = static_cast<std::uint8_t>(trunc_to_int32_x86(v) & 0xFF);
            q[j] = u > 15 ? 15 : u;
        }
    }
    pack_nibbles(q, y + 4);
}

// --- dequantization: gguf-py dequantize_blocks --------------------------------------------------------

void dequantize_block_q8_0(const std::uint8_t* y, float* x) {
    const float d = load_fp16(y);
    const auto* qs = reinterpret_cast<const std::int8_t*>(y + 2);
    for (std::size_t j = 0; j < QK; ++j) x[j] = static_cast<float>(qs[j]) * d;
}

void dequantize_block_q4_0(const std::uint8_t* y, float* x) {
    const float d = load_fp16(y);
    const std::uint8_t* qs = y + 2;
    for (std::size_t j = 0; j < QK / 2; ++j) {
        x[j] = d * static_cast<float>(static_cast<int>(qs[j] & 0x0F) - 8);
        x[j + QK / 2] = d * static_cast<float>(static_cast<int>(qs[j] >> 4) - 8);
    }
}

void dequantize_block_q4_1(const std::uint8_t* y, float* x) {
    const float d = load_fp16(y);
    const float m = load_fp16(y + 2);
    const std::uint8_t* qs = y + 4;
    for (std::size_t j = 0; j < QK / 2; ++j) {
        const float lo = d * static_cast<float>(qs[j] & 0x0F);
        const float hi = d * static_cast<float>(qs[j] >> 4);
        x[j] = lo + m;
        x[j + QK / 2] = hi + m;
    }
}

// --- SIMD block quantizers (SSE2 / NEON): same operations, four lanes at a time --------------------------
#include "quant_simd.inl"

template <void (*Kernel)(const float*, std::uint8_t*)>
bool quantize_scalar(const float* x, std::uint8_t* y) {
    if (!block_is_finite(x)) return false;
    Kernel(x, y);
    return true;
}

// Quantizes blocks [begin, end); returns the first block holding a NaN/inf, or kNone. A template per
// kernel, so the block kernel is inlined into the loop (no indirect call per 32 values).
template <bool (*Block)(const float*, std::uint8_t*), std::size_t BlockBytes>
std::size_t quantize_range(const float* src, std::size_t begin, std::size_t end, std::uint8_t* dst) {
    for (std::size_t i = begin; i < end; ++i) {
        if (!Block(src + i * QK, dst + i * BlockBytes)) return i;
    }
    return kNone;
}

#if defined(EDGE_QUANT_SIMD_X4)
// Groups of four blocks through the four-block kernel, falling back to the one-block kernel for a group it
// declines (non-finite values, overflowing scale reciprocals) and for the tail.
template <bool (*Block4)(const float*, std::uint8_t*), bool (*Block)(const float*, std::uint8_t*), std::size_t BlockBytes>
std::size_t quantize_range_x4(const float* src, std::size_t begin, std::size_t end, std::uint8_t* dst) {
    std::size_t i = begin;
    for (; i + 4 <= end; i += 4) {
        if (Block4(src + i * QK, dst + i * BlockBytes)) continue;
        for (std::size_t k = i; k < i + 4; ++k) {
            if (!Block(src + k * QK, dst + k * BlockBytes)) return k;
        }
    }
    for (; i < end; ++i) {
        if (!Block(src + i * QK, dst + i * BlockBytes)) return i;
    }
    return kNone;
}
#endif

using QuantizeRangeFn = std::size_t (*)(const float*, std::size_t, std::size_t, std::uint8_t*);
using DequantizeBlockFn = void (*)(const std::uint8_t*, float*);

QuantizeRangeFn quantizer_for(QuantType type, bool portable) {
#if defined(EDGE_QUANT_SIMD)
    if (!portable) {
        switch (type) {
#if defined(EDGE_QUANT_SIMD_X4)
            case QuantType::Q8_0: return quantize_range_x4<quantize_q8_0_simd_x4, quantize_q8_0_simd, 2 + QK>;
            case QuantType::Q4_0: return quantize_range_x4<quantize_q4_0_simd_x4, quantize_q4_0_simd, 2 + QK / 2>;
            case QuantType::Q4_1: return quantize_range_x4<quantize_q4_1_simd_x4, quantize_q4_1_simd, 4 + QK / 2>;
#else
            case QuantType::Q8_0: return quantize_range<quantize_q8_0_simd, 2 + QK>;
            case QuantType::Q4_0: return quantize_range<quantize_q4_0_simd, 2 + QK / 2>;
            case QuantType::Q4_1: return quantize_range<quantize_q4_1_simd, 4 + QK / 2>;
#endif
        }
    }
#else
    (void)portable;  // no SIMD kernels in this build: every call is portable
#endif
    switch (type) {
        case QuantType::Q8_0: return quantize_range<quantize_scalar<quantize_q8_0_scalar_unchecked>, 2 + QK>;
        case QuantType::Q4_0: return quantize_range<quantize_scalar<quantize_q4_0_scalar_unchecked>, 2 + QK / 2>;
        case QuantType::Q4_1: return quantize_range<quantize_scalar<quantize_q4_1_scalar_unchecked>, 4 + QK / 2>;
    }
    throw std::invalid_argument("quantize_blocks: unsupported quant type " + std::to_string(static_cast<int>(type)) +
                                ", expected Q4_0 (2), Q4_1 (3) or Q8_0 (8)");
}

DequantizeBlockFn dequantizer_for(QuantType type) {
    switch (type) {
        case QuantType::Q8_0: return dequantize_block_q8_0;
        case QuantType::Q4_0: return dequantize_block_q4_0;
        case QuantType::Q4_1: return dequantize_block_q4_1;
    }
    throw std::invalid_argument("dequantize_blocks: unsupported quant type " +
                                std::to_string(static_cast<int>(type)) + ", expected Q4_0 (2), Q4_1 (3) or Q8_0 (8)");
}

// Splits [0, n_blocks) into at most n_threads contiguous chunks (none smaller than kMinBlocksPerThread,
// so small tensors stay on the calling thread) and runs work(chunk_index, begin, end) on each; chunk 0
// runs on the calling thread. Returns the number of chunks.
constexpr std::size_t kMinBlocksPerThread = 2048;  // 64 Ki values: thread start-up is ~10-50 us

template <class Work>
std::size_t run_chunked(std::size_t n_blocks, int n_threads, Work&& work) {
    const std::size_t by_size = std::max<std::size_t>(1, n_blocks / kMinBlocksPerThread);
    const std::size_t n_chunks = std::min<std::size_t>(static_cast<std::size_t>(std::max(1, n_threads)), by_size);
    const std::size_t per = n_blocks / n_chunks, extra = n_blocks % n_chunks;
    auto begin_of = [&](std::size_t c) { return c * per + std::min(c, extra); };
    std::vector<std::thread> workers;
    workers.reserve(n_chunks - 1);
    for (std::size_t c = 1; c < n_chunks; ++c) workers.emplace_back(work, c, begin_of(c), begin_of(c + 1));
    work(std::size_t{0}, begin_of(0), begin_of(1));
    for (auto& t : workers) t.join();
    return n_chunks;
}

}  // namespace

std::size_t quant_block_bytes(QuantType type) {
    switch (type) {
        case QuantType::Q8_0: return 2 + QK;
        case QuantType::Q4_0: return 2 + QK / 2;
        case QuantType::Q4_1: return 2 + 2 + QK / 2;
    }
    throw std::invalid_argument("quant_block_bytes: unsupported quant type " + std::to_string(static_cast<int>(type)) +
                                ", expected Q4_0 (2), Q4_1 (3) or Q8_0 (8)");
}

QuantizeStatus quantize_blocks(QuantType type, const float* src, std::size_t n_blocks, std::uint8_t* dst,
                               int n_threads, bool portable) {
    const QuantizeRangeFn quantize_range_of_blocks = quantizer_for(type, portable);
    std::vector<std::size_t> first_bad(static_cast<std::size_t>(std::max(1, n_threads)), kNone);
    const std::size_t n_chunks = run_chunked(n_blocks, n_threads, [&](std::size_t c, std::size_t b, std::size_t e) {
        first_bad[c] = quantize_range_of_blocks(src, b, e, dst);
    });
    QuantizeStatus status;
    for (std::size_t c = 0; c < n_chunks; ++c) {  // chunks are in order: the first hit is the first bad block
        if (first_bad[c] == kNone) continue;
        const float* x = src + first_bad[c] * QK;
        std::size_t j = 0;
        while (j + 1 < QK && std::fabs(x[j]) <= FLT_MAX) ++j;
        status.ok = false;
        status.bad_index = first_bad[c] * QK + j;
        status.bad_value = x[j];
        break;
    }
    return status;
}

void dequantize_blocks(QuantType type, const std::uint8_t* src, std::size_t n_blocks, float* dst, int n_threads) {
    const DequantizeBlockFn dequantize_block = dequantizer_for(type);
    const std::size_t block_bytes = quant_block_bytes(type);
    run_chunked(n_blocks, n_threads, [&](std::size_t, std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) dequantize_block(src + i * block_bytes, dst + i * QK);
    });
}

std::uint16_t fp32_to_fp16(float value) { return encode_fp16(value); }

float fp16_to_fp32(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t e = (h >> 10) & 0x1Fu;
    const std::uint32_t m = h & 0x3FFu;
    if (e == 0x1F) return float_of(sign | 0x7F800000u | (m << 13));  // inf / NaN (payload kept)
    if (e != 0) return float_of(sign | ((e + 112u) << 23) | (m << 13));
    // zero or subnormal: m * 2^-24, exact in binary32
    const float mag = static_cast<float>(m) * float_of(0x33800000u);
    return sign ? -mag : mag;
}

}  // namespace edge
