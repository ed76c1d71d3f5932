// The k largest of n floats: the candidates a language model's sampler needs out of a whole vocabulary.
//
// Semantics (checked against NumPy in tests/test_native_topk.py):
// - the result is the indices of k values such that no value left out is greater than one kept;
//   among equal values at the cut, lower indices are kept first;
// - NaN is never kept while a non-NaN value is left out (it compares as smaller than every number);
// - indices are returned in ascending index order; fewer than k when n < k.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edge {

// Writes min(k, n) indices into out (room for k) and returns how many. k <= 0 or n <= 0 writes nothing.
int64_t top_k_indices(const float* values, int64_t n, int64_t k, int32_t* out);

// The same k as a sampler's candidate rows (llama.cpp's llama_token_data: an int32 id, a float logit and a
// float probability at the given byte offsets of rows `stride` bytes apart): row j gets the j-th index (in
// ascending order), its value and probability 0. rows has room for k rows; returns how many were written.
int64_t top_k_rows(const float* values, int64_t n, int64_t k, unsigned char* rows, size_t stride, size_t id_offset,
                   size_t logit_offset, size_t p_offset);

}  // namespace edge
