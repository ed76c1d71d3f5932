// Top-k selection: see edge/topk.hpp for the contract.
//
// One pass over the values takes the maximum of each block of 64; the k-th largest of those block maxima
// is a floor the k-th largest value is at or above (those k blocks' maxima are k values at or above it).
// Then only the blocks whose maximum reaches the floor (about k of a vocabulary's hundreds) are read
// again, gathering every value at or above the floor, and the k best of those are picked. The pass is a
// plain loop the compiler vectorises. When fewer than k numbers exist the floor is not defined and a
// heap over all values is used instead.
#include "edge/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
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
        std::vector<float> ordered(maxima);
        std::nth_element(ordered.begin(), ordered.begin() + (m - 1), ordered.end(), std::greater<float>());
        const float floor = ordered[static_cast<size_t>(m - 1)];
        if (floor > -std::numeric_limits<float>::infinity()) {
            // Only a block whose maximum reaches the floor (and the tail past the last whole block) can hold
            // a value at or above it: a few blocks of the hundreds.
            pool.reserve(static_cast<size_t>(4 * m));
            auto gather = [&](int64_t b, int64_t end) {
                for (int64_t j = b; j < end; ++j) {
                    if (values[j] >= floor) pool.push_back({values[j], static_cast<int32_t>(j)});
                }
            };
            for (int64_t b = 0; b < blocks; ++b) {
                if (maxima[static_cast<size_t>(b)] >= floor) gather(b * kBlock, (b + 1) * kBlock);
            }
            gather(blocks * kBlock, n);
            return write_best(pool, m, out);
        }
    }
    pool.reserve(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) pool.push_back({values[j], static_cast<int32_t>(j)});
    return write_best(pool, m, out);
}

int64_t top_k_rows(const float* values, int64_t n, int64_t k, unsigned char* rows, size_t stride, size_t id_offset,
                   size_t logit_offset, size_t p_offset) {
    std::vector<int32_t> index(static_cast<size_t>(std::max<int64_t>(k, 0)));
    const int64_t count = top_k_indices(values, n, k, index.data());
    const float zero = 0.0f;
    for (int64_t j = 0; j < count; ++j) {
        unsigned char* row = rows + static_cast<size_t>(j) * stride;
        const int32_t id = index[static_cast<size_t>(j)];
        std::memcpy(row + id_offset, &id, sizeof id);
        std::memcpy(row + logit_offset, values + id, sizeof(float));
        std::memcpy(row + p_offset, &zero, sizeof zero);
    }
    return count;
}

}  // namespace edge
