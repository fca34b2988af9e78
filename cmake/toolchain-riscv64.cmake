# Cross-compile execmem for riscv64 Linux with Debian's gcc-riscv64-linux-gnu.
# Binaries are linked statically so that qemu-riscv64 (user mode) needs no
# target libraries.
#   cmake -S . -B build-riscv64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-riscv64.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(EXECMEM_CROSS_TRIPLE riscv64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-common.cmake)
