"""execmem trace on trace_target: every count exact, the status forwarded.

usage: trace_test.py EXECMEM TRACE_TARGET
"""
import os
import re
import subprocess
import sys
import tempfile

execmem, target = sys.argv[1], sys.argv[2]
failures = []
ROW = re.compile(r'^(\S+)\s+(\d+|-)\s+(.*)$')


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAIL', what)


def trace(functions, *args, env=None):
    """(exit status, {function: (calls, rest of the row)}, stderr)"""
    argv = [execmem, 'trace']
    for f in functions:
        argv += ['-f', f]
    run = subprocess.run(argv + ['--', target, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    rows = {}
    for line in run.stderr.splitlines():
        m = ROW.match(line)
        if m and m.group(1) in functions:
            rows[m.group(1)] = (int(m.group(2)) if m.group(2) != '-' else None, m.group(3))
    return run.returncode, rows, run.stderr, run.stdout


def expect_calls(what, rows, function, calls):
    got = rows.get(function, (None, 'no row'))
    check(got[0] == calls, '%s: %s counted %s (%s), expected %d' % (what, function, got[0],
                                                                    got[1], calls))
    if got[0]:
        check(re.match(r'^[\d.]+ (ns|us|ms|s)$', got[1]), '%s: mean of %s: %r' % (what, function, got[1]))


# An exported function and a static one (through the program's symbol table).
rc, rows, err, _ = trace(['trace_target_exported', 'count_static'], 'calls', '7')
check(rc == 0, 'calls: status %d: %s' % (rc, err))
expect_calls('calls', rows, 'trace_target_exported', 7)
expect_calls('calls', rows, 'count_static', 14)

# A libc function, by name and as FUNC@LIB, and one that does not exist.
rc, rows, err, _ = trace(['getpid', 'no_such_function'], 'getpid', '1000')
check(rc == 0, 'getpid: status %d: %s' % (rc, err))
expect_calls('getpid', rows, 'getpid', 1000)
check('not found' in rows.get('no_such_function', (0, ''))[1], 'unknown function: %r' % err)
rc, rows, err, _ = trace(['getpid@libc'], 'getpid', '250')
expect_calls('getpid@libc', rows, 'getpid@libc', 250)

# The parent and a forked child, summed; threads.
rc, rows, err, _ = trace(['trace_target_exported'], 'fork')
expect_calls('fork', rows, 'trace_target_exported', 6)
check('sums over 2 processes' in err, 'fork: %r' % err)
rc, rows, err, _ = trace(['trace_target_exported'], 'threads')
expect_calls('threads', rows, 'trace_target_exported', 40000)

# The exit status is the program's; _exit() reports nothing, and says so.
rc, rows, err, _ = trace(['trace_target_exported'], 'status', '7')
check(rc == 7, 'status: %d' % rc)
expect_calls('status', rows, 'trace_target_exported', 1)
rc, rows, err, _ = trace(['trace_target_exported'], '_exit')
check(rc == 0 and 'no report' in err, '_exit: %d %r' % (rc, err))

# A preload already set is kept, after the agent.
env = dict(os.environ, LD_PRELOAD='libm.so.6')
rc, rows, err, out = trace(['getpid'], 'preload', env=env)
check(out.split()[-1:] == ['libm.so.6'] and 'libexecmem-trace.so' in out, 'preload: %r' % out)

# The table in a file; a program that does not exist.
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'table')
    run = subprocess.run([execmem, 'trace', '-f', 'getpid', '-o', path, '--', target, 'getpid', '3'],
                         stderr=subprocess.PIPE, text=True, timeout=60)
    with open(path) as f:
        table = f.read()
    check(run.returncode == 0 and re.search(r'^getpid\s+3\s', table, re.M), 'table file: %r' % table)
run = subprocess.run([execmem, 'trace', '-f', 'getpid', '--', '/nonexistent/program'],
                     stderr=subprocess.PIPE, text=True, timeout=60)
check(run.returncode == 127 and 'cannot run' in run.stderr, 'no program: %d %r' % (run.returncode, run.stderr))

if failures:
    print('%d failures' % len(failures))
    sys.exit(1)
print('trace_test: all checks passed')
