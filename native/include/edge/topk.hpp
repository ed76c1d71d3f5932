// The k largest of n floats: the candidates a language model's sampler needs out of a whole vocabulary.
//
// Semantics (checked against NumPy in tests/test_native_topk.py):
// - the result is the indices of k values such that no value left out is greater than one kept;
//   among equal values at the cut, lower indices are kept first;
// - NaN is never kept while a non-NaN value is left out (it compares as smaller than every number);
// - indices are returned in ascending index order; fewer than k when n < k.
#pragma once

#include <cstdint>

namespace edge {

// Writes min(k, n) indices into out (room for k) and returns how many. k <= 0 or n <= 0 writes nothing.
int64_t top_k_indices(const float* values, int64_t n, int64_t k, int32_t* out);

}  // namespace edge
