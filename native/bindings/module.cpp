// The Python face of the native core: edge_runtime._native.
// Each kernel family registers itself from its own bind_*.cpp; only native/bindings/ includes pybind11.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace edge_bind {
// One line per kernel family; defined in native/bindings/bind_<family>.cpp.
void bind_track(py::module_& m);
void bind_vision(py::module_& m);
void bind_quant(py::module_& m);
void bind_sample(py::module_& m);
}  // namespace edge_bind

PYBIND11_MODULE(_native, m) {
    m.doc() = "edge-runtime native kernels (private; use the edge_runtime Python API)";
    edge_bind::bind_track(m);
    edge_bind::bind_vision(m);
    edge_bind::bind_quant(m);
    edge_bind::bind_sample(m);
#if defined(__aarch64__)
    m.attr("ARCH") = "aarch64";
#elif defined(__arm__)
    m.attr("ARCH") = "armv7";
#elif defined(__x86_64__)
    m.attr("ARCH") = "x86_64";
#else
    m.attr("ARCH") = "other";
#endif
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
    m.attr("HAS_NEON") = true;
#else
    m.attr("HAS_NEON") = false;
#endif
}
