#!/bin/sh
# perf on named JIT code: perf record -k 1 + perf inject --jit + perf report
# names the JIT function from the jitdump in both modes; in mprotect mode
# (anonymous memory) perf report names it from /tmp/perf-PID.map alone; and
# `execmem demo` under perf shows its programs by name.
# usage: perf_named.sh PERF JIT_PROGRAM EXECMEM_CLI
set -u
perf=$1 program=$2 cli=$3
[ -x "$perf" ] || { echo "SKIP: perf not found (scripts/install-deps.sh installs it)"; exit 77; }
work=$(mktemp -d /tmp/execmem-perf-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export JITDUMPDIR="$work/jit"

record() { # output, command...
	out=$1
	shift
	timeout 30 "$perf" record -q -k 1 -e cpu-clock -o "$out" "$@" >"$out.stdout" 2>&1
}

report() { # data
	timeout 30 "$perf" report -i "$1" --stdio --sort sym 2>/dev/null | grep -v '^#'
}

# The function's share of the samples, as perf prints it: "98.62%  [.] jit_spinner".
top_share() { # report-output symbol
	printf '%s\n' "$1" | awk -v sym="$2" '$NF == sym { sub("%", "", $1); print int($1); exit }'
}

fail() {
	echo "FAIL: $*"
	exit 1
}

for mode in dual mprotect; do
	EXECMEM_MODE=$mode EXECMEM_PERF=jitdump record $mode.data "$program" spin ||
		fail "perf record ($mode)"
	ls "$JITDUMPDIR"/jit-*.dump >/dev/null 2>&1 || fail "no jitdump ($mode)"
	timeout 30 "$perf" inject --jit -i $mode.data -o $mode.jit.data || fail "perf inject ($mode)"
	share=$(top_share "$(report $mode.jit.data)" jit_spinner)
	[ "${share:-0}" -ge 50 ] || fail "$mode: jit_spinner has ${share:-no} % of the samples"
	rm -f "$JITDUMPDIR"/*
done

EXECMEM_MODE=mprotect EXECMEM_PERF=map record map.data "$program" spin || fail "perf record (map)"
share=$(top_share "$(report map.data)" jit_spinner)
rm -f "/tmp/perf-$(cat map.data.stdout).map"
[ "${share:-0}" -ge 50 ] || fail "perf map: jit_spinner has ${share:-no} % of the samples"

EXECMEM_PERF=jitdump record demo.data "$cli" demo --count 3000 || fail "perf record (demo)"
timeout 30 "$perf" inject --jit -i demo.data -o demo.jit.data || fail "perf inject (demo)"
report demo.jit.data | grep -q 'demo_program_[0-9]' || fail "no demo program named in the demo's profile"
echo "perf_named: JIT functions named through jitdump (both modes), perf map and the demo"
