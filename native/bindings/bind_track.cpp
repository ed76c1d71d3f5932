// Python face of the tracker's association kernels (native/include/edge/track.hpp).
// Arrays cross as borrowed C-contiguous float32 views (no conversion); the GIL is released around the work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "edge/track.hpp"

namespace py = pybind11;

namespace edge_bind {
namespace {

using f32c = py::array_t<float, py::array::c_style>;

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

void require_boxes(const f32c& boxes, const char* fn, const char* name) {
    if (boxes.ndim() != 2 || boxes.shape(1) != 4) {
        throw std::invalid_argument(std::string(fn) + ": " + name + " must be (N, 4) float32 xyxy, got shape " +
                                    shape_of(boxes));
    }
}

}  // namespace

void bind_track(py::module_& m) {
    m.def(
        "iou_matrix",
        [](f32c a, f32c b) {
            require_boxes(a, "iou_matrix", "a");
            require_boxes(b, "iou_matrix", "b");
            const auto rows = static_cast<std::size_t>(a.shape(0)), cols = static_cast<std::size_t>(b.shape(0));
            py::array_t<float> out({a.shape(0), b.shape(0)});
            float* dst = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::iou_matrix(a.data(), rows, b.data(), cols, dst);
            }
            return out;
        },
        py::arg("a").noconvert(), py::arg("b").noconvert(),
        "IoU (M, N) float32 of boxes a (M, 4) against b (N, 4), both C-contiguous float32 xyxy.");

    m.def(
        "linear_assignment",
        [](f32c cost, double max_cost) {
            if (cost.ndim() != 2) {
                throw std::invalid_argument("linear_assignment: cost must be a 2-D (M, N) float32 matrix, got shape " +
                                            shape_of(cost));
            }
            const auto rows = static_cast<std::size_t>(cost.shape(0)), cols = static_cast<std::size_t>(cost.shape(1));
            py::array_t<std::int32_t> out(cost.shape(0));
            std::int32_t* dst = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::linear_assignment(cost.data(), rows, cols, max_cost, dst);
            }
            return out;
        },
        py::arg("cost").noconvert(), py::arg("max_cost") = std::numeric_limits<double>::infinity(),
        "Optimal assignment of the (M, N) float32 cost matrix: row_to_col (M,) int32, -1 = unmatched.\n"
        "With a finite max_cost only pairs with cost < max_cost are matched and the total gain\n"
        "sum(max_cost - cost) is maximised.");
}

}  // namespace edge_bind
