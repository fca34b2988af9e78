#!/bin/sh
# gdb in batch mode on named JIT code that traps, in both modes and with two
# functions in one allocation: the backtrace names the JIT function and
# reaches main; info symbol names the function under the PC.  And a trap in
# C code called from a JIT frame that only its registered call frame
# information describes: the backtrace goes through it to main.
# usage: gdb_named.sh GDB JIT_PROGRAM
set -u
gdb=$1 program=$2
[ -x "$gdb" ] || { echo "SKIP: gdb not found (scripts/install-deps.sh installs it)"; exit 77; }
status=0

run_gdb() {
	timeout 30 "$gdb" -nx -q -batch -iex 'set debuginfod enabled off' \
		-ex run -ex bt -ex 'info symbol $pc' --args "$program" "$@" 2>&1
}

expect() { # what output pattern
	if ! printf '%s\n' "$2" | grep -Eq "$3"; then
		echo "FAIL ($1): no line matching: $3"
		status=1
	fi
}

for mode in dual mprotect; do
	for what in crash pack; do
		out=$(EXECMEM_MODE=$mode run_gdb $what)
		case="$mode $what"
		expect "$case" "$out" '^#0 +0x[0-9a-f]+ in jit_crasher \(\)'
		expect "$case" "$out" '^#1 .* in call_jit '
		expect "$case" "$out" '^#2 .* in main '
		expect "$case" "$out" '^jit_crasher \+ 4 in section \.text'
		[ $status -eq 0 ] || { printf '%s\n' "$out"; exit 1; }
	done
	# Through a JIT frame without a frame pointer, by its call frame information.
	out=$(EXECMEM_MODE=$mode run_gdb unwind)
	case="$mode unwind"
	expect "$case" "$out" '^#0 +trap_in_c \(\)'
	expect "$case" "$out" '^#1 +0x[0-9a-f]+ in jit_middle \(\)'
	expect "$case" "$out" '^#2 .* in run_unwind '
	expect "$case" "$out" '^#3 .*main '
	if printf '%s\n' "$out" | grep -q '^#[0-9].* in ?? '; then
		echo "FAIL ($case): a frame without a name"
		status=1
	fi
	[ $status -eq 0 ] || { printf '%s\n' "$out"; exit 1; }
done
echo "gdb_named: backtraces and symbols right in both modes"
