// Python face of the tracker's association kernels (native/include/edge/track.hpp).
// Arrays cross as borrowed C-contiguous float32 views (no conversion); the GIL is released around the work.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
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

using f64c = py::array_t<double, py::array::c_style>;
using i64c = py::array_t<std::int64_t, py::array::c_style>;
using u8c = py::array_t<std::uint8_t, py::array::c_style>;

// Mean (T, 8) and covariance (T, 8, 8) float64, C-contiguous and writeable (updated in place).
std::size_t require_state(f64c& mean, f64c& cov, const char* fn) {
    if (mean.ndim() != 2 || mean.shape(1) != 8 || cov.ndim() != 3 || cov.shape(0) != mean.shape(0) ||
        cov.shape(1) != 8 || cov.shape(2) != 8) {
        throw std::invalid_argument(std::string(fn) + ": mean must be (T, 8) and cov (T, 8, 8) float64, got " +
                                    shape_of(mean) + " and " + shape_of(cov));
    }
    if (!mean.writeable() || !cov.writeable()) {
        throw std::invalid_argument(std::string(fn) + ": mean and cov are updated in place and must be writeable");
    }
    return static_cast<std::size_t>(mean.shape(0));
}

void require_vector(const py::array& v, py::ssize_t n, const char* fn, const char* name) {
    if (v.ndim() != 1 || v.shape(0) != n) {
        throw std::invalid_argument(std::string(fn) + ": " + name + " must be (" + std::to_string(n) +
                                    ",), got shape " + shape_of(v));
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

    m.def(
        "kalman_initiate",
        [](f32c boxes, double std_position, double std_velocity) {
            require_boxes(boxes, "kalman_initiate", "boxes");
            const py::ssize_t k = boxes.shape(0);
            py::array_t<double> mean({k, py::ssize_t(8)});
            py::array_t<double> cov({k, py::ssize_t(8), py::ssize_t(8)});
            double* mp = mean.mutable_data();
            double* cp = cov.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::kalman_initiate(boxes.data(), static_cast<std::size_t>(k),
                                      edge::KalmanNoise{std_position, std_velocity}, mp, cp);
            }
            return py::make_tuple(mean, cov);
        },
        py::arg("boxes").noconvert(), py::arg("std_position") = 1.0 / 20.0, py::arg("std_velocity") = 1.0 / 160.0,
        "New Kalman tracks from boxes (K, 4) float32 xyxy: (mean (K, 8), cov (K, 8, 8)) float64.");

    m.def(
        "kalman_predict",
        [](f64c mean, f64c cov, i64c miss, double std_position, double std_velocity, double dt) {
            const std::size_t t = require_state(mean, cov, "kalman_predict");
            if (!(dt >= 0.0) || !std::isfinite(dt)) {
                throw std::invalid_argument("kalman_predict: dt must be finite and >= 0, got " + std::to_string(dt));
            }
            require_vector(miss, mean.shape(0), "kalman_predict", "miss");
            const std::int64_t* miss_ptr = miss.data();
            py::array_t<float> boxes({mean.shape(0), py::ssize_t(4)});
            double* mp = mean.mutable_data();
            double* cp = cov.mutable_data();
            float* bp = boxes.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::kalman_predict(mp, cp, t, miss_ptr, edge::KalmanNoise{std_position, std_velocity}, bp, dt);
            }
            return boxes;
        },
        py::arg("mean").noconvert(), py::arg("cov").noconvert(), py::arg("miss").noconvert(),
        py::arg("std_position") = 1.0 / 20.0, py::arg("std_velocity") = 1.0 / 160.0, py::arg("dt") = 1.0,
        "Kalman predict dt frames ahead, in place, for mean (T, 8) / cov (T, 8, 8) float64; tracks whose\n"
        "miss (T,) int64 > 0 coast with zero height velocity. Returns the predicted boxes (T, 4) float32 xyxy.");

    m.def(
        "kalman_update",
        [](f64c mean, f64c cov, i64c rows, f32c boxes, double std_position) {
            const std::size_t t = require_state(mean, cov, "kalman_update");
            if (rows.ndim() != 1) {
                throw std::invalid_argument("kalman_update: rows must be (K,) int64, got shape " + shape_of(rows));
            }
            require_boxes(boxes, "kalman_update", "boxes");
            if (boxes.shape(0) != rows.shape(0)) {
                throw std::invalid_argument("kalman_update: rows " + shape_of(rows) + " and boxes " + shape_of(boxes) +
                                            " differ in length");
            }
            double* mp = mean.mutable_data();
            double* cp = cov.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::kalman_update(mp, cp, t, rows.data(), boxes.data(), static_cast<std::size_t>(rows.shape(0)),
                                    edge::KalmanNoise{std_position, 1.0 / 160.0});
            }
        },
        py::arg("mean").noconvert(), py::arg("cov").noconvert(), py::arg("rows").noconvert(),
        py::arg("boxes").noconvert(), py::arg("std_position") = 1.0 / 20.0,
        "Kalman update in place of the tracks rows (K,) int64 (distinct) with measured boxes (K, 4) float32 xyxy.");

    m.def(
        "associate_bytetrack",
        [](f32c track_boxes, i64c track_id, i64c miss, f32c det_boxes, f32c det_score, float high_score,
           float low_score, double max_cost_high, double max_cost_low, double max_cost_tentative, bool fuse_score,
           bool revive_lost, std::optional<f32c> track_grow, float det_grow, std::optional<f32c> track_jump,
           std::optional<u8c> forbid) {
            require_boxes(track_boxes, "associate_bytetrack", "track_boxes");
            require_boxes(det_boxes, "associate_bytetrack", "det_boxes");
            require_vector(track_id, track_boxes.shape(0), "associate_bytetrack", "track_id");
            require_vector(miss, track_boxes.shape(0), "associate_bytetrack", "miss");
            require_vector(det_score, det_boxes.shape(0), "associate_bytetrack", "det_score");
            edge::ByteTrackParams params;
            params.high_score = high_score;
            params.low_score = low_score;
            params.max_cost_high = max_cost_high;
            params.max_cost_low = max_cost_low;
            params.max_cost_tentative = max_cost_tentative;
            params.fuse_score = fuse_score;
            params.revive_lost = revive_lost;
            if (track_grow) {
                require_vector(*track_grow, track_boxes.shape(0), "associate_bytetrack", "track_grow");
                params.track_grow = track_grow->data();
            }
            if (track_jump) {
                require_vector(*track_jump, track_boxes.shape(0), "associate_bytetrack", "track_jump");
                params.track_jump = track_jump->data();
            }
            if (forbid) {
                if (forbid->ndim() != 2 || forbid->shape(0) != track_boxes.shape(0) ||
                    forbid->shape(1) != det_boxes.shape(0)) {
                    throw std::invalid_argument("associate_bytetrack: forbid must be (" +
                                                std::to_string(track_boxes.shape(0)) + ", " +
                                                std::to_string(det_boxes.shape(0)) + ") uint8");
                }
                params.forbid = forbid->data();
            }
            if (!std::isfinite(det_grow)) throw std::invalid_argument("associate_bytetrack: det_grow must be finite");
            params.det_grow = det_grow;
            py::array_t<std::int32_t> det_track(det_boxes.shape(0));
            std::int32_t* out = det_track.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::associate_bytetrack(track_boxes.data(), track_id.data(), miss.data(),
                                          static_cast<std::size_t>(track_boxes.shape(0)), det_boxes.data(),
                                          det_score.data(), static_cast<std::size_t>(det_boxes.shape(0)), params, out);
            }
            return det_track;
        },
        py::arg("track_boxes").noconvert(), py::arg("track_id").noconvert(), py::arg("miss").noconvert(),
        py::arg("det_boxes").noconvert(), py::arg("det_score").noconvert(), py::arg("high_score"),
        py::arg("low_score"), py::arg("max_cost_high"), py::arg("max_cost_low"), py::arg("max_cost_tentative"),
        py::arg("fuse_score"), py::arg("revive_lost"), py::arg("track_grow").noconvert() = py::none(),
        py::arg("det_grow") = 0.0f, py::arg("track_jump").noconvert() = py::none(),
        py::arg("forbid").noconvert() = py::none(),
        "The three ByteTrack associations of one frame: det_track (N,) int32, the matched track index or -1.\n"
        "track_grow (T,) float32 / det_grow widen the boxes for the IoU; track_jump (T,) float32 gates pairs\n"
        "whose centres are more than track_jump * detection height apart (<= 0: no gate); forbid (T, N) uint8\n"
        "marks pairs stages 1 and 2 never match.");
}

}  // namespace edge_bind
