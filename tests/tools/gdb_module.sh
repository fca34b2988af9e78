#!/bin/sh
# gdb on a loaded module: `execmem load plugin.o --call f 1` under gdb in
# batch mode stops at a breakpoint on plugin.c:8 or on f, and bt, list and
# info symbol are right.  Software breakpoints in mprotect mode; in dual
# mode the code's view is read-only shared memory, so hbreak.  And a trap
# in a module built without frame pointers: the backtrace goes through its
# frames by their call frame information, in both modes (that module also
# has a COMDAT group with a relocation section, as C++ objects do).
# usage: gdb_module.sh GDB EXECMEM_CLI PLUGIN_O PLUGIN_CRASH_O
set -u
gdb=$1 cli=$2 plugin=$3 crash=$4
[ -x "$gdb" ] || { echo "SKIP: gdb not found (scripts/install-deps.sh installs it)"; exit 77; }
status=0

run_gdb() { # mode break-command
	EXECMEM_MODE=$1 timeout 30 "$gdb" -nx -q -batch -iex 'set debuginfod enabled off' \
		-ex 'set breakpoint pending on' -ex "$2" -ex run -ex bt -ex list \
		-ex 'info symbol $pc' -ex continue --args "$cli" load "$plugin" --call f 1 2>&1
}

expect() { # case output pattern
	if ! printf '%s\n' "$2" | grep -Eq "$3"; then
		echo "FAIL ($1): no line matching: $3"
		status=1
	fi
}

for case in "mprotect:break plugin.c:8" "mprotect:break f" "dual:hbreak plugin.c:8"; do
	out=$(run_gdb "${case%%:*}" "${case#*:}")
	expect "$case" "$out" 'reakpoint 1, f \(x=1\) at .*plugin\.c:8$'
	expect "$case" "$out" '^#0 +f \(x=1\) at .*plugin\.c:8$'
	expect "$case" "$out" '^#1 .* in call_symbol '
	expect "$case" "$out" '^8[[:space:]]+int y = helper\(x\);$'
	expect "$case" "$out" '^f \+ [0-9]+ in section \.text'
	expect "$case" "$out" '^f\(1\) = 4$'
	[ $status -eq 0 ] || { printf '%s\n' "$out"; exit 1; }
done
for mode in dual mprotect; do
	out=$(EXECMEM_MODE=$mode timeout 30 "$gdb" -nx -q -batch -iex 'set debuginfod enabled off' \
		-ex run -ex bt --args "$cli" load "$crash" --call f 1 2>&1)
	expect "$mode crash" "$out" '^#0 +g \(x=x@entry=1\) at .*plugin_crash\.c:9$'
	expect "$mode crash" "$out" '^#1 +0x[0-9a-f]+ in f \(x=1\) at .*plugin_crash\.c:16$'
	expect "$mode crash" "$out" '^#2 .* in call_symbol '
	[ $status -eq 0 ] || { printf '%s\n' "$out"; exit 1; }
done
echo "gdb_module: breakpoints, bt, list and info symbol right in a loaded module"
