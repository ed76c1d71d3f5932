// Greedy NMS: see edge/nms.hpp for the exact contract.
//
// Boxes are sorted once (stable, by descending score), grouped by class (stable, so each group stays in
// score order) and laid out as structure-of-arrays in group order. Each kept box then sweeps the rest of
// its group with a branch-free IoU loop that the compiler vectorises.
#include "edge/nms.hpp"

#include <algorithm>
#include <numeric>

// The IoU must round exactly like NumPy's float64 (reference.nms): no fused multiply-add contraction,
// which GCC otherwise applies on aarch64/armv7 even in ISO mode.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace edge {
namespace {

struct BoxesSoA {
    std::vector<double> x1, y1, x2, y2, area;
    explicit BoxesSoA(size_t n) : x1(n), y1(n), x2(n), y2(n), area(n) {}
};

// Marks boxes [begin, end) of the group suppressed by box k: IoU(k, j) > threshold, IoU = 0 if union <= 0.
void sweep(const BoxesSoA& b, size_t k, size_t begin, size_t end, double threshold, uint8_t* suppressed) {
    const double kx1 = b.x1[k], ky1 = b.y1[k], kx2 = b.x2[k], ky2 = b.y2[k], ka = b.area[k];
    const double* x1 = b.x1.data();
    const double* y1 = b.y1.data();
    const double* x2 = b.x2.data();
    const double* y2 = b.y2.data();
    const double* area = b.area.data();
    for (size_t j = begin; j < end; ++j) {
        const double iw = std::max(0.0, std::min(kx2, x2[j]) - std::max(kx1, x1[j]));
        const double ih = std::max(0.0, std::min(ky2, y2[j]) - std::max(ky1, y1[j]));
        const double inter = iw * ih;
        const double uni = (ka + area[j]) - inter;
        const bool positive = uni > 0.0;
        const double iou = inter / (positive ? uni : 1.0);
        suppressed[j] |= static_cast<uint8_t>(positive & (iou > threshold));
    }
}

}  // namespace

std::vector<int64_t> nms(const float* xyxy, const float* score, const int32_t* class_id, int64_t n,
                         double iou_threshold, int64_t max_det) {
    std::vector<int64_t> keep;
    if (n <= 0 || max_det <= 0 || !xyxy || !score) return keep;
    const size_t count = static_cast<size_t>(n);

    // Visiting order: descending score, ties by lower index (stable).
    std::vector<int64_t> order(count);
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [score](int64_t a, int64_t b) { return score[a] > score[b]; });

    // Group by class (stable: each group keeps the visiting order). rank[p] = visiting rank at position p.
    std::vector<int64_t> rank(count);
    std::iota(rank.begin(), rank.end(), int64_t{0});
    if (class_id) {
        std::stable_sort(rank.begin(), rank.end(),
                         [&](int64_t a, int64_t b) { return class_id[order[a]] < class_id[order[b]]; });
    }

    BoxesSoA boxes(count);
    for (size_t p = 0; p < count; ++p) {
        const float* q = xyxy + 4 * order[rank[p]];
        boxes.x1[p] = q[0];
        boxes.y1[p] = q[1];
        boxes.x2[p] = q[2];
        boxes.y2[p] = q[3];
        boxes.area[p] = (boxes.x2[p] - boxes.x1[p]) * (boxes.y2[p] - boxes.y1[p]);
    }

    std::vector<uint8_t> suppressed(count, 0);
    std::vector<int64_t> kept_ranks;
    size_t begin = 0;
    while (begin < count) {
        size_t end = begin + 1;
        if (class_id) {
            const int32_t c = class_id[order[rank[begin]]];
            while (end < count && class_id[order[rank[end]]] == c) ++end;
        } else {
            end = count;
        }
        int64_t kept_here = 0;
        for (size_t k = begin; k < end && kept_here < max_det; ++k) {
            if (suppressed[k]) continue;
            kept_ranks.push_back(rank[k]);
            ++kept_here;
            sweep(boxes, k, k + 1, end, iou_threshold, suppressed.data());
        }
        begin = end;
    }

    // Merge the groups back into visiting order and cap.
    std::sort(kept_ranks.begin(), kept_ranks.end());
    const size_t m = std::min(kept_ranks.size(), static_cast<size_t>(max_det));
    keep.resize(m);
    for (size_t i = 0; i < m; ++i) keep[i] = order[kept_ranks[i]];
    return keep;
}

}  // namespace edge
