/*
 * test_race.c - a live allocation must stay freeable and writable while
 * other threads release and create chunks.  Threads allocate large
 * allocations (each with a mapping of its own) and small ones big enough to
 * spill into new chunks, write a program into each, run it and free it, in
 * an arena that keeps no free chunk (every emptied chunk is unmapped) and in
 * the default arena.  A chunk that is unmapped frees its address for the
 * next chunk anybody maps: whatever the interleaving, every write, call and
 * free of a live allocation must succeed.  The mode comes from EXECMEM_MODE.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtest.h"

enum { THREADS = 4, ITERATIONS = 200, TSAN_ITERATIONS = 30, CREATES_PER_RELEASE = 4, REPORTED = 5,
       CHILD_SECONDS = 40 };
#define RELEASED_SIZE ((size_t)6 << 20)

static enum execmem_mode mode;
static int iterations;
static atomic_ulong failures, operations;

static void report(const char *what, void *code, long rc)
{
	if (atomic_fetch_add(&failures, 1) < REPORTED)
		fprintf(stderr, "FAIL %s of live allocation %p: %ld\n", what, code, rc);
}

/* Allocates, writes, runs; returns the program or NULL (counted); *ok
 * says whether it holds the program. */
static void *make(struct execmem_arena *arena, size_t size, uint32_t value, bool *ok)
{
	*ok = false;
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, size)
			   : execmem_alloc(EXECMEM_CODE, size);
	if (!code) {
		report("allocation", NULL, -errno);
		return NULL;
	}
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value);
	int rc = execmem_write(code, bytes, len);
	if (rc)
		report("write", code, rc);
	else if (!(*ok = rt_program_returns(mode, code, value)))
		report("call", code, 0);
	return code;
}

static void unmake(void *code)
{
	int rc = execmem_free(code);
	if (rc)
		report("free", code, rc);
}

/*
 * A releaser makes and frees a large allocation whose unmapping takes long
 * (in dual mode its alias is unmapped after its view), then small ones that
 * spill into a new chunk and empty the old one.  A creator makes and frees
 * allocations just above the large threshold, cheap to map, which the
 * kernel places in the hole a released mapping just left.
 */
static void release_round(struct execmem_arena *arena, uint64_t *seed)
{
	uint32_t value = (uint32_t)rt_random(seed);
	size_t small = EXECMEM_CHUNK_SIZE / 2 - 4096 * (1 + rt_random(seed) % 8);
	bool ok;
	void *big = make(arena, RELEASED_SIZE - 4096 * (rt_random(seed) % 16), value, &ok);
	void *first = make(arena, small, value + 1, &ok);
	void *second = make(arena, small, value + 2, &ok);
	unmake(first);
	void *third = make(arena, small, value + 3, &ok);
	unmake(big);
	unmake(second);
	unmake(third);
}

static void create_round(struct execmem_arena *arena, uint64_t *seed)
{
	uint32_t value = (uint32_t)rt_random(seed);
	bool ok;
	void *code = make(arena, EXECMEM_CHUNK_SIZE / 2 + 4096 * (1 + rt_random(seed) % 4), value, &ok);
	if (ok && !rt_program_returns(mode, code, value))
		report("second call", code, 0);
	unmake(code);
}

struct worker {
	struct execmem_arena *arena;
	uint64_t seed;
	void (*round)(struct execmem_arena *, uint64_t *);
	int rounds;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < w->rounds && atomic_load(&failures) < 100; i++) {
		w->round(w->arena, &w->seed);
		atomic_fetch_add(&operations, 1);
	}
	return NULL;
}

static void race_in(struct execmem_arena *arena, const char *name)
{
	atomic_store(&failures, 0);
	atomic_store(&operations, 0);
	pthread_t threads[THREADS];
	struct worker workers[THREADS];
	for (int i = 0; i < THREADS; i++) {
		bool releaser = i % 2 == 0;
		workers[i] = (struct worker){ arena, 0x1234u + (uint64_t)i * 7919u,
					      releaser ? release_round : create_round,
					      releaser ? iterations : iterations * CREATES_PER_RELEASE };
		RT_CHECK(pthread_create(&threads[i], NULL, work, &workers[i]) == 0, "thread");
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	unsigned long failed = atomic_load(&failures);
	RT_CHECK(failed == 0, "%s: %lu operations on live allocations failed (chunk addresses reused"
		 " while a released chunk's entry is cleared?)", name, failed);
	printf("%s: %lu rounds, %lu failures\n", name, atomic_load(&operations), failed);
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
	iterations = rt_under_tsan() ? TSAN_ITERATIONS : ITERATIONS;
	printf("race: %d threads x %d rounds, %s mode\n", THREADS, iterations, execmem_mode_name(mode));
	run_in_child(true);
	run_in_child(false);
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	return rt_finish("race");
}
