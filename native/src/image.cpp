// Letterbox kernel: see edge/image.hpp for the geometry and resampling conventions.
//
// One pass over the output rows. For each content row, the two source rows are blended vertically into a
// float row (contiguous, vectorises), then each output pixel is a horizontal lerp of that row at the
// precomputed x offsets (four pixels at a time with SSE2 / NEON), written straight into the three RGB
// planes. Work is proportional to the output plus one source-width blend per content row; nothing is
// allocated per row. The row kernel (image_rows.inl) is also built for AVX2 + FMA on x86-64 and taken where
// the CPU has both. With threads > 1 runs of rows are shared out between the caller and the shared helper
// threads (edge/workers.hpp), each with its own blended-row buffer.
#include "edge/image.hpp"
#include "edge/workers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
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

// The row kernel for the baseline of the target (SSE2 on x86-64, NEON on aarch64 / armv7 builds).
namespace rows_base {
#include "image_rows.inl"
}  // namespace rows_base

#if defined(__x86_64__) && defined(__GNUC__)
// The same kernel compiled for AVX2 + FMA, taken at run time where the CPU has both: the vertical blend runs
// eight lanes wide. Only code defined in this block gets the target; library templates it calls stay baseline.
#define EDGE_LETTERBOX_AVX2 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace rows_avx2 {
#include "image_rows.inl"
}  // namespace rows_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

template <class Out>
using RowsFn = void (*)(const uint8_t*, const LetterboxGeometry&, Out, float, bool, Out*, const int32_t*, const float*,
                        float*, int, int);

// AVX2 + FMA where the CPU has both, unless EDGE_RUNTIME_ISA=baseline (read once; for testing the baseline
// kernel on any machine).
bool use_avx2() {
#if defined(EDGE_LETTERBOX_AVX2)
    static const bool avx2 = [] {
        const char* isa = std::getenv("EDGE_RUNTIME_ISA");
        if (isa && std::strcmp(isa, "baseline") == 0) return false;
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }();
    return avx2;
#else
    return false;
#endif
}

template <class Out>
RowsFn<Out> rows_kernel() {
#if defined(EDGE_LETTERBOX_AVX2)
    if (use_avx2()) return &rows_avx2::letterbox_rows<Out>;
#endif
    return &rows_base::letterbox_rows<Out>;
}

// Below this many output pixels per thread, waking one more thread costs more than it saves.
constexpr size_t kMinPixelsPerThread = 64 * 1024;
// Rows per task when the rows are split between threads.
constexpr int kRowsPerTask = 8;

template <class Out>
void letterbox(const uint8_t* src, const LetterboxGeometry& g, Out pad, float value_scale, bool write_pad, Out* dst,
               int threads) {
    // x taps once per call: offset of the left source pixel (in floats of the blended row) and fraction.
    std::vector<int32_t> x_offset(g.new_w);
    std::vector<float> x_frac(g.new_w);
    for (int u = 0; u < g.new_w; ++u) {
        int sx;
        linear_tap(u, g.src_w, g.new_w, &sx, &x_frac[u]);
        x_offset[u] = sx * 3;
    }
    // Rows written: all of them with the padding, else the content rows only.
    const int y_first = write_pad ? 0 : g.pad_top;
    const int y_last = write_pad ? g.out_h : g.pad_top + g.new_h;
    const size_t pixels = static_cast<size_t>(y_last - y_first) * g.out_w;
    const int n = static_cast<int>(std::clamp<size_t>(pixels / kMinPixelsPerThread, 1,
                                                      static_cast<size_t>(std::max(1, threads))));
    // Per thread: a blended row plus one replicated pixel, so the right tap of the last pixel stays in
    // bounds, plus one float the four-lane loads read past it.
    const size_t row_floats = static_cast<size_t>(g.src_w) * 3 + 4;
    std::vector<float> rows_buf(row_floats * n, 0.0f);
    const RowsFn<Out> rows = rows_kernel<Out>();
    if (n == 1) {
        rows(src, g, pad, value_scale, write_pad, dst, x_offset.data(), x_frac.data(), rows_buf.data(), y_first, y_last);
        return;
    }
    // Runs of kRowsPerTask rows, handed out to whichever thread is free (see edge/workers.hpp); each thread
    // blends into its own row buffer. Every row is computed the same way whichever thread runs it.
    const int n_tasks = (y_last - y_first + kRowsPerTask - 1) / kRowsPerTask;
    parallel_tasks(n_tasks, n, [&](int k, int slot) {
        const int b = y_first + k * kRowsPerTask;
        const int e = std::min(y_last, b + kRowsPerTask);
        rows(src, g, pad, value_scale, write_pad, dst, x_offset.data(), x_frac.data(),
             rows_buf.data() + row_floats * slot, b, e);
    });
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

const char* letterbox_isa() { return use_avx2() ? "avx2+fma" : "baseline"; }

bool letterbox_geometry_valid(const LetterboxGeometry& g) {
    return side_ok(g.src_h) && side_ok(g.src_w) && side_ok(g.out_h) && side_ok(g.out_w) && side_ok(g.new_h) &&
           side_ok(g.new_w) && g.pad_top >= 0 && g.pad_left >= 0 && g.new_h <= g.out_h - g.pad_top &&
           g.new_w <= g.out_w - g.pad_left;
}

bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, float* dst, bool write_pad,
                    int threads) {
    if (!src || !dst || !letterbox_geometry_valid(g)) return false;
    letterbox<float>(src, g, static_cast<float>(pad_value / 255.0), 1.0f / 255.0f, write_pad, dst, threads);
    return true;
}

bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, uint8_t* dst, bool write_pad,
                    int threads) {
    if (!src || !dst || !letterbox_geometry_valid(g)) return false;
    letterbox<uint8_t>(src, g, pad_value, 1.0f, write_pad, dst, threads);
    return true;
}

}  // namespace edge
