/*
 * test_stress.c - bounded concurrency stress of the default arena.
 * Writer threads allocate programs of many sizes (so they share chunks),
 * write, call, rewrite, invalidate and free them, and hand some programs to
 * runner threads (published with execmem_sync_cores() and a release store),
 * which call and free them.  Meanwhile the runners keep calling programs of
 * their own that stay live.  Every call must return its program's value:
 * no torn, stale or foreign code is ever executed.  The mode comes from
 * EXECMEM_MODE; in mprotect mode the runners' pages are toggled under them.
 * Runs for STRESS_SECONDS (default 2) or STRESS_OPS operations per writer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtest.h"

enum { WRITERS = 3, RUNNERS = 2, OWN_PROGRAMS = 16, LIVE_PER_WRITER = 24 };

static enum execmem_mode mode;
static atomic_bool stop;
static atomic_ulong writer_operations, runner_calls, wrong_results, failed_calls;

/* A program handed from a writer to a runner: one slot per writer, each
 * served by one runner, so every slot has one producer and one consumer. */
struct handoff {
	_Atomic(void *) code;
	uint32_t value;
};
static struct handoff handoffs[WRITERS];

static void expect_value(const void *code, uint32_t value, const char *what)
{
	if (!rt_program_returns(mode, code, value)) {
		atomic_fetch_add(&wrong_results, 1);
		fprintf(stderr, "FAIL %s: program at %p did not return %#x\n", what, code, value);
	}
}

static void count_failure(const char *what)
{
	atomic_fetch_add(&failed_calls, 1);
	fprintf(stderr, "FAIL %s: errno %d\n", what, errno);
}

static bool write_program(void *code, uint32_t value)
{
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value);
	if (execmem_write(code, bytes, len) != 0) {
		count_failure("write");
		return false;
	}
	return true;
}

struct live {
	void *code;
	uint32_t value;
};

static void free_program(struct live *slot)
{
	if (execmem_free(slot->code) != 0)
		count_failure("free");
	slot->code = NULL;
}

/* Fills the program with traps, checks it reads so, and frees it. */
static void invalidate_and_free(struct live *slot)
{
	size_t usable = execmem_usable_size(slot->code);
	if (execmem_invalidate(slot->code, usable) != 0)
		count_failure("invalidate");
	else if (!rt_is_trap_filled(slot->code, usable))
		atomic_fetch_add(&wrong_results, 1);
	free_program(slot);
}

/* One step on a program of the writer: call, rewrite, invalidate or free it. */
static void work_on(struct live *slot, uint64_t *seed)
{
	switch (rt_random(seed) % 4) {
	case 0:
		expect_value(slot->code, slot->value, "writer call");
		break;
	case 1:
		slot->value = (uint32_t)rt_random(seed);
		if (write_program(slot->code, slot->value))
			expect_value(slot->code, slot->value, "rewritten program");
		break;
	case 2:
		invalidate_and_free(slot);
		break;
	default:
		free_program(slot);
	}
}

static void new_program(struct live *slot, uint64_t *seed)
{
	size_t size = 16 + rt_random(seed) % (rt_random(seed) % 8 ? 512 : 16384);
	slot->code = execmem_alloc(EXECMEM_CODE, size);
	if (!slot->code) {
		count_failure("alloc");
		return;
	}
	slot->value = (uint32_t)rt_random(seed);
	if (write_program(slot->code, slot->value))
		expect_value(slot->code, slot->value, "new program");
}

/* Gives a fresh program to the writer's runner once it took the last one. */
static void hand_off(unsigned writer_id, uint64_t *seed)
{
	struct handoff *h = &handoffs[writer_id];
	if (atomic_load_explicit(&h->code, memory_order_acquire))
		return;
	void *code = execmem_alloc(EXECMEM_CODE, 64 + rt_random(seed) % 256);
	uint32_t value = (uint32_t)rt_random(seed);
	if (!code || !write_program(code, value))
		return;
	/* aarch64 needs every core to synchronise before another thread runs new code. */
	int rc = execmem_sync_cores();
	if (rc != 0 && rc != -ENOSYS)
		count_failure("sync_cores");
	h->value = value;
	atomic_store_explicit(&h->code, code, memory_order_release);
}

static bool time_is_up(unsigned long done, unsigned long max_ops, const struct timespec *end)
{
	struct timespec now;
	if (done >= max_ops || atomic_load(&stop))
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > end->tv_sec || (now.tv_sec == end->tv_sec && now.tv_nsec >= end->tv_nsec);
}

struct writer_args {
	unsigned id;
	unsigned long max_ops;
	struct timespec end;
};

static void *writer(void *arg)
{
	struct writer_args *args = arg;
	struct live live[LIVE_PER_WRITER] = { { 0 } };
	uint64_t seed = 0x1234567 + args->id;
	unsigned long done = 0;
	for (; !time_is_up(done, args->max_ops, &args->end); done++) {
		struct live *slot = &live[rt_random(&seed) % LIVE_PER_WRITER];
		if (slot->code)
			work_on(slot, &seed);
		else
			new_program(slot, &seed);
		if (done % 16 == 0)
			hand_off(args->id, &seed);
	}
	for (unsigned i = 0; i < LIVE_PER_WRITER; i++)
		if (live[i].code && execmem_free(live[i].code) != 0)
			count_failure("final free");
	atomic_fetch_add(&writer_operations, done);
	return NULL;
}

/* Calls the program in a hand-off slot, if any, and frees it (from another
 * thread than its writer). */
static void take_handoff(struct handoff *h)
{
	void *code = atomic_load_explicit(&h->code, memory_order_acquire);
	if (!code)
		return;
#if defined(__aarch64__)
	__asm__ volatile("isb" ::: "memory"); /* belt and braces beside execmem_sync_cores() */
#endif
	expect_value(code, h->value, "handed-off program");
	if (execmem_free(code) != 0)
		count_failure("free of handed-off program");
	atomic_store_explicit(&h->code, NULL, memory_order_release);
}

/* Runner id serves the slots of writers id, id + RUNNERS, ... */
static void take_handoffs(unsigned id)
{
	for (unsigned writer_id = id; writer_id < WRITERS; writer_id += RUNNERS)
		take_handoff(&handoffs[writer_id]);
}

static void *runner(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	struct live own[OWN_PROGRAMS];
	for (unsigned i = 0; i < OWN_PROGRAMS; i++) {
		own[i].value = 0xabc00000u + id * 100 + i;
		own[i].code = rt_new_program(NULL, 48 + i * 16, own[i].value);
		if (!own[i].code)
			count_failure("runner alloc");
	}
	unsigned long calls = 0;
	while (!atomic_load(&stop)) {
		for (unsigned i = 0; i < OWN_PROGRAMS; i++, calls++)
			if (own[i].code)
				expect_value(own[i].code, own[i].value, "runner's own program");
		take_handoffs(id);
	}
	take_handoffs(id);
	for (unsigned i = 0; i < OWN_PROGRAMS; i++)
		execmem_free(own[i].code);
	atomic_fetch_add(&runner_calls, calls);
	return NULL;
}

static double env_number(const char *name, double fallback)
{
	const char *text = getenv(name);
	return text && *text ? atof(text) : fallback;
}

int main(void)
{
	mode = rt_mode_from_env();
	rt_can_run_rewritten_code(mode); /* says once, before any fork, what qemu-user cannot run */
	double seconds = env_number("STRESS_SECONDS", 2.0);
	unsigned long max_ops = (unsigned long)env_number("STRESS_OPS", 1e9);
	printf("stress: %d writers, %d runners, %.1f s, default arena in %s mode\n", WRITERS, RUNNERS,
	       seconds, execmem_mode_name(mode));
	struct writer_args args[WRITERS];
	pthread_t writers[WRITERS], runners[RUNNERS];
	struct timespec end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)seconds;
	end.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (unsigned i = 0; i < RUNNERS; i++)
		RT_CHECK(pthread_create(&runners[i], NULL, runner, (void *)(uintptr_t)i) == 0, "runner thread");
	for (unsigned i = 0; i < WRITERS; i++) {
		args[i] = (struct writer_args){ i, max_ops, end };
		RT_CHECK(pthread_create(&writers[i], NULL, writer, &args[i]) == 0, "writer thread");
	}
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(writers[i], NULL);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < RUNNERS; i++)
		pthread_join(runners[i], NULL);
	struct execmem_stats stats;
	RT_CHECK(execmem_stats(&stats) == 0 && stats.live_allocations == 0,
		 "%zu allocations still live after every thread freed its own", stats.live_allocations);
	RT_CHECK(atomic_load(&wrong_results) == 0, "%lu wrong results", atomic_load(&wrong_results));
	RT_CHECK(atomic_load(&failed_calls) == 0, "%lu failed calls", atomic_load(&failed_calls));
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	printf("stress: %d writers x %lu operations, %d runners x %lu calls, %lu wrong results\n",
	       WRITERS, atomic_load(&writer_operations) / WRITERS, RUNNERS,
	       atomic_load(&runner_calls) / RUNNERS, atomic_load(&wrong_results));
	return rt_finish("stress");
}
