/*
 * bench.h - the parts of `execmem bench` shared between the parent that
 * orchestrates and the child processes that measure.
 */
#ifndef EXECMEM_TOOLS_BENCH_H
#define EXECMEM_TOOLS_BENCH_H

#include <stdbool.h>
#include <stddef.h>

#include "bench_alloc.h"

/* Every allocator, in the order of the report; NULL-terminated. */
extern const struct bench_allocator *const bench_allocator_list[];
const struct bench_allocator *bench_allocator_find(const char *name);

/* Exit status of a child whose allocator is not available (a "U" line says why). */
#define BENCH_CHILD_UNAVAILABLE 4

/*
 * Child protocol: one record per line on stdout, fields separated by tabs.
 *   S workload metric unit value                  one sample
 *   R workload allocator metric unit med min max  a summary made elsewhere (M1)
 *   A mode wx_mappings wrong_results first_wx     the audit of an allocator
 *   U reason                                      the allocator is unavailable
 */
struct bench_sizes {
	size_t churn_programs;     /* W1, W5, W6 */
	size_t cycle_count;        /* W2 */
	size_t resident_counts[2]; /* W3; 0 = unused */
	size_t call_counts[2];     /* W4; 0 = unused */
	size_t churn_live;         /* W3 churn: programs live while ... */
	size_t churn_steps;        /* ... this many are freed and replaced at random */
	size_t refill_programs;    /* W3 refill: loaded, every other freed, half as many loaded */
	size_t cold_programs;      /* W7 */
	size_t fork_mib[3];        /* W8: MiB of live code; 0 = unused */
	size_t many_live;          /* S1; 0 = not run */
	int max_threads;           /* S2: 1, 2, 4 ... up to this; 0 = not run */
};
void bench_sizes_get(bool quick, struct bench_sizes *out);

/* Run workload ("audit", "W1".."W8", "S1", "S2", see bench_workloads.c) for allocator a, repeats times. */
int bench_run_workload(const struct bench_allocator *a, const char *workload, int repeats,
		       bool quick);

#endif
