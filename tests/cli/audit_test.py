"""execmem audit against processes that make each hazard on purpose.

usage: audit_test.py EXECMEM AUDIT_TARGET

Each flavour of audit_target is started, audited by pid with --json (and
once as text), and the findings are checked against the addresses the
target printed; then the command audits itself.
"""
import json
import subprocess
import sys

execmem, target = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAIL', what)


def audit(pid, *options):
    run = subprocess.run([execmem, 'audit', *options, str(pid)], stdout=subprocess.PIPE,
                         text=True, timeout=30)
    return run.returncode, run.stdout


def with_target(flavour, env=None):
    proc = subprocess.Popen([target, flavour], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stdout.readline().split()
    assert line and line[0] == 'ready', '%s: target said %r' % (flavour, line)
    addrs = [int(a, 16) for a in line[1:]]
    rc, out = audit(proc.pid, '--json')
    text_rc, text = audit(proc.pid)
    proc.stdin.close()
    proc.wait(timeout=10)
    report = json.loads(out)
    check(report['pid'] == proc.pid, '%s: pid %s' % (flavour, report['pid']))
    check(report['mdwe'] == 'unknown', '%s: another process\'s MDWE is %s' % (flavour, report['mdwe']))
    check(text_rc == rc, '%s: text exit %d, JSON exit %d' % (flavour, text_rc, rc))
    return rc, report, addrs, text


def findings(report, kind):
    return [f for f in report['findings'] if f['kind'] == kind]


def start(mapping):
    return int(mapping['start'], 16)


def holds(mapping, addr):
    return int(mapping['start'], 16) <= addr < int(mapping['end'], 16)


# W+X: exit 1, the mapping listed, not execmem's.
rc, report, (addr,), text = with_target('wx')
check(rc == 1, 'wx: exit %d' % rc)
wx = findings(report, 'wx')
check(any(start(f['mapping']) == addr and not f['mapping']['execmem'] for f in wx),
      'wx: %#x not among %s' % (addr, wx))
check(report['wx'] == len(wx) >= 1, 'wx: count %d' % report['wx'])
check(('wx ' in text) and ('%x-' % addr) in text, 'wx: text output %r' % text)

# A memfd page mapped RW and RX: dual-mapped, no W+X, not execmem's.
rc, report, (rw, rx), text = with_target('dualmap')
check(rc == 0, 'dualmap: exit %d' % rc)
pairs = findings(report, 'dual-mapped')
check(any(start(f['mapping']) == rw and start(f['other']) == rx and f['bytes'] == 4096 and
          'memfd:audit-target' in f['mapping']['name'] and not f['mapping']['execmem']
          for f in pairs), 'dualmap: RW %#x + RX %#x not among %s' % (rw, rx, pairs))
check(not findings(report, 'wx') and not findings(report, 'execmem-alias'),
      'dualmap: other findings %s' % report['findings'])
check('dual-mapped' in text, 'dualmap: text output %r' % text)

# Text patched through mprotect: anonymous pages in r-x file text.
rc, report, (page,), text = with_target('patch')
check(rc == 0, 'patch: exit %d' % rc)
patched = findings(report, 'patched-text')
check(any(holds(f['mapping'], page) and f['bytes'] >= 4096 and f['mapping']['perms'] == 'r-xp' and
          f['mapping']['name'].endswith('audit_target') for f in patched),
      'patch: page %#x not among %s' % (page, patched))

# execmem's dual mode: its chunk and alias are execmem's, by design.
for mode, aliased in (('dual', True), ('mprotect', False)):
    rc, report, (code,), text = with_target('execmem', env={'EXECMEM_MODE': mode})
    check(rc == 0, 'execmem %s: exit %d' % (mode, rc))
    aliases = findings(report, 'execmem-alias')
    check(not findings(report, 'dual-mapped') and not findings(report, 'wx'),
          'execmem %s: findings %s' % (mode, report['findings']))
    if aliased:
        check(any(holds(f['other'], code) and f['mapping']['execmem'] and f['other']['execmem'] and
                  '/memfd:execmem:code' in f['other']['name'] for f in aliases),
              'execmem dual: code %#x not among %s' % (code, aliases))
        check(report['execmem_aliases'] == len(aliases), 'execmem dual: count')
    else:
        check(not aliases, 'execmem mprotect: aliases %s' % aliases)

# The command audits itself without a pid, and knows its MDWE state.
run = subprocess.run([execmem, 'audit', '--json'], stdout=subprocess.PIPE, text=True, timeout=30)
report = json.loads(run.stdout)
check(run.returncode == 0 and report['wx'] == 0, 'self: exit %d, %s' % (run.returncode, report))
check(report['mdwe'] in ('off', 'refuse-exec-gain', 'unsupported'), 'self: MDWE %s' % report['mdwe'])

# No such process: the system's refusal, exit 3.
run = subprocess.run([execmem, 'audit', '2147483646'], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, timeout=30)
check(run.returncode == 3 and 'No such process' in run.stderr,
      'no process: exit %d, %r' % (run.returncode, run.stderr))

print('audit: %d failures' % len(failures))
sys.exit(1 if failures else 0)
