/*
 * bench_churn.c - the workloads of `execmem bench` about memory left after
 * churn and about cold starts:
 *   W3 churn   programs live while others are freed and replaced at random;
 *              then Pss over the bytes of the programs live
 *   W3 refill  what `execmem demo` does: load, free every other program,
 *              load half as many into the holes; then the same ratio
 *   W7 cold    a fresh process loads programs (the parent starts one process
 *              per repetition), then loads them again into the warm arena
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_run.h"
#include "cli.h"

static size_t rounded_size(size_t size)
{
	return (size + 63) / 64 * 64;
}

/* Put image k of set into *block. */
static int load_image(const struct runner *r, const struct program_set *set, size_t k,
		      struct bench_block *block)
{
	int err = r->a->alloc(r->self, set->size[k], block);
	if (!err)
		err = r->a->write(r->self, block, set->bytes + set->offset[k], set->size[k]);
	if (err)
		fprintf(stderr, "execmem bench: %s: loading program %zu failed: %s\n", r->a->name, k,
			strerror(-err));
	return err;
}

/* Pss of the mappings holding the live blocks over the bytes they hold. */
static int report_pss_ratio(const char *metric, const struct bench_block *blocks, size_t n,
			    size_t live_bytes)
{
	struct procfs_usage u;
	int err = bench_usage_of(blocks, n, &u);
	if (!err)
		bench_report("W3", metric, "x", (double)u.pss / (double)live_bytes);
	return err;
}

/* ---- W3 churn ------------------------------------------------------------ */

/* One repetition: slot j holds image image_of[j] of the set. */
static int churn_pss_once(const struct runner *r, const struct churn_setup *cs, size_t steps,
			  size_t *image_of, uint64_t seed)
{
	size_t n = cs->set.count, live_bytes = 0;
	int err = bench_load(r, &cs->set, 0, n, cs->blocks);

	for (size_t j = 0; j < n; j++)
		image_of[j] = j;
	uint64_t t0 = now_ns();
	for (size_t s = 0; !err && s < steps; s++) {
		size_t j = (size_t)(prng_next(&seed) % n), k = (size_t)(prng_next(&seed) % n);
		err = r->a->release(r->self, &cs->blocks[j], cs->set.size[image_of[j]]);
		if (!err)
			err = load_image(r, &cs->set, k, &cs->blocks[j]);
		image_of[j] = k;
	}
	uint64_t ns = now_ns() - t0;
	if (err)
		return err;
	for (size_t j = 0; j < n; j++)
		live_bytes += rounded_size(cs->set.size[image_of[j]]);
	bench_report("W3", "ns_per_churn_step", "ns", (double)ns / (double)steps);
	err = report_pss_ratio("pss_ratio_churn", cs->blocks, n, live_bytes);
	for (size_t j = 0; j < n; j++) {
		int err2 = r->a->release(r->self, &cs->blocks[j], cs->set.size[image_of[j]]);
		err = err ? err : err2;
	}
	return err;
}

int bench_workload_churn_pss(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup cs = { 0 };
	size_t *image_of = malloc(sz->churn_live * sizeof(*image_of));
	int err = image_of ? bench_setup(&cs, sz->churn_live, 0, 8) : -ENOMEM;

	for (int rep = 0; !err && rep < repeats; rep++)
		err = churn_pss_once(r, &cs, sz->churn_steps, image_of, 100 + (uint64_t)rep);
	bench_teardown(&cs);
	free(image_of);
	return err;
}

/* ---- W3 refill ----------------------------------------------------------- */

static int refill_once(const struct runner *r, const struct churn_setup *cs, size_t first)
{
	size_t total = cs->set.count, live_bytes = 0;
	int err = bench_load(r, &cs->set, 0, first, cs->blocks);

	for (size_t i = 1; !err && i < first; i += 2) {
		err = r->a->release(r->self, &cs->blocks[i], cs->set.size[i]);
		cs->blocks[i].code = NULL;
	}
	if (!err)
		err = bench_load(r, &cs->set, first, total, cs->blocks);
	if (err)
		return err;
	for (size_t i = 0; i < total; i++)
		if (cs->blocks[i].code)
			live_bytes += rounded_size(cs->set.size[i]);
	err = report_pss_ratio("pss_ratio_refill", cs->blocks, total, live_bytes);
	for (size_t i = 0; i < total; i++) {
		if (!cs->blocks[i].code)
			continue;
		int err2 = r->a->release(r->self, &cs->blocks[i], cs->set.size[i]);
		err = err ? err : err2;
	}
	return err;
}

int bench_workload_refill_pss(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup cs;
	size_t first = sz->refill_programs;
	int err = bench_setup(&cs, first + first / 2, 0, 9);

	for (int rep = 0; !err && rep < repeats; rep++)
		err = refill_once(r, &cs, first);
	bench_teardown(&cs);
	return err;
}

/* ---- W7 cold start ------------------------------------------------------- */

struct load_timing {
	uint64_t total_ns, first_ns;
	uint64_t *creating_ns;  /* per program that made the allocator map memory */
	size_t creating;
};

/*
 * Load every program, timing each alone: a program during whose load the
 * allocator made a memory system call is taken as one that made a chunk
 * (or block).  The calls are counted where they enter the C library
 * (bench_oscount.c), for execmem as for the peers.
 */
static int timed_load(const struct runner *r, const struct churn_setup *cs, struct load_timing *t)
{
	t->total_ns = t->first_ns = 0;
	t->creating = 0;
	for (size_t i = 0; i < cs->set.count; i++) {
		uint64_t calls = bench_wrapped_os_calls(), t0 = now_ns();
		int err = load_image(r, &cs->set, i, &cs->blocks[i]);
		uint64_t ns = now_ns() - t0;
		if (err)
			return err;
		t->total_ns += ns;
		if (i == 0)
			t->first_ns = ns;
		if (bench_wrapped_os_calls() != calls)
			t->creating_ns[t->creating++] = ns;
	}
	return 0;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void report_cold(const struct load_timing *cold, const struct load_timing *warm, size_t n)
{
	bench_report("W7", "cold_ns_per_program", "ns", (double)cold->total_ns / (double)n);
	bench_report("W7", "warm_ns_per_program", "ns", (double)warm->total_ns / (double)n);
	bench_report("W7", "cold_warm_ratio", "x", (double)cold->total_ns / (double)warm->total_ns);
	bench_report("W7", "first_program_us", "us", (double)cold->first_ns / 1e3);
	bench_report("W7", "chunks_made_cold", "count", (double)cold->creating);
	if (cold->creating) {
		qsort(cold->creating_ns, cold->creating, sizeof(uint64_t), compare_u64);
		bench_report("W7", "chunk_creation_us", "us",
			     (double)cold->creating_ns[cold->creating / 2] / 1e3);
	}
}

/* The parent runs this in a fresh process per repetition (bench.c). */
int bench_workload_cold(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup cs = { 0 };
	size_t n = sz->cold_programs;
	struct load_timing cold = { .creating_ns = calloc(n, sizeof(uint64_t)) };
	struct load_timing warm = { .creating_ns = calloc(n, sizeof(uint64_t)) };
	int err = cold.creating_ns && warm.creating_ns ? bench_setup(&cs, n, 0, 10) : -ENOMEM;

	(void)repeats;
	if (!err)
		err = timed_load(r, &cs, &cold);
	if (!err)
		err = bench_release(r, &cs.set, 0, n, cs.blocks);
	if (!err)
		err = timed_load(r, &cs, &warm);
	if (!err)
		err = bench_release(r, &cs.set, 0, n, cs.blocks);
	if (!err)
		report_cold(&cold, &warm, n);
	bench_teardown(&cs);
	free(cold.creating_ns);
	free(warm.creating_ns);
	return err;
}
