/*
 * bench_workloads.c - the workloads of `execmem bench`, written once over
 * struct bench_allocator and run in a child process per allocator and
 * workload, which reports samples to its parent on stdout (see bench.h).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_run.h"
#include "cli.h"

enum {
	CHURN_BATCH = 1000,     /* W1 allocates and writes this many, then frees them */
	CYCLE_SIZE = 64,        /* W2's program */
	CALL_SIZE = 32,         /* W4's programs: a load, a few adds, a return */
	CALL_PASSES = 4,        /* W4 timed passes over all programs, after one untimed */
	AUDIT_PROGRAMS = 1000,
};

void bench_sizes_get(bool quick, struct bench_sizes *out)
{
	static const struct bench_sizes full = {
		.churn_programs = 10000, .cycle_count = 100000,
		.resident_counts = { 10000, 100000 }, .call_counts = { 16384, 262144 },
		.churn_live = 10000, .churn_steps = 100000, .refill_programs = 10000,
		.cold_programs = 10000, .fork_mib = { 1, 16, 64 },
		.many_live = 1000000, .max_threads = 16,
	};
	static const struct bench_sizes small = {
		.churn_programs = 2000, .cycle_count = 20000,
		.resident_counts = { 10000, 0 }, .call_counts = { 16384, 0 },
		.churn_live = 2000, .churn_steps = 5000, .refill_programs = 2000,
		.cold_programs = 2000, .fork_mib = { 1, 4, 0 },
	};
	*out = quick ? small : full;
}

void bench_report(const char *workload, const char *metric, const char *unit, double value)
{
	printf("S\t%s\t%s\t%s\t%.6f\n", workload, metric, unit, value);
}

static int complain(const struct runner *r, const char *what, size_t index, int err)
{
	fprintf(stderr, "execmem bench: %s: %s of program %zu failed: %s\n", r->a->name, what, index,
		strerror(-err));
	return err;
}

int bench_load(const struct runner *r, const struct program_set *set, size_t from, size_t to,
	       struct bench_block *blocks)
{
	for (size_t i = from; i < to; i++) {
		int err = r->a->alloc(r->self, set->size[i], &blocks[i]);
		if (err)
			return complain(r, "allocation", i, err);
		err = r->a->write(r->self, &blocks[i], set->bytes + set->offset[i], set->size[i]);
		if (err)
			return complain(r, "write", i, err);
	}
	return 0;
}

int bench_release(const struct runner *r, const struct program_set *set, size_t from, size_t to,
		  struct bench_block *blocks)
{
	for (size_t i = from; i < to; i++) {
		int err = r->a->release(r->self, &blocks[i], set->size[i]);
		if (err)
			return complain(r, "release", i, err);
	}
	return 0;
}

int bench_churn(const struct runner *r, const struct program_set *set, struct bench_block *blocks,
		uint64_t *ns)
{
	uint64_t t0 = now_ns();
	for (size_t from = 0; from < set->count; from += CHURN_BATCH) {
		size_t to = from + CHURN_BATCH < set->count ? from + CHURN_BATCH : set->count;
		int err = bench_load(r, set, from, to, blocks);
		if (!err)
			err = bench_release(r, set, from, to, blocks);
		if (err)
			return err;
	}
	*ns = now_ns() - t0;
	return 0;
}

uint32_t bench_call(const struct bench_block *block)
{
	return ((program_fn)(uintptr_t)block->code)();
}

/* ---- W1, W6: churn ------------------------------------------------------ */

int bench_setup(struct churn_setup *cs, size_t count, size_t fixed_size, uint64_t seed)
{
	cs->blocks = NULL;
	if (program_set_make(&cs->set, count, fixed_size, seed))
		return -ENOMEM;
	cs->blocks = calloc(count, sizeof(*cs->blocks));
	return cs->blocks ? 0 : -ENOMEM;
}

void bench_teardown(struct churn_setup *cs)
{
	free(cs->blocks);
	program_set_free(&cs->set);
}

static int workload_churn(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup cs;
	uint64_t ns;
	int err = bench_setup(&cs, sz->churn_programs, 0, 1);

	/* One untimed round first, as W6 does: making and first touching the
	 * memory (W7's subject) would otherwise weigh on the first sample only,
	 * a third more than on the others. */
	if (!err)
		err = bench_churn(r, &cs.set, cs.blocks, &ns);
	for (int rep = 0; !err && rep < repeats; rep++) {
		err = bench_churn(r, &cs.set, cs.blocks, &ns);
		if (!err)
			bench_report("W1", "ns_per_op", "ns", (double)ns / (double)cs.set.count);
	}
	bench_teardown(&cs);
	return err;
}

static int workload_syscalls(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup cs;
	uint64_t ns;
	int err = bench_setup(&cs, sz->churn_programs, 0, 6);

	/* One untimed round first: steady state is what W6 is about. */
	if (!err)
		err = bench_churn(r, &cs.set, cs.blocks, &ns);
	for (int rep = 0; !err && rep < repeats; rep++) {
		uint64_t calls = r->a->os_calls(r->self), faults = procfs_page_faults();
		err = bench_churn(r, &cs.set, cs.blocks, &ns);
		if (err)
			break;
		double n = (double)cs.set.count;
		bench_report("W6", "syscalls_per_op", "calls", (double)(r->a->os_calls(r->self) - calls) / n);
		bench_report("W6", "faults_per_op", "faults", (double)(procfs_page_faults() - faults) / n);
	}
	bench_teardown(&cs);
	return err;
}

/* ---- W2: a lone cycle ---------------------------------------------------- */

static int workload_cycle(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct program_set set;
	struct bench_block block;
	int err = program_set_make(&set, 1, CYCLE_SIZE, 2);

	for (int rep = 0; !err && rep < repeats; rep++) {
		uint64_t t0 = now_ns();
		for (size_t i = 0; !err && i < sz->cycle_count; i++) {
			err = bench_load(r, &set, 0, 1, &block);
			if (!err)
				err = bench_release(r, &set, 0, 1, &block);
		}
		if (!err)
			bench_report("W2", "ns_per_op", "ns", (double)(now_ns() - t0) / (double)sz->cycle_count);
	}
	program_set_free(&set);
	return err;
}

/* ---- W3: resident memory ------------------------------------------------- */

static int compare_addresses(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return (x > y) - (x < y);
}

int bench_usage_of(const struct bench_block *blocks, size_t n, struct procfs_usage *out)
{
	uintptr_t *addrs = malloc((n ? n : 1) * sizeof(*addrs));
	size_t live = 0;

	if (!addrs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (blocks[i].code)
			addrs[live++] = (uintptr_t)blocks[i].code;
	qsort(addrs, live, sizeof(*addrs), compare_addresses);
	int err = procfs_usage_of(addrs, live, out);
	free(addrs);
	return err;
}

static int resident_once(const struct runner *r, const struct churn_setup *cs, double *ratio)
{
	size_t n = cs->set.count, rounded = 0;
	struct procfs_usage u;
	int err = bench_load(r, &cs->set, 0, n, cs->blocks);

	if (!err) {
		for (size_t i = 0; i < n; i++)
			rounded += (cs->set.size[i] + 63) / 64 * 64;
		err = bench_usage_of(cs->blocks, n, &u);
		*ratio = (double)u.pss / (double)rounded;
		int err2 = bench_release(r, &cs->set, 0, n, cs->blocks);
		err = err ? err : err2;
	}
	return err;
}

static int workload_resident(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	int err = 0;
	for (size_t k = 0; !err && k < 2 && sz->resident_counts[k]; k++) {
		struct churn_setup cs;
		char metric[48];
		double ratio;

		snprintf(metric, sizeof(metric), "pss_ratio_%zu", sz->resident_counts[k]);
		err = bench_setup(&cs, sz->resident_counts[k], 0, 3 + k);
		for (int rep = 0; !err && rep < repeats; rep++) {
			err = resident_once(r, &cs, &ratio);
			if (!err)
				bench_report("W3", metric, "x", ratio);
		}
		bench_teardown(&cs);
	}
	return err;
}

/* ---- W4: calls ----------------------------------------------------------- */

static void shuffle(struct bench_block *v, size_t n, uint64_t seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(prng_next(&seed) % i);
		struct bench_block t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

static uint32_t call_all(const struct bench_block *order, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += bench_call(&order[i]);
	return sum;
}

/* One W4 repetition: *ns_per_call, and *huge_mib of the code's mappings in 2 MiB pages. */
static int calls_once(const struct runner *r, const struct churn_setup *cs, uint64_t seed,
		      double *ns_per_call, double *huge_mib)
{
	size_t n = cs->set.count;
	struct bench_block *order = malloc(n * sizeof(*order));
	uint32_t expected = 0;
	int err = order ? bench_load(r, &cs->set, 0, n, cs->blocks) : -ENOMEM;

	if (!err) {
		for (size_t i = 0; i < n; i++)
			expected += cs->set.expected[i];
		memcpy(order, cs->blocks, n * sizeof(*order));
		shuffle(order, n, seed);
		uint32_t wrong = call_all(order, n) != expected; /* untimed: first touch */
		uint64_t t0 = now_ns();
		for (int pass = 0; pass < CALL_PASSES; pass++)
			wrong += call_all(order, n) != expected;
		*ns_per_call = (double)(now_ns() - t0) / (double)(n * CALL_PASSES);
		struct procfs_usage u;
		err = bench_usage_of(cs->blocks, n, &u);
		*huge_mib = (double)u.huge / (1024.0 * 1024.0);
		if (wrong) {
			fprintf(stderr, "execmem bench: %s: W4 programs returned wrong results\n", r->a->name);
			err = -EIO;
		}
		int err2 = bench_release(r, &cs->set, 0, n, cs->blocks);
		err = err ? err : err2;
	}
	free(order);
	return err;
}

static int workload_calls(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	int err = 0;
	for (size_t k = 0; !err && k < 2 && sz->call_counts[k]; k++) {
		struct churn_setup cs;
		char metric[48], huge[48];
		double ns, mib;

		snprintf(metric, sizeof(metric), "ns_per_call_%zu", sz->call_counts[k]);
		snprintf(huge, sizeof(huge), "huge_page_mib_%zu", sz->call_counts[k]);
		err = bench_setup(&cs, sz->call_counts[k], CALL_SIZE, 4 + k);
		for (int rep = 0; !err && rep < repeats; rep++) {
			err = calls_once(r, &cs, now_ns(), &ns, &mib);
			if (!err) {
				bench_report("W4", metric, "ns", ns);
				bench_report("W4", huge, "MiB", mib);
			}
		}
		bench_teardown(&cs);
	}
	return err;
}

/* ---- W5: threads --------------------------------------------------------- */

struct churn_thread {
	const struct runner *r;
	const struct program_set *set;
	struct bench_block *blocks;
	atomic_int *arrived;
	int nthreads;
	int cpu;                /* to run on, or -1 */
	uint64_t began, ended;
	int err;
};

/*
 * Every worker starts once all of them run.  They wait awake: after a
 * sleeping barrier the last worker to arrive starts at once while the
 * ones it woke still wait for a CPU, and the figure timed that wake-up
 * (on two CPUs, in a third of the repetitions the second worker began
 * only when the first had ended, 2.5 ms later).
 */
static void wait_for_all(atomic_int *arrived, int nthreads)
{
	atomic_fetch_add(arrived, 1);
	while (atomic_load(arrived) < nthreads)
		sched_yield(); /* lets a worker queued on this CPU reach the line */
}

/*
 * With no more workers than CPUs, each runs on a CPU of its own, the i-th
 * allowed one.  A new thread starts on its creator's CPU, and a worker's
 * 2 ms of W1 is shorter than the kernel takes to spread them: unpinned,
 * two workers ran one after the other on one CPU in most repetitions (four
 * in five of the copy floor's), and the speedup measured the scheduler.
 * Each worker moves itself before it counts in, so none starts late.
 */
static int worker_cpu(int i, int nthreads)
{
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || CPU_COUNT(&allowed) < nthreads)
		return -1;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed) && i-- == 0)
			return cpu;
	return -1;
}

static void run_on(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	pthread_setaffinity_np(pthread_self(), sizeof one, &one);
}

static void *churn_thread_main(void *arg)
{
	struct churn_thread *t = arg;
	uint64_t ns;

	if (t->cpu >= 0)
		run_on(t->cpu);
	wait_for_all(t->arrived, t->nthreads);
	t->began = now_ns();
	t->err = bench_churn(t->r, t->set, t->blocks, &ns);
	t->ended = now_ns();
	return NULL;
}

/*
 * The wall time is from the first start to the last end, taken by the
 * workers themselves: with two CPUs the thread that started them may not
 * run again before they are done.
 */
int bench_churn_threads(const struct runner *r, const struct churn_setup *cs, int nthreads, uint64_t *ns)
{
	atomic_int arrived;
	struct churn_thread *t = calloc((size_t)nthreads, sizeof(*t));
	pthread_t *tid = calloc((size_t)nthreads, sizeof(*tid));
	int err = 0;

	if (!t || !tid) {
		free(t);
		free(tid);
		return -ENOMEM;
	}
	atomic_init(&arrived, 0);
	for (int i = 0; i < nthreads; i++) {
		t[i] = (struct churn_thread){ .r = r, .set = &cs[i].set, .blocks = cs[i].blocks,
					      .arrived = &arrived, .nthreads = nthreads,
					      .cpu = worker_cpu(i, nthreads) };
		if (pthread_create(&tid[i], NULL, churn_thread_main, &t[i]) != 0) {
			/* The others wait for it for ever: no way to go on cleanly. */
			fprintf(stderr, "execmem bench: cannot start threads\n");
			exit(EXIT_SYSTEM);
		}
	}
	uint64_t began = UINT64_MAX, ended = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(tid[i], NULL);
		err = err ? err : t[i].err;
		began = t[i].began < began ? t[i].began : began;
		ended = t[i].ended > ended ? t[i].ended : ended;
	}
	*ns = ended - began;
	free(t);
	free(tid);
	return err;
}

/* A thread that keeps running a JIT program, as a JIT's other threads do. */
struct jit_caller {
	struct bench_block block;
	uint32_t expected;
	atomic_bool running, stop;
	uint64_t wrong;
};

static void *jit_caller_main(void *arg)
{
	struct jit_caller *c = arg;
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		c->wrong += bench_call(&c->block) != c->expected;
		atomic_store_explicit(&c->running, true, memory_order_relaxed);
	}
	return NULL;
}

/*
 * W1 with a JIT program live, first while no thread runs it (*alone), then
 * while a second thread calls it in a loop (*with_caller): the difference
 * is what the running thread costs, not what keeping a program live costs.
 */
static int churn_with_jit_caller(const struct runner *r, const struct churn_setup *cs,
				 uint64_t *alone, uint64_t *with_caller)
{
	struct program_set one;
	struct jit_caller c = { .wrong = 0 };
	pthread_t tid;
	int err = program_set_make(&one, 1, CALL_SIZE, 5);

	if (!err)
		err = bench_load(r, &one, 0, 1, &c.block);
	if (!err)
		err = bench_churn(r, &cs->set, cs->blocks, alone);
	if (err) {
		program_set_free(&one);
		return err;
	}
	c.expected = one.expected[0];
	atomic_init(&c.running, false);
	atomic_init(&c.stop, false);
	if (pthread_create(&tid, NULL, jit_caller_main, &c) != 0) {
		fprintf(stderr, "execmem bench: cannot start a thread\n");
		exit(EXIT_SYSTEM);
	}
	while (!atomic_load_explicit(&c.running, memory_order_relaxed))
		;
	err = bench_churn(r, &cs->set, cs->blocks, with_caller);
	atomic_store(&c.stop, true);
	pthread_join(tid, NULL);
	if (!err && c.wrong) {
		fprintf(stderr, "execmem bench: %s: the running JIT program returned wrong results\n", r->a->name);
		err = -EIO;
	}
	int err2 = bench_release(r, &one, 0, 1, &c.block);
	program_set_free(&one);
	return err ? err : err2;
}

/*
 * W5 comes in two parts, each in a process of its own, so that a peer that
 * crashes in one (a pool that makes a page writable while another thread
 * runs code on it) still reports the other.  Each compares with W1 in one
 * thread measured in the same repetition.
 */
static int two_threads_once(const struct runner *r, const struct churn_setup cs[2])
{
	uint64_t one, two;
	double n = (double)cs[0].set.count;
	int err = bench_churn(r, &cs[0].set, cs[0].blocks, &one);

	if (!err)
		err = bench_churn_threads(r, cs, 2, &two);
	if (err)
		return err;
	bench_report("W5", "ns_per_op_one_thread", "ns", (double)one / n);
	bench_report("W5", "ns_per_op_two_threads", "ns", (double)two / (2 * n));
	bench_report("W5", "two_thread_speedup", "x", 2.0 * (double)one / (double)two);
	return 0;
}

static int jit_thread_once(const struct runner *r, const struct churn_setup cs[2])
{
	uint64_t one, with_caller;
	double n = (double)cs[0].set.count;
	int err = churn_with_jit_caller(r, &cs[0], &one, &with_caller);

	if (err)
		return err;
	bench_report("W5", "ns_per_op_with_jit_thread", "ns", (double)with_caller / n);
	bench_report("W5", "jit_thread_slowdown", "x", (double)with_caller / (double)one);
	return 0;
}

static int threads_workload(const struct runner *r, int repeats, const struct bench_sizes *sz,
			    int (*once)(const struct runner *, const struct churn_setup[2]))
{
	struct churn_setup cs[2];
	int err = bench_setup(&cs[0], sz->churn_programs, 0, 1);
	if (!err)
		err = bench_setup(&cs[1], sz->churn_programs, 0, 1);
	for (int rep = 0; !err && rep < repeats; rep++)
		err = once(r, cs);
	bench_teardown(&cs[0]);
	bench_teardown(&cs[1]);
	return err;
}

static int workload_two_threads(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	return threads_workload(r, repeats, sz, two_threads_once);
}

static int workload_jit_thread(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	return threads_workload(r, repeats, sz, jit_thread_once);
}

/* ---- audit: mode, W+X mappings, and every program checked once -------- */

static int workload_audit(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct churn_setup cs;
	char first[256];
	size_t wrong = 0;
	int err = bench_setup(&cs, AUDIT_PROGRAMS, 0, 7);

	(void)repeats;
	(void)sz;
	if (!err)
		err = bench_load(r, &cs.set, 0, cs.set.count, cs.blocks);
	if (err)
		goto out;
	for (size_t i = 0; (r->a->caps & BENCH_CAN_EXECUTE) && i < cs.set.count; i++)
		wrong += bench_call(&cs.blocks[i]) != cs.set.expected[i];
	/* Counted while programs are live: some peers map memory only then. */
	int wx = procfs_count_wx(first, sizeof(first));
	printf("A\t%s\t%d\t%zu\t%s\n", r->a->mode(r->self), wx, wrong, first);
	if (r->a->config)
		printf("C\t%s\n", r->a->config(r->self));
	err = bench_release(r, &cs.set, 0, cs.set.count, cs.blocks);
out:
	bench_teardown(&cs);
	return err;
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*run)(const struct runner *r, int repeats, const struct bench_sizes *sz);
} workloads[] = {
	{ "audit", workload_audit },
	{ "W1", workload_churn },
	{ "W2", workload_cycle },
	{ "W3", workload_resident },
	{ "W4", workload_calls },
	{ "W5-threads", workload_two_threads },
	{ "W5-jit-thread", workload_jit_thread },
	{ "W6", workload_syscalls },
	{ "W3-churn", bench_workload_churn_pss },
	{ "W3-refill", bench_workload_refill_pss },
	{ "W7", bench_workload_cold },
	{ "W8", bench_workload_fork },
	{ "S1", bench_workload_many_live },
	{ "S2", bench_workload_thread_scaling },
};

int bench_run_workload(const struct bench_allocator *a, const char *workload, int repeats, bool quick)
{
	struct bench_sizes sz;
	struct runner r = { .a = a };
	char why[256] = "";
	int err;

	bench_sizes_get(quick, &sz);
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
		if (strcmp(workloads[i].name, workload) != 0)
			continue;
		err = a->open(&r.self, why, sizeof(why));
		if (err == -ENOSYS) {
			printf("U\t%s\n", why);
			return BENCH_CHILD_UNAVAILABLE;
		}
		if (err) {
			fprintf(stderr, "execmem bench: %s: %s\n", a->name, why);
			return EXIT_SYSTEM;
		}
		err = workloads[i].run(&r, repeats, &sz);
		a->close(r.self);
		fflush(stdout);
		return err == -EIO ? EXIT_CHECK_FAILED : err ? EXIT_SYSTEM : EXIT_OK;
	}
	fprintf(stderr, "execmem bench: unknown workload %s\n", workload);
	return EXIT_USAGE;
}
