# CMake toolchain: 64-bit Raspberry Pi OS / Debian arm64 (Pi 3/4/5, Cortex-A53/A72/A76).
# The sysroot is a Debian bookworm root filesystem made by scripts/cross_build.sh; it supplies the target's
# Python headers and glibc 2.36 (the wheel is repaired to manylinux_2_34 afterwards).
# NEON (Advanced SIMD) is part of the AArch64 baseline: no flag needed, and none beyond it is enabled, so the
# wheel runs on a Pi 4 (no dot-product, no fp16 arithmetic). Faster paths must be chosen at run time.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

if(NOT DEFINED ENV{EDGE_CROSS_SYSROOT})
  message(FATAL_ERROR "aarch64.cmake: set EDGE_CROSS_SYSROOT to the arm64 root filesystem (scripts/cross_build.sh does)")
endif()
set(CMAKE_SYSROOT "$ENV{EDGE_CROSS_SYSROOT}")

# Libraries and headers from the sysroot only; programs from the host. Packages from both: pybind11's CMake
# config lives in the host venv, and it is header-only, so using it for the target is correct.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
