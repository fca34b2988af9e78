#!/usr/bin/env bash
# install-deps.sh - install, with apt-get, every package execmem's CI needs.
#
# Idempotent: packages already installed are skipped, and apt-get is not
# touched at all when nothing is missing, so running it again costs ~1 s.
# The arm64 foreign architecture is added because scripts/ci-qemu-system.sh
# downloads Debian's arm64 kernel package.
#
#   scripts/install-deps.sh            install what is missing
#   scripts/install-deps.sh --check    only list what is missing (exit 1 if any)
set -euo pipefail

PACKAGES=(
	build-essential cmake python3
	clang libclang-rt-14-dev          # fuzzing and sanitizer builds
	libasmjit-dev                     # benchmark peer
	# Cross compilers with their C libraries: --no-install-recommends leaves
	# the libc6-dev-*-cross headers out, and a compiler without them builds
	# nothing (bits/libc-header-start.h missing).
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
	qemu-user                         # cross test runs (scripts/ci-cross.sh)
	qemu-system-arm                   # arm64 full-system run (scripts/ci-qemu-system.sh)
	cpio                              # initramfs for that run
)

is_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
	is_installed "$pkg" || missing+=("$pkg")
done

if [[ "${1:-}" == "--check" ]]; then
	if ((${#missing[@]})); then
		echo "missing: ${missing[*]}"
		exit 1
	fi
	echo "all CI packages installed"
	exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
	SUDO="sudo"
fi

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	$SUDO dpkg --add-architecture arm64
	need_update=1
fi

if ((${#missing[@]})) || [[ -n "${need_update:-}" ]]; then
	echo "install-deps: installing ${missing[*]:-(nothing; refreshing lists for arm64)}"
	$SUDO apt-get update -qq
	if ((${#missing[@]})); then
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
else
	echo "install-deps: all CI packages already installed"
fi
