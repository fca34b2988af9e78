# Hooks: the relocators and the hook table.  Appends to EXECMEM_SOURCES and
# sets EXECMEM_HOOK_LIBS, the libraries they need (linked by name, so the
# exported static library and the pkg-config file name them as -l flags).
set(EXECMEM_HOOK_LIBS "")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  # x86-64 instructions are found with Zydis (libzydis-dev).
  find_library(EXECMEM_ZYDIS_LIBRARY Zydis)
  find_path(EXECMEM_ZYDIS_INCLUDE Zydis/Zydis.h)
  if(NOT EXECMEM_ZYDIS_LIBRARY OR NOT EXECMEM_ZYDIS_INCLUDE)
    message(FATAL_ERROR "execmem's hooks need the Zydis decoder: install libzydis-dev (scripts/install-deps.sh)")
  endif()
  list(APPEND EXECMEM_SOURCES src/patch/reloc.c src/patch/reloc_x86_64.c src/patch/hook.c src/patch/probe.c)
  set(EXECMEM_HOOK_LIBS Zydis)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  list(APPEND EXECMEM_SOURCES src/patch/reloc.c src/patch/reloc_aarch64.c src/patch/hook.c src/patch/probe.c)
endif()
