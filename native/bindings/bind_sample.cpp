// Python face of the sampler's candidate selection (native/include/edge/topk.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "edge/topk.hpp"

namespace py = pybind11;

namespace edge_bind {
namespace {

using f32c = py::array_t<float, py::array::c_style>;

// rows: a 1-D structured array (llama_token_data rows) seen as raw bytes; the three field offsets are checked
// against its item size.
int64_t top_k_rows(const f32c& values, int64_t k, py::array& rows, size_t id_offset, size_t logit_offset,
                   size_t p_offset) {
    if (values.ndim() != 1) {
        throw std::invalid_argument("top_k_rows: values must be 1-D float32, got " + std::to_string(values.ndim()) +
                                    " dimensions");
    }
    if (rows.ndim() != 1 || !rows.writeable() || !(rows.flags() & py::array::c_style)) {
        throw std::invalid_argument("top_k_rows: rows must be a writeable, C-contiguous 1-D array");
    }
    const auto stride = static_cast<size_t>(rows.itemsize());
    for (size_t offset : {id_offset, logit_offset, p_offset}) {
        if (offset + 4 > stride) {
            throw std::invalid_argument("top_k_rows: field offset " + std::to_string(offset) +
                                        " does not fit a row of " + std::to_string(stride) + " bytes");
        }
    }
    if (k < 0 || k > rows.shape(0)) {
        throw std::invalid_argument("top_k_rows: k must be 0 .. len(rows) = " + std::to_string(rows.shape(0)) +
                                    ", got " + std::to_string(k));
    }
    if (values.shape(0) > INT32_MAX) throw std::invalid_argument("top_k_rows: more than 2**31 - 1 values");
    return edge::top_k_rows(values.data(), values.shape(0), k, static_cast<unsigned char*>(rows.mutable_data()), stride,
                            id_offset, logit_offset, p_offset);
}

}  // namespace

void bind_sample(py::module_& m) {
    m.def("top_k_rows", &top_k_rows, py::arg("values").noconvert(), py::arg("k"), py::arg("rows").noconvert(),
          py::arg("id_offset"), py::arg("logit_offset"), py::arg("p_offset"),
          "The k largest of a 1-D float32 array (ties: lower index first; NaN smallest), in ascending index\n"
          "order, written as sampler candidate rows: id (int32), logit (float32) and p = 0 (float32) at the given\n"
          "byte offsets of each row of rows; returns the count, min(k, len(values)).");
}

}  // namespace edge_bind
