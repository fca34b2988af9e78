# The module loader (issue 5): part of libexecmem.  Paths relative to the repo root.
list(APPEND EXECMEM_SOURCES
  src/module/archive.c
  src/module/comdat.c
  src/module/elf_object.c
  src/module/load_layout.c
  src/module/load_place.c
  src/module/load_publish.c
  src/module/load_relocate.c
  src/module/loader.c
  src/module/module.c
  src/module/registry.c
  src/module/reach.c
  src/module/reloc.c
  src/module/reloc_aarch64.c
  src/module/reloc_x86_64.c
  src/module/symtab.c
)
