// YOLO output decoding and the fused decode + NMS: see edge/yolo.hpp for layouts and conventions.
#include "edge/yolo.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "edge/nms.hpp"

// Box corners must round exactly like reference.decode_yolo's float64 NumPy: no FMA contraction.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace edge {
namespace {

// NaN or +-inf: all exponent bits set. Integer form so the scan vectorises on every target (armv7 NEON
// float compares are not IEEE, so GCC won't vectorise a float test there).
inline uint32_t nonfinite_bit(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
}

// Index of the first NaN/inf in p[0, n), or -1. Scans blocks with an OR-reduction, then locates.
int64_t first_nonfinite(const float* p, int64_t n) {
    constexpr int64_t kBlock = 1024;
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
        const int64_t e = std::min(n, i0 + kBlock);
        uint32_t bad = 0;
        for (int64_t i = i0; i < e; ++i) bad |= nonfinite_bit(p[i]);
        if (bad) {
            for (int64_t i = i0; i < e; ++i)
                if (nonfinite_bit(p[i])) return i;
        }
    }
    return -1;
}

DecodeError error_at(DecodeStatus status, int64_t row, int64_t col, float value) {
    DecodeError e;
    e.status = status;
    e.row = row;
    e.col = col;
    e.value = value;
    return e;
}

DecodeError check_finite(const float* raw, int64_t rows, int64_t cols) {
    const int64_t bad = first_nonfinite(raw, rows * cols);
    if (bad < 0) return DecodeError{};
    return error_at(DecodeStatus::NonFinite, bad / cols, bad % cols, raw[bad]);
}

inline bool allowed_class(int32_t c, const uint8_t* allowed, int64_t allowed_size) {
    return !allowed || (c >= 0 && c < allowed_size && allowed[c] != 0);
}

// Maps input-tensor corners to source pixels, orders and clips them, and appends the box.
void emit(double x1, double y1, double x2, double y2, float score, int32_t cls, const BoxMap& m, Decoded* out) {
    double a = (x1 - m.pad_x) / m.scale_x, c = (x2 - m.pad_x) / m.scale_x;
    double b = (y1 - m.pad_y) / m.scale_y, d = (y2 - m.pad_y) / m.scale_y;
    if (a > c) std::swap(a, c);
    if (b > d) std::swap(b, d);
    a = std::min(std::max(a, 0.0), m.src_w);
    c = std::min(std::max(c, 0.0), m.src_w);
    b = std::min(std::max(b, 0.0), m.src_h);
    d = std::min(std::max(d, 0.0), m.src_h);
    out->xyxy.insert(out->xyxy.end(), {static_cast<float>(a), static_cast<float>(b), static_cast<float>(c),
                                       static_cast<float>(d)});
    out->score.push_back(score);
    out->class_id.push_back(cls);
}

void emit_cxcywh(float cx, float cy, float w, float h, float score, int32_t cls, const BoxMap& m, Decoded* out) {
    const double hw = 0.5 * static_cast<double>(w), hh = 0.5 * static_cast<double>(h);
    emit(cx - hw, cy - hh, cx + hw, cy + hh, score, cls, m, out);
}

// One class row of the V8 argmax: best[j], arg[j] = row[j], c where row[j] > best[j] (strictly, so ties keep the
// first class). GCC won't if-convert this loop (it reports "control flow in loop"), so it is written with
// vector extensions where they are exact: SSE2 on x86-64 and NEON on aarch64 compare like scalar IEEE code.
// ARMv7 NEON flushes denormals, so armv7 (and other targets) take the scalar loop.
void best_class_sweep(const float* row, float* best, int32_t* arg, int64_t n, int32_t c) {
    int64_t j = 0;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__aarch64__))
    typedef float f32x4 __attribute__((vector_size(16)));
    typedef int32_t i32x4 __attribute__((vector_size(16)));
    const i32x4 cv = {c, c, c, c};
    for (; j + 4 <= n; j += 4) {
        f32x4 v, b;
        i32x4 a;
        std::memcpy(&v, row + j, sizeof v);
        std::memcpy(&b, best + j, sizeof b);
        std::memcpy(&a, arg + j, sizeof a);
        const i32x4 gt = v > b;  // all ones where row > best
        const i32x4 nb = ((i32x4)v & gt) | ((i32x4)b & ~gt);  // same-size vector casts reinterpret the bits
        const i32x4 na = (cv & gt) | (a & ~gt);
        std::memcpy(best + j, &nb, sizeof nb);
        std::memcpy(arg + j, &na, sizeof na);
    }
#endif
    for (; j < n; ++j) {
        if (row[j] > best[j]) {
            best[j] = row[j];
            arg[j] = c;
        }
    }
}

// (4 + nc, N) channel-major: best class per anchor by sweeping whole class rows (contiguous).
void decode_v8(const float* raw, int64_t nc, int64_t n, double conf, const BoxMap& m, const uint8_t* allowed,
               int64_t allowed_size, Decoded* out) {
    if (n == 0) return;
    std::vector<float> best(raw + 4 * n, raw + 5 * n);
    std::vector<int32_t> arg(static_cast<size_t>(n), 0);
    float* bp = best.data();
    int32_t* ap = arg.data();
    for (int64_t c = 1; c < nc; ++c) best_class_sweep(raw + (4 + c) * n, bp, ap, n, static_cast<int32_t>(c));
    for (int64_t j = 0; j < n; ++j) {
        if (!(static_cast<double>(bp[j]) >= conf) || !allowed_class(ap[j], allowed, allowed_size)) continue;
        emit_cxcywh(raw[j], raw[n + j], raw[2 * n + j], raw[3 * n + j], bp[j], ap[j], m, out);
    }
}

// (N, 5 + nc) row-major: cx cy w h obj cls...
void decode_v5(const float* raw, int64_t n, int64_t nc, double conf, const BoxMap& m, const uint8_t* allowed,
               int64_t allowed_size, Decoded* out) {
    const int64_t cols = 5 + nc;
    for (int64_t i = 0; i < n; ++i) {
        const float* r = raw + i * cols;
        float best = r[5];
        int32_t arg = 0;
        for (int64_t c = 1; c < nc; ++c) {
            if (r[5 + c] > best) {
                best = r[5 + c];
                arg = static_cast<int32_t>(c);
            }
        }
        const float score = r[4] * best;
        if (!(static_cast<double>(score) >= conf) || !allowed_class(arg, allowed, allowed_size)) continue;
        emit_cxcywh(r[0], r[1], r[2], r[3], score, arg, m, out);
    }
}

// (K, 6): x1 y1 x2 y2 score class. The class of a kept row must be a whole number in [0, nc).
DecodeError decode_e2e(const float* raw, int64_t k, int64_t nc, double conf, const BoxMap& m,
                       const uint8_t* allowed, int64_t allowed_size, Decoded* out) {
    const double class_limit = nc > 0 ? static_cast<double>(nc) : 2147483647.0;
    for (int64_t i = 0; i < k; ++i) {
        const float* r = raw + i * 6;
        if (!(static_cast<double>(r[4]) >= conf)) continue;
        const double cv = r[5];
        if (!(cv >= 0.0 && cv < class_limit && cv == std::floor(cv)))
            return error_at(DecodeStatus::BadClass, i, 5, r[5]);
        const int32_t cls = static_cast<int32_t>(cv);
        if (!allowed_class(cls, allowed, allowed_size)) continue;
        emit(r[0], r[1], r[2], r[3], r[4], cls, m, out);
    }
    return DecodeError{};
}

}  // namespace

int64_t yolo_num_classes(YoloLayout layout, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0) return -1;
    switch (layout) {
        case YoloLayout::V5: return cols > 5 ? cols - 5 : -1;
        case YoloLayout::V8: return rows > 4 ? rows - 4 : -1;
        case YoloLayout::E2E: return -1;
    }
    return -1;
}

DecodeError decode_yolo(const float* raw, int64_t rows, int64_t cols, YoloLayout layout, double conf,
                        const BoxMap& map, int64_t num_classes, const uint8_t* allowed, int64_t allowed_size,
                        Decoded* out) {
    out->xyxy.clear();
    out->score.clear();
    out->class_id.clear();
    if (rows < 0 || cols < 0 || (rows * cols > 0 && !raw)) return error_at(DecodeStatus::BadShape, rows, cols, 0.0f);
    if (layout == YoloLayout::E2E) {
        if (cols != 6) return error_at(DecodeStatus::BadShape, rows, cols, 0.0f);
    } else {
        const int64_t nc = yolo_num_classes(layout, rows, cols);
        if (nc < 1 || (num_classes > 0 && nc != num_classes)) return error_at(DecodeStatus::BadShape, rows, cols, 0.0f);
    }
    if (rows * cols == 0) return DecodeError{};
    const DecodeError finite = check_finite(raw, rows, cols);
    if (!finite.ok()) return finite;
    switch (layout) {
        case YoloLayout::V8:
            decode_v8(raw, rows - 4, cols, conf, map, allowed, allowed_size, out);
            return DecodeError{};
        case YoloLayout::V5:
            decode_v5(raw, rows, cols - 5, conf, map, allowed, allowed_size, out);
            return DecodeError{};
        case YoloLayout::E2E:
            return decode_e2e(raw, rows, num_classes, conf, map, allowed, allowed_size, out);
    }
    return error_at(DecodeStatus::BadShape, rows, cols, 0.0f);
}

DecodeError postprocess(const float* raw, int64_t rows, int64_t cols, YoloLayout layout, double conf,
                        const BoxMap& map, int64_t num_classes, const uint8_t* allowed, int64_t allowed_size,
                        double iou_threshold, int64_t max_det, bool agnostic, Decoded* out) {
    Decoded all;
    const DecodeError err = decode_yolo(raw, rows, cols, layout, conf, map, num_classes, allowed, allowed_size, &all);
    out->xyxy.clear();
    out->score.clear();
    out->class_id.clear();
    if (!err.ok()) return err;
    std::vector<int64_t> keep;
    if (layout == YoloLayout::E2E) {
        keep.resize(all.score.size());
        std::iota(keep.begin(), keep.end(), int64_t{0});
        const float* s = all.score.data();
        std::stable_sort(keep.begin(), keep.end(), [s](int64_t a, int64_t b) { return s[a] > s[b]; });
        if (max_det < 0) max_det = 0;
        if (static_cast<int64_t>(keep.size()) > max_det) keep.resize(static_cast<size_t>(max_det));
    } else {
        keep = nms(all.xyxy.data(), all.score.data(), agnostic ? nullptr : all.class_id.data(), all.size(),
                   iou_threshold, max_det);
    }
    out->xyxy.reserve(4 * keep.size());
    out->score.reserve(keep.size());
    out->class_id.reserve(keep.size());
    for (const int64_t i : keep) {
        out->xyxy.insert(out->xyxy.end(), all.xyxy.begin() + 4 * i, all.xyxy.begin() + 4 * i + 4);
        out->score.push_back(all.score[i]);
        out->class_id.push_back(all.class_id[i]);
    }
    return DecodeError{};
}

}  // namespace edge
