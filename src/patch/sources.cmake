# Live patching (src/patch): part of libexecmem.  Paths relative to the repo
# root; the architecture's file says how its instructions are changed live.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|aarch64|arm64|ARM64)$")
  list(APPEND EXECMEM_SOURCES
    src/patch/poke.c
    src/patch/census.c
    src/patch/trap.c
    src/patch/host_text.c
    src/patch/patch.c
  )
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    list(APPEND EXECMEM_SOURCES src/patch/poke_x86_64.c)
  else()
    list(APPEND EXECMEM_SOURCES src/patch/poke_aarch64.c)
  endif()
else()
  list(APPEND EXECMEM_SOURCES src/patch/unsupported.c)
endif()
