# Cross-compile execmem for aarch64 Linux with Debian's gcc-aarch64-linux-gnu.
# Binaries are linked statically so that qemu-aarch64 (user mode) and the
# initramfs of scripts/ci-qemu-system.sh need no target libraries.
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(EXECMEM_CROSS_TRIPLE aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
