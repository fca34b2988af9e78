#!/usr/bin/env bash
# ci-cross.sh - cross-build execmem (library, tools, tests) for aarch64 and
# riscv64 with Debian's cross compilers, statically linked, and run the CTest
# suite under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR, set by the toolchain
# files).  qemu-user runs code rewritten through the dual-mode alias stale,
# so EXECMEM_TEST_QEMU_USER=1 tells the tests to check such code's bytes
# instead of calling it; scripts/ci-qemu-system.sh runs those calls on an
# emulated arm64 machine.
#
#   scripts/ci-cross.sh                  both architectures (~2-4 min)
#   scripts/ci-cross.sh aarch64          one of them
#   CTEST_ARGS="-R reliability" scripts/ci-cross.sh riscv64
#
# A test that did not run fails the architecture (scripts/ci-lib.sh) unless
# ALLOWED_TO_SKIP names it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ci-lib.sh
source "$ROOT/scripts/ci-lib.sh"
# Tests allowed not to run, each with its reason.  (Those that mean nothing
# under an emulator, as the install check or the benchmark, are not
# registered in a cross build at all.)
ALLOWED_TO_SKIP=(
	# qemu-user ignores MADV_DONTFORK, so a child inherits the RW aliases
	# that fork isolation keeps out of it on a real kernel.
	reliability_fork_dual
	reliability_forkstress_dual
	reliability_forkcow_dual
	# qemu-user runs code rewritten through the dual-mode alias stale, and
	# these live-patching parts must run the code they patch (the emulated
	# machine of scripts/ci-qemu-system.sh runs them; mprotect mode and the
	# host-text part run here).
	patch_stress_dual
	patch_multi_dual
	patch_busy_dual
	patch_batch_dual
	patch_fork_dual
	patch_direct_dual
)
ARCHES=("$@")
((${#ARCHES[@]})) || ARCHES=(aarch64 riscv64)
JOBS=${JOBS:-2}

log() { echo "ci-cross: $*"; }

check_tools() {
	local arch=$1 tool
	for tool in "$arch-linux-gnu-gcc" "qemu-$arch" cmake ctest; do
		if ! command -v "$tool" >/dev/null; then
			echo "ci-cross: $tool missing: run scripts/install-deps.sh" >&2
			exit 1
		fi
	done
}

build_and_test() {
	local arch=$1
	local build=$ROOT/build-$arch start=$SECONDS
	check_tools "$arch"
	log "$arch: configuring and building in $build"
	cmake -S "$ROOT" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-$arch.cmake" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEXECMEM_WERROR=ON >/dev/null
	cmake --build "$build" -j"$JOBS" >/dev/null
	log "$arch: running the tests under qemu-$arch"
	local status=0
	# G_SLICE=always-malloc: QEMU 7.2 takes its translation blocks from
	# glib's slice allocator, whose locks fork() leaves held when another
	# guest thread was translating; a forked child then hung in
	# g_slice_alloc() (reliability_fork_mprotect on riscv64, 2 forks in 300
	# in one run).  glibc's malloc, which this selects, is fork-safe.
	# shellcheck disable=SC2086 # CTEST_ARGS holds several arguments
	(cd "$build" && G_SLICE=always-malloc EXECMEM_TEST_QEMU_USER=1 ctest --output-on-failure -j"$JOBS" --timeout 300 ${CTEST_ARGS:-}) 2>&1 |
		tee "$build/ci-tests.log" || status=$?
	((status)) || ci_check_not_run "$build/ci-tests.log" "${ALLOWED_TO_SKIP[@]}" || status=$?
	if ((status)); then
		log "$arch: FAILED after $((SECONDS - start)) s"
		return 1
	fi
	log "$arch: passed in $((SECONDS - start)) s"
}

failed=()
for arch in "${ARCHES[@]}"; do
	case "$arch" in
	aarch64|riscv64) build_and_test "$arch" || failed+=("$arch") ;;
	*) echo "ci-cross: unknown architecture $arch (aarch64, riscv64)" >&2; exit 1 ;;
	esac
done
if ((${#failed[@]})); then
	log "failed on: ${failed[*]}"
	exit 1
fi
