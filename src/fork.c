/*
 * fork.c - keeping parent and child apart.  A dual-mapped chunk is a memfd
 * that fork() shares, so that either process could rewrite the other's
 * code.  The child never inherits an alias (chunk.c maps them with
 * MADV_DONTFORK), and after fork each process marks every aliased chunk
 * shared: whichever process writes a shared chunk first gives it memory of
 * its own (a copy, in place) before the write, with every writer of the
 * process stopped.  Nothing is copied at fork, so a child that execs
 * copies nothing and the parent does not wait for it.  Around fork every
 * arena is locked, and so is the list of aliased chunks (chunk.c holds that
 * lock from before a memfd exists until its mappings are gone, so no chunk
 * is half made or half released at fork).  Writes that take no allocator
 * lock (through an alias, or a page toggled writable) pass a gate that
 * fork closes, so none is half done when the child is made.
 */
#include "internal.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

atomic_uint em_fork_generation;
static struct em_lock registry_lock;
static struct em_arena *registry;

/*
 * The write gate.  Each writing thread owns a record whose `active` flag
 * it raises around a write through an alias.  fork raises `fork_pending`
 * and waits for every flag to drop.  Writers pay no atomic read-modify-
 * write: fork makes every thread execute a full barrier with membarrier()
 * (an asymmetric fence), so a writer either sees fork_pending or has its
 * flag seen.  Without membarrier, writers use a full fence themselves.
 */
struct writer {
	atomic_int active;
	atomic_bool in_use;
	struct writer *next;
} __attribute__((aligned(64))); /* each thread's flag on a cache line of its own */

static struct em_lock writers_lock;
static struct writer *writers;
static _Thread_local struct writer *me;
static atomic_bool fork_pending;
static pthread_key_t writer_key;
static pthread_once_t writer_once = PTHREAD_ONCE_INIT;
static bool asymmetric;

static void writer_exit(void *record)
{
	atomic_store(&((struct writer *)record)->in_use, false);
}

static void writer_setup(void)
{
	pthread_key_create(&writer_key, writer_exit);
	asymmetric = em_os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

/* This thread's record: a free one from an exited thread, or a new one. */
static struct writer *claim_writer(void)
{
	pthread_once(&writer_once, writer_setup);
	em_lock(&writers_lock);
	struct writer *w = writers;
	while (w && atomic_load(&w->in_use))
		w = w->next;
	if (!w && (w = aligned_alloc(64, sizeof *w))) {
		memset(w, 0, sizeof *w);
		w->next = writers;
		writers = w;
	}
	if (w)
		atomic_store(&w->in_use, true);
	em_unlock(&writers_lock);
	if (w)
		pthread_setspecific(writer_key, w);
	return w;
}

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer does not model fences (gcc refuses them under it): a
 * sequentially consistent read-modify-write of one shared word orders as
 * a full fence does. */
static atomic_int fence_word;

static void thread_fence(void)
{
	atomic_fetch_add(&fence_word, 0);
}
#else
static void thread_fence(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}
#endif

static void full_fence(void)
{
	if (asymmetric)
		atomic_signal_fence(memory_order_seq_cst);
	else
		thread_fence();
}

int em_write_enter(void)
{
	if (!me && !(me = claim_writer()))
		return -ENOMEM;
	for (;;) {
		atomic_store_explicit(&me->active, 1, memory_order_relaxed);
		full_fence();
		/* Acquire: a writer let in after a fork sees its generation. */
		if (!atomic_load_explicit(&fork_pending, memory_order_acquire))
			return 0;
		atomic_store_explicit(&me->active, 0, memory_order_release);
		while (atomic_load(&fork_pending))
			sched_yield();
	}
}

void em_write_exit(void)
{
	atomic_store_explicit(&me->active, 0, memory_order_release);
}

/* Stays closed, with the list of writers locked, until open_gate(): a
 * thread registering its first write at fork would leave the child a
 * list locked for ever.  A registering thread holds no other lock. */
static void close_gate(void)
{
	atomic_store(&fork_pending, true);
	em_lock(&writers_lock);
	if (asymmetric && em_os_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
		thread_fence(); /* best effort */
	for (struct writer *w = writers; w; w = w->next)
		while (atomic_load(&w->active))
			sched_yield();
}

static void open_gate(void)
{
	atomic_store(&fork_pending, false);
	em_unlock(&writers_lock);
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

/* Every writer of the process waits (none is half done) until unlock_all(). */
static void stop_writers(void)
{
	em_lock(&registry_lock);
	close_gate();
	for (struct em_arena *a = registry; a; a = a->next)
		em_arena_lock_all(a);
	em_aliases_lock();
}

static void unlock_all(void)
{
	em_aliases_unlock();
	for (struct em_arena *a = registry; a; a = a->next)
		em_arena_unlock_all(a);
	open_gate();
	em_unlock(&registry_lock);
}

/*
 * Give c memory of its own before its first write since a fork.  Its
 * bytes cannot change while they are copied: every writer is stopped (the
 * caller is outside the gate and holds no lock of execmem).
 */
void em_unshare(struct em_chunk *c)
{
	stop_writers();
	if (em_chunk_shared(c))
		em_chunk_privatize(c);
	unlock_all();
}

/* em_pool_free() and em_window_begin() of a chunk this process may share
 * with a child or parent: it gets memory of its own first. */
int em_free_owned(struct em_chunk *c, uintptr_t addr)
{
	int rc;
	while ((rc = em_pool_free(c, addr)) == EM_SHARED)
		em_unshare(c);
	return rc;
}

int em_window_begin_owned(struct em_chunk *c, uintptr_t addr, void **writable)
{
	int rc;
	while ((rc = em_window_begin(c, addr, writable)) == EM_SHARED)
		em_unshare(c);
	return rc;
}

static void before_fork(void)
{
	stop_writers();
	em_aliases_forking();
	em_toggle_guard_lock();
}

/* Both processes: every aliased chunk is shared from now on. */
static void after_fork(bool in_child)
{
	em_toggle_guard_unlock(); /* a copy may need the guard */
	atomic_fetch_add(&em_fork_generation, 1);
	em_aliases_forked(in_child);
	unlock_all();
}

static void in_parent(void)
{
	after_fork(false);
}

/*
 * The child has no thread but this one.  A writer of the parent that raised
 * its flag after close_gate() had seen it down, and was about to lower it
 * again on finding the gate closed, left it raised in the child's copy of
 * its record: the child's next close_gate() would wait on it for ever.
 * The records of threads the child does not have are free for its own.
 */
static void forget_parent_writers(void)
{
	for (struct writer *w = writers; w; w = w->next) {
		atomic_store(&w->active, 0);
		if (w != me)
			atomic_store(&w->in_use, false);
	}
}

static void in_child(void)
{
	forget_parent_writers(); /* writers_lock is held since before_fork() */
	after_fork(true);
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
