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
using i32c = py::array_t<std::int32_t, py::array::c_style>;

int64_t top_k_into(const f32c& values, int64_t k, i32c& out) {
    if (values.ndim() != 1) {
        throw std::invalid_argument("top_k_into: values must be 1-D float32, got " + std::to_string(values.ndim()) +
                                    " dimensions");
    }
    if (out.ndim() != 1 || !out.writeable()) {
        throw std::invalid_argument("top_k_into: out must be a writeable 1-D int32 array");
    }
    if (k < 0 || k > out.shape(0)) {
        throw std::invalid_argument("top_k_into: k must be 0 .. len(out) = " + std::to_string(out.shape(0)) +
                                    ", got " + std::to_string(k));
    }
    if (values.shape(0) > INT32_MAX) {
        throw std::invalid_argument("top_k_into: more than 2**31 - 1 values");
    }
    return edge::top_k_indices(values.data(), values.shape(0), k, out.mutable_data());
}

}  // namespace

void bind_sample(py::module_& m) {
    m.def("top_k_into", &top_k_into, py::arg("values").noconvert(), py::arg("k"), py::arg("out").noconvert(),
          "Indices of the k largest of a 1-D float32 array (ties: lower index first; NaN smallest), ascending,\n"
          "written into out[:count]; returns count = min(k, len(values)).");
}

}  // namespace edge_bind
