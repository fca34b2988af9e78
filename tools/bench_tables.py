#!/usr/bin/env python3
"""Put the figures of one `execmem bench --json` run into docs/benchmarks.md.

usage: bench_tables.py RUN.jsonl DOC.md

Rewrites, in place, every block of DOC.md that lies between a line
`<!-- bench:KEY -->` and the next `<!-- /bench -->`:
  KEY = run         where and when the run was made
  KEY = allocators  every allocator, its mode, configuration and W+X audit
  KEY = goals       the goals, measured against their targets
  KEY = W1 ... S2   a table of that workload: a line per metric, a column
                    per allocator, the median and its ratio to execmem's
"""
import json
import re
import sys


def fmt(v):
    if v == 0 or abs(v) >= 100:
        return '{:,.0f}'.format(v)
    if abs(v) >= 0.1:
        return '{:.2f}'.format(v)
    return '{:.3g}'.format(v)


def load(path):
    run, allocs, rows, goals = None, [], [], []
    for line in open(path):
        line = line.strip()
        if not line.startswith('{'):
            continue
        obj = json.loads(line)
        if 'run' in obj:
            run = obj
        elif 'goal' in obj:
            goals.append(obj)
        elif 'workload' in obj:
            rows.append(obj)
        else:
            allocs.append(obj)
    return run, allocs, rows, goals


def run_block(run):
    if not run:
        return ['(no run line in the input)']
    return ['{date}, {machine}, {cpus} CPUs, Linux {kernel}{q}; load average {lb} before, {la} after.'.format(
        q=', --quick' if run['quick'] else '', lb=run['load_before'], la=run['load_after'], **run)]


def allocators_block(allocs):
    out = ['| allocator | W+X (audit) | mode | configuration |', '| --- | --- | --- | --- |']
    for a in allocs:
        if a['status'] == 'unavailable':
            out.append('| `{}` | - | unavailable: {} | |'.format(a['allocator'], a.get('reason', '')))
            continue
        mode = a.get('mode', '')
        if a['status'] == 'failed':
            mode += ' (FAILED: {})'.format(a.get('reason', ''))
        out.append('| `{}` | {} | {} | {} |'.format(a['allocator'], a.get('wx_mappings', '-'), mode,
                                                   a.get('config', '')))
    return out


def goals_block(goals):
    out = ['| goal (medians) | target | measured | |', '| --- | --- | --- | --- |']
    for g in goals:
        out.append('| %s | %s %s | %s | %s |' % (g['goal'], '>=' if g['at_least'] else '<=', fmt(g['target']),
                                             fmt(g['measured']), 'met' if g['met'] else '**missed**'))
    return out


def workload_block(rows, workload):
    mine = [r for r in rows if r['workload'] == workload]
    allocators, metrics = [], []
    for r in mine:
        if r['allocator'] not in allocators:
            allocators.append(r['allocator'])
        if (r['metric'], r['unit']) not in metrics:
            metrics.append((r['metric'], r['unit']))
    if not mine:
        return ['(not measured in this run)']
    cell = {(r['metric'], r['allocator']): r for r in mine}
    out = ['| metric (unit) | ' + ' | '.join('`%s`' % a for a in allocators) + ' |',
           '| --- |' + ' --- |' * len(allocators)]
    for metric, unit in metrics:
        base = cell.get((metric, 'execmem'))
        cells = []
        for a in allocators:
            r = cell.get((metric, a))
            if not r:
                cells.append('-')
            elif a == 'execmem' or not base or not base['median']:
                cells.append('**%s**' % fmt(r['median']) if a == 'execmem' else fmt(r['median']))
            else:
                cells.append('%s (%sx)' % (fmt(r['median']), fmt(r['median'] / base['median'])))
        out.append('| %s (%s) | %s |' % (metric, unit, ' | '.join(cells)))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, allocs, rows, goals = load(sys.argv[1])
    doc = open(sys.argv[2]).read().split('\n')
    out, key = [], None
    for line in doc:
        start = re.match(r'<!-- bench:(\S+) -->$', line)
        if key is None:
            out.append(line)
            if start:
                key = start.group(1)
                out += (run_block(run) if key == 'run' else
                        allocators_block(allocs) if key == 'allocators' else
                        goals_block(goals) if key == 'goals' else
                        workload_block(rows, key))
        elif line == '<!-- /bench -->':
            out.append(line)
            key = None
    open(sys.argv[2], 'w').write('\n'.join(out))


if __name__ == '__main__':
    main()
