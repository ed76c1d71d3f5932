// Letterbox kernel: see edge/image.hpp for the geometry and resampling conventions.
//
// One pass over the output rows. For each content row, the two source rows are blended vertically into a
// float row (contiguous, vectorises), then each output pixel is a horizontal lerp of that row at the
// precomputed x offsets (four pixels at a time with SSE2 / NEON), written straight into the three RGB
// planes. Work is proportional to the output
// plus one source-width blend per content row; nothing is allocated per row.
#include "edge/image.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#define EDGE_LETTERBOX_X4 1
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#define EDGE_LETTERBOX_X4 1
#endif

namespace edge {
namespace {

// Python's round() on a double: round half to even (the default IEEE rounding mode).
int round_half_even(double x) { return static_cast<int>(std::nearbyint(x)); }

// OpenCV INTER_LINEAR source position of destination index d for a src -> dst resize:
// (d + 0.5) * src / dst - 0.5, split into a floor index and a fraction, clamped to the border
// (replicate): index 0 with fraction 0 below, index src - 1 with fraction 0 above.
void linear_tap(int d, int src, int dst, int* index, float* frac) {
    const double pos = (d + 0.5) * (static_cast<double>(src) / dst) - 0.5;
    const double fl = std::floor(pos);
    int i = static_cast<int>(fl);
    double f = pos - fl;
    if (i < 0) {
        i = 0;
        f = 0.0;
    }
    if (i >= src - 1) {
        i = src - 1;
        f = 0.0;
    }
    *index = i;
    *frac = static_cast<float>(f);
}

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

template <class Out>
void letterbox_rows(const uint8_t* src, const LetterboxGeometry& g, Out pad, float value_scale, bool write_pad,
                    Out* dst) {
    const int W = g.src_w, H = g.src_h;
    const size_t row3 = static_cast<size_t>(W) * 3;
    const size_t plane = static_cast<size_t>(g.out_h) * g.out_w;
    Out* const plane_r = dst;
    Out* const plane_g = dst + plane;
    Out* const plane_b = dst + 2 * plane;

    // x taps once per call: offset of the left source pixel (in floats of the blended row) and fraction.
    std::vector<int32_t> x_offset(g.new_w);
    std::vector<float> x_frac(g.new_w);
    for (int u = 0; u < g.new_w; ++u) {
        int sx;
        linear_tap(u, W, g.new_w, &sx, &x_frac[u]);
        x_offset[u] = sx * 3;
    }
    // Blended row plus one replicated pixel, so the right tap of the last pixel stays in bounds, plus one
    // float the four-lane loads read past it.
    std::vector<float> row(row3 + 4, 0.0f);

    const int content_end = g.pad_top + g.new_h;
    const int right_start = g.pad_left + g.new_w;
    for (int y = 0; y < g.out_h; ++y) {
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
        float* const rw = row.data();
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
        lerp_pixels(rw, x_offset.data(), x_frac.data(), g.new_w, bc, gc, rc);
        if (write_pad) {
            const size_t right = static_cast<size_t>(g.out_w - right_start);
            fill(r + right_start, right, pad);
            fill(gp + right_start, right, pad);
            fill(b + right_start, right, pad);
        }
    }
}

bool side_ok(int v) { return v >= 1 && v <= kMaxImageSide; }

}  // namespace

bool letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w, bool auto_pad, int stride, bool scale_up,
                        LetterboxGeometry* out) {
    if (!side_ok(src_h) || !side_ok(src_w) || !side_ok(dst_h) || !side_ok(dst_w) || !side_ok(stride)) return false;
    double r = std::min(static_cast<double>(dst_h) / src_h, static_cast<double>(dst_w) / src_w);
    if (!scale_up) r = std::min(r, 1.0);
    LetterboxGeometry g;
    g.src_h = src_h;
    g.src_w = src_w;
    g.scale = r;
    g.new_w = std::clamp(round_half_even(src_w * r), 1, dst_w);
    g.new_h = std::clamp(round_half_even(src_h * r), 1, dst_h);
    int dw = dst_w - g.new_w, dh = dst_h - g.new_h;
    if (auto_pad) {
        dw %= stride;
        dh %= stride;
    }
    const double half_w = dw / 2.0, half_h = dh / 2.0;
    g.pad_left = round_half_even(half_w - 0.1);
    g.pad_top = round_half_even(half_h - 0.1);
    g.out_w = g.new_w + g.pad_left + round_half_even(half_w + 0.1);
    g.out_h = g.new_h + g.pad_top + round_half_even(half_h + 0.1);
    *out = g;
    return true;
}

bool letterbox_geometry_valid(const LetterboxGeometry& g) {
    return side_ok(g.src_h) && side_ok(g.src_w) && side_ok(g.out_h) && side_ok(g.out_w) && side_ok(g.new_h) &&
           side_ok(g.new_w) && g.pad_top >= 0 && g.pad_left >= 0 && g.new_h <= g.out_h - g.pad_top &&
           g.new_w <= g.out_w - g.pad_left;
}

bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, float* dst, bool write_pad) {
    if (!src || !dst || !letterbox_geometry_valid(g)) return false;
    letterbox_rows<float>(src, g, static_cast<float>(pad_value / 255.0), 1.0f / 255.0f, write_pad, dst);
    return true;
}

bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, uint8_t* dst, bool write_pad) {
    if (!src || !dst || !letterbox_geometry_valid(g)) return false;
    letterbox_rows<uint8_t>(src, g, pad_value, 1.0f, write_pad, dst);
    return true;
}

}  // namespace edge
