# asmjit (Debian's libasmjit-dev or an equivalent), found once for every
# part that uses it: the benchmark's peer, the asmjit adapter's example and
# test.  Defines the target execmem_asmjit when found.
find_path(ASMJIT_INCLUDE_DIR asmjit/core.h)
find_library(ASMJIT_LIBRARY asmjit)
if(ASMJIT_INCLUDE_DIR AND ASMJIT_LIBRARY)
  enable_language(CXX)
  add_library(execmem_asmjit INTERFACE)
  target_include_directories(execmem_asmjit SYSTEM INTERFACE ${ASMJIT_INCLUDE_DIR})
  target_compile_definitions(execmem_asmjit INTERFACE ASMJIT_STATIC)
  target_compile_features(execmem_asmjit INTERFACE cxx_std_17)
  target_link_libraries(execmem_asmjit INTERFACE ${ASMJIT_LIBRARY} ${CMAKE_DL_LIBS})
endif()
