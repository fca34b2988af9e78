#!/usr/bin/env bash
# install-deps.sh - install, with apt-get, every package execmem's build,
# tests, benchmark and CI scripts use, then check that each toolchain works.
#
# Idempotent: packages already installed are skipped, and apt-get is not
# touched at all when nothing is missing.  An installed package is not proof
# of a working toolchain (a cross compiler without its C library builds
# nothing), so each compiler then builds and runs a one-line C program, in
# a temporary directory; all of it takes a few seconds.
# The arm64 foreign architecture is added because scripts/ci-qemu-system.sh
# downloads Debian's arm64 kernel package.
#
#   scripts/install-deps.sh            install what is missing, then check
#   scripts/install-deps.sh --check    install nothing: list what is missing,
#                                      else check the toolchains (exit 1 on
#                                      any failure)
set -euo pipefail

PACKAGES=(
	# Native build and tests: C compiler and library, CMake with its default
	# generator; the module tests build modules with gcc and clang.
	gcc libc6-dev make cmake clang
	# gcc's sanitizer runtimes (scripts/ci-sanitizers.sh).
	libasan8 libubsan1 libtsan2
	# clang's sanitizer and libFuzzer runtimes (scripts/ci-fuzz.sh).
	libclang-rt-14-dev
	# The benchmark's asmjit peer (bench/asmjit_peer.cpp) is C++; CMake
	# builds it when libasmjit-dev is installed.
	g++ libasmjit-dev
	# tests/install_check.sh: consumer build through pkg-config, nm for the
	# exported symbols; the module tests' archive comes from ar.
	pkg-config binutils
	# tests/cli (JSON check of the benchmark) and scripts/ci-qemu-system.sh.
	python3
	# Cross compilers with their C libraries: --no-install-recommends leaves
	# the libc6-dev-*-cross headers out, and a compiler without them builds
	# nothing (bits/libc-header-start.h missing).
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	# C++ modules for aarch64 (tests/module, cross build).
	g++-aarch64-linux-gnu
	gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
	# Cross test runs (scripts/ci-cross.sh).
	qemu-user
	# arm64 full-system run (scripts/ci-qemu-system.sh): the emulator, the
	# initramfs (cpio, gzip) and the kernel package's extraction (dpkg-deb).
	qemu-system-arm cpio gzip dpkg
	# Modules loaded from real code (tests/module): Debian's static archives
	# of Lua, OpenSSL, zlib and SQLite, and C++ modules built with g++.
	liblua5.4-dev libssl-dev zlib1g-dev libsqlite3-dev
	# Adapters to JIT frameworks (include/execmem/*.hpp, examples/).
	llvm-14-dev libtcc-dev
	# Tools that must see JIT code (tests/tools): debugger, profiler,
	# valgrind (also its client-request header), system call tracer.
	gdb linux-perf valgrind strace
	# Live patching and hooks (src/patch): the x86-64 instruction decoder
	# that relocates a hooked function's first instructions.
	libzydis-dev
)

log() { echo "install-deps: $*"; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

is_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing_packages() {
	local pkg
	for pkg in "${PACKAGES[@]}"; do
		is_installed "$pkg" || echo "$pkg"
	done
}

install_packages() {
	local -a missing=("$@")
	local sudo="" need_update=""
	[[ $(id -u) -eq 0 ]] || sudo="sudo"
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		$sudo dpkg --add-architecture arm64
		need_update=1
	fi
	if ((${#missing[@]} == 0)) && [[ -z $need_update ]]; then
		log "all CI packages already installed"
		return
	fi
	log "installing ${missing[*]:-(nothing; refreshing lists for arm64)}"
	$sudo apt-get update -qq
	if ((${#missing[@]})); then
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
}

# The program every toolchain must build and run: it prints 42.  With
# -DPROBE_FUZZER it is a libFuzzer target instead, which libFuzzer's main()
# first calls with an empty input.
write_probe() {
	cat >"$1" <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
static int probe(void) { uint8_t answer = 42; return printf("%u\n", (unsigned)answer) < 0 || fflush(stdout) != 0; }
#ifdef PROBE_FUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { (void)data; (void)size; _Exit(probe()); }
#else
int main(void) { return probe(); }
#endif
EOF
}

# Shows the first lines of what a failed command said, then stops.
die_with_output() {
	sed -n '1,8s/^/    /p' "$probe_dir/output" >&2
	die "$*"
}

# check_toolchain COMPILER "FLAGS" COMPILER_PACKAGE LIBRARY_PACKAGES [EMULATOR EMULATOR_PACKAGE]
#   Builds the probe with COMPILER FLAGS and runs it, under EMULATOR when
#   given; a failure stops the script naming the package that is missing.
check_toolchain() {
	local compiler=$1 flags=$2 compiler_package=$3 library_packages=$4
	local emulator=${5:-} emulator_package=${6:-}
	local what="$compiler${flags:+ $flags}" exe="$probe_dir/probe$((++probe_count))"
	local -a flag_words
	read -ra flag_words <<<"$flags"
	command -v "$compiler" >/dev/null || die "$compiler not found: install $compiler_package"
	"$compiler" "${flag_words[@]}" -o "$exe" "$probe_dir/probe.c" >"$probe_dir/output" 2>&1 ||
		die_with_output "$what cannot build a C program: install $library_packages"
	if [[ -n $emulator ]] && ! command -v "$emulator" >/dev/null; then
		die "$emulator not found: install $emulator_package"
	fi
	if ! ${emulator:+"$emulator"} "$exe" >"$probe_dir/output" 2>&1 || ! grep -qx 42 "$probe_dir/output"; then
		die_with_output "the program $what built does not run${emulator:+ under $emulator}:" \
			"install ${emulator_package:-$library_packages}"
	fi
}

# check_tool PACKAGE COMMAND [ARG...]: COMMAND runs, or the script stops.
check_tool() {
	local package=$1
	shift
	"$@" >"$probe_dir/output" 2>&1 || die_with_output "'$*' fails: install $package"
}

check_toolchains() {
	probe_dir=$(mktemp -d)
	probe_count=0
	trap 'rm -rf "$probe_dir"' EXIT
	write_probe "$probe_dir/probe.c"
	check_toolchain gcc "" gcc libc6-dev
	check_toolchain gcc "-fsanitize=address,undefined" gcc "libasan8 libubsan1"
	check_toolchain gcc "-fsanitize=thread" gcc libtsan2
	check_toolchain g++ "" g++ libstdc++-12-dev
	check_toolchain clang "" clang libc6-dev
	check_toolchain clang "-fsanitize=address,undefined" clang libclang-rt-14-dev
	check_toolchain clang "-fsanitize=fuzzer,address,undefined -DPROBE_FUZZER" clang libclang-rt-14-dev
	check_toolchain aarch64-linux-gnu-gcc -static gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
		qemu-aarch64 qemu-user
	check_toolchain riscv64-linux-gnu-gcc -static gcc-riscv64-linux-gnu libc6-dev-riscv64-cross \
		qemu-riscv64 qemu-user
	check_tool cmake cmake --version
	check_tool make make --version
	check_tool pkg-config pkg-config --version
	check_tool binutils nm --version
	check_tool python3 python3 -c 'import json, shutil, subprocess'
	check_tool qemu-system-arm qemu-system-aarch64 --version
	check_tool cpio cpio --version
	check_tool gzip gzip --version
	check_tool dpkg dpkg-deb --version
	log "toolchains checked: $probe_count C programs built and run"
}

main() {
	local -a missing
	mapfile -t missing < <(missing_packages)
	case "${1:-}" in
	--check)
		((${#missing[@]} == 0)) || die "missing packages: ${missing[*]}"
		;;
	"") install_packages "${missing[@]}" ;;
	*) die "unknown argument $1 (usage: $0 [--check])" ;;
	esac
	check_toolchains
}

main "$@"
