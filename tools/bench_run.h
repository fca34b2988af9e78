/*
 * bench_run.h - what the workloads of `execmem bench` share: the allocator
 * opened in the child process, loading and releasing program sets, and the
 * sample records the child sends to its parent (see bench.h).
 */
#ifndef EXECMEM_TOOLS_BENCH_RUN_H
#define EXECMEM_TOOLS_BENCH_RUN_H

#include <stdint.h>

#include "bench.h"
#include "emit.h"
#include "procfs.h"

/* An allocator opened in this process. */
struct runner {
	const struct bench_allocator *a;
	void *self;
};

/* One "S" record: a sample of metric of workload. */
void bench_report(const char *workload, const char *metric, const char *unit, double value);

/* Allocate and write programs [from, to) of set into blocks; 0 or a negative errno (said on stderr). */
int bench_load(const struct runner *r, const struct program_set *set, size_t from, size_t to,
	       struct bench_block *blocks);
/* Release programs [from, to); 0 or a negative errno. */
int bench_release(const struct runner *r, const struct program_set *set, size_t from, size_t to,
		  struct bench_block *blocks);
/* W1's unit of work: every program of set loaded and released in batches of 1,000; *ns its time. */
int bench_churn(const struct runner *r, const struct program_set *set, struct bench_block *blocks,
		uint64_t *ns);
/* Call a loaded program. */
uint32_t bench_call(const struct bench_block *block);

/* Memory of the mappings that hold the n blocks that are not NULL (see procfs_usage_of). */
int bench_usage_of(const struct bench_block *blocks, size_t n, struct procfs_usage *out);

/* A program set and a block per program. */
struct churn_setup {
	struct program_set set;
	struct bench_block *blocks;
};
/* Programs of the mix (fixed_size 0) or of fixed_size; 0 or -ENOMEM. */
int bench_setup(struct churn_setup *cs, size_t count, size_t fixed_size, uint64_t seed);
void bench_teardown(struct churn_setup *cs);

/* The workloads of bench_churn.c, bench_fork.c and bench_scale.c. */
int bench_workload_churn_pss(const struct runner *r, int repeats, const struct bench_sizes *sz);
int bench_workload_refill_pss(const struct runner *r, int repeats, const struct bench_sizes *sz);
int bench_workload_cold(const struct runner *r, int repeats, const struct bench_sizes *sz);
int bench_workload_fork(const struct runner *r, int repeats, const struct bench_sizes *sz);
int bench_workload_many_live(const struct runner *r, int repeats, const struct bench_sizes *sz);
int bench_workload_thread_scaling(const struct runner *r, int repeats, const struct bench_sizes *sz);

/* W1 in nthreads threads at once, each on its own set; *ns from the first start to the last end. */
int bench_churn_threads(const struct runner *r, const struct churn_setup *cs, int nthreads, uint64_t *ns);

#endif
