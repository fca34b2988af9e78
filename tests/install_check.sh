#!/bin/sh
# install_check.sh BUILD_DIR SOURCE_DIR - install execmem into a scratch
# prefix, then build and run the JIT example against it twice: through
# pkg-config and through CMake's find_package(execmem).
# Without one of the tools it needs it does not start: it exits 77, which
# CTest reports as skipped, and says which tool is missing.
set -eu
build=$1
src=$2
for tool in cmake pkg-config cc nm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "SKIP: $tool not found; the install check needs cmake, pkg-config, cc and nm"
		exit 77
	fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*)

PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists execmem
cflags=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags execmem)
libs=$(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --libs execmem)
cc $cflags "$src/examples/jit_hello.c" $libs -Wl,-rpath,"$libdir" -o "$work/hello_pc"
"$work/hello_pc" | grep -q "returned 42"

mkdir "$work/consumer"
cat > "$work/consumer/CMakeLists.txt" <<CML
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(execmem REQUIRED)
add_executable(hello_static "$src/examples/jit_hello.c")
target_link_libraries(hello_static PRIVATE execmem::static)
add_executable(hello_shared "$src/examples/jit_hello.c")
target_link_libraries(hello_shared PRIVATE execmem::shared)
CML
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer/build" >/dev/null
"$work/consumer/build/hello_static" | grep -q "returned 42"
"$work/consumer/build/hello_shared" | grep -q "returned 42"
# Only the API is exported from the shared library, and the two names of the
# GDB JIT interface, which debuggers look up as they are.
if nm -D --defined-only "$libdir/libexecmem.so" | awk '{print $3}' |
	grep -v -e '^execmem_' -e '^__jit_debug_register_code$' -e '^__jit_debug_descriptor$' |
	grep -q .; then
	echo "symbols other than execmem_* are exported:" >&2
	nm -D --defined-only "$libdir/libexecmem.so" | grep -v ' execmem_' >&2
	exit 1
fi
echo "install check passed"
