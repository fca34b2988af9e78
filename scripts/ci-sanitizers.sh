#!/usr/bin/env bash
# ci-sanitizers.sh - build and run the whole test suite under ASan+UBSan
# (LeakSanitizer included) and under ThreadSanitizer, warnings fatal.
#
#   scripts/ci-sanitizers.sh [address,undefined|thread ...]
#
# A test that did not run fails the script (scripts/ci-lib.sh) unless
# ALLOWED_TO_SKIP names it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ci-lib.sh
source scripts/ci-lib.sh
# Tests allowed not to run, each with its reason: none.  (-LE no_sanitizer
# leaves out of the selection install_check, the benchmark's JSON check,
# the valgrind_* tests and the tests that run gdb; that is not a skip.)
ALLOWED_TO_SKIP=()

sanitizers=("$@")
if ((${#sanitizers[@]} == 0)); then
	# shellcheck disable=SC2054 # the comma belongs to the first sanitizer list
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
		ctest --test-dir "$dir" --output-on-failure -j2 -LE no_sanitizer 2>&1 | tee "$dir/ci-tests.log"
	ci_check_not_run "$dir/ci-tests.log" "${ALLOWED_TO_SKIP[@]}"
done
