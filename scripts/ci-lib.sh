# ci-lib.sh - sourced by .ci/run and scripts/ci-*.sh.
# shellcheck shell=bash
#
# CI counts a test that did not run as a failure: a skipped test passes in
# CTest's eyes, so a missing tool would otherwise leave part of the suite
# unrun with CI green.  A stage that expects some test not to run lists it,
# with the reason, in the allowlist it passes here.

# ci_check_not_run LOG [ALLOWED_TEST...]
#   LOG holds the output of a ctest run.  Returns 1 when ctest ran no test,
#   or reported tests it did not run (skipped, disabled) that are not among
#   ALLOWED_TEST; it then shows what those tests said, which ctest does not
#   (--output-on-failure leaves skipped tests out).
ci_check_not_run() {
	local log=$1 name allowed
	shift
	local -a unexpected=()
	if ! grep -q '% tests passed, ' "$log"; then
		echo "ci: $log: no ctest summary, so no test ran" >&2
		return 1
	fi
	# The summary lists them as "<tab>  12 - name (Skipped)" up to a blank line.
	while read -r name; do
		for allowed in "$@"; do
			[[ $name == "$allowed" ]] && continue 2
		done
		unexpected+=("$name")
	done < <(sed -n '/^The following tests did not run:/,/^$/ s/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p' "$log")
	((${#unexpected[@]})) || return 0
	local build
	build=$(sed -n 's/^Test project //p' "$log" | head -n 1)
	for name in "${unexpected[@]}"; do
		echo "ci: $name did not run; it said:" >&2
		test_output "$build/Testing/Temporary/LastTest.log" "$name" >&2
	done
	echo "ci: tests that did not run and are not allowed to skip: ${unexpected[*]}" >&2
	return 1
}

# test_output LAST_TEST_LOG NAME: the output of test NAME, indented.
test_output() {
	awk -v test="$2" '
		/^[0-9]+\/[0-9]+ Test: / { name = $0; sub(/^[0-9]+\/[0-9]+ Test: /, "", name); found = name == test; next }
		found && /^Output:$/ { getline; shown = 1; next }
		shown && /^<end of output>$/ { exit }
		shown { print "    " $0 }' "$1"
}
