// Letterbox kernel: see edge/image.hpp for the geometry and resampling conventions.
//
// One pass over the output rows. For each content row, the two source rows are blended vertically into a
// float row (contiguous, vectorises), then each output pixel is a horizontal lerp of that row at the
// precomputed x offsets, written straight into the three RGB planes. Work is proportional to the output
// plus one source-width blend per content row; nothing is allocated per row.
#include "edge/image.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

template <class Out>
void letterbox_rows(const uint8_t* src, const LetterboxGeometry& g, Out pad, float value_scale, Out* dst) {
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
    // Blended row plus one replicated pixel, so the right tap of the last pixel stays in bounds.
    std::vector<float> row(row3 + 3);

    const int content_end = g.pad_top + g.new_h;
    const int right_start = g.pad_left + g.new_w;
    for (int y = 0; y < g.out_h; ++y) {
        const size_t o = static_cast<size_t>(y) * g.out_w;
        Out* const r = plane_r + o;
        Out* const gp = plane_g + o;
        Out* const b = plane_b + o;
        if (y < g.pad_top || y >= content_end) {
            fill(r, g.out_w, pad);
            fill(gp, g.out_w, pad);
            fill(b, g.out_w, pad);
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

        fill(r, g.pad_left, pad);
        fill(gp, g.pad_left, pad);
        fill(b, g.pad_left, pad);
        Out* const rc = r + g.pad_left;
        Out* const gc = gp + g.pad_left;
        Out* const bc = b + g.pad_left;
        for (int u = 0; u < g.new_w; ++u) {
            const float* p = rw + x_offset[u];
            const float a = x_frac[u];
            bc[u] = to_out(p[0] + a * (p[3] - p[0]), bc);
            gc[u] = to_out(p[1] + a * (p[4] - p[1]), gc);
            rc[u] = to_out(p[2] + a * (p[5] - p[2]), rc);
        }
        const size_t right = static_cast<size_t>(g.out_w - right_start);
        fill(r + right_start, right, pad);
        fill(gp + right_start, right, pad);
        fill(b + right_start, right, pad);
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

bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, float* dst) {
    if (!src || !dst || !letterbox_geometry_valid(g)) return false;
    letterbox_rows<float>(src, g, static_cast<float>(pad_value / 255.0), 1.0f / 255.0f, dst);
    return true;
}

bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, uint8_t* dst) {
    if (!src || !dst || !letterbox_geometry_valid(g)) return false;
    letterbox_rows<uint8_t>(src, g, pad_value, 1.0f, dst);
    return true;
}

}  // namespace edge
