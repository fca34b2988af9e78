#!/usr/bin/env bash
# ci-fuzz.sh - build execmem's libFuzzer harnesses with clang (ASan + UBSan,
# the library instrumented too) and run each for a bounded time from its
# seed corpus in fuzz/.  New inputs go to a scratch corpus in the build
# directory, so the repository's seeds are not changed; a crash, leak or
# model mismatch fails the script and leaves the input in the build dir.
#
#   scripts/ci-fuzz.sh                  each fuzzer 60 s (~2.5 min with the build)
#   FUZZ_SECONDS=600 scripts/ci-fuzz.sh longer
# Environment: FUZZ_SECONDS (per fuzzer, default 60), BUILD_DIR (default build-fuzz).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

log() { echo "ci-fuzz: $*"; }

command -v clang >/dev/null || { echo "ci-fuzz: clang missing: run scripts/install-deps.sh" >&2; exit 1; }

log "building the fuzzers in $BUILD_DIR"
cmake -S "$ROOT/fuzz" -B "$BUILD_DIR" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j2 >/dev/null

# run_fuzzer NAME SEED_DIR: runs one fuzzer and prints its executions.
run_fuzzer() {
	local name=$1 seeds=$2 work=$BUILD_DIR/corpus-$1 log=$BUILD_DIR/$1.log
	mkdir -p "$work" "$BUILD_DIR/artifacts"
	log "$name: ${FUZZ_SECONDS} s from $(find "$seeds" -type f | wc -l) seeds"
	local status=0
	(cd "$BUILD_DIR/artifacts" &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
		"$BUILD_DIR/$name" "$work" "$seeds" -max_total_time="$FUZZ_SECONDS" -max_len=1024 \
			-rss_limit_mb=4096 -timeout=20 -print_final_stats=1 -artifact_prefix="$name-") \
		>"$log" 2>&1 || status=$?
	local runs
	runs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$log")
	log "$name: ${runs:-0} executions in ${FUZZ_SECONDS} s, corpus $(find "$work" -type f | wc -l) inputs, exit $status"
	if ((status != 0)); then
		tail -n 60 "$log"
		log "$name FAILED; the input is in $BUILD_DIR/artifacts"
		return 1
	fi
}

failed=0
run_fuzzer fuzz_api "$ROOT/fuzz/corpus_api" || failed=1
if [[ -x "$BUILD_DIR/fuzz_elf" ]]; then
	run_fuzzer fuzz_elf "$ROOT/fuzz/corpus_elf" || failed=1
fi
exit $failed
