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
};
void bench_sizes_get(bool quick, struct bench_sizes *out);

/* Run workload ("audit", "W1".."W6") for allocator a, repeats times. */
int bench_run_workload(const struct bench_allocator *a, const char *workload, int repeats,
		       bool quick);

#endif
