#!/usr/bin/env bash
# ci-valgrind.sh - run the test suite under valgrind's memcheck, once in
# each mode (EXECMEM_MODE=dual, then mprotect; the reliability tests that
# name a mode run in their own), failing on any memcheck error (invalid
# access, use of uninitialised memory, bad free) or a test that did not run
# (scripts/ci-lib.sh).  Leaks are LeakSanitizer's part (ci-sanitizers.sh):
# memcheck counts as lost, in a forked child, the memory of the parent's
# threads that the child does not have.
#
#   scripts/ci-valgrind.sh [BUILD_DIR]
#
# A bounded subset, so that both runs take a few minutes on 2 cores:
# left out are
#   - the tests that already run under valgrind (label valgrind), and
#     cli_demo*, which valgrind_demo_* runs under valgrind with fewer programs;
#   - the tests whose command is an interpreter, a debugger or an
#     installer, where valgrind would check python3, sh, gdb or cmake
#     rather than execmem (cli_audit, cli_bad_usage_*, cli_bench_quick_json,
#     gdb_breakpoints, install_check);
#   - the stress tests (reliability race, forkstress, stress; the live
#     patching parts stress, multi, batch, host and fork, whose 8 threads
#     valgrind runs one at a time, and whose forked children take longer
#     than the part waits for) and the fault injection (reliability
#     faults): they run for seconds natively by design, and for many
#     minutes under valgrind;
#   - the tests of what valgrind changes itself: reliability rlimit (its
#     limits on address space and descriptors bind valgrind too) and
#     reliability sandbox and patch mdwe (MDWE forbids the W+X memory
#     valgrind runs its translations from); both, and faults, also expect an "auto" arena to
#     start in dual mode, which under valgrind starts in mprotect mode;
#   - the live patching tests whose threads run code while another thread
#     changes it (patch hook_stress, probe): valgrind does not execute them
#     as the CPU does (a caller dies of SIGILL inside a site being changed),
#     while every other run of them (native, sanitizers, qemu-user, the
#     emulated machine) passes.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ci-lib.sh
source scripts/ci-lib.sh
# Tests allowed not to run, each with its reason: none.
ALLOWED_TO_SKIP=()
EXCLUDED='^(cli_audit|cli_demo.*|cli_bad_usage_.*|cli_bench_quick_json|gdb_breakpoints|install_check|reliability_(race|forkstress|stress|faults|rlimit|sandbox)_.*|patch_(stress|multi|batch|host|fork|mdwe|hook_stress|probe)_.*)$'

dir=${1:-build-ci-valgrind}
command -v valgrind >/dev/null || { echo "ci-valgrind: valgrind is not installed" >&2; exit 1; }
cmake -S . -B "$dir" -DEXECMEM_WERROR=ON >/dev/null
cmake --build "$dir" -j2
# An error fails the test (exit status 1), in forked children too.
options="-q --error-exitcode=1 --leak-check=no"
for mode in dual mprotect; do
	other=$([[ $mode == dual ]] && echo mprotect || echo dual)
	echo "== the test suite under valgrind, EXECMEM_MODE=$mode"
	EXECMEM_MODE=$mode ctest --test-dir "$dir" -T memcheck --output-on-failure -j2 \
		--overwrite MemoryCheckCommandOptions="$options" \
		-LE valgrind -E "$EXCLUDED|_${other}\$" 2>&1 | tee "$dir/ci-valgrind-$mode.log"
	ci_check_not_run "$dir/ci-valgrind-$mode.log" "${ALLOWED_TO_SKIP[@]}"
done
