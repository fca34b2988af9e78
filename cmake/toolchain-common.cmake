# Shared part of cmake/toolchain-<arch>.cmake: the including file sets
# CMAKE_SYSTEM_PROCESSOR and EXECMEM_CROSS_TRIPLE.
set(CMAKE_C_COMPILER ${EXECMEM_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${EXECMEM_CROSS_TRIPLE}-g++)
set(CMAKE_FIND_ROOT_PATH /usr/${EXECMEM_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static executables: qemu-user then needs no -L sysroot, and the same test
# binary can be the /init of an initramfs.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# Tests run through qemu-user unless the caller chose another emulator.
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${CMAKE_SYSTEM_PROCESSOR})
endif()
