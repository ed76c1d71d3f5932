// SSE2 (x86-64) and NEON (aarch64) versions of the block quantizers in quant.cpp.
// A textual part of quant.cpp, included inside its anonymous namespace after the portable kernels (whose
// helpers and corner-case fallbacks these use) and under its fp-contract-off pragma; not a header.
//
// The same operations as the portable kernels, four lanes at a time, on the baseline SIMD of the target
// (SSE2 on x86-64, NEON on aarch64). Each returns false on non-finite input and hands a block whose scale
// reciprocal or range is not finite to the scalar kernel (the NumPy corner-case semantics live there).
// armv7 uses the scalar kernels: its NEON flushes subnormals to zero, which would break bit-exactness.
#if defined(__SSE2__)
#define EDGE_QUANT_SIMD 1
#define EDGE_QUANT_SIMD_X4 1

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

// --- four blocks at a time ----------------------------------------------------------------------------
// The one-block kernels spend most of their time in a serial chain: horizontal reduction, two scalar
// divisions, fp16 rounding. These kernels take four consecutive blocks: per-block reductions stay
// vertical until one transpose puts block k's result in lane k, and one division serves all four.
// Each returns false when the caller must take the one-block path for the group: a NaN/inf, a scale
// reciprocal or range that overflows, or a tie the one-block kernel resolves (signed zeros, Q4_0's
// first-of-equal-magnitudes).

struct Stats4 {
    __m128 amax, max, min;  // lane k: max |x|, max x, min x of block k
};

// Reductions of blocks x[0..128); false if any value is NaN or inf.
template <bool WithMinMax>
inline bool stats4(const float* x, Stats4& st) {
    const __m128 abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF));
    const __m128i max_finite = _mm_set1_epi32(0x7F7FFFFF);
    __m128i bad = _mm_setzero_si128();
    __m128 am[4], hi[4], lo[4];
    for (int k = 0; k < 4; ++k) {
        const float* xb = x + 32 * k;
        __m128 v = _mm_loadu_ps(xb);
        am[k] = _mm_and_ps(v, abs_mask);
        hi[k] = lo[k] = v;
        bad = _mm_or_si128(bad, _mm_cmpgt_epi32(_mm_castps_si128(am[k]), max_finite));
        for (int j = 1; j < 8; ++j) {
            v = _mm_loadu_ps(xb + 4 * j);
            const __m128 a = _mm_and_ps(v, abs_mask);
            bad = _mm_or_si128(bad, _mm_cmpgt_epi32(_mm_castps_si128(a), max_finite));
            am[k] = _mm_max_ps(am[k], a);
            if (WithMinMax) {
                hi[k] = _mm_max_ps(hi[k], v);
                lo[k] = _mm_min_ps(lo[k], v);
            }
        }
    }
    if (_mm_movemask_epi8(bad) != 0) return false;
    _MM_TRANSPOSE4_PS(am[0], am[1], am[2], am[3]);
    st.amax = _mm_max_ps(_mm_max_ps(am[0], am[1]), _mm_max_ps(am[2], am[3]));
    if (WithMinMax) {
        _MM_TRANSPOSE4_PS(hi[0], hi[1], hi[2], hi[3]);
        _MM_TRANSPOSE4_PS(lo[0], lo[1], lo[2], lo[3]);
        st.max = _mm_max_ps(_mm_max_ps(hi[0], hi[1]), _mm_max_ps(hi[2], hi[3]));
        st.min = _mm_min_ps(_mm_min_ps(lo[0], lo[1]), _mm_min_ps(lo[2], lo[3]));
    }
    return true;
}

// where(d == 0, 0, 1 / d), four lanes; false in `ok` if a lane is not finite.
inline __m128 reciprocal_or_zero(__m128 d, bool& ok) {
    const __m128 id = _mm_and_ps(_mm_cmpneq_ps(d, _mm_setzero_ps()), _mm_div_ps(_mm_set1_ps(1.0f), d));
    const __m128 abs_id = _mm_and_ps(id, _mm_castsi128_ps(_mm_set1_epi32(0x7FFFFFFF)));
    ok = _mm_movemask_ps(_mm_cmpgt_ps(abs_id, _mm_set1_ps(FLT_MAX))) == 0;  // inf > FLT_MAX; d is never NaN here
    return id;
}

bool quantize_q8_0_simd_x4(const float* x, std::uint8_t* y) {
    Stats4 st;
    if (!stats4<false>(x, st)) return false;
    const __m128 d = _mm_div_ps(st.amax, _mm_set1_ps(127.0f));
    bool ok;
    const __m128 id = reciprocal_or_zero(d, ok);
    if (!ok) return false;
    alignas(16) float ds[4], ids[4];
    _mm_store_ps(ds, d);
    _mm_store_ps(ids, id);
    const __m128 half = _mm_set1_ps(0.5f), minus_half = _mm_set1_ps(-0.5f);
    for (int k = 0; k < 4; ++k) {
        const float* xb = x + 32 * k;
        std::uint8_t* yb = y + 34 * k;
        store_fp16(yb, ds[k]);
        const __m128 vid = _mm_set1_ps(ids[k]);
        __m128i t[8];
        for (int j = 0; j < 8; ++j) {
            const __m128 p = _mm_mul_ps(_mm_loadu_ps(xb + 4 * j), vid);
            const __m128i ti = _mm_cvttps_epi32(p);
            const __m128 frac = _mm_sub_ps(p, _mm_cvtepi32_ps(ti));
            t[j] = _mm_add_epi32(_mm_sub_epi32(ti, _mm_castps_si128(_mm_cmpge_ps(frac, half))),
                                 _mm_castps_si128(_mm_cmple_ps(frac, minus_half)));
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yb + 2),
                         _mm_packs_epi16(_mm_packs_epi32(t[0], t[1]), _mm_packs_epi32(t[2], t[3])));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yb + 18),
                         _mm_packs_epi16(_mm_packs_epi32(t[4], t[5]), _mm_packs_epi32(t[6], t[7])));
    }
    return true;
}

bool quantize_q4_0_simd_x4(const float* x, std::uint8_t* y) {
    Stats4 st;
    if (!stats4<true>(x, st)) return false;
    // The scale is the block's first value of largest magnitude. When only the max or only the min has
    // that magnitude the sign is known without looking for it; a tie (+a and -a both present, or an
    // all-zero block whose zeros' signs matter) goes to the one-block kernel, which scans.
    const __m128 max_is = _mm_cmpeq_ps(st.max, st.amax);
    const __m128 min_is = _mm_cmpeq_ps(_mm_sub_ps(_mm_setzero_ps(), st.min), st.amax);
    if (_mm_movemask_ps(_mm_and_ps(max_is, min_is)) != 0) return false;
    const __m128 vmax = _mm_or_ps(_mm_and_ps(max_is, st.max), _mm_andnot_ps(max_is, st.min));
    const __m128 d = _mm_div_ps(vmax, _mm_set1_ps(-8.0f));
    bool ok;
    const __m128 id = reciprocal_or_zero(d, ok);
    if (!ok) return false;
    alignas(16) float ds[4], ids[4];
    _mm_store_ps(ds, d);
    _mm_store_ps(ids, id);
    const __m128 offset = _mm_set1_ps(8.5f);
    for (int k = 0; k < 4; ++k) {
        const float* xb = x + 32 * k;
        store_fp16(y + 18 * k, ds[k]);
        const __m128 vid = _mm_set1_ps(ids[k]);
        __m128i t[8];
        for (int j = 0; j < 8; ++j) t[j] = _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(_mm_loadu_ps(xb + 4 * j), vid), offset));
        store_nibbles(t, y + 18 * k + 2);
    }
    return true;
}

bool quantize_q4_1_simd_x4(const float* x, std::uint8_t* y) {
    Stats4 st;
    if (!stats4<true>(x, st)) return false;
    const __m128 zero = _mm_setzero_ps();
    if (_mm_movemask_ps(_mm_or_ps(_mm_cmpeq_ps(st.min, zero), _mm_cmpeq_ps(st.max, zero))) != 0) return false;
    const __m128 d = _mm_div_ps(_mm_sub_ps(st.max, st.min), _mm_set1_ps(15.0f));
    bool ok;
    const __m128 id = reciprocal_or_zero(d, ok);
    if (!ok || _mm_movemask_ps(_mm_cmpgt_ps(d, _mm_set1_ps(FLT_MAX))) != 0) return false;  // d >= 0
    alignas(16) float ds[4], ids[4], mins[4];
    _mm_store_ps(ds, d);
    _mm_store_ps(ids, id);
    _mm_store_ps(mins, st.min);
    const __m128 half = _mm_set1_ps(0.5f);
    for (int k = 0; k < 4; ++k) {
        const float* xb = x + 32 * k;
        std::uint8_t* yb = y + 20 * k;
        store_fp16(yb, ds[k]);
        store_fp16(yb + 2, mins[k]);
        const __m128 vid = _mm_set1_ps(ids[k]), vmn = _mm_set1_ps(mins[k]);
        __m128i t[8];
        for (int j = 0; j < 8; ++j) {
            t[j] = _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(xb + 4 * j), vmn), vid), half));
        }
        store_nibbles(t, yb + 4);
    }
    return true;
}

// --- one block at a time ------------------------------------------------------------------------------

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
