// Top-k selection: see edge/topk.hpp for the contract.
//
// Two passes over the values. The first takes the maximum of each block of 64; the k-th largest of those
// block maxima is a floor the k-th largest value is at or above (those k blocks' maxima are k values at or
// above it). The second pass gathers every value at or above the floor
// (a few hundred out of a vocabulary's tens of thousands) and picks the k best of them. Both passes are
// plain loops the compiler vectorises. When fewer than k numbers exist the floor is not defined and a
// heap over all values is used instead.
#include "edge/topk.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace edge {
namespace {

struct Entry {
    float value;
    int32_t index;
};

// "a ranks above b": larger value, or equal value and lower index; NaN ranks below every number.
inline bool ranks_above(const Entry& a, const Entry& b) {
    const bool an = std::isnan(a.value), bn = std::isnan(b.value);
    if (an != bn) return bn;
    if (!an && a.value != b.value) return a.value > b.value;
    return a.index < b.index;
}

int64_t write_best(std::vector<Entry>& pool, int64_t m, int32_t* out) {
    if (static_cast<int64_t>(pool.size()) > m) {
        std::nth_element(pool.begin(), pool.begin() + (m - 1), pool.end(), ranks_above);
    }
    for (int64_t j = 0; j < m; ++j) out[j] = pool[static_cast<size_t>(j)].index;
    std::sort(out, out + m);
    return m;
}

}  // namespace

int64_t top_k_indices(const float* values, int64_t n, int64_t k, int32_t* out) {
    if (k <= 0 || n <= 0) return 0;
    const int64_t m = std::min(k, n);
    constexpr int64_t kBlock = 64, kLanes = 16;
    const int64_t blocks = n / kBlock;
    std::vector<Entry> pool;
    if (blocks >= m) {
        std::vector<float> maxima(static_cast<size_t>(blocks));
        for (int64_t b = 0; b < blocks; ++b) {
            // 16 lanes, each an element-wise select (a vector max); NaN never replaces a lane's value.
            const float* v = values + b * kBlock;
            float lane[kLanes];
            for (int64_t l = 0; l < kLanes; ++l) lane[l] = -std::numeric_limits<float>::infinity();
            for (int64_t j = 0; j < kBlock; j += kLanes) {
                for (int64_t l = 0; l < kLanes; ++l) lane[l] = v[j + l] > lane[l] ? v[j + l] : lane[l];
            }
            float best = lane[0];
            for (int64_t l = 1; l < kLanes; ++l) best = lane[l] > best ? lane[l] : best;
            maxima[static_cast<size_t>(b)] = best;
        }
        std::nth_element(maxima.begin(), maxima.begin() + (m - 1), maxima.end(), std::greater<float>());
        const float floor = maxima[static_cast<size_t>(m - 1)];
        if (floor > -std::numeric_limits<float>::infinity()) {
            pool.reserve(static_cast<size_t>(4 * m));
            for (int64_t b = 0; b < n; b += kBlock) {
                const int64_t end = std::min(n, b + kBlock);
                int any = 0;
                for (int64_t j = b; j < end; ++j) any |= values[j] >= floor;
                if (!any) continue;
                for (int64_t j = b; j < end; ++j) {
                    if (values[j] >= floor) pool.push_back({values[j], static_cast<int32_t>(j)});
                }
            }
            return write_best(pool, m, out);
        }
    }
    pool.reserve(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) pool.push_back({values[j], static_cast<int32_t>(j)});
    return write_best(pool, m, out);
}

}  // namespace edge
