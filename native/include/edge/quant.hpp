#pragma once
// GGUF block quantizers: Q8_0, Q4_0 and Q4_1 (block size 32), bit-exact with gguf-py's NumPy reference
// (gguf-py/gguf/quants.py, classes Q8_0 / Q4_0 / Q4_1), which is the oracle of the tests
// (edge_runtime/reference.py: quantize_blocks, dequantize_blocks).
// Plain C++17 over pointers and sizes; no Python in here.
//
// Shape legend: a tensor is n_rows rows of n_per_row float32 values (row-major, C-contiguous);
// n_per_row is a multiple of 32. A quantized row is n_per_row / 32 blocks laid out back to back, so a
// whole tensor is simply n_rows * n_per_row / 32 consecutive blocks.
//
// Block layouts (ggml/src/ggml-common.h: block_q8_0, block_q4_0, block_q4_1; all little-endian):
//   Q8_0 (34 bytes): fp16 d,          int8 qs[32]           x[j] ~ d * qs[j]
//   Q4_0 (18 bytes): fp16 d,          uint8 qs[16] nibbles  x[j] ~ d * (q[j] - 8)
//   Q4_1 (20 bytes): fp16 d, fp16 m,  uint8 qs[16] nibbles  x[j] ~ d * q[j] + m
//   Nibbles: byte k holds q[k] in its low 4 bits and q[k + 16] in its high 4 bits.
//
// Arithmetic contract (what "bit-exact" rests on): every step is one IEEE-754 binary32 operation in
// round-to-nearest-even, in the order gguf-py's NumPy code performs it, never fused (this file is
// compiled with floating-point contraction off). Scales go to fp16 with round-to-nearest-even.
#include <cstddef>
#include <cstdint>

namespace edge {

// Values are ggml's `enum ggml_type` ids, as stored in GGUF tensor infos.
enum class QuantType : int { Q4_0 = 2, Q4_1 = 3, Q8_0 = 8 };

constexpr std::size_t kQuantBlockSize = 32;  // values per block, all three types

// Bytes per block: 34 (Q8_0), 18 (Q4_0), 20 (Q4_1). Throws std::invalid_argument for another type.
std::size_t quant_block_bytes(QuantType type);

// What quantize_blocks found; `ok` is false when the input held a NaN or an infinity.
struct QuantizeStatus {
    bool ok = true;
    std::size_t bad_index = 0;  // flat index (row * n_per_row + column) of the first non-finite value
    float bad_value = 0.0f;
};

// Quantizes n_blocks consecutive blocks of 32 floats from src into dst (n_blocks * quant_block_bytes
// bytes). n_threads >= 1 worker threads share the blocks (1 = run on the calling thread only).
// Non-finite input is refused: the status names the first NaN/inf (by flat index) and dst is then
// unspecified. Exact gguf-py semantics, including its corner cases:
//   * Q8_0: d = amax / 127, q = round-half-away-from-zero(x * (1 / d)).
//   * Q4_0: d = v / -8 where v is the first value of largest magnitude; q = trunc(x * (1 / d) + 8.5),
//     clipped to 15.
//   * Q4_1: d = (max - min) / 15, m = min; q = trunc((x - min) * (1 / d) + 0.5), clipped to 15. A zero
//     min or max takes the sign of the first zero in the block, as in ggml's C reference; NumPy's pick
//     between +0 and -0 follows its SIMD reduction order, which varies by CPU (the block dequantizes to
//     the same values either way).
//   * A block whose scale reciprocal overflows (amax below ~3.7e-37) or whose range overflows (Q4_1,
//     max - min = inf) has no defined quantized values in ggml's C reference (a NaN/inf is cast to an
//     integer); here such values are 0, which is what NumPy on x86-64 produces. The stored scale is
//     then fp16 +-0 (or inf), so the block dequantizes the same either way.
//
// portable = true forces the plain C++ kernels (the only ones on armv7, whose NEON flushes subnormals);
// otherwise x86-64 uses SSE2 and aarch64 NEON kernels. Both give the same bytes (the tests check both).
QuantizeStatus quantize_blocks(QuantType type, const float* src, std::size_t n_blocks, std::uint8_t* dst,
                               int n_threads, bool portable = false);

// True when quantize_blocks has SIMD kernels for this build (x86-64 SSE2, aarch64 NEON).
bool quantize_simd_available();

// Dequantizes n_blocks consecutive blocks from src into dst (n_blocks * 32 floats), exactly as gguf-py
// does (Q8_0: q * d; Q4_0: d * (q - 8); Q4_1: (d * q) + m). Every byte pattern is valid input
// (fp16 inf/NaN scales propagate as in IEEE arithmetic).
void dequantize_blocks(QuantType type, const std::uint8_t* src, std::size_t n_blocks, float* dst, int n_threads);

// IEEE binary32 -> binary16 bits, round-to-nearest-even, overflow to inf, subnormals kept (NumPy's
// float32.astype(float16)). Integer-only, so it ignores the FPU's flush-to-zero mode.
std::uint16_t fp32_to_fp16(float value);

// IEEE binary16 bits -> binary32 (exact).
float fp16_to_fp32(std::uint16_t bits);

}  // namespace edge
