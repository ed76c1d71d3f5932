// GGUF block quantizers Q8_0 / Q4_0 / Q4_1: see native/include/edge/quant.hpp for the contract.
//
// Each block kernel mirrors one `quantize_blocks` / `dequantize_blocks` of gguf-py/gguf/quants.py
// operation for operation. The hot loops are written over 32 fixed lanes with no data-dependent
// branches, so compilers vectorise them with the target's baseline SIMD (SSE2, NEON) and no intrinsics;
// blocks that need NumPy's corner-case semantics take a scalar path instead.

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

inline void store_fp16(std::uint8_t* dst, float value) {
    const std::uint16_t h = fp32_to_fp16(value);
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
    // bits; NumPy's min/max reductions (SSE/AVX min/max take the later operand on ties) return the last.
    if (vmin == 0.0f || vmax == 0.0f) {
        for (std::size_t j = QK; j-- > 0;) {
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

// --- SIMD block quantizers -----------------------------------------------------------------------------
// Same operations as the scalar kernels above, four lanes at a time, on the baseline SIMD of the target
// (SSE2 on x86-64, NEON on aarch64). Each returns false on non-finite input and hands a block whose scale
// reciprocal or range is not finite to the scalar kernel (the NumPy corner-case semantics live there).
// armv7 uses the scalar kernels: its NEON flushes subnormals to zero, which would break bit-exactness.

#if defined(__SSE2__)
#define EDGE_QUANT_SIMD 1

struct Block4 {
    __m128 v[8];  // the 32 values
    __m128 a[8];  // their magnitudes
};

// Loads a block; false if any value is NaN or inf (magnitude bits above FLT_MAX's).
inline bool load_block(const float* x, Block4& b) {
    const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
    const __m128i max_finite = _mm_set1_epi32(0x7F7FFFFF);
    __m128i bad = _mm_setzero_si128();
    for (int k = 0; k < 8; ++k) {
        b.v[k] = _mm_loadu_ps(x + 4 * k);
        b.a[k] = _mm_and_ps(b.v[k], abs_mask);
        bad = _mm_or_si128(bad, _mm_cmpgt_epi32(_mm_castps_si128(b.a[k]), max_finite));
    }
    return _mm_movemask_epi8(bad) == 0;
}

inline float hmax4(__m128 v) {
    v = _mm_max_ps(v, _mm_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_max_ps(v, _mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(v);
}

inline float hmin4(__m128 v) {
    v = _mm_min_ps(v, _mm_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_min_ps(v, _mm_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(v);
}

inline float max8(const __m128* a) {
    return hmax4(_mm_max_ps(_mm_max_ps(_mm_max_ps(a[0], a[1]), _mm_max_ps(a[2], a[3])),
                            _mm_max_ps(_mm_max_ps(a[4], a[5]), _mm_max_ps(a[6], a[7]))));
}

inline float min8(const __m128* a) {
    return hmin4(_mm_min_ps(_mm_min_ps(_mm_min_ps(a[0], a[1]), _mm_min_ps(a[2], a[3])),
                            _mm_min_ps(_mm_min_ps(a[4], a[5]), _mm_min_ps(a[6], a[7]))));
}

// 32 int32 codes in 0..16 -> 16 bytes of nibbles, each code clipped to 15.
inline void store_nibbles(const __m128i* t, std::uint8_t* qs) {
    const __m128i fifteen = _mm_set1_epi8(15);
    const __m128i lo = _mm_min_epu8(_mm_packus_epi16(_mm_packs_epi32(t[0], t[1]), _mm_packs_epi32(t[2], t[3])), fifteen);
    const __m128i hi = _mm_min_epu8(_mm_packus_epi16(_mm_packs_epi32(t[4], t[5]), _mm_packs_epi32(t[6], t[7])), fifteen);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
}

bool quantize_q8_0_simd(const float* x, std::uint8_t* y) {
    Block4 b;
    if (!load_block(x, b)) return false;
    const float d = max8(b.a) / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (!std::isfinite(id)) {
        quantize_q8_0_scalar_unchecked(x, y);
        return true;
    }
    store_fp16(y, d);
    const __m128 vid = _mm_set1_ps(id), half = _mm_set1_ps(0.5f), minus_half = _mm_set1_ps(-0.5f);
    __m128i t[8];
    for (int k = 0; k < 8; ++k) {
        const __m128 p = _mm_mul_ps(b.v[k], vid);
        const __m128i ti = _mm_cvttps_epi32(p);
        const __m128 frac = _mm_sub_ps(p, _mm_cvtepi32_ps(ti));  // exact
        // compare masks are -1 where true: t + (frac >= .5) - (frac <= -.5)
        t[k] = _mm_add_epi32(_mm_sub_epi32(ti, _mm_castps_si128(_mm_cmpge_ps(frac, half))),
                             _mm_castps_si128(_mm_cmple_ps(frac, minus_half)));
    }
    const __m128i s01 = _mm_packs_epi32(t[0], t[1]), s23 = _mm_packs_epi32(t[2], t[3]);
    const __m128i s45 = _mm_packs_epi32(t[4], t[5]), s67 = _mm_packs_epi32(t[6], t[7]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 2), _mm_packs_epi16(s01, s23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 18), _mm_packs_epi16(s45, s67));
    return true;
}

bool quantize_q4_0_simd(const float* x, std::uint8_t* y) {
    Block4 b;
    if (!load_block(x, b)) return false;
    const float amax = max8(b.a);
    const __m128 vamax = _mm_set1_ps(amax);
    std::uint32_t hits = 0;  // bit j: |x[j]| == amax
    for (int k = 0; k < 8; ++k) {
        hits |= static_cast<std::uint32_t>(_mm_movemask_ps(_mm_cmpeq_ps(b.a[k], vamax))) << (4 * k);
    }
    const float d = x[__builtin_ctz(hits)] / -8.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (!std::isfinite(id)) {
        quantize_q4_0_scalar_unchecked(x, y);
        return true;
    }
    store_fp16(y, d);
    const __m128 vid = _mm_set1_ps(id), offset = _mm_set1_ps(8.5f);
    __m128i t[8];
    for (int k = 0; k < 8; ++k) t[k] = _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(b.v[k], vid), offset));
    store_nibbles(t, y + 2);
    return true;
}

bool quantize_q4_1_simd(const float* x, std::uint8_t* y) {
    Block4 b;
    if (!load_block(x, b)) return false;
    float vmin = min8(b.v), vmax = max8(b.v);
    if (vmin == 0.0f || vmax == 0.0f) {  // a signed-zero tie: take NumPy's pick, as in the scalar kernel
        quantize_q4_1_scalar_unchecked(x, y);
        return true;
    }
    const float d = (vmax - vmin) / 15.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (!std::isfinite(d) || !std::isfinite(id)) {
        quantize_q4_1_scalar_unchecked(x, y);
        return true;
    }
    store_fp16(y, d);
    store_fp16(y + 2, vmin);
    const __m128 vid = _mm_set1_ps(id), vmn = _mm_set1_ps(vmin), half = _mm_set1_ps(0.5f);
    __m128i t[8];
    for (int k = 0; k < 8; ++k) t[k] = _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(_mm_sub_ps(b.v[k], vmn), vid), half));
    store_nibbles(t, y + 4);
    return true;
}

#elif defined(__aarch64__) && defined(__ARM_NEON)
#define EDGE_QUANT_SIMD 1

struct Block4 {
    float32x4_t v[8];
    float32x4_t a[8];
};

inline bool load_block(const float* x, Block4& b) {
    const uint32x4_t max_finite = vdupq_n_u32(0x7F7FFFFFu);
    uint32x4_t bad = vdupq_n_u32(0);
    for (int k = 0; k < 8; ++k) {
        b.v[k] = vld1q_f32(x + 4 * k);
        b.a[k] = vabsq_f32(b.v[k]);
        bad = vorrq_u32(bad, vcgtq_u32(vreinterpretq_u32_f32(b.a[k]), max_finite));
    }
    return vmaxvq_u32(bad) == 0;
}

inline float max8(const float32x4_t* a) {
    return vmaxvq_f32(vmaxq_f32(vmaxq_f32(vmaxq_f32(a[0], a[1]), vmaxq_f32(a[2], a[3])),
                                vmaxq_f32(vmaxq_f32(a[4], a[5]), vmaxq_f32(a[6], a[7]))));
}

inline float min8(const float32x4_t* a) {
    return vminvq_f32(vminq_f32(vminq_f32(vminq_f32(a[0], a[1]), vminq_f32(a[2], a[3])),
                                vminq_f32(vminq_f32(a[4], a[5]), vminq_f32(a[6], a[7]))));
}

inline uint8x16_t narrow16(const int32x4_t* t) {  // 16 int32 codes in 0..16 -> uint8, clipped to 15
    const int16x8_t a = vcombine_s16(vmovn_s32(t[0]), vmovn_s32(t[1]));
    const int16x8_t b = vcombine_s16(vmovn_s32(t[2]), vmovn_s32(t[3]));
    return vminq_u8(vcombine_u8(vqmovun_s16(a), vqmovun_s16(b)), vdupq_n_u8(15));
}

inline void store_nibbles(const int32x4_t* t, std::uint8_t* qs) {
    vst1q_u8(qs, vorrq_u8(narrow16(t), vshlq_n_u8(narrow16(t + 4), 4)));
}

bool quantize_q8_0_simd(const float* x, std::uint8_t* y) {
    Block4 b;
    if (!load_block(x, b)) return false;
    const float d = max8(b.a) / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (!std::isfinite(id)) {
        quantize_q8_0_scalar_unchecked(x, y);
        return true;
    }
    store_fp16(y, d);
    const float32x4_t vid = vdupq_n_f32(id);
    int16x4_t h[8];
    // fcvtas: round to nearest, ties away from zero = np_roundf for these in-range values
    for (int k = 0; k < 8; ++k) h[k] = vmovn_s32(vcvtaq_s32_f32(vmulq_f32(b.v[k], vid)));
    vst1q_s8(reinterpret_cast<std::int8_t*>(y + 2),
             vcombine_s8(vmovn_s16(vcombine_s16(h[0], h[1])), vmovn_s16(vcombine_s16(h[2], h[3]))));
    vst1q_s8(reinterpret_cast<std::int8_t*>(y + 18),
             vcombine_s8(vmovn_s16(vcombine_s16(h[4], h[5])), vmovn_s16(vcombine_s16(h[6], h[7]))));
    return true;
}

bool quantize_q4_0_simd(const float* x, std::uint8_t* y) {
    Block4 b;
    if (!load_block(x, b)) return false;
    const float amax = max8(b.a);
    std::size_t first = 0;
    while (std::fabs(x[first]) != amax) ++first;  // amax is one of the magnitudes: this stops
    const float d = x[first] / -8.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (!std::isfinite(id)) {
        quantize_q4_0_scalar_unchecked(x, y);
        return true;
    }
    store_fp16(y, d);
    const float32x4_t vid = vdupq_n_f32(id), offset = vdupq_n_f32(8.5f);
    int32x4_t t[8];
    for (int k = 0; k < 8; ++k) t[k] = vcvtq_s32_f32(vaddq_f32(vmulq_f32(b.v[k], vid), offset));
    store_nibbles(t, y + 2);
    return true;
}

bool quantize_q4_1_simd(const float* x, std::uint8_t* y) {
    Block4 b;
    if (!load_block(x, b)) return false;
    const float vmin = min8(b.v), vmax = max8(b.v);
    const float d = (vmax - vmin) / 15.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    if (vmin == 0.0f || vmax == 0.0f || !std::isfinite(d) || !std::isfinite(id)) {
        quantize_q4_1_scalar_unchecked(x, y);
        return true;
    }
    store_fp16(y, d);
    store_fp16(y + 2, vmin);
    const float32x4_t vid = vdupq_n_f32(id), vmn = vdupq_n_f32(vmin), half = vdupq_n_f32(0.5f);
    int32x4_t t[8];
    for (int k = 0; k < 8; ++k) t[k] = vcvtq_s32_f32(vaddq_f32(vmulq_f32(vsubq_f32(b.v[k], vmn), vid), half));
    store_nibbles(t, y + 4);
    return true;
}
#endif  // SIMD kernels

template <void (*Kernel)(const float*, std::uint8_t*)>
bool quantize_scalar(const float* x, std::uint8_t* y) {
    if (!block_is_finite(x)) return false;
    Kernel(x, y);
    return true;
}

using QuantizeBlockFn = bool (*)(const float*, std::uint8_t*);  // false: the block holds a NaN/inf
using DequantizeBlockFn = void (*)(const std::uint8_t*, float*);

QuantizeBlockFn quantizer_for(QuantType type, bool portable) {
#if defined(EDGE_QUANT_SIMD)
    if (!portable) {
        switch (type) {
            case QuantType::Q8_0: return quantize_q8_0_simd;
            case QuantType::Q4_0: return quantize_q4_0_simd;
            case QuantType::Q4_1: return quantize_q4_1_simd;
        }
    }
#endif
    switch (type) {
        case QuantType::Q8_0: return quantize_scalar<quantize_q8_0_scalar_unchecked>;
        case QuantType::Q4_0: return quantize_scalar<quantize_q4_0_scalar_unchecked>;
        case QuantType::Q4_1: return quantize_scalar<quantize_q4_1_scalar_unchecked>;
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
    const QuantizeBlockFn quantize_block = quantizer_for(type, portable);
    const std::size_t block_bytes = quant_block_bytes(type);
    std::vector<std::size_t> first_bad(static_cast<std::size_t>(std::max(1, n_threads)), kNone);
    const std::size_t n_chunks = run_chunked(n_blocks, n_threads, [&](std::size_t c, std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) {
            const float* x = src + i * QK;
            if (!quantize_block(x, dst + i * block_bytes)) {
                first_bad[c] = i;
                return;
            }
        }
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

std::uint16_t fp32_to_fp16(float value) {
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
