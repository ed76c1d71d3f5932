// _sanitize_canary: deliberate memory and UB bugs, built only with EDGE_SANITIZE=ON. The sanitizer
// tests call each one in a child process and demand that it is stopped with a report, so a sanitizer
// run that finds nothing means the kernels are clean, not that the sanitizers were never armed.
#include <pybind11/pybind11.h>

#include <climits>
#include <cstdint>
#include <vector>

namespace py = pybind11;

namespace {

// volatile / opaque indices so the compiler cannot prove the bug away at build time.
int read_past_end(int n) {
    std::vector<int32_t> v(static_cast<size_t>(n), 1);
    volatile int32_t* p = v.data();
    return p[n];  // heap-buffer-overflow (one element past the end)
}

int use_after_free(int n) {
    auto* p = new int32_t[static_cast<size_t>(n)]();
    delete[] p;
    volatile int32_t* q = p;
    return q[0];  // heap-use-after-free
}

int signed_overflow(int x) {
    volatile int big = INT_MAX;
    return big + x;  // signed integer overflow for x > 0: UBSan
}

int shift_too_far(int bits) {
    volatile int one = 1;
    return one << bits;  // shift exponent >= 32: UBSan
}

}  // namespace

PYBIND11_MODULE(_sanitize_canary, m) {
    m.doc() = "deliberate bugs that a sanitized build must catch (tests only)";
    m.def("read_past_end", &read_past_end);
    m.def("use_after_free", &use_after_free);
    m.def("signed_overflow", &signed_overflow);
    m.def("shift_too_far", &shift_too_far);
}
