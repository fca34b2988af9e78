/*
 * census.c - where the other threads are: each is sent a signal (one of
 * the real-time signals, queued, never merged) whose handler looks at the
 * program counter of the context it interrupted and answers.  A thread
 * parked in mprotect mode's fault guard is asked where it will resume: the
 * guard's interrupted context.  A thread that hit one of live patching's
 * traps sits in trap.c's handler and will resume at the site's start,
 * outside every (start + 1, end) range the protocol asks about.
 *
 * The handler also executes a serialising instruction before it returns,
 * so a round with no ranges is a way to make every thread synchronise its
 * instruction stream where membarrier(SYNC_CORE) is missing: each thread
 * runs the handler after the bytes were written (it was signalled after
 * they were) and before it runs any code again.
 *
 * A thread that does not answer within 20 ms and is asleep in the kernel
 * (it blocks the signal) is taken where the kernel says it will resume; it
 * has not serialised, but it enters user mode again only through the
 * kernel's return path, after the writes.  One that neither answers nor
 * sleeps for 2 s makes the census fail (-ETIMEDOUT).
 *
 * Threads are counted once, from /proc/self/task; a thread started later
 * was started after the caller's writes, which its creation follows.
 */
#include "poke_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* si_value of a census signal: this mark, the round and the thread's slot. */
#define CENSUS_MARK ((uintptr_t)0xe5ce << 48)
#define FIELD_MASK ((uintptr_t)0xffffff)
/* How long a thread may take to answer before the census looks at it
 * from outside, and before it gives up. */
enum { SILENT_AFTER_MS = 20, ANSWER_TIMEOUT_MS = 2000 };

static pthread_mutex_t census_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction previous;
static bool installed;
static int census_signal;

/* The round under way, read by the handlers. */
static struct {
	atomic_uint round;   /* bumped when a round starts and when it ends */
	atomic_int busy;     /* handlers between their check of round and their answer */
	const struct em_pc_range *ranges;
	size_t n;
	atomic_uchar *answered;
	atomic_bool inside;
} census;

static bool inside(uintptr_t pc)
{
	for (size_t i = 0; i < census.n; i++)
		if (pc >= census.ranges[i].start && pc < census.ranges[i].end)
			return true;
	return false;
}

static void answer(uint32_t round, uint32_t slot, const void *ucontext)
{
	const void *parked = em_guard_parked_context;
	if ((atomic_load(&census.round) & FIELD_MASK) != round)
		return; /* late: that round has given up on this thread */
	if (inside(em_poke_arch.context_pc(ucontext)) ||
	    (parked && inside(em_poke_arch.context_pc(parked))))
		atomic_store(&census.inside, true);
	em_poke_arch.serialise();
	atomic_store_explicit(&census.answered[slot], 1, memory_order_release);
}

static void on_census(int sig, siginfo_t *si, void *ucontext)
{
	uintptr_t value = (uintptr_t)si->si_value.sival_ptr;
	if (si->si_code != SI_QUEUE || si->si_pid != getpid() ||
	    (value & ~(FIELD_MASK << 24 | FIELD_MASK)) != CENSUS_MARK) {
		em_chain_signal(&previous, sig, si, ucontext, false);
		return;
	}
	int saved_errno = errno;
	atomic_fetch_add(&census.busy, 1);
	answer((uint32_t)(value >> 24 & FIELD_MASK), (uint32_t)(value & FIELD_MASK), ucontext);
	atomic_fetch_sub(&census.busy, 1);
	errno = saved_errno;
}

static int install(void)
{
	if (installed)
		return 0;
	/* The last real-time signal but two: programs that use real-time
	 * signals mostly take them from SIGRTMIN up. */
	census_signal = SIGRTMAX - 2;
	int rc = em_os_install_handler(census_signal, on_census, &previous);
	installed = !rc;
	return rc;
}

/* The other threads' ids into *tids (malloc'd); their count or -errno. */
static int list_others(pid_t **tids)
{
	size_t cap = 64;
	for (;;) {
		pid_t *buf = malloc(cap * sizeof *buf);
		if (!buf)
			return -ENOMEM;
		int n = em_os_list_threads(buf, cap);
		if (n >= 0 && (size_t)n <= cap) {
			pid_t self = em_os_thread_id();
			int others = 0;
			for (int i = 0; i < n; i++)
				if (buf[i] != self)
					buf[others++] = buf[i];
			*tids = buf;
			return others;
		}
		free(buf);
		if (n < 0)
			return n;
		cap = (size_t)n + 16;
	}
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/*
 * A thread that has not answered for a while: gone (it exited with the
 * signal pending), or asleep in the kernel with the signal blocked (a thread that
 * waits for signals with sigwait(), or an emulator's own helper thread):
 * then the kernel says where it will resume.
 */
static void look_at_silent(pid_t tid, int slot)
{
	uintptr_t pc;
	if (em_os_signal_thread(tid, 0, 0) == -ESRCH) {
		atomic_store(&census.answered[slot], 1);
	} else if (em_os_thread_blocked_pc(tid, &pc) == 0) {
		if (inside(pc))
			atomic_store(&census.inside, true);
		atomic_store(&census.answered[slot], 1);
	}
}

/* Waits for every thread signalled to answer, be gone or be seen asleep. */
static int await_answers(const pid_t *tids, int n)
{
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned spin = 0;; spin++) {
		/* A thread waiting in the trap handler resumes at a site's
		 * start: outside, answered or not. */
		int missing = 0;
		for (int i = 0; i < n; i++)
			missing += !atomic_load_explicit(&census.answered[i], memory_order_acquire) &&
				   !em_trap_parked(tids[i]);
		if (!missing)
			return 0;
		if (spin % 64 == 63) {
			long waited = elapsed_ms(&start);
			for (int i = 0; i < n && waited >= SILENT_AFTER_MS; i++)
				if (!atomic_load(&census.answered[i]))
					look_at_silent(tids[i], i);
			if (waited > ANSWER_TIMEOUT_MS)
				return -ETIMEDOUT;
		}
		sched_yield();
	}
}

static int signal_all(const pid_t *tids, int n, uint32_t round)
{
	for (int i = 0; i < n; i++) {
		uintptr_t value = CENSUS_MARK | (uintptr_t)round << 24 | (uintptr_t)i;
		int rc = em_os_signal_thread(tids[i], census_signal, value);
		if (rc == -ESRCH) /* exited meanwhile */
			atomic_store(&census.answered[i], 1);
		else if (rc)
			return rc;
	}
	return 0;
}

static int run_round(const struct em_pc_range *ranges, size_t n_ranges)
{
	pid_t *tids = NULL;
	int n = list_others(&tids);
	if (n <= 0) {
		free(tids);
		return n;
	}
	atomic_uchar *answered = calloc((size_t)n, sizeof *answered);
	if (!answered) {
		free(tids);
		return -ENOMEM;
	}
	census.ranges = ranges;
	census.n = n_ranges;
	census.answered = answered;
	atomic_store(&census.inside, false);
	uint32_t round = (atomic_fetch_add(&census.round, 1) + 1) & FIELD_MASK;
	int rc = signal_all(tids, n, round);
	if (!rc)
		rc = await_answers(tids, n);
	/* Late handlers see another round and leave; those already answering finish. */
	atomic_fetch_add(&census.round, 1);
	while (atomic_load(&census.busy))
		sched_yield();
	if (!rc && atomic_load(&census.inside))
		rc = -EBUSY;
	free(answered);
	free(tids);
	return rc;
}

int em_threads_outside(const struct em_pc_range *ranges, size_t n)
{
	if (n && !ranges)
		return -EINVAL;
	em_census_watch_forks();
	pthread_mutex_lock(&census_lock);
	int rc = install();
	if (!rc)
		rc = run_round(ranges, n);
	pthread_mutex_unlock(&census_lock);
	return rc;
}

/* fork() waits for the census under way, whose lock a child would
 * inherit held. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&census_lock);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&census_lock);
}

/* After execmem's own fork handlers: prepare handlers run in the reverse
 * order of their registration, so a census ends before the write gate
 * closes. */
static void watch_forks(void)
{
	em_fork_guard_install();
	pthread_atfork(fork_prepare, fork_done, fork_done);
}

void em_census_watch_forks(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, watch_forks);
}

int em_census_sync(void)
{
	return em_threads_outside(NULL, 0);
}
