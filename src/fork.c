/*
 * fork.c - keeping parent and child apart.  A dual-mapped chunk is a memfd
 * that fork() would share, so that either process could rewrite the other's
 * code.  Around fork every arena is locked; the child gives each aliased
 * chunk memory of its own while the parent waits for it on a pipe (the
 * child's end closes when it is done or dies), so that no write of the
 * parent can reach the child's copy before it is taken.  Without a pipe the
 * parent takes a copy of its own as well, so nobody writes the shared
 * memfd after the fork.  Lock-free writes through aliases pass a gate that
 * fork closes.
 */
#include "internal.h"

#include <pthread.h>

static struct em_lock registry_lock;
static struct em_arena *registry;
static int fork_pipe[2] = { -1, -1 };

/* Writers in flight, one counter per thread slot to keep cache lines apart. */
static struct {
	atomic_uint writers;
} __attribute__((aligned(64))) gate_slot[EM_MAX_SHARDS];
static atomic_bool fork_pending;

unsigned em_write_enter(void)
{
	unsigned slot = em_thread_slot() % EM_MAX_SHARDS;
	for (;;) {
		atomic_fetch_add(&gate_slot[slot].writers, 1);
		if (!atomic_load(&fork_pending))
			return slot;
		atomic_fetch_sub(&gate_slot[slot].writers, 1);
		while (atomic_load(&fork_pending))
			sched_yield();
	}
}

void em_write_exit(unsigned slot)
{
	atomic_fetch_sub_explicit(&gate_slot[slot].writers, 1, memory_order_release);
}

static void close_gate(void)
{
	atomic_store(&fork_pending, true);
	for (int i = 0; i < EM_MAX_SHARDS; i++)
		while (atomic_load(&gate_slot[i].writers))
			sched_yield();
}

void em_registry_add(struct em_arena *a)
{
	em_lock(&registry_lock);
	a->next = registry;
	registry = a;
	em_unlock(&registry_lock);
}

/* Remove a from the registry; false if it is not there (destroyed). */
bool em_registry_remove(struct em_arena *a)
{
	em_lock(&registry_lock);
	struct em_arena **p = &registry;
	while (*p && *p != a)
		p = &(*p)->next;
	bool found = *p != NULL;
	if (found)
		*p = a->next;
	em_unlock(&registry_lock);
	return found;
}

static void before_fork(void)
{
	em_lock(&registry_lock);
	close_gate();
	bool aliases = false;
	for (struct em_arena *a = registry; a; a = a->next) {
		em_arena_lock_all(a);
		aliases |= em_arena_has_aliases(a);
	}
	if (!aliases || em_os_pipe(fork_pipe) < 0)
		fork_pipe[0] = fork_pipe[1] = -1;
}

static void unlock_all(void)
{
	for (struct em_arena *a = registry; a; a = a->next)
		em_arena_unlock_all(a);
	atomic_store(&fork_pending, false);
	em_unlock(&registry_lock);
}

static void privatize_all(void)
{
	for (struct em_arena *a = registry; a; a = a->next)
		em_arena_privatize(a);
}

static void in_parent(void)
{
	if (fork_pipe[0] >= 0) {
		em_os_close(fork_pipe[1]);
		em_os_read_byte(fork_pipe[0]);
		em_os_close(fork_pipe[0]);
	} else {
		privatize_all();
	}
	unlock_all();
}

static void in_child(void)
{
	privatize_all();
	if (fork_pipe[0] >= 0) {
		em_os_close(fork_pipe[0]);
		em_os_write_byte(fork_pipe[1]);
		em_os_close(fork_pipe[1]);
	}
	unlock_all();
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_result;

static void install(void)
{
	install_result = -pthread_atfork(before_fork, in_parent, in_child);
}

int em_fork_guard_install(void)
{
	pthread_once(&once, install);
	return install_result;
}
