#!/bin/sh
# gdb_breakpoints.sh GDB TARGET - breakpoints in JIT code under gdb:
#   auto mode         the arena sees gdb, takes mprotect mode, `break` stops
#   forced dual mode  one line names the problem and the fixes; `break`
#                     cannot be inserted; `hbreak` stops
gdb=$1 target=$2 failed=0

# run_gdb BREAK-COMMAND: gdb's and the target's output.
run_gdb() {
	"$gdb" -q -batch -ex 'break code_ready' -ex run -ex "$1 *jit_code" -ex continue \
		-ex continue "$target" 2>&1
}

expect() { # TEXT WHAT OUTPUT
	case $3 in
	*"$1"*) ;;
	*) echo "FAIL: $2: no '$1' in:"; echo "$3"; failed=1 ;;
	esac
}

out=$(EXECMEM_MODE=auto run_gdb break)
expect 'Breakpoint 2, ' 'auto mode: the breakpoint in JIT code stops' "$out"
expect 'mode mprotect (debugger)' 'auto mode: the arena says why it took mprotect mode' "$out"
expect 'returned 42' 'auto mode: the code runs on' "$out"

out=$(EXECMEM_MODE=dual run_gdb break)
expect 'EXECMEM_MODE=mprotect' 'forced dual: the line names the fix' "$out"
expect 'hbreak' 'forced dual: the line names hardware breakpoints' "$out"
expect 'Cannot insert breakpoint 2' 'forced dual: a software breakpoint cannot be set' "$out"
lines=$(printf '%s\n' "$out" | grep -c '^execmem: debugger attached')
[ "$lines" = 1 ] || { echo "FAIL: forced dual: $lines lines about the debugger, not 1"; failed=1; }

out=$(EXECMEM_MODE=dual run_gdb hbreak)
expect 'Breakpoint 2, ' 'forced dual: the hardware breakpoint stops' "$out"
expect 'mode dual (asked)' 'forced dual: the arena stays dual' "$out"

[ $failed = 0 ] && echo "gdb breakpoints: ok"
exit $failed
