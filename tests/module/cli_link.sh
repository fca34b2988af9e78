#!/bin/sh
# `execmem load` as a linker: several inputs, archives, -l/-L, --whole-archive,
# --call refused before any constructor runs.
#   cli_link.sh CC AR EXECMEM SRCDIR WORKDIR
set -u
cc=$1 ar=$2 execmem=$3 src=$4/modules work=$5
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
mkdir -p "$work" && cd "$work" || exit 1
for m in m_math m_use_dep m_sel_main m_sel_used m_sel_second m_sel_third m_sel_broken \
         m_sel_optional; do
	"$cc" -O2 -c -o $m.o "$src/$m.c" || exit 1
done
"$cc" -O2 -fPIC -shared -o libexecmem_test_dep.so "$src/m_dep.c" || exit 1
rm -f libsel1.a libsel2.a
"$ar" rcs libsel1.a m_sel_used.o m_sel_broken.o m_sel_third.o m_sel_optional.o &&
	"$ar" rcs libsel2.a m_sel_second.o || exit 1

# -l m: the same value as the program linked with -lm.
"$cc" -O2 -DMATH_MAIN -o math_native "$src/m_math.c" -lm || exit 1
want=$(./math_native)
got=$("$execmem" load m_math.o -l m --call math_value 2 | grep '^math_value') ||
	fail "-l m: $("$execmem" load m_math.o -l m --call math_value 2 2>&1)"
[ "$got" = "$want" ] || fail "-l m gave '$got', native '$want'"

# -L DIR -l NAME; without -L the library is not found and the message says where it looked.
out=$("$execmem" load m_use_dep.o --call use_dep 4 2>&1) &&
	fail "use_dep loaded without its library"
echo "$out" | grep -q "undefined symbol 'dep_value'" || fail "no undefined symbol message: $out"
out=$("$execmem" load m_use_dep.o -l execmem_test_dep --call use_dep 4 2>&1) &&
	fail "-l found a library outside the search path"
echo "$out" | grep -q "cannot find -l execmem_test_dep: .*libexecmem_test_dep.so.* /usr/lib" ||
	fail "no search message: $out"
# -L serves every -l, even one before it, as with ld.
out=$("$execmem" load m_use_dep.o -l execmem_test_dep -L "$work" --call use_dep 4 2>&1) ||
	fail "-l -L: $out"
echo "$out" | grep -q '^use_dep(4) = 18$' || fail "-L -l gave: $out"
echo "$out" | grep -q '^use_dep constructor ran$' || fail "the constructor did not run: $out"

# --call of a data symbol or an unknown one: refused, no constructor ran.
for target in use_dep_data no_such_function; do
	out=$("$execmem" load -L"$work" -lexecmem_test_dep m_use_dep.o --call $target 2>&1)
	rc=$?
	[ $rc -eq 2 ] || fail "--call $target: exit status $rc"
	echo "$out" | grep -q "refused, nothing was run" || fail "--call $target: $out"
	echo "$out" | grep -q "constructor ran" && fail "--call $target ran a constructor"
done

# Archives: only the members needed, over two archives; --whole-archive per archive.
out=$("$execmem" load m_sel_main.o libsel1.a libsel2.a --call sel_main 4 2>&1) ||
	fail "member selection: $out"
echo "$out" | grep -q '^loaded .*: 4 objects' || fail "member selection linked: $out"
echo "$out" | grep -q '^sel_main(4) = 71$' || fail "member selection gave: $out"
out=$("$execmem" load m_sel_main.o --whole-archive libsel1.a --no-whole-archive libsel2.a \
	--call sel_main 4 2>&1) && fail "--whole-archive linked a broken member"
echo "$out" | grep -q "undefined symbol 'sel_symbol_nobody_defines'" ||
	fail "--whole-archive message: $out"
out=$("$execmem" load m_sel_main.o libsel1.a --whole-archive libsel2.a --call sel_main 4 2>&1) ||
	fail "--whole-archive of the other archive only: $out"
# An archive alone: --call pulls in the member that defines the function.
out=$("$execmem" load libsel1.a --call sel_third 4 2>&1) || fail "archive alone: $out"
echo "$out" | grep -q '^sel_third(4) = 7$' || fail "archive alone gave: $out"

[ $failures -eq 0 ] && echo "execmem load link tests passed"
exit $((failures != 0))
