#!/usr/bin/env bash
# ci-sanitizers.sh - build and run the whole test suite under ASan+UBSan
# (LeakSanitizer included) and under ThreadSanitizer, warnings fatal.
#
#   scripts/ci-sanitizers.sh [address,undefined|thread ...]
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers=("$@")
if ((${#sanitizers[@]} == 0)); then
	sanitizers=(address,undefined thread)
fi

for san in "${sanitizers[@]}"; do
	dir="build-ci-${san//,/-}"
	echo "== tests under -fsanitize=$san ($dir)"
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DEXECMEM_WERROR=ON \
		-DEXECMEM_SANITIZE="$san" >/dev/null
	cmake --build "$dir" -j"$(nproc)"
	# halt_on_error keeps a report from being lost among passing output.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --test-dir "$dir" --output-on-failure -j2 -LE no_sanitizer
done
