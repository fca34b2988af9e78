/*
 * test_race.c - a live allocation must stay freeable and writable while
 * other threads release and create chunks.  Releasing threads allocate
 * large allocations (each with a mapping of its own) and small ones big
 * enough to spill into new chunks, write a program into each, run it and
 * free it; creating threads keep asking for a large allocation inside the
 * address range of the releasers' large one, so that they map a chunk
 * there as soon as it is unmapped.  In an arena that keeps no free chunk
 * (every emptied chunk is unmapped) and in the default arena, whatever the
 * interleaving, every write, call and free of a live allocation must
 * succeed.  Each arena runs in a child, which may crash on a lost chunk.
 * The mode comes from EXECMEM_MODE.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtest.h"

/* Fewer rounds where everything runs many times slower (ThreadSanitizer, qemu-user). */
enum { THREADS = 4, ITERATIONS = 200, SLOW_ITERATIONS = 30, REPORTED = 5, CHILD_SECONDS = 40 };
/* Each arena's race also ends after this long (an emulated machine is slow). */
enum { RACE_SECONDS = 8 };
#define RELEASED_SIZE ((size_t)6 << 20)

static enum execmem_mode mode;
static int iterations;
static struct timespec race_deadline;
static atomic_ulong failures, operations;

static void report(const char *what, void *code, long rc)
{
	if (atomic_fetch_add(&failures, 1) < REPORTED)
		fprintf(stderr, "FAIL %s of live allocation %p: %ld\n", what, code, rc);
}

/* Writes and runs a fresh allocation; returns whether it holds its program. */
static bool fill(void *code, uint32_t value)
{
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value);
	int rc = execmem_write(code, bytes, len);
	if (rc)
		report("write", code, rc);
	else if (!rt_program_returns(mode, code, value))
		report("call", code, 0);
	return rc == 0;
}

static void *make(struct execmem_arena *arena, size_t size, uint32_t value)
{
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, size)
			   : execmem_alloc(EXECMEM_CODE, size);
	if (!code)
		report("allocation", NULL, -errno);
	else
		fill(code, value);
	return code;
}

static void unmake(void *code)
{
	int rc = execmem_free(code);
	if (rc)
		report("free", code, rc);
}

/* Where the releasers' large allocation lies until it is freed. */
static _Atomic uintptr_t released_soon;
static atomic_int releasers_running;
static atomic_ulong reused;

/*
 * A releaser makes a large allocation whose unmapping takes a while (in
 * dual mode its alias goes after its view), then small ones that spill
 * into a new chunk and empty the old one, and frees them all.
 */
static void release_round(struct execmem_arena *arena, uint64_t *seed)
{
	uint32_t value = (uint32_t)rt_random(seed);
	size_t small = EXECMEM_CHUNK_SIZE / 2 - 4096 * (1 + rt_random(seed) % 8);
	void *big = make(arena, RELEASED_SIZE - 4096 * (rt_random(seed) % 16), value);
	void *first = make(arena, small, value + 1);
	void *second = make(arena, small, value + 2);
	unmake(first);
	void *third = make(arena, small, value + 3);
	atomic_store(&released_soon, (uintptr_t)big);
	unmake(big);
	unmake(second);
	unmake(third);
}

/*
 * A creator asks for a cheap large allocation inside the releasers' large
 * one (the only free place within reach is its address range), so that it
 * gets a mapping there the moment the range is unmapped.
 */
static void create_round(struct execmem_arena *arena, uint64_t *seed)
{
	uintptr_t inside = atomic_load(&released_soon);
	if (!inside)
		return;
	const void *target = (const void *)(inside + EXECMEM_CHUNK_SIZE - 1);
	size_t size = EXECMEM_CHUNK_SIZE / 2 + 4096;
	void *code = arena ? execmem_arena_alloc_near(arena, EXECMEM_CODE, size, target, EXECMEM_CHUNK_SIZE)
			   : execmem_alloc_near(EXECMEM_CODE, size, target, EXECMEM_CHUNK_SIZE);
	if (!code)
		return; /* the range is still mapped */
	atomic_fetch_add(&reused, 1);
	uint32_t value = (uint32_t)rt_random(seed);
	if (fill(code, value) && !rt_program_returns(mode, code, value))
		report("second call", code, 0);
	unmake(code);
}

struct worker {
	struct execmem_arena *arena;
	uint64_t seed;
	bool releaser;
};

static bool race_over(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > race_deadline.tv_sec ||
	       (now.tv_sec == race_deadline.tv_sec && now.tv_nsec >= race_deadline.tv_nsec);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	if (w->releaser) {
		for (int i = 0; i < iterations && atomic_load(&failures) < 100 && !race_over(); i++) {
			release_round(w->arena, &w->seed);
			atomic_fetch_add(&operations, 1);
		}
		atomic_fetch_sub(&releasers_running, 1);
	} else {
		while (atomic_load(&releasers_running) > 0)
			create_round(w->arena, &w->seed);
	}
	return NULL;
}

static void race_in(struct execmem_arena *arena, const char *name)
{
	atomic_store(&failures, 0);
	atomic_store(&operations, 0);
	atomic_store(&reused, 0);
	atomic_store(&released_soon, 0);
	atomic_store(&releasers_running, THREADS / 2);
	clock_gettime(CLOCK_MONOTONIC, &race_deadline);
	race_deadline.tv_sec += RACE_SECONDS;
	pthread_t threads[THREADS];
	struct worker workers[THREADS];
	for (int i = 0; i < THREADS; i++) {
		workers[i] = (struct worker){ arena, 0x1234u + (uint64_t)i * 7919u, i % 2 == 0 };
		RT_CHECK(pthread_create(&threads[i], NULL, work, &workers[i]) == 0, "thread");
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	unsigned long failed = atomic_load(&failures);
	RT_CHECK(failed == 0, "%s: %lu operations on live allocations failed (a chunk made where"
		 " another was just released lost its address?)", name, failed);
	printf("%s: %lu release rounds, %lu mappings made in released ranges, %lu failures\n", name,
	       atomic_load(&operations), atomic_load(&reused), failed);
}

/* The race in an arena that keeps no free chunk (every emptied chunk is
 * unmapped), or in the default arena; returns the child's exit status. */
static int race_variant(bool own_arena)
{
	if (!own_arena) {
		race_in(NULL, "default arena");
		return rt_failures ? 1 : 0;
	}
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = mode;
	params.retained_chunks = 0;
	struct execmem_arena *arena = execmem_arena_create(&params);
	RT_CHECK(arena, "arena: errno %d", errno);
	if (!arena)
		return 1;
	race_in(arena, "arena keeping no chunk");
	struct execmem_stats stats;
	RT_CHECK(execmem_arena_stats(arena, &stats) == 0 && stats.live_allocations == 0,
		 "allocations left live in the arena");
	RT_CHECK(execmem_arena_destroy(arena) == 0, "destroy");
	return rt_failures ? 1 : 0;
}

/* A lost chunk may crash its user: each variant runs in a child. */
static void run_in_child(bool own_arena)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		exit(race_variant(own_arena));
	int status = rt_wait_child(pid, CHILD_SECONDS);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "%s: child status %#x (exit 1: failed checks; a signal: crashed, 9: hung)",
		 own_arena ? "arena keeping no chunk" : "default arena", status);
}

int main(void)
{
	mode = rt_mode_from_env();
	iterations = rt_under_tsan() || rt_under_qemu_user() ? SLOW_ITERATIONS : ITERATIONS;
	printf("race: %d threads x %d rounds, %s mode\n", THREADS, iterations, execmem_mode_name(mode));
	run_in_child(true);
	run_in_child(false);
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	return rt_finish("race");
}
