// The letterbox row kernel. image.cpp includes it once per instruction set it is built for, each time in a
// namespace of its own, so each copy is compiled for its target. Uses image.cpp's linear_tap and its
// SIMD headers.

template <class T>
void fill(T* p, size_t n, T v) {
    std::fill(p, p + n, v);
}

// Output conversion of a blended value in [0, 255] (float) or [0, 1] (float, pre-scaled).
inline float to_out(float v, float*) { return v; }
inline uint8_t to_out(float v, uint8_t*) { return static_cast<uint8_t>(v + 0.5f); }  // v in [0, 255]

// Horizontal lerp of output pixels u .. end-1 from a blended BGR float row into the three planes, each
// value p[c] + a * (p[c + 3] - p[c]) (the four-lane version below does the same operations in order).
template <class Out>
inline void lerp_pixels_scalar(const float* rw, const int32_t* x_offset, const float* x_frac, int u, int end,
                               Out* b, Out* g, Out* r) {
    for (; u < end; ++u) {
        const float* p = rw + x_offset[u];
        const float a = x_frac[u];
        b[u] = to_out(p[0] + a * (p[3] - p[0]), b);
        g[u] = to_out(p[1] + a * (p[4] - p[1]), g);
        r[u] = to_out(p[2] + a * (p[5] - p[2]), r);
    }
}

template <class Out>
inline void lerp_pixels(const float* rw, const int32_t* x_offset, const float* x_frac, int n, Out* b, Out* g, Out* r) {
    lerp_pixels_scalar(rw, x_offset, x_frac, 0, n, b, g, r);
}

#if defined(EDGE_LETTERBOX_X4)
// Four lanes of the target's baseline SIMD: load, lerp, and a 4 x 4 transpose whose first three rows are
// stored to the B, G and R planes.
#if defined(__SSE2__)
using F4 = __m128;
inline F4 load4(const float* p) { return _mm_loadu_ps(p); }
inline F4 lerp4(F4 lo, F4 hi, float a) { return _mm_add_ps(lo, _mm_mul_ps(_mm_set1_ps(a), _mm_sub_ps(hi, lo))); }
inline void store_planes(F4* v, float* b, float* g, float* r) {
    _MM_TRANSPOSE4_PS(v[0], v[1], v[2], v[3]);
    _mm_storeu_ps(b, v[0]);
    _mm_storeu_ps(g, v[1]);
    _mm_storeu_ps(r, v[2]);
}
#else
using F4 = float32x4_t;
inline F4 load4(const float* p) { return vld1q_f32(p); }
inline F4 lerp4(F4 lo, F4 hi, float a) { return vaddq_f32(lo, vmulq_f32(vdupq_n_f32(a), vsubq_f32(hi, lo))); }
inline void store_planes(F4* v, float* b, float* g, float* r) {
    const float32x4x2_t t01 = vtrnq_f32(v[0], v[1]);  // (b0 b1 r0 r1), (g0 g1 x x)
    const float32x4x2_t t23 = vtrnq_f32(v[2], v[3]);
    vst1q_f32(b, vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0])));
    vst1q_f32(g, vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1])));
    vst1q_f32(r, vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0])));
}
#endif

// Four pixels at a time: one 4-lane lerp per pixel gives (B, G, R, next B), transposed into the planes.
// Reads one float past the last pixel's right tap (the row buffer has room for it).
template <>
inline void lerp_pixels<float>(const float* rw, const int32_t* x_offset, const float* x_frac, int n, float* b,
                               float* g, float* r) {
    int u = 0;
    for (; u + 4 <= n; u += 4) {
        F4 v[4];
        for (int k = 0; k < 4; ++k) {
            const float* p = rw + x_offset[u + k];
            v[k] = lerp4(load4(p), load4(p + 3), x_frac[u + k]);
        }
        store_planes(v, b + u, g + u, r + u);
    }
    lerp_pixels_scalar(rw, x_offset, x_frac, u, n, b, g, r);
}
#endif

// Output rows [y_begin, y_end) of the letterbox. x taps are shared (read only); the blended row buffer is
// the caller's own (one per thread).
template <class Out>
void letterbox_rows(const uint8_t* src, const LetterboxGeometry& g, Out pad, float value_scale, bool write_pad,
                    Out* dst, const int32_t* x_offset, const float* x_frac, float* rw, int y_begin, int y_end) {
    const int W = g.src_w, H = g.src_h;
    const size_t row3 = static_cast<size_t>(W) * 3;
    const size_t plane = static_cast<size_t>(g.out_h) * g.out_w;
    Out* const plane_r = dst;
    Out* const plane_g = dst + plane;
    Out* const plane_b = dst + 2 * plane;
    const int content_end = g.pad_top + g.new_h;
    const int right_start = g.pad_left + g.new_w;
    for (int y = y_begin; y < y_end; ++y) {
        const size_t o = static_cast<size_t>(y) * g.out_w;
        Out* const r = plane_r + o;
        Out* const gp = plane_g + o;
        Out* const b = plane_b + o;
        if (y < g.pad_top || y >= content_end) {
            if (write_pad) {
                fill(r, g.out_w, pad);
                fill(gp, g.out_w, pad);
                fill(b, g.out_w, pad);
            }
            continue;
        }
        int sy;
        float fy;
        linear_tap(y - g.pad_top, H, g.new_h, &sy, &fy);
        const uint8_t* s0 = src + static_cast<size_t>(sy) * row3;
        const uint8_t* s1 = src + static_cast<size_t>(std::min(sy + 1, H - 1)) * row3;
        // Vertical blend, scaled to the output range (1/255 for float, 1 for uint8).
        const float w1 = fy * value_scale, w0 = value_scale - w1;
        for (size_t i = 0; i < row3; ++i) rw[i] = w0 * static_cast<float>(s0[i]) + w1 * static_cast<float>(s1[i]);
        rw[row3] = rw[row3 - 3];
        rw[row3 + 1] = rw[row3 - 2];
        rw[row3 + 2] = rw[row3 - 1];

        if (write_pad) {
            fill(r, g.pad_left, pad);
            fill(gp, g.pad_left, pad);
            fill(b, g.pad_left, pad);
        }
        Out* const rc = r + g.pad_left;
        Out* const gc = gp + g.pad_left;
        Out* const bc = b + g.pad_left;
        lerp_pixels(rw, x_offset, x_frac, g.new_w, bc, gc, rc);
        if (write_pad) {
            const size_t right = static_cast<size_t>(g.out_w - right_start);
            fill(r + right_start, right, pad);
            fill(gp + right_start, right, pad);
            fill(b + right_start, right, pad);
        }
    }
}
