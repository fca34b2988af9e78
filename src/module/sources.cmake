# The module loader: part of libexecmem.  Paths relative to the repo root.
list(APPEND EXECMEM_SOURCES
  src/module/module.c
  src/module/load.c
  src/module/select.c
  src/module/comdat.c
  src/module/layout.c
  src/module/resolve.c
  src/module/place.c
  src/module/scan.c
  src/module/relocate.c
  src/module/publish.c
  src/module/unload.c
  src/module/input.c
  src/module/archive.c
  src/module/elf_object.c
  src/module/blocks.c
  src/module/crt.c
  src/module/registry.c
  src/module/symtab.c
  src/module/reach.c
  src/module/reloc.c
  src/module/reloc_x86_64.c
  src/module/reloc_aarch64.c
  src/module/common.c
)

# The C runtime pieces linked into modules (crt.c embeds the object): built
# for the target by its compiler, without the library's sanitizer or
# coverage options, since it runs as module code.
set(EXECMEM_CRT_OBJECT ${CMAKE_CURRENT_BINARY_DIR}/execmem_crt_nonshared.o)
add_custom_command(OUTPUT ${EXECMEM_CRT_OBJECT}
  COMMAND ${CMAKE_C_COMPILER} -O2 -fPIC -fno-stack-protector -fno-asynchronous-unwind-tables
          -fno-exceptions -Wall -Wextra -Werror
          -c ${CMAKE_CURRENT_SOURCE_DIR}/src/module/crt_nonshared.c -o ${EXECMEM_CRT_OBJECT}
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/module/crt_nonshared.c
  COMMENT "Building the C runtime object of modules"
  VERBATIM)
set_source_files_properties(src/module/crt.c PROPERTIES
  OBJECT_DEPENDS ${EXECMEM_CRT_OBJECT}
  COMPILE_DEFINITIONS "MOD_CRT_OBJECT_PATH=\"${EXECMEM_CRT_OBJECT}\"")
