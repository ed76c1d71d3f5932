# CMake toolchain: 32-bit Raspberry Pi OS / Debian armhf on ARMv7+ boards (Pi 2/3/4/5, Cortex-A7 and up).
# The sysroot is a Debian bookworm armhf root filesystem made by scripts/cross_build.sh.
# Debian armhf's baseline is ARMv7-A + VFPv3-D16 without NEON. Every ARMv7+ Pi has NEON and VFPv4, so the
# wheel is built with -mfpu=neon-vfpv4: __ARM_NEON is defined and the kernels' NEON paths are compiled in.
# (An ARMv6 Pi 1/Zero cannot run this wheel; it is tagged armv7l.)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_C_FLAGS_INIT "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard")
set(CMAKE_CXX_FLAGS_INIT "-march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard")

if(NOT DEFINED ENV{EDGE_CROSS_SYSROOT})
  message(FATAL_ERROR "armv7.cmake: set EDGE_CROSS_SYSROOT to the armhf root filesystem (scripts/cross_build.sh does)")
endif()
set(CMAKE_SYSROOT "$ENV{EDGE_CROSS_SYSROOT}")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
