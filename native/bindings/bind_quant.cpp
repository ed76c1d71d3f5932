// Python face of the GGUF block quantizers (native/include/edge/quant.hpp).
// Arrays cross as borrowed C-contiguous views (no conversion); the GIL is released around the work.
// The public API is edge_runtime.llm.quant (quantize, dequantize); these are its private kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "edge/quant.hpp"

namespace py = pybind11;

namespace edge_bind {
namespace {

using f32c = py::array_t<float, py::array::c_style>;
using u8c = py::array_t<std::uint8_t, py::array::c_style>;
using u16c = py::array_t<std::uint16_t, py::array::c_style>;

constexpr int kMaxThreads = 256;

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

edge::QuantType quant_type_of(int qtype, const char* fn) {
    switch (qtype) {
        case static_cast<int>(edge::QuantType::Q4_0): return edge::QuantType::Q4_0;
        case static_cast<int>(edge::QuantType::Q4_1): return edge::QuantType::Q4_1;
        case static_cast<int>(edge::QuantType::Q8_0): return edge::QuantType::Q8_0;
        default:
            throw std::invalid_argument(std::string(fn) + ": qtype must be Q4_0 (2), Q4_1 (3) or Q8_0 (8), got " +
                                        std::to_string(qtype));
    }
}

void require_threads(int threads, const char* fn) {
    if (threads < 1 || threads > kMaxThreads) {
        throw std::invalid_argument(std::string(fn) + ": threads must be in [1, " + std::to_string(kMaxThreads) +
                                    "], got " + std::to_string(threads));
    }
}

// The array's shape with its last dimension replaced.
std::vector<py::ssize_t> with_last(const py::array& a, py::ssize_t last) {
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
    shape.back() = last;
    return shape;
}

// "[i, j, k]" of a flat C-order index into `a`.
std::string index_of(const py::array& a, std::size_t flat) {
    std::vector<std::size_t> idx(static_cast<std::size_t>(a.ndim()));
    for (py::ssize_t d = a.ndim(); d-- > 0;) {
        const auto n = static_cast<std::size_t>(a.shape(d));
        idx[static_cast<std::size_t>(d)] = flat % n;
        flat /= n;
    }
    std::string s = "[";
    for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
    return s + "]";
}

}  // namespace

void bind_quant(py::module_& m) {
    m.def(
        "quantize_blocks",
        [](f32c src, int qtype, int threads, bool portable) {
            const edge::QuantType type = quant_type_of(qtype, "quantize_blocks");
            require_threads(threads, "quantize_blocks");
            if (src.ndim() < 1 || src.shape(src.ndim() - 1) % static_cast<py::ssize_t>(edge::kQuantBlockSize) != 0) {
                throw std::invalid_argument("quantize_blocks: src must be float32 (..., n) with n a multiple of 32, got shape " +
                                            shape_of(src));
            }
            const py::ssize_t last = src.shape(src.ndim() - 1);
            const auto block_bytes = static_cast<py::ssize_t>(edge::quant_block_bytes(type));
            py::array_t<std::uint8_t> out(with_last(src, last / 32 * block_bytes));
            const auto n_blocks = static_cast<std::size_t>(src.size()) / edge::kQuantBlockSize;
            const float* in = src.data();
            std::uint8_t* dst = out.mutable_data();
            edge::QuantizeStatus status;
            {
                py::gil_scoped_release nogil;
                status = edge::quantize_blocks(type, in, n_blocks, dst, threads, portable);
            }
            if (!status.ok) {
                throw std::invalid_argument("quantize_blocks: src" + index_of(src, status.bad_index) + " is " +
                                            (std::isnan(status.bad_value) ? "nan" : status.bad_value > 0 ? "inf" : "-inf") +
                                            ", expected finite values (GGUF block scales are undefined otherwise)");
            }
            return out;
        },
        py::arg("src").noconvert(), py::arg("qtype"), py::arg("threads") = 1, py::arg("portable") = false,
        "Quantize float32 (..., n) rows, n a multiple of 32, to GGUF blocks: uint8 (..., n / 32 * block_bytes).\n"
        "qtype is the ggml type id (Q4_0 = 2, Q4_1 = 3, Q8_0 = 8). Bit-exact with gguf-py's quants.quantize.\n"
        "portable=True forces the plain C++ kernels instead of SSE2/NEON (same bytes; for tests).\n"
        "Raises ValueError on a NaN/inf (naming its index), a bad shape, qtype or thread count.");

    m.attr("QUANT_SIMD") = edge::quantize_simd_available();

    m.def(
        "dequantize_blocks",
        [](u8c src, int qtype, int threads) {
            const edge::QuantType type = quant_type_of(qtype, "dequantize_blocks");
            require_threads(threads, "dequantize_blocks");
            const auto block_bytes = static_cast<py::ssize_t>(edge::quant_block_bytes(type));
            if (src.ndim() < 1 || src.shape(src.ndim() - 1) % block_bytes != 0) {
                throw std::invalid_argument("dequantize_blocks: src must be uint8 (..., k) with k a multiple of " +
                                            std::to_string(block_bytes) + " (the block size), got shape " + shape_of(src));
            }
            const py::ssize_t last = src.shape(src.ndim() - 1);
            py::array_t<float> out(with_last(src, last / block_bytes * 32));
            const auto n_blocks = static_cast<std::size_t>(src.size() / block_bytes);
            const std::uint8_t* in = src.data();
            float* dst = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                edge::dequantize_blocks(type, in, n_blocks, dst, threads);
            }
            return out;
        },
        py::arg("src").noconvert(), py::arg("qtype"), py::arg("threads") = 1,
        "Dequantize uint8 GGUF blocks (..., k), k a multiple of the block size, to float32 (..., k / block_bytes * 32)\n"
        "exactly as gguf-py's quants.dequantize does.");

    m.def(
        "quant_block_bytes", [](int qtype) { return edge::quant_block_bytes(quant_type_of(qtype, "quant_block_bytes")); },
        py::arg("qtype"), "Bytes per 32-value block: 18 (Q4_0), 20 (Q4_1), 34 (Q8_0).");

    m.def(
        "fp32_to_fp16",
        [](f32c src) {
            py::array_t<std::uint16_t> out(std::vector<py::ssize_t>(src.shape(), src.shape() + src.ndim()));
            const float* in = src.data();
            std::uint16_t* dst = out.mutable_data();
            const auto n = static_cast<std::size_t>(src.size());
            {
                py::gil_scoped_release nogil;
                for (std::size_t i = 0; i < n; ++i) dst[i] = edge::fp32_to_fp16(in[i]);
            }
            return out;
        },
        py::arg("src").noconvert(), "float32 -> IEEE binary16 bits (uint16), round to nearest even: the scale encoder.");

    m.def(
        "fp16_to_fp32",
        [](u16c src) {
            py::array_t<float> out(std::vector<py::ssize_t>(src.shape(), src.shape() + src.ndim()));
            const std::uint16_t* in = src.data();
            float* dst = out.mutable_data();
            const auto n = static_cast<std::size_t>(src.size());
            {
                py::gil_scoped_release nogil;
                for (std::size_t i = 0; i < n; ++i) dst[i] = edge::fp16_to_fp32(in[i]);
            }
            return out;
        },
        py::arg("src").noconvert(), "IEEE binary16 bits (uint16) -> float32 (exact): the scale decoder.");
}

}  // namespace edge_bind
