// Box appearance histograms; contract in native/include/edge/appearance.hpp.
#include "edge/appearance.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace edge {
namespace {

constexpr double kBandFrom[kAppearanceBands] = {0.10, 0.40, 0.70};
constexpr double kBandTo[kAppearanceBands] = {0.40, 0.70, 0.95};
constexpr double kSideCut = 0.2;
constexpr int kStep = kAppearanceStep;
constexpr int kHsvShift = 12;

struct HsvTables {
    std::array<int, 256> sdiv{}, hdiv{};
    HsvTables() {
        for (int i = 1; i < 256; ++i) {
            sdiv[i] = static_cast<int>(std::lround((255 << kHsvShift) / (1.0 * i)));
            hdiv[i] = static_cast<int>(std::lround((180 << kHsvShift) / (6.0 * i)));
        }
    }
};

const HsvTables& tables() {
    static const HsvTables t;
    return t;
}

// The 8 x 4 x 4 bin of one BGR pixel, or -1 where OpenCV's hue rounds to 180 (outside calcHist's range).
inline int hsv_bin(int b, int g, int r, const HsvTables& t) {
    const int v = std::max(b, std::max(g, r));
    const int vmin = std::min(b, std::min(g, r));
    const int diff = v - vmin;
    const int vr = v == r ? -1 : 0, vg = v == g ? -1 : 0;
    const int s = (diff * t.sdiv[v] + (1 << (kHsvShift - 1))) >> kHsvShift;
    int h = (vr & (g - b)) + (~vr & ((vg & (b - r + 2 * diff)) + ((~vg) & (r - g + 4 * diff))));
    h = (h * t.hdiv[diff] + (1 << (kHsvShift - 1))) >> kHsvShift;
    h += h < 0 ? 180 : 0;
    if (h >= 180) return -1;
    return (h * 8 / 180) * 16 + (s >> 6) * 4 + (v >> 6);
}

// Python's int(min(max(value, 0), limit)) for a finite value (clamped first, so the cast is defined).
inline int clamp_trunc(double value, int limit) {
    return static_cast<int>(std::min(std::max(value, 0.0), static_cast<double>(limit)));
}

// The pixels of one box that are binned: columns [xa, xb) and, per band, every kStep-th row of [ya, yb).
struct BoxSpan {
    int xa = 0, xb = 0;
    int ya[kAppearanceBands] = {}, yb[kAppearanceBands] = {};
};

// False for a box with a non-finite coordinate or under 2 columns wide: its vector stays zero.
bool box_span(const float* box, int height, int width, BoxSpan* span) {
    const double x1 = box[0], y1 = box[1], x2 = box[2], y2 = box[3];
    if (!(std::isfinite(x1) && std::isfinite(y1) && std::isfinite(x2) && std::isfinite(y2))) return false;
    const double w = x2 - x1, h = y2 - y1;
    span->xa = clamp_trunc(x1 + kSideCut * w, width);
    span->xb = clamp_trunc(x2 - kSideCut * w, width);
    for (int band = 0; band < kAppearanceBands; ++band) {
        span->ya[band] = clamp_trunc(y1 + kBandFrom[band] * h, height);
        span->yb[band] = clamp_trunc(y1 + kBandTo[band] * h, height);
    }
    return span->xb - span->xa >= 2;
}

// Loads one byte of every cache line the boxes will bin, before any is binned. The binned rows are two image
// rows apart, usually a new page each: in a frame the caches and the TLB no longer hold (fresh from the
// decoder, or after inference), binning row by row waits for one page walk and memory read at a time, while
// these independent loads overlap. (Software prefetches do not help: they are dropped on a TLB miss.)
void touch_rows(const std::uint8_t* bgr, int width, const std::vector<BoxSpan>& spans) {
    unsigned sink = 0;
    for (const BoxSpan& s : spans) {
        if (s.xb - s.xa < 2) continue;
        const std::size_t bytes = static_cast<std::size_t>(s.xb - s.xa) * 3;
        for (int band = 0; band < kAppearanceBands; ++band) {
            for (int y = s.ya[band]; y < s.yb[band]; y += kStep) {
                const std::uint8_t* row = bgr + (static_cast<std::size_t>(y) * width + s.xa) * 3;
                for (std::size_t k = 0; k < bytes; k += 64) sink += row[k];
                sink += row[bytes - 1];
            }
        }
    }
    volatile unsigned observed = sink;  // a volatile store of their sum keeps the loads from being optimised away
    (void)observed;
}

}  // namespace

void box_appearance(const std::uint8_t* bgr, int height, int width, const float* boxes, std::size_t n, float* out) {
    const HsvTables& t = tables();
    std::fill(out, out + n * kAppearanceDim, 0.0f);
    std::vector<BoxSpan> spans(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (!box_span(boxes + 4 * i, height, width, &spans[i])) spans[i] = BoxSpan{};
    }
    touch_rows(bgr, width, spans);
    std::array<std::uint32_t, kAppearanceBandDim> hist{};
    for (std::size_t i = 0; i < n; ++i) {
        const BoxSpan& s = spans[i];
        if (s.xb - s.xa < 2) continue;
        for (int band = 0; band < kAppearanceBands; ++band) {
            const int ya = s.ya[band], yb = s.yb[band];
            if (yb - ya < 2) continue;
            hist.fill(0);
            std::uint32_t total = 0;
            for (int y = ya; y < yb; y += kStep) {
                const std::uint8_t* p = bgr + (static_cast<std::size_t>(y) * width + s.xa) * 3;
                for (int x = s.xa; x < s.xb; x += kStep, p += 3 * kStep) {
                    const int bin = hsv_bin(p[0], p[1], p[2], t);
                    if (bin >= 0) {
                        ++hist[static_cast<std::size_t>(bin)];
                        ++total;
                    }
                }
            }
            if (total == 0) continue;
            float* o = out + i * kAppearanceDim + band * kAppearanceBandDim;
            const double inv = 1.0 / total;
            for (int k = 0; k < kAppearanceBandDim; ++k) o[k] = static_cast<float>(std::sqrt(hist[k] * inv));
        }
    }
}

namespace {

bool any_nonzero(const float* v) {
    for (int k = 0; k < kAppearanceDim; ++k) {
        if (v[k] != 0.0f) return true;
    }
    return false;
}

// Eight partial sums, so the compiler can keep them in vector lanes (a single float sum is a serial chain).
float dot(const float* a, const float* b) {
    float acc[8] = {};
    for (int k = 0; k < kAppearanceDim; k += 8) {
        for (int l = 0; l < 8; ++l) acc[l] += a[k + l] * b[k + l];
    }
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static_assert(kAppearanceDim % 8 == 0, "dot() works in blocks of eight");

}  // namespace

void appearance_distances(const float* tracks, const std::uint8_t* track_has, std::size_t t, const float* dets,
                          std::size_t n, float* distance) {
    std::fill(distance, distance + t * n, std::numeric_limits<float>::quiet_NaN());
    std::vector<std::size_t> with;  // the detections that have appearance
    with.reserve(n);
    for (std::size_t j = 0; j < n; ++j) {
        if (any_nonzero(dets + j * kAppearanceDim)) with.push_back(j);
    }
    for (std::size_t i = 0; i < t; ++i) {
        if (!track_has[i]) continue;
        const float* a = tracks + i * kAppearanceDim;
        for (std::size_t j : with) {
            distance[i * n + j] = 1.0f - dot(a, dets + j * kAppearanceDim) / static_cast<float>(kAppearanceBands);
        }
    }
}

void blend_appearance(float* tracks, std::uint8_t* track_has, const std::int32_t* det_track, const float* dets,
                      const std::uint8_t* take, std::size_t n, float ema) {
    const float old_w = ema, new_w = static_cast<float>(1.0 - static_cast<double>(ema));
    for (std::size_t j = 0; j < n; ++j) {
        if (det_track[j] < 0 || !take[j]) continue;
        const float* d = dets + j * kAppearanceDim;
        if (!any_nonzero(d)) continue;
        const auto row = static_cast<std::size_t>(det_track[j]);
        float* a = tracks + row * kAppearanceDim;
        if (!track_has[row]) {
            std::copy(d, d + kAppearanceDim, a);
            track_has[row] = 1;
            continue;
        }
        for (int band = 0; band < kAppearanceBands; ++band) {
            float* ab = a + band * kAppearanceBandDim;
            const float* db = d + band * kAppearanceBandDim;
            double norm2 = 0.0;
            for (int q = 0; q < kAppearanceBandDim; ++q) {
                ab[q] = old_w * ab[q] + new_w * db[q];
                norm2 += static_cast<double>(ab[q]) * ab[q];
            }
            if (norm2 > 0.0) {
                const float norm = static_cast<float>(std::sqrt(norm2));
                for (int q = 0; q < kAppearanceBandDim; ++q) ab[q] /= norm;
            }
        }
    }
}

}  // namespace edge
