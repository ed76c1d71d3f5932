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
#include <algorithm>
#include <vector>

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

// A (rows, cols) matrix of the given dtype name, e.g. a pair mask or distances of tracks x detections.
void require_matrix(const py::array& m, py::ssize_t rows, py::ssize_t cols, const char* fn, const char* name,
                    const char* dtype) {
    if (m.ndim() != 2 || m.shape(0) != rows || m.shape(1) != cols) {
        throw std::invalid_argument(std::string(fn) + ": " + name + " must be (" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + ") " + dtype + ", got shape " + shape_of(m));
    }
}

void require_vector(const py::array& v, py::ssize_t n, const char* fn, const char* name) {
    if (v.ndim() != 1 || v.shape(0) != n) {
        throw std::invalid_argument(std::string(fn) + ": " + name + " must be (" + std::to_string(n) +
                                    ",), got shape " + shape_of(v));
    }
}

}  // namespace

void bind_track_book(py::module_& m);  // below: the per-frame bookkeeping around the association

void bind_track(py::module_& m) {
    bind_track_book(m);
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
           std::optional<u8c> forbid, bool tentative_low, float low_max_growth, double low_fit_margin,
           double tentative_fit_margin, std::optional<f32c> look, double low_look_margin) {
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
            params.tentative_low = tentative_low;
            if (track_grow) {
                require_vector(*track_grow, track_boxes.shape(0), "associate_bytetrack", "track_grow");
                params.track_grow = track_grow->data();
            }
            if (track_jump) {
                require_vector(*track_jump, track_boxes.shape(0), "associate_bytetrack", "track_jump");
                params.track_jump = track_jump->data();
            }
            if (forbid) {
                require_matrix(*forbid, track_boxes.shape(0), det_boxes.shape(0), "associate_bytetrack", "forbid",
                               "uint8");
                params.forbid = forbid->data();
            }
            if (!std::isfinite(det_grow)) throw std::invalid_argument("associate_bytetrack: det_grow must be finite");
            params.det_grow = det_grow;
            if (!std::isfinite(low_max_growth))
                throw std::invalid_argument("associate_bytetrack: low_max_growth must be finite");
            params.low_max_growth = low_max_growth;
            if (!(low_fit_margin >= 0.0 && low_fit_margin <= 1.0))
                throw std::invalid_argument("associate_bytetrack: low_fit_margin must be in [0, 1]");
            params.low_fit_margin = low_fit_margin;
            if (!(tentative_fit_margin >= 0.0 && tentative_fit_margin <= 1.0))
                throw std::invalid_argument("associate_bytetrack: tentative_fit_margin must be in [0, 1]");
            params.tentative_fit_margin = tentative_fit_margin;
            if (look) {
                require_matrix(*look, track_boxes.shape(0), det_boxes.shape(0), "associate_bytetrack", "look",
                               "float32");
                params.look = look->data();
            }
            if (!(low_look_margin >= 0.0 && low_look_margin <= 1.0))
                throw std::invalid_argument("associate_bytetrack: low_look_margin must be in [0, 1]");
            params.low_look_margin = low_look_margin;
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
        py::arg("forbid").noconvert() = py::none(), py::arg("tentative_low") = false,
        py::arg("low_max_growth") = 0.0f, py::arg("low_fit_margin") = 0.0,
        py::arg("tentative_fit_margin") = 0.0, py::arg("look").noconvert() = py::none(),
        py::arg("low_look_margin") = 0.0,
        "The ByteTrack associations of one frame: det_track (N,) int32, the matched track index or -1.\n"
        "track_grow (T,) float32 / det_grow widen the boxes for the IoU; track_jump (T,) float32 gates pairs\n"
        "whose centres are more than track_jump * detection height apart (<= 0: no gate); forbid (T, N) uint8\n"
        "marks pairs stages 1 and 2 never match; tentative_low: tentative tracks still unmatched also take the\n"
        "low-score detections left over; low_max_growth > 0: a low-score detection more than that many times\n"
        "as tall as its matched track's box is left unmatched; low_fit_margin > 0: stage 1 leaves a confirmed\n"
        "track's high-score detection unmatched to it when a low-score one fits it by more than that much IoU\n"
        "and fits no other track better; tentative_fit_margin > 0: stage 1 leaves a high-score detection\n"
        "unmatched to a confirmed track seen last frame when a tentative track fits it by more than that much\n"
        "IoU and fits no other detection better; look (T, N) float32 appearance distances (NaN: unknown) with\n"
        "low_look_margin > 0: stage 1 leaves a confirmed track's high-score detection unmatched to it when the\n"
        "low-score one fitting it best fits it better and looks more like it by that much, and is no other\n"
        "track's (on equal IoU, the track it looks most like owns it; a track some high-score detection fits\n"
        "better does not claim it).");
}


namespace {

using i32c = py::array_t<std::int32_t, py::array::c_style>;

template <class A>
void require_writeable(const A& a, const char* fn, const char* name) {
    if (!a.writeable())
        throw std::invalid_argument(std::string(fn) + ": " + name + " is updated in place and must be writeable");
}

}  // namespace

void bind_track_book(py::module_& m) {
    m.def(
        "bytetrack_gates",
        [](f64c last_s, i64c track_id, double now, double fps, double buffer_rel, double max_buffer_rel,
           double max_jump_rel) {
            const char* fn = "bytetrack_gates";
            if (last_s.ndim() != 1)
                throw std::invalid_argument(std::string(fn) + ": last_s must be (T,), got " + shape_of(last_s));
            require_vector(track_id, last_s.shape(0), fn, "track_id");
            for (double v : {now, fps, buffer_rel, max_buffer_rel, max_jump_rel}) {
                if (!std::isfinite(v))
                    throw std::invalid_argument(std::string(fn) + ": times and factors must be finite");
            }
            const auto t = static_cast<std::size_t>(last_s.shape(0));
            py::array_t<float> grow(last_s.shape(0)), jump(last_s.shape(0));
            float* gp = grow.mutable_data();
            float* jp = jump.mutable_data();
            double det_grow;
            {
                py::gil_scoped_release nogil;
                det_grow = edge::bytetrack_gates(last_s.data(), track_id.data(), t, now, fps, buffer_rel,
                                                 max_buffer_rel, max_jump_rel, gp, jp);
            }
            return py::make_tuple(grow, jump, det_grow);
        },
        py::arg("last_s").noconvert(), py::arg("track_id").noconvert(), py::arg("now"), py::arg("fps"),
        py::arg("buffer_rel"), py::arg("max_buffer_rel"), py::arg("max_jump_rel"),
        "The association gates of one frame: (track_grow (T,) float32, track_jump (T,) float32, det_grow float)\n"
        "from the tracks' last match times last_s (T,) float64 and track_id (T,) int64 (see track.hpp).");

    m.def(
        "position_gate",
        [](f64c mean, f64c cov, i64c track_id, f32c det_boxes, double std_position, double threshold,
           std::optional<u8c> forbid) {
            const char* fn = "position_gate";
            const std::size_t t = require_state(mean, cov, fn);
            require_vector(track_id, mean.shape(0), fn, "track_id");
            require_boxes(det_boxes, fn, "det_boxes");
            if (!(threshold > 0.0) || !std::isfinite(threshold) || !(std_position >= 0.0) ||
                !std::isfinite(std_position))
                throw std::invalid_argument(std::string(fn) + ": threshold must be finite and > 0 and std_position "
                                            "finite and >= 0, got " + std::to_string(threshold) + " and " +
                                            std::to_string(std_position));
            const py::ssize_t n = det_boxes.shape(0);
            u8c out = forbid ? *forbid : u8c({mean.shape(0), n});
            if (out.ndim() != 2 || out.shape(0) != mean.shape(0) || out.shape(1) != n)
                throw std::invalid_argument(std::string(fn) + ": forbid must be (" + std::to_string(mean.shape(0)) +
                                            ", " + std::to_string(n) + ") uint8, got " + shape_of(out));
            require_writeable(out, fn, "forbid");
            std::uint8_t* fp = out.mutable_data();
            if (!forbid) std::fill(fp, fp + out.size(), std::uint8_t{0});
            {
                py::gil_scoped_release nogil;
                edge::position_gate(mean.data(), cov.data(), track_id.data(), t, det_boxes.data(),
                                    static_cast<std::size_t>(n), std_position, threshold, fp);
            }
            return out;
        },
        py::arg("mean").noconvert(), py::arg("cov").noconvert(), py::arg("track_id").noconvert(),
        py::arg("det_boxes").noconvert(), py::arg("std_position"), py::arg("threshold"),
        py::arg("forbid").noconvert() = py::none(),
        "The motion gate (see track.hpp): forbid (T, N) uint8 with 1 where a confirmed track and a box are too far\n"
        "apart for the Kalman filter's uncertainty; ORed into forbid in place when given.");

    m.def(
        "bytetrack_commit",
        [](i32c det_track, f32c det_boxes, i32c det_class, f64c mean, f64c cov, i64c track_id, i64c uid, i64c hits,
           i64c miss, f64c last_s, i32c cls, i32c votes, double std_position, double now, double lost_s,
           std::int64_t min_hits) {
            const char* fn = "bytetrack_commit";
            const std::size_t t = require_state(mean, cov, fn);
            const py::ssize_t tn = mean.shape(0);
            require_boxes(det_boxes, fn, "det_boxes");
            const py::ssize_t n = det_boxes.shape(0);
            require_vector(det_track, n, fn, "det_track");
            require_vector(det_class, n, fn, "det_class");
            require_vector(track_id, tn, fn, "track_id");
            require_vector(uid, tn, fn, "uid");
            require_vector(hits, tn, fn, "hits");
            require_vector(miss, tn, fn, "miss");
            require_vector(last_s, tn, fn, "last_s");
            require_vector(cls, tn, fn, "cls");
            if (votes.ndim() != 2 || votes.shape(0) != tn || votes.shape(1) < 1)
                throw std::invalid_argument(std::string(fn) + ": votes must be (" + std::to_string(tn) +
                                            ", C >= 1), got " + shape_of(votes));
            require_writeable(track_id, fn, "track_id");
            require_writeable(hits, fn, "hits");
            require_writeable(miss, fn, "miss");
            require_writeable(last_s, fn, "last_s");
            require_writeable(cls, fn, "cls");
            require_writeable(votes, fn, "votes");
            const auto c = static_cast<std::size_t>(votes.shape(1));
            std::vector<char> seen(t, 0);
            const std::int32_t* dt = det_track.data();
            const std::int32_t* dc = det_class.data();
            for (py::ssize_t j = 0; j < n; ++j) {
                if (dt[j] < -1 || dt[j] >= tn)
                    throw std::invalid_argument(std::string(fn) + ": det_track[" + std::to_string(j) + "] = " +
                                                std::to_string(dt[j]) + " is outside [-1, " + std::to_string(tn) + ")");
                if (dt[j] >= 0 && seen[static_cast<std::size_t>(dt[j])]++)
                    throw std::invalid_argument(std::string(fn) + ": track " + std::to_string(dt[j]) +
                                                " is matched to two detections");
                if (dc[j] < 0 || static_cast<std::size_t>(dc[j]) >= c)
                    throw std::invalid_argument(std::string(fn) + ": det_class[" + std::to_string(j) + "] = " +
                                                std::to_string(dc[j]) + " is outside the votes' [0, " +
                                                std::to_string(c) + ")");
            }
            for (py::ssize_t i = 0; i < tn; ++i) {
                if (cls.data()[i] < 0 || static_cast<std::size_t>(cls.data()[i]) >= c)
                    throw std::invalid_argument(std::string(fn) + ": cls[" + std::to_string(i) + "] is outside [0, " +
                                                std::to_string(c) + ")");
            }
            edge::TrackBook book;
            book.mean = mean.mutable_data();
            book.cov = cov.mutable_data();
            book.track_id = track_id.mutable_data();
            book.uid = uid.data();
            book.hits = hits.mutable_data();
            book.miss = miss.mutable_data();
            book.last_s = last_s.mutable_data();
            book.cls = cls.mutable_data();
            book.votes = votes.mutable_data();
            book.t = t;
            book.c = c;
            py::array_t<std::int32_t> out_id(n), out_class(n);
            py::array_t<bool> keep(tn);
            std::int32_t* ip = out_id.mutable_data();
            std::int32_t* cp = out_class.mutable_data();
            auto* kp = reinterpret_cast<std::uint8_t*>(keep.mutable_data());
            std::size_t confirmed;
            {
                py::gil_scoped_release nogil;
                confirmed = edge::bytetrack_commit(dt, det_boxes.data(), dc, static_cast<std::size_t>(n), book,
                                                   edge::KalmanNoise{std_position, 1.0 / 160.0}, now, lost_s, min_hits,
                                                   ip, cp, kp);
            }
            const bool all_kept = std::all_of(kp, kp + tn, [](std::uint8_t k) { return k != 0; });
            return py::make_tuple(confirmed, out_id, out_class, keep, all_kept);
        },
        py::arg("det_track").noconvert(), py::arg("det_boxes").noconvert(), py::arg("det_class").noconvert(),
        py::arg("mean").noconvert(), py::arg("cov").noconvert(), py::arg("track_id").noconvert(),
        py::arg("uid").noconvert(), py::arg("hits").noconvert(), py::arg("miss").noconvert(),
        py::arg("last_s").noconvert(), py::arg("cls").noconvert(), py::arg("votes").noconvert(),
        py::arg("std_position"), py::arg("now"), py::arg("lost_s"), py::arg("min_hits"),
        "One ByteTrack frame's bookkeeping after association, in place (see track.hpp): returns (confirmed,\n"
        "out_id (N,) int32, out_class (N,) int32, keep (T,) bool, all_kept bool).");

    m.def(
        "bytetrack_split",
        [](i32c det_track, f32c det_score, float high_score, float new_score) {
            const char* fn = "bytetrack_split";
            if (det_track.ndim() != 1)
                throw std::invalid_argument(std::string(fn) + ": det_track must be (N,), got shape " + shape_of(det_track));
            const py::ssize_t n = det_track.shape(0);
            require_vector(det_score, n, fn, "det_score");
            py::array_t<bool> take(n);
            auto* tp = reinterpret_cast<std::uint8_t*>(take.mutable_data());
            const std::int32_t* dt = det_track.data();
            const float* sc = det_score.data();
            std::vector<std::int64_t> fresh;
            for (py::ssize_t j = 0; j < n; ++j) {
                tp[j] = sc[j] >= high_score;
                if (dt[j] < 0 && sc[j] >= new_score) fresh.push_back(j);
            }
            py::array_t<std::int64_t> start(static_cast<py::ssize_t>(fresh.size()));
            std::copy(fresh.begin(), fresh.end(), start.mutable_data());
            return py::make_tuple(take, start);
        },
        py::arg("det_track").noconvert(), py::arg("det_score").noconvert(), py::arg("high_score"),
        py::arg("new_score"),
        "After association: (take (N,) bool, the detections scoring >= high_score, whose appearance their tracks\n"
        "take; start (K,) int64, the unmatched detections scoring >= new_score, which start tracks).");
}

}  // namespace edge_bind
