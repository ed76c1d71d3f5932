// Grey thumbnail from a sparse sample grid: see edge/thumbnail.hpp.
#include "edge/thumbnail.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "edge/image.hpp"

namespace edge {
namespace {

struct Tap {
    int cell, point;
    int64_t weight;
};

// The area weights of n grid points over out cells, in units of 1 / out of a grid point (so that every
// weight is a whole number): point i covers [i out, (i + 1) out), cell c covers [c n, (c + 1) n). One tap
// per overlapping (cell, point) pair, in cell order; each cell's weights sum to n.
std::vector<Tap> area_taps(int n, int out) {
    std::vector<Tap> taps;
    for (int c = 0; c < out; ++c) {
        const int64_t lo = static_cast<int64_t>(c) * n, hi = static_cast<int64_t>(c + 1) * n;
        for (int64_t i = lo / out; i * out < hi; ++i) {
            const int64_t w = std::min((i + 1) * out, hi) - std::max(i * out, lo);
            if (w > 0) taps.push_back({c, static_cast<int>(i), w});
        }
    }
    return taps;
}

// Loads one byte of every cache line the grid's rows read, all rows first: the loads are independent, so the
// CPU has many misses in flight at once, where the grey pass would wait on each row in turn (a frame decoded
// a while ago, or pushed out by the model, is mostly not in cache).
void touch_grid_rows(const uint8_t* src, int w, int step_y, int gh, int step_x, int gw) {
    const size_t first = static_cast<size_t>(step_x / 2) * 3;
    const size_t last = (static_cast<size_t>(step_x / 2) + static_cast<size_t>(gw - 1) * step_x) * 3 + 2;
    unsigned sink = 0;
    for (int gy = 0; gy < gh; ++gy) {
        const uint8_t* row = src + static_cast<size_t>(step_y / 2 + gy * step_y) * static_cast<size_t>(w) * 3;
        for (size_t k = first; k < last; k += 64) sink += row[k];
        sink += row[last];
    }
    volatile unsigned observed = sink;  // a volatile store of their sum keeps the loads from being optimised away
    (void)observed;
}

}  // namespace

bool grey_thumbnail(const uint8_t* src, int h, int w, int out_h, int out_w, int samples, float* out) {
    if (!src || !out || h < 1 || w < 1 || h > kMaxImageSide || w > kMaxImageSide || out_h < 1 || out_w < 1 ||
        out_h > 4096 || out_w > 4096 || samples < 1 || samples > 64)
        return false;
    const int step_y = std::max(h / (samples * out_h), 1);
    const int step_x = std::max(w / (samples * out_w), 1);
    const int gh = (h - step_y / 2 + step_y - 1) / step_y;  // grid rows: step_y / 2, step_y / 2 + step_y, ... < h
    const int gw = (w - step_x / 2 + step_x - 1) / step_x;
    const std::vector<Tap> row_taps = area_taps(gh, out_h);
    const std::vector<Tap> col_taps = area_taps(gw, out_w);
    std::vector<int64_t> grey(static_cast<size_t>(gw)), across(static_cast<size_t>(out_w));
    std::vector<int64_t> acc(static_cast<size_t>(out_h) * out_w, 0);
    touch_grid_rows(src, w, step_y, gh, step_x, gw);
    int done_row = -1;  // the grid row whose grey levels and column sums are in grey / across
    for (const Tap& ty : row_taps) {
        if (ty.point != done_row) {
            const uint8_t* row = src + static_cast<size_t>(step_y / 2 + ty.point * step_y) * static_cast<size_t>(w) * 3;
            for (int gx = 0; gx < gw; ++gx) {
                const uint8_t* p = row + static_cast<size_t>(step_x / 2 + gx * step_x) * 3;
                grey[static_cast<size_t>(gx)] = (3735 * p[0] + 19235 * p[1] + 9798 * p[2] + 16384) >> 15;
            }
            std::fill(across.begin(), across.end(), 0);
            for (const Tap& tx : col_taps) across[static_cast<size_t>(tx.cell)] += tx.weight * grey[static_cast<size_t>(tx.point)];
            done_row = ty.point;
        }
        int64_t* dst = acc.data() + static_cast<size_t>(ty.cell) * out_w;
        for (int c = 0; c < out_w; ++c) dst[c] += ty.weight * across[static_cast<size_t>(c)];
    }
    // Each pixel's weights sum to gh * gw: its mean, rounded half to even, in exact integer arithmetic.
    const int64_t area = static_cast<int64_t>(gh) * gw;
    for (size_t k = 0; k < acc.size(); ++k) {
        int64_t q = acc[k] / area;
        const int64_t twice_r = 2 * (acc[k] % area);
        if (twice_r > area || (twice_r == area && (q & 1))) ++q;
        out[k] = static_cast<float>(q);
    }
    return true;
}

double mean_abs_difference(const float* a, const float* b, size_t n) {
    double sum = 0.0;
    for (size_t k = 0; k < n; ++k) sum += std::fabs(static_cast<double>(a[k]) - static_cast<double>(b[k]));
    return sum / static_cast<double>(n);
}

}  // namespace edge
