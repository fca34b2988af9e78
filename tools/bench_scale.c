/*
 * bench_scale.c - the scale workloads of `execmem bench` (full runs only):
 *   S1  1,000,000 small programs live at once: Pss over their size, code in
 *       2 MiB pages, W1 and W4's calls with all of them live
 *   S2  W1 in 1, 2, 4 ... 16 threads at once: throughput per thread count
 *       and against one thread in the same repetition (on a machine with
 *       fewer CPUs than threads it should stay flat, not collapse)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_run.h"
#include "cli.h"

enum {
	MANY_SIZE = 32,         /* S1's programs, as W4's */
	MANY_CALL_SAMPLE = 262144, /* calls timed per repetition, in random order */
};

/* ---- S1 ------------------------------------------------------------------ */

static double time_random_calls(const struct churn_setup *cs, uint64_t seed, bool *wrong)
{
	size_t n = cs->set.count;
	uint32_t sum = 0, expected = 0;
	uint64_t t0 = now_ns();

	for (size_t c = 0; c < MANY_CALL_SAMPLE; c++) {
		size_t i = (size_t)(prng_next(&seed) % n);
		sum += bench_call(&cs->blocks[i]);
		expected += cs->set.expected[i];
	}
	*wrong = sum != expected;
	return (double)(now_ns() - t0) / MANY_CALL_SAMPLE;
}

static int many_live_once(const struct runner *r, const struct churn_setup *many,
			  const struct churn_setup *churner, uint64_t seed)
{
	size_t n = many->set.count;
	struct procfs_usage u;
	uint64_t ns;
	bool wrong = false;
	int err = bench_load(r, &many->set, 0, n, many->blocks);

	if (!err)
		err = bench_usage_of(many->blocks, n, &u);
	if (!err) {
		bench_report("S1", "pss_ratio", "x", (double)u.pss / (double)(n * 64));
		bench_report("S1", "huge_page_mib", "MiB", (double)u.huge / (1024.0 * 1024.0));
	}
	if (!err && (r->a->caps & BENCH_CAN_EXECUTE)) {
		bench_report("S1", "ns_per_call", "ns", time_random_calls(many, seed, &wrong));
		err = wrong ? -EIO : 0;
	}
	if (!err)
		err = bench_churn(r, &churner->set, churner->blocks, &ns);
	if (!err)
		bench_report("S1", "w1_ns_per_op", "ns", (double)ns / (double)churner->set.count);
	int err2 = bench_release(r, &many->set, 0, n, many->blocks);
	return err ? err : err2;
}

int bench_workload_many_live(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup many = { 0 }, churner = { 0 };
	int err = bench_setup(&many, sz->many_live, MANY_SIZE, 12);
	if (!err)
		err = bench_setup(&churner, sz->churn_programs, 0, 1);
	for (int rep = 0; !err && rep < repeats; rep++)
		err = many_live_once(r, &many, &churner, now_ns());
	if (err == -EIO)
		fprintf(stderr, "execmem bench: %s: S1 programs returned wrong results\n", r->a->name);
	bench_teardown(&many);
	bench_teardown(&churner);
	return err;
}

/* ---- S2 ------------------------------------------------------------------ */

/* Each thread churns the same images into blocks of its own. */
static int scaling_once(const struct runner *r, struct churn_setup *cs, int max_threads)
{
	double one = 0;
	for (int t = 1; t <= max_threads; t *= 2) {
		uint64_t ns;
		char metric[48];
		int err = bench_churn_threads(r, cs, t, &ns);
		if (err)
			return err;
		double per_us = (double)t * (double)cs[0].set.count * 1e3 / (double)ns;
		one = t == 1 ? per_us : one;
		snprintf(metric, sizeof(metric), "programs_per_us_%dt", t);
		bench_report("S2", metric, "1/us", per_us);
		snprintf(metric, sizeof(metric), "throughput_vs_1t_%dt", t);
		bench_report("S2", metric, "x", per_us / one);
	}
	return 0;
}

int bench_workload_thread_scaling(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	int n = sz->max_threads;
	struct churn_setup *cs = calloc((size_t)n, sizeof(*cs));
	int err = cs ? bench_setup(&cs[0], sz->churn_programs, 0, 1) : -ENOMEM;

	for (int i = 1; !err && i < n; i++) {
		cs[i].set = cs[0].set;
		cs[i].blocks = calloc(cs[0].set.count, sizeof(*cs[i].blocks));
		err = cs[i].blocks ? 0 : -ENOMEM;
	}
	for (int rep = 0; !err && rep < repeats; rep++)
		err = scaling_once(r, cs, n);
	for (int i = 1; cs && i < n; i++)
		free(cs[i].blocks);
	if (cs)
		bench_teardown(&cs[0]);
	free(cs);
	return err;
}
