// Python bindings of the vision kernels: letterbox, decode_yolo, nms, postprocess.
//
// Arrays cross as borrowed views: every dtype, rank, shape, contiguity, alignment and writeability is
// checked here and a violation raises ValueError (std::invalid_argument) naming the argument, what was
// expected and what was given. Nothing is cast or copied on the way in. The GIL is released around the
// kernels; result arrays are built with it held. edge_runtime.vision.ops is the public API over these.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "edge/appearance.hpp"
#include "edge/image.hpp"
#include "edge/nms.hpp"
#include "edge/thumbnail.hpp"
#include "edge/yolo.hpp"

namespace py = pybind11;

namespace edge_bind {
namespace {

std::string shape_of(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

template <class T>
void check_dtype(const py::array& a, const char* fn, const char* name, const char* want) {
    if (!a.dtype().equal(py::dtype::of<T>()))
        fail(std::string(fn) + ": " + name + " must be " + want + ", got " + dtype_of(a));
}

void check_layout(const py::array& a, const char* fn, const char* name, bool writeable) {
    if (!(a.flags() & py::array::c_style))
        fail(std::string(fn) + ": " + name + " must be C-contiguous (use np.ascontiguousarray), got strides that aren't");
    if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        fail(std::string(fn) + ": " + name + " must be aligned to its dtype");
    if (writeable && !a.writeable()) fail(std::string(fn) + ": " + name + " must be writeable");
}

bool overlaps(const py::array& a, const py::array& b) {
    const auto* a0 = static_cast<const char*>(a.data());
    const auto* b0 = static_cast<const char*>(b.data());
    return a.nbytes() > 0 && b.nbytes() > 0 && a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// ---- letterbox --------------------------------------------------------------------------------------

py::tuple letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w, bool auto_pad, int stride, bool scale_up) {
    edge::LetterboxGeometry g;
    if (!edge::letterbox_geometry(src_h, src_w, dst_h, dst_w, auto_pad, stride, scale_up, &g)) {
        std::ostringstream s;
        s << "letterbox_geometry: sizes and stride must be in 1.." << edge::kMaxImageSide << ", got source " << src_h
          << "x" << src_w << ", target " << dst_h << "x" << dst_w << ", stride " << stride;
        fail(s.str());
    }
    return py::make_tuple(g.out_h, g.out_w, g.new_h, g.new_w, g.pad_top, g.pad_left, g.scale);
}

void check_frame(const py::array& frame, const char* fn) {
    check_dtype<uint8_t>(frame, fn, "frame", "uint8");
    if (frame.ndim() != 3 || frame.shape(2) != 3)
        fail(std::string(fn) + ": frame must be (H, W, 3) BGR, got shape " + shape_of(frame));
    if (frame.shape(0) < 1 || frame.shape(1) < 1 || frame.shape(0) > edge::kMaxImageSide ||
        frame.shape(1) > edge::kMaxImageSide)
        fail(std::string(fn) + ": frame sides must be 1.." + std::to_string(edge::kMaxImageSide) + ", got shape " +
             shape_of(frame));
    check_layout(frame, fn, "frame", false);
}

void letterbox_into(const py::array& frame, const py::array& out, int new_h, int new_w, int pad_top, int pad_left,
                    int pad_value, bool write_pad, int threads) {
    const char* fn = "letterbox_into";
    check_frame(frame, fn);
    const bool is_float = out.dtype().equal(py::dtype::of<float>());
    if (!is_float && !out.dtype().equal(py::dtype::of<uint8_t>()))
        fail(std::string(fn) + ": out must be float32 or uint8, got " + dtype_of(out));
    if (out.ndim() != 4 || out.shape(0) != 1 || out.shape(1) != 3)
        fail(std::string(fn) + ": out must be (1, 3, h, w), got shape " + shape_of(out));
    check_layout(out, fn, "out", true);
    if (pad_value < 0 || pad_value > 255) fail(std::string(fn) + ": pad_value must be 0..255, got " + std::to_string(pad_value));
    if (overlaps(frame, out)) fail(std::string(fn) + ": out must not share memory with frame");
    if (threads < 1 || threads > 256) fail(std::string(fn) + ": threads must be 1..256, got " + std::to_string(threads));
    edge::LetterboxGeometry g;
    g.src_h = static_cast<int>(frame.shape(0));
    g.src_w = static_cast<int>(frame.shape(1));
    if (out.shape(2) > edge::kMaxImageSide || out.shape(3) > edge::kMaxImageSide)
        fail(std::string(fn) + ": out sides must be 1.." + std::to_string(edge::kMaxImageSide) + ", got " + shape_of(out));
    g.out_h = static_cast<int>(out.shape(2));
    g.out_w = static_cast<int>(out.shape(3));
    g.new_h = new_h;
    g.new_w = new_w;
    g.pad_top = pad_top;
    g.pad_left = pad_left;
    if (!edge::letterbox_geometry_valid(g)) {
        std::ostringstream s;
        s << fn << ": content " << new_h << "x" << new_w << " at (top " << pad_top << ", left " << pad_left
          << ") does not fit the " << g.out_h << "x" << g.out_w << " tensor";
        fail(s.str());
    }
    const auto* src = static_cast<const uint8_t*>(frame.data());
    void* dst = const_cast<void*>(out.data());  // writeability checked above
    const auto pad = static_cast<uint8_t>(pad_value);
    py::gil_scoped_release nogil;
    if (is_float)
        edge::letterbox_into(src, g, pad, static_cast<float*>(dst), write_pad, threads);
    else
        edge::letterbox_into(src, g, pad, static_cast<uint8_t*>(dst), write_pad, threads);
}

// ---- YOLO decode ------------------------------------------------------------------------------------

struct RawView {
    const float* data;
    int64_t rows, cols;
};

RawView check_raw(const py::array& raw, const char* fn) {
    check_dtype<float>(raw, fn, "raw", "float32");
    if (!(raw.ndim() == 2 || (raw.ndim() == 3 && raw.shape(0) == 1)))
        fail(std::string(fn) + ": raw must be 2-D, or 3-D with a batch of 1, got shape " + shape_of(raw));
    check_layout(raw, fn, "raw", false);
    const py::ssize_t off = raw.ndim() - 2;
    return RawView{static_cast<const float*>(raw.data()), raw.shape(off), raw.shape(off + 1)};
}

edge::YoloLayout to_layout(int layout, const char* fn) {
    if (layout < 0 || layout > 2) fail(std::string(fn) + ": layout must be 0 (V5), 1 (V8) or 2 (E2E), got " + std::to_string(layout));
    return static_cast<edge::YoloLayout>(layout);
}

const char* layout_name(edge::YoloLayout l) {
    switch (l) {
        case edge::YoloLayout::V5: return "V5";
        case edge::YoloLayout::V8: return "V8";
        case edge::YoloLayout::E2E: return "E2E";
    }
    return "?";
}

// Allowed-class mask from an optional (K,) int32 array of class ids.
std::vector<uint8_t> class_mask(const std::optional<py::array>& classes, const char* fn) {
    std::vector<uint8_t> mask;
    if (!classes) return mask;
    const py::array& c = *classes;
    check_dtype<int32_t>(c, fn, "classes", "int32");
    if (c.ndim() != 1) fail(std::string(fn) + ": classes must be 1-D, got shape " + shape_of(c));
    check_layout(c, fn, "classes", false);
    constexpr int32_t kMaxClassId = 1 << 20;
    const auto* ids = static_cast<const int32_t*>(c.data());
    int32_t top = -1;
    for (py::ssize_t i = 0; i < c.shape(0); ++i) {
        if (ids[i] < 0 || ids[i] >= kMaxClassId)
            fail(std::string(fn) + ": classes must be ids in 0.." + std::to_string(kMaxClassId - 1) + ", got " + std::to_string(ids[i]));
        top = std::max(top, ids[i]);
    }
    // At least one byte, so an empty list (keep no class) is a non-null, all-zero mask, not "no filter".
    mask.assign(static_cast<size_t>(std::max(top + 1, 1)), 0);
    for (py::ssize_t i = 0; i < c.shape(0); ++i) mask[static_cast<size_t>(ids[i])] = 1;
    return mask;
}

void raise_decode_error(const edge::DecodeError& e, edge::YoloLayout layout, const RawView& v, int64_t num_classes,
                        const char* fn) {
    std::ostringstream s;
    s << fn << ": ";
    const std::string shape = "(" + std::to_string(v.rows) + ", " + std::to_string(v.cols) + ")";
    switch (e.status) {
        case edge::DecodeStatus::NonFinite:
            s << "the model output has a non-finite value (" << e.value << ") at ";
            if (layout == edge::YoloLayout::V8)
                s << "channel " << e.row << " of anchor " << e.col;
            else
                s << "row " << e.row << ", column " << e.col;
            s << " of the " << shape << " " << layout_name(layout) << " output";
            break;
        case edge::DecodeStatus::BadClass:
            s << "E2E output row " << e.row << " has class value " << e.value << ", expected a whole number in [0, "
              << (num_classes > 0 ? std::to_string(num_classes) : std::string("2^31")) << ")";
            break;
        case edge::DecodeStatus::BadShape:
        default:
            s << "a " << shape << " output does not fit layout " << layout_name(layout);
            if (num_classes > 0) s << " with " << num_classes << " classes";
            break;
    }
    fail(s.str());
}

py::tuple to_arrays(const edge::Decoded& d) {
    const py::ssize_t m = d.size();
    py::array_t<float> xyxy({m, py::ssize_t{4}});
    py::array_t<float> score(m);
    py::array_t<int32_t> class_id(m);
    if (m) {
        std::memcpy(xyxy.mutable_data(), d.xyxy.data(), sizeof(float) * 4 * static_cast<size_t>(m));
        std::memcpy(score.mutable_data(), d.score.data(), sizeof(float) * static_cast<size_t>(m));
        std::memcpy(class_id.mutable_data(), d.class_id.data(), sizeof(int32_t) * static_cast<size_t>(m));
    }
    return py::make_tuple(xyxy, score, class_id);
}

edge::BoxMap box_map(double pad_x, double pad_y, double scale_x, double scale_y, double src_w, double src_h,
                     const char* fn) {
    if (!(scale_x > 0 && scale_y > 0 && src_w > 0 && src_h > 0) || !std::isfinite(pad_x) || !std::isfinite(pad_y) ||
        !std::isfinite(scale_x) || !std::isfinite(scale_y) || !std::isfinite(src_w) || !std::isfinite(src_h))
        fail(std::string(fn) + ": the letterbox mapping must have finite pads and positive scales and source sizes");
    edge::BoxMap m;
    m.pad_x = pad_x;
    m.pad_y = pad_y;
    m.scale_x = scale_x;
    m.scale_y = scale_y;
    m.src_w = src_w;
    m.src_h = src_h;
    return m;
}

void check_conf(double conf, const char* fn) {
    if (!(conf >= 0.0 && conf <= 1.0)) fail(std::string(fn) + ": conf must be in [0, 1], got " + std::to_string(conf));
}

py::tuple decode_yolo(const py::array& raw, int layout, double conf, double pad_x, double pad_y, double scale_x,
                      double scale_y, double src_w, double src_h, int64_t num_classes,
                      const std::optional<py::array>& classes) {
    const char* fn = "decode_yolo";
    const RawView v = check_raw(raw, fn);
    const edge::YoloLayout l = to_layout(layout, fn);
    check_conf(conf, fn);
    const edge::BoxMap m = box_map(pad_x, pad_y, scale_x, scale_y, src_w, src_h, fn);
    const std::vector<uint8_t> mask = class_mask(classes, fn);
    edge::Decoded d;
    edge::DecodeError e;
    {
        py::gil_scoped_release nogil;
        e = edge::decode_yolo(v.data, v.rows, v.cols, l, conf, m, num_classes, classes ? mask.data() : nullptr,
                              static_cast<int64_t>(mask.size()), &d);
    }
    if (!e.ok()) raise_decode_error(e, l, v, num_classes, fn);
    return to_arrays(d);
}

py::tuple postprocess(const py::array& raw, int layout, double conf, double pad_x, double pad_y, double scale_x,
                      double scale_y, double src_w, double src_h, int64_t num_classes,
                      const std::optional<py::array>& classes, double iou_threshold, int64_t max_det, bool agnostic) {
    const char* fn = "postprocess";
    const RawView v = check_raw(raw, fn);
    const edge::YoloLayout l = to_layout(layout, fn);
    check_conf(conf, fn);
    if (!(iou_threshold >= 0.0 && iou_threshold <= 1.0))
        fail(std::string(fn) + ": iou_threshold must be in [0, 1], got " + std::to_string(iou_threshold));
    if (max_det < 1) fail(std::string(fn) + ": max_det must be >= 1, got " + std::to_string(max_det));
    const edge::BoxMap m = box_map(pad_x, pad_y, scale_x, scale_y, src_w, src_h, fn);
    const std::vector<uint8_t> mask = class_mask(classes, fn);
    edge::Decoded d;
    edge::DecodeError e;
    {
        py::gil_scoped_release nogil;
        e = edge::postprocess(v.data, v.rows, v.cols, l, conf, m, num_classes, classes ? mask.data() : nullptr,
                              static_cast<int64_t>(mask.size()), iou_threshold, max_det, agnostic, &d);
    }
    if (!e.ok()) raise_decode_error(e, l, v, num_classes, fn);
    return to_arrays(d);
}

// ---- NMS --------------------------------------------------------------------------------------------

py::array_t<int64_t> nms(const py::array& xyxy, const py::array& score, const std::optional<py::array>& class_id,
                         double iou_threshold, int64_t max_det) {
    const char* fn = "nms";
    check_dtype<float>(xyxy, fn, "xyxy", "float32");
    check_dtype<float>(score, fn, "score", "float32");
    if (xyxy.ndim() != 2 || xyxy.shape(1) != 4) fail(std::string(fn) + ": xyxy must be (N, 4), got shape " + shape_of(xyxy));
    const py::ssize_t n = xyxy.shape(0);
    if (score.ndim() != 1 || score.shape(0) != n)
        fail(std::string(fn) + ": score must be (N,) = (" + std::to_string(n) + ",), got shape " + shape_of(score));
    check_layout(xyxy, fn, "xyxy", false);
    check_layout(score, fn, "score", false);
    const int32_t* cls = nullptr;
    if (class_id) {
        check_dtype<int32_t>(*class_id, fn, "class_id", "int32");
        if (class_id->ndim() != 1 || class_id->shape(0) != n)
            fail(std::string(fn) + ": class_id must be (N,) = (" + std::to_string(n) + ",), got shape " + shape_of(*class_id));
        check_layout(*class_id, fn, "class_id", false);
        cls = static_cast<const int32_t*>(class_id->data());
    }
    if (!(iou_threshold >= 0.0 && iou_threshold <= 1.0))
        fail(std::string(fn) + ": iou_threshold must be in [0, 1], got " + std::to_string(iou_threshold));
    if (max_det < 1) fail(std::string(fn) + ": max_det must be >= 1, got " + std::to_string(max_det));
    std::vector<int64_t> keep;
    {
        py::gil_scoped_release nogil;
        keep = edge::nms(static_cast<const float*>(xyxy.data()), static_cast<const float*>(score.data()), cls, n,
                         iou_threshold, max_det);
    }
    py::array_t<int64_t> out(static_cast<py::ssize_t>(keep.size()));
    if (!keep.empty()) std::memcpy(out.mutable_data(), keep.data(), sizeof(int64_t) * keep.size());
    return out;
}

// ---- appearance ------------------------------------------------------------------------------------

py::array_t<float> box_appearance(const py::array& frame, const py::array& boxes) {
    const char* fn = "box_appearance";
    check_frame(frame, fn);
    check_layout(frame, fn, "frame", false);
    check_dtype<float>(boxes, fn, "boxes", "float32");
    if (boxes.ndim() != 2 || boxes.shape(1) != 4) fail(std::string(fn) + ": boxes must be (N, 4), got " + shape_of(boxes));
    check_layout(boxes, fn, "boxes", false);
    const auto n = static_cast<std::size_t>(boxes.shape(0));
    py::array_t<float> out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(edge::kAppearanceDim)});
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        edge::box_appearance(static_cast<const uint8_t*>(frame.data()), static_cast<int>(frame.shape(0)),
                             static_cast<int>(frame.shape(1)), static_cast<const float*>(boxes.data()), n, dst);
    }
    return out;
}

void check_vectors(const py::array& a, const char* fn, const char* name, bool writeable) {
    check_dtype<float>(a, fn, name, "float32");
    if (a.ndim() != 2 || a.shape(1) != edge::kAppearanceDim)
        fail(std::string(fn) + ": " + name + " must be (N, " + std::to_string(edge::kAppearanceDim) + "), got " +
             shape_of(a));
    check_layout(a, fn, name, writeable);
}

void check_flags(const py::array& a, py::ssize_t n, const char* fn, const char* name, bool writeable) {
    if (!a.dtype().equal(py::dtype::of<bool>()) && !a.dtype().equal(py::dtype::of<uint8_t>()))
        fail(std::string(fn) + ": " + name + " must be bool or uint8, got " + dtype_of(a));
    if (a.ndim() != 1 || a.shape(0) != n)
        fail(std::string(fn) + ": " + name + " must be (" + std::to_string(n) + ",), got " + shape_of(a));
    check_layout(a, fn, name, writeable);
}

py::array_t<float> appearance_distances(const py::array& tracks, const py::array& track_has, const py::array& dets) {
    const char* fn = "appearance_distances";
    check_vectors(tracks, fn, "tracks", false);
    check_flags(track_has, tracks.shape(0), fn, "track_has", false);
    check_vectors(dets, fn, "dets", false);
    const auto t = static_cast<std::size_t>(tracks.shape(0)), n = static_cast<std::size_t>(dets.shape(0));
    py::array_t<float> out({static_cast<py::ssize_t>(t), static_cast<py::ssize_t>(n)});
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        edge::appearance_distances(static_cast<const float*>(tracks.data()),
                                   static_cast<const uint8_t*>(track_has.data()), t,
                                   static_cast<const float*>(dets.data()), n, dst);
    }
    return out;
}

void blend_appearance(const py::array& tracks, const py::array& track_has, const py::array& det_track,
                      const py::array& dets, const py::array& take, double ema) {
    const char* fn = "blend_appearance";
    check_vectors(tracks, fn, "tracks", true);
    check_flags(track_has, tracks.shape(0), fn, "track_has", true);
    check_vectors(dets, fn, "dets", false);
    check_flags(take, dets.shape(0), fn, "take", false);
    if (overlaps(tracks, dets)) fail(std::string(fn) + ": tracks must not share memory with dets");
    if (!(ema >= 0.0 && ema <= 1.0)) fail(std::string(fn) + ": ema must be in [0, 1], got " + std::to_string(ema));
    check_dtype<int32_t>(det_track, fn, "det_track", "int32");
    if (det_track.ndim() != 1 || det_track.shape(0) != dets.shape(0))
        fail(std::string(fn) + ": det_track must be (" + std::to_string(dets.shape(0)) + ",), got " +
             shape_of(det_track));
    check_layout(det_track, fn, "det_track", false);
    const auto n = static_cast<std::size_t>(dets.shape(0));
    const auto* rows = static_cast<const int32_t*>(det_track.data());
    const auto* use = static_cast<const uint8_t*>(take.data());
    std::vector<char> seen(static_cast<std::size_t>(tracks.shape(0)), 0);
    for (std::size_t j = 0; j < n; ++j) {
        if (rows[j] < -1 || rows[j] >= tracks.shape(0))
            fail(std::string(fn) + ": det_track[" + std::to_string(j) + "] = " + std::to_string(rows[j]) +
                 " is outside [-1, " + std::to_string(tracks.shape(0)) + ")");
        if (rows[j] >= 0 && use[j] && seen[static_cast<std::size_t>(rows[j])]++)
            fail(std::string(fn) + ": track " + std::to_string(rows[j]) + " would take two detections");
    }
    auto* dst = static_cast<float*>(const_cast<void*>(tracks.data()));  // writeability checked above
    auto* has = static_cast<uint8_t*>(const_cast<void*>(track_has.data()));
    py::gil_scoped_release nogil;
    edge::blend_appearance(dst, has, rows, static_cast<const float*>(dets.data()), use, n, static_cast<float>(ema));
}

py::array_t<float> grey_thumbnail(const py::array& frame, int out_h, int out_w, int samples) {
    const char* fn = "grey_thumbnail";
    check_frame(frame, fn);
    if (out_h < 1 || out_w < 1 || out_h > 4096 || out_w > 4096)
        fail(std::string(fn) + ": the thumbnail must be 1..4096 pixels a side, got " + std::to_string(out_h) + "x" +
             std::to_string(out_w));
    if (samples < 1 || samples > 64)
        fail(std::string(fn) + ": samples must be 1..64, got " + std::to_string(samples));
    py::array_t<float> out({static_cast<py::ssize_t>(out_h), static_cast<py::ssize_t>(out_w)});
    const auto* src = static_cast<const uint8_t*>(frame.data());
    float* dst = out.mutable_data();
    const int h = static_cast<int>(frame.shape(0)), w = static_cast<int>(frame.shape(1));
    {
        py::gil_scoped_release nogil;
        edge::grey_thumbnail(src, h, w, out_h, out_w, samples, dst);
    }
    return out;
}

double mean_abs_difference(const py::array& a, const py::array& b) {
    const char* fn = "mean_abs_difference";
    check_dtype<float>(a, fn, "a", "float32");
    check_dtype<float>(b, fn, "b", "float32");
    check_layout(a, fn, "a", false);
    check_layout(b, fn, "b", false);
    if (a.ndim() != b.ndim() || !std::equal(a.shape(), a.shape() + a.ndim(), b.shape()))
        fail(std::string(fn) + ": a and b must have the same shape, got " + shape_of(a) + " and " + shape_of(b));
    if (a.size() < 1) fail(std::string(fn) + ": a and b are empty");
    return edge::mean_abs_difference(static_cast<const float*>(a.data()), static_cast<const float*>(b.data()),
                                     static_cast<size_t>(a.size()));
}

}  // namespace

void bind_vision(py::module_& m) {
    m.def("grey_thumbnail", &grey_thumbnail, py::arg("frame").noconvert(), py::arg("out_h"), py::arg("out_w"),
          py::arg("samples") = 4,
          "(out_h, out_w) float32 grey thumbnail of a (H, W, 3) uint8 BGR frame from a grid of about samples x samples\n"
          "points per thumbnail pixel (see thumbnail.hpp).");
    m.def("mean_abs_difference", &mean_abs_difference, py::arg("a").noconvert(), py::arg("b").noconvert(),
          "Mean |a - b| of two float32 arrays of one shape, summed in double (see thumbnail.hpp).");
    m.def("appearance_distances", &appearance_distances, py::arg("tracks").noconvert(),
          py::arg("track_has").noconvert(), py::arg("dets").noconvert(),
          "(T, N) float32 appearance distance of every track and detection, NaN where either has none.");
    m.def("blend_appearance", &blend_appearance, py::arg("tracks").noconvert(), py::arg("track_has").noconvert(),
          py::arg("det_track").noconvert(), py::arg("dets").noconvert(), py::arg("take").noconvert(), py::arg("ema"),
          "Fold detections into their tracks' running appearance, in place (see appearance.hpp).");
    m.def("box_appearance", &box_appearance, py::arg("frame").noconvert(), py::arg("boxes").noconvert(),
          "Hue x saturation x value histograms of three bands of each box -> (N, 384) float32 (see appearance.hpp).");
    m.def("letterbox_geometry", &letterbox_geometry, py::arg("src_h"), py::arg("src_w"), py::arg("dst_h"),
          py::arg("dst_w"), py::arg("auto"), py::arg("stride"), py::arg("scale_up"),
          "Ultralytics LetterBox geometry -> (out_h, out_w, new_h, new_w, pad_top, pad_left, scale).");
    m.def("letterbox_into", &letterbox_into, py::arg("frame").noconvert(), py::arg("out").noconvert(),
          py::arg("new_h"), py::arg("new_w"), py::arg("pad_top"), py::arg("pad_left"), py::arg("pad_value"),
          py::arg("write_pad") = true, py::arg("threads") = 1,
          "Fused resize + pad + BGR->RGB + CHW (+ /255 for float32) of a (H, W, 3) uint8 frame into out (1, 3, h, w);\n"
          "write_pad=False leaves out's padding as it is; threads > 1 splits the rows (same result).");
    m.def("letterbox_isa", &edge::letterbox_isa,
          "Instruction set of the letterbox row kernel on this CPU: 'avx2+fma' or 'baseline' (EDGE_RUNTIME_ISA=baseline forces it).");
    m.def("decode_yolo", &decode_yolo, py::arg("raw").noconvert(), py::arg("layout"), py::arg("conf"),
          py::arg("pad_x"), py::arg("pad_y"), py::arg("scale_x"), py::arg("scale_y"), py::arg("src_w"),
          py::arg("src_h"), py::arg("num_classes") = 0, py::arg("classes") = py::none(),
          "YOLO output -> (xyxy (M, 4) float32 source pixels, score (M,) float32, class_id (M,) int32).");
    m.def("postprocess", &postprocess, py::arg("raw").noconvert(), py::arg("layout"), py::arg("conf"),
          py::arg("pad_x"), py::arg("pad_y"), py::arg("scale_x"), py::arg("scale_y"), py::arg("src_w"),
          py::arg("src_h"), py::arg("num_classes"), py::arg("classes"), py::arg("iou_threshold"),
          py::arg("max_det"), py::arg("agnostic"), "decode_yolo + nms in one call; rows in descending score order.");
    m.def("nms", &nms, py::arg("xyxy").noconvert(), py::arg("score").noconvert(), py::arg("class_id"),
          py::arg("iou_threshold"), py::arg("max_det"),
          "Greedy NMS -> kept indices (K,) int64 in descending score order (stable ties).");
}

}  // namespace edge_bind
