#!/usr/bin/env bash
# ci-qemu-system.sh - run execmem's aarch64 tests under full-system emulation.
#
# qemu-user does not see code rewritten through an alias mapping, so the
# dual-mapping tests of rewritten code only mean something on an emulated
# machine with a real kernel.  This script:
#   1. downloads Debian's arm64 kernel package (cached) and extracts vmlinuz,
#   2. cross-builds the tests (build-aarch64, shared with ci-cross.sh),
#   3. packs the tests labelled "qemu-system" in CTest, with their
#      environment, into a gzip'd cpio whose /init (tests/reliability/
#      qemu_init.c) runs them one by one and powers off,
#   4. boots it with qemu-system-aarch64 -smp 1 (QEMU 7.2's multi-threaded
#      TCG runs stale code on a second vCPU, see docs/design notes) and
#      greps the console for the PASS line (and no skipped test); QEMU's
#      exit status says nothing.
#
#   scripts/ci-qemu-system.sh                    the labelled tests (~1-2 min)
#   scripts/ci-qemu-system.sh --program FILE...  these static aarch64 programs
#                                                instead (each must exit 0)
# Environment: EXECMEM_CACHE (kernel cache, default ~/.cache/execmem),
#              BUILD_DIR (default build-aarch64), QEMU_TIMEOUT (s, default 600).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-aarch64}
CACHE=${EXECMEM_CACHE:-${HOME:-/root}/.cache/execmem}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-600}
WORK=$BUILD_DIR/qemu-system
PROGRAMS=()

log() { echo "ci-qemu-system: $*"; }
die() { echo "ci-qemu-system: error: $*" >&2; exit 1; }

parse_arguments() {
	while (($#)); do
		case "$1" in
		--program) PROGRAMS+=("$(realpath "$2")"); shift 2 ;;
		-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
		*) die "unknown argument $1" ;;
		esac
	done
}

check_tools() {
	local tool
	for tool in qemu-system-aarch64 aarch64-linux-gnu-gcc cpio gzip python3 dpkg-deb; do
		command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
	done
}

# Prints the path of vmlinuz of Debian's current arm64 kernel, fetching the
# package only when the cache does not hold it yet.
fetch_kernel() {
	mkdir -p "$CACHE"
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		dpkg --add-architecture arm64
		apt-get update -qq
	fi
	local package
	package=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
		awk '/Depends: linux-image-/ { print $2; exit }')
	if [[ -z "$package" ]]; then
		apt-get update -qq
		package=$(apt-cache depends linux-image-arm64:arm64 |
			awk '/Depends: linux-image-/ { print $2; exit }')
	fi
	[[ -n "$package" ]] || die "no package found behind linux-image-arm64:arm64"
	local name=${package%:arm64}
	local kernel=$CACHE/vmlinuz-$name
	if [[ ! -s "$kernel" ]]; then
		log "downloading $package" >&2
		local tmp
		tmp=$(mktemp -d)
		(cd "$tmp" && apt-get download -q "$package" >/dev/null 2>&1) || die "apt-get download $package failed"
		dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
		mv "$tmp"/boot/vmlinuz-* "$kernel"
		rm -rf "$tmp"
	fi
	echo "$kernel"
}

build_tests() {
	log "cross-building the tests in $BUILD_DIR"
	cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchain-aarch64.cmake" \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DEXECMEM_WERROR=ON >/dev/null
	cmake --build "$BUILD_DIR" -j2 >/dev/null
}

# Copies the CTest tests labelled qemu-system into $1/tests and writes
# $1/tests/list: one "[NAME=VALUE...] program [arg...]" line per test.
collect_ctest_tests() {
	local root=$1
	(cd "$BUILD_DIR" && ctest --show-only=json-v1 -L qemu-system) | python3 -c '
import json, os, shutil, sys
root = sys.argv[1]
lines = []
for test in json.load(sys.stdin).get("tests", []):
    command = list(test.get("command", []))
    # CTest puts the qemu-user emulator in front of cross-compiled programs.
    while command and os.path.basename(command[0]).startswith("qemu-"):
        command.pop(0)
    if not command:
        continue
    program = os.path.basename(command[0])
    shutil.copy(command[0], os.path.join(root, "tests", program))
    env = []
    for prop in test.get("properties", []):
        if prop["name"] == "ENVIRONMENT":
            env += prop["value"]
    lines.append(" ".join(env + [program] + command[1:]))
with open(os.path.join(root, "tests", "list"), "w") as out:
    out.write("\n".join(lines) + "\n")
print(len(lines))
' "$root"
}

collect_given_programs() {
	local root=$1 program
	: >"$root/tests/list"
	for program in "${PROGRAMS[@]}"; do
		cp "$program" "$root/tests/"
		basename "$program" >>"$root/tests/list"
	done
	echo "${#PROGRAMS[@]}"
}

# Builds $WORK/initramfs.cpio.gz with /init and /tests.
make_initramfs() {
	local root=$WORK/root count
	rm -rf "$root"
	mkdir -p "$root/tests" "$root/dev" "$root/proc"
	aarch64-linux-gnu-gcc -std=gnu11 -O2 -static -Wall -Wextra -Werror \
		-o "$root/init" "$ROOT/tests/reliability/qemu_init.c"
	if ((${#PROGRAMS[@]})); then
		count=$(collect_given_programs "$root")
	else
		count=$(collect_ctest_tests "$root")
	fi
	((count > 0)) || die "no test to run"
	log "$count test(s) in the initramfs"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$WORK/initramfs.cpio.gz"
}

boot() {
	local kernel=$1 console=$WORK/console.log
	log "booting qemu-system-aarch64 (console in $console)"
	local start=$SECONDS
	timeout "$QEMU_TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 1 -m 512 \
		-nographic -nic none -no-reboot -kernel "$kernel" -initrd "$WORK/initramfs.cpio.gz" \
		-append "console=ttyAMA0 panic=-1" </dev/null >"$console" 2>&1 || true
	# The kernel's boot messages stay in the file; show what the tests said.
	tr -d '\r' <"$console" | awk '/^init: running/ { shown = 1 } shown'
	log "finished in $((SECONDS - start)) s"
	if ! grep -q '^execmem-qemu-system: PASS' <(tr -d '\r' <"$console"); then
		grep -q '^init: running' "$console" || tail -n 40 "$console" # it did not boot: show why
		die "no PASS line on the console"
	fi
	# As for the ctest stages (scripts/ci-lib.sh), a skipped test is a failure.
	if ! grep -q '^execmem-qemu-system: .* 0 skipped$' <(tr -d '\r' <"$console"); then
		die "some test skipped itself: see its output above"
	fi
}

main() {
	parse_arguments "$@"
	check_tools
	local kernel
	kernel=$(fetch_kernel)
	((${#PROGRAMS[@]})) || build_tests
	mkdir -p "$WORK"
	make_initramfs
	boot "$kernel"
}

main "$@"
