/*
 * test_fork.c - fork() must leave parent and child each with code of its
 * own (the failures of PCRE2 issue 162 and of libffi closures after fork).
 * While threads of the parent keep allocating, writing, calling and freeing,
 * the main thread forks again and again.  Each child runs the code it
 * inherited, rewrites some of it, allocates, writes, runs and frees from
 * several threads, and checks that a rewrite the parent makes after the
 * fork does not reach it; the parent checks that nothing the child did
 * reaches it.  Both must exit cleanly.  The mode comes from EXECMEM_MODE.
 */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os.h"
#include "rtest.h"

enum { ROUNDS = 8, CHURN_THREADS = 2, CHILD_ITERATIONS = 300, CHILD_SECONDS = 3 };

static enum execmem_mode mode;

/* Forks made by a test that makes n natively: a fifth under valgrind. */
static int forks(int n)
{
	return rt_under_valgrind() ? (n + 4) / 5 : n;
}
static atomic_bool stop;
static atomic_ulong churn_errors, churn_operations;
static atomic_int churners_running;

/* Allocates, writes, runs and frees programs; counts what goes wrong. */
static void churn_once(uint64_t *seed)
{
	uint32_t value = (uint32_t)rt_random(seed);
	void *code = rt_new_program(NULL, 16 + rt_random(seed) % 600, value);
	bool ok = code && rt_program_returns(mode, code, value);
	if (code) {
		value ^= 0x5555u;
		ok = rt_write_program(code, value) && rt_program_returns(mode, code, value) && ok;
		ok = execmem_free(code) == 0 && ok;
	}
	if (!ok)
		atomic_fetch_add(&churn_errors, 1);
	atomic_fetch_add(&churn_operations, 1);
}

static void *churn_until_stopped(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	churn_once(&seed);
	atomic_fetch_add(&churners_running, 1);
	while (!atomic_load(&stop))
		churn_once(&seed);
	return NULL;
}

/*
 * The forks start once every churning thread is past its start-up.  A
 * thread starting is inside the C library's allocator, and sanitizer
 * runtimes before LLVM 18's (GCC 12's among them) do not lock theirs
 * across fork: a child forked then hangs in its threads' first malloc,
 * which says nothing of execmem.  Churning past start-up allocates heap
 * only for a new chunk's descriptor, which its steady state does not make
 * (gdb on malloc, calloc and aligned_alloc saw none in the 8 rounds).
 */
static void wait_for_churners(void)
{
	for (int ms = 0; atomic_load(&churners_running) < CHURN_THREADS && ms < 10000; ms++)
		usleep(1000);
	RT_CHECK(atomic_load(&churners_running) == CHURN_THREADS, "%d of %d churning threads started in 10 s",
		 atomic_load(&churners_running), CHURN_THREADS);
}

static void *churn_a_while(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	for (int i = 0; i < CHILD_ITERATIONS; i++)
		churn_once(&seed);
	return NULL;
}

/* The child allocates, writes, runs and frees from several threads. */
static void churn_in_child(void)
{
	if (rt_no_threads_after_fork()) {
		churn_a_while((void *)99); /* main() said why */
		return;
	}
	pthread_t threads[CHURN_THREADS];
	for (uintptr_t i = 0; i < CHURN_THREADS; i++)
		pthread_create(&threads[i], NULL, churn_a_while, (void *)(i + 99));
	for (int i = 0; i < CHURN_THREADS; i++)
		pthread_join(threads[i], NULL);
}

/* Exit statuses of the child, one per way it can go wrong. */
enum { CHILD_OK, CHILD_INHERITED_WRONG, CHILD_OWN_REWRITE_WRONG, CHILD_SAW_PARENT, CHILD_CHURN,
       CHILD_PIPE, CHILD_FREE };

struct shared_programs {
	void *parent_code;     /* rewritten by the parent after each fork */
	uint32_t parent_value; /* its value at the fork */
	void *round_code;      /* rewritten by the child */
	uint32_t round_value;
};

static int child(const struct shared_programs *p, int from_parent)
{
	if (!rt_program_returns(mode, p->parent_code, p->parent_value) ||
	    !rt_program_returns(mode, p->round_code, p->round_value))
		return CHILD_INHERITED_WRONG;
	if (!rt_write_program(p->round_code, p->round_value + 1) ||
	    !rt_program_returns(mode, p->round_code, p->round_value + 1))
		return CHILD_OWN_REWRITE_WRONG;
	churn_in_child();
	if (atomic_load(&churn_errors))
		return CHILD_CHURN;
	char byte;
	if (read(from_parent, &byte, 1) != 1)
		return CHILD_PIPE;
	/* The parent has rewritten parent_code by now: the child must not see it. */
	if (!rt_program_returns(mode, p->parent_code, p->parent_value))
		return CHILD_SAW_PARENT;
	return execmem_free(p->round_code) == 0 ? CHILD_OK : CHILD_FREE;
}

static void fork_round(struct shared_programs *p, int round)
{
	int pipe_fds[2];
	RT_CHECK(pipe(pipe_fds) == 0, "pipe");
	p->round_value = 0x7000u + (uint32_t)round * 16;
	p->round_code = rt_new_program(NULL, 64 + (size_t)round * 40, p->round_value);
	RT_CHECK(p->round_code, "round program: errno %d", errno);
	if (!p->round_code)
		return;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipe_fds[1]);
		exit(child(p, pipe_fds[0])); /* exit(): atexit handlers and LeakSanitizer run */
	}
	close(pipe_fds[0]);
	uint32_t new_value = p->parent_value + 1;
	RT_CHECK(rt_write_program(p->parent_code, new_value), "parent rewrite");
	RT_CHECK(write(pipe_fds[1], "x", 1) == 1, "pipe write");
	close(pipe_fds[1]);
	int status = rt_wait_child(pid, CHILD_SECONDS);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK,
		 "round %d: child status %#x (exit 1 inherited code wrong, 2 own rewrite, 3 saw parent's"
		 " rewrite, 4 churn, 5 pipe, 6 free; signal 9: hung, killed)", round, status);
	RT_CHECK(rt_program_returns(mode, p->parent_code, new_value), "parent lost its own rewrite");
	RT_CHECK(rt_program_returns(mode, p->round_code, p->round_value), "round %d: the child's rewrite reached the parent", round);
	p->parent_value = new_value;
	RT_CHECK(execmem_free(p->round_code) == 0, "free of round program");
}

/* ---- fork in the middle of another thread's write ---- */

struct big_writer {
	uint8_t *big;
	size_t len;
	atomic_bool stop;
};

/* Rewrites a large allocation again and again: in mprotect mode its pages,
 * and the neighbours sharing them, are writable (not executable) meanwhile. */
static void *rewrite_big(void *arg)
{
	struct big_writer *w = arg;
	uint8_t *bytes = malloc(w->len);
	if (!bytes)
		return NULL;
	memset(bytes, 0, w->len);
	while (!atomic_load(&w->stop))
		execmem_write(w->big, bytes, w->len);
	free(bytes);
	return NULL;
}

/* A child forked at any moment must be able to run code it inherited, even
 * code on a page another thread of the parent was writing at the fork. */
static void test_fork_during_write(void)
{
	enum { FORKS = 40 };
	uint32_t value = 0x2a2a;
	void *neighbour = rt_new_program(NULL, 64, value);
	struct big_writer w = { .len = 256 * 1024, .stop = false };
	w.big = execmem_alloc(EXECMEM_CODE, w.len); /* usually right after the neighbour, same page */
	pthread_t thread;
	RT_CHECK(neighbour && w.big && pthread_create(&thread, NULL, rewrite_big, &w) == 0, "set-up");
	if (!neighbour || !w.big)
		return;
	int bad = 0;
	for (int i = 0; i < forks(FORKS) && bad < 2; i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0)
			_exit(rt_program_returns(mode, neighbour, value) ? 0 : 1);
		int status = rt_wait_child(pid, CHILD_SECONDS);
		bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		RT_CHECK(ok, "fork %d during a write: child status %#x%s", i, status,
			 WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? " (hung running inherited code)" : "");
		bad += !ok;
	}
	atomic_store(&w.stop, true);
	pthread_join(thread, NULL);
	RT_CHECK(execmem_free(w.big) == 0 && execmem_free(neighbour) == 0, "frees");
	printf("fork during a write: %d forks, %d bad children\n", forks(FORKS), bad);
}

/* ---- fork while threads make their first write ---- */

struct first_writer {
	void *code; /* a program of its own: concurrent writes of one program race */
	uint32_t value;
	atomic_bool *stop;
};

/* A thread's first write registers it with the write gate. */
static void *write_once(void *arg)
{
	struct first_writer *f = arg;
	rt_write_program(f->code, f->value);
	return NULL;
}

static void *spawn_first_writers(void *arg)
{
	struct first_writer *f = arg;
	while (!atomic_load(f->stop)) {
		pthread_t thread;
		if (pthread_create(&thread, NULL, write_once, f) == 0)
			pthread_join(thread, NULL);
	}
	return NULL;
}

/* A child forked while a thread of the parent registers must still be able
 * to write (its first write unshares, and that closes the gate). */
static void test_fork_during_first_writes(void)
{
	enum { FORKS = 300, SPAWNERS = 3 };
	const uint32_t value = 0x3131;
	atomic_bool spawning_stops = false;
	struct first_writer writers[SPAWNERS];
	pthread_t spawners[SPAWNERS];
	void *child_code = rt_new_program(NULL, 64, value);
	bool ready = child_code != NULL;
	for (int i = 0; i < SPAWNERS; i++) {
		writers[i] = (struct first_writer){ rt_new_program(NULL, 64, value), value, &spawning_stops };
		ready = ready && writers[i].code &&
			pthread_create(&spawners[i], NULL, spawn_first_writers, &writers[i]) == 0;
		RT_CHECK(ready, "set-up of spawner %d", i);
		if (!ready) {
			atomic_store(&spawning_stops, true);
			for (int j = 0; j < i; j++)
				pthread_join(spawners[j], NULL);
			return;
		}
	}
	int bad = 0;
	for (int i = 0; i < forks(FORKS) && bad < 2; i++) {
		fflush(NULL);
		pid_t pid = fork();
		if (pid == 0)
			_exit(rt_write_program(child_code, value + 1) &&
			      rt_program_returns(mode, child_code, value + 1) ? 0 : 1);
		int status = rt_wait_child(pid, CHILD_SECONDS);
		bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		RT_CHECK(ok, "fork %d during first writes: child status %#x (signal 9: hung, killed)", i, status);
		bad += !ok;
	}
	atomic_store(&spawning_stops, true);
	for (int i = 0; i < SPAWNERS; i++) {
		pthread_join(spawners[i], NULL);
		RT_CHECK(execmem_free(writers[i].code) == 0, "free of spawner %d's program", i);
	}
	RT_CHECK(rt_program_returns(mode, child_code, value), "a child's write reached the parent");
	RT_CHECK(execmem_free(child_code) == 0, "free");
	printf("fork during first writes: %d forks, %d bad children\n", forks(FORKS), bad);
}

/* ---- a child that cannot have memory of its own ---- */

/* Armed by the test: the OS call that fails in the child from its first
 * fork handler on (registered before execmem's, so it runs first). */
static _Atomic int child_failing_call = -1;

static void arm_child_failures(void)
{
	int call = atomic_load(&child_failing_call);
	if (call >= 0)
		em_os_fail_nth((enum execmem_os_call)call, 1, ENOMEM, 1);
}

enum { NOMEM_OK, NOMEM_INHERITED, NOMEM_WRITE, NOMEM_FREE, NOMEM_NEW, NOMEM_PIPE, NOMEM_SAW_PARENT,
       NOMEM_DETACHED_KEPT };

/*
 * With memfds refused, the child's chunks become private toggled memory;
 * with every mapping refused too, they are detached: their code runs,
 * writes fail with -EIO, frees succeed, new code goes elsewhere.
 */
static int child_without_memory(void *code, uint32_t value, bool detached, int from_parent)
{
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value + 7);
	if (!rt_program_returns(mode, code, value))
		return NOMEM_INHERITED;
	int rc = execmem_write(code, bytes, len);
	if (detached ? rc != -EIO : rc != 0 || !rt_program_returns(mode, code, value + 7))
		return NOMEM_WRITE;
	char byte;
	if (read(from_parent, &byte, 1) != 1)
		return NOMEM_PIPE;
	/* The parent rewrote code to value + 1 meanwhile. */
	if (!rt_program_returns(mode, code, detached ? value : value + 7))
		return NOMEM_SAW_PARENT;
	if (execmem_free(code) != 0)
		return NOMEM_FREE;
	em_os_fail_clear();
	void *fresh = rt_new_program(NULL, 64, value + 9);
	bool ok = fresh && (!detached || fresh != code) && rt_program_returns(mode, fresh, value + 9) &&
		  execmem_free(fresh) == 0;
	if (!ok)
		return NOMEM_NEW;
	/* Emptied and left for the fresh chunk, a detached chunk is useless:
	 * it is unmapped, not kept among the chunks retained for reuse. */
	uintptr_t start, end;
	char perms[5];
	return detached && rt_find_mapping(code, &start, &end, perms) ? NOMEM_DETACHED_KEPT : NOMEM_OK;
}

static void test_fork_without_memory(enum execmem_os_call call, bool detached)
{
	uint32_t value = 0x5150 + (uint32_t)call;
	void *code = rt_new_program(NULL, 64, value);
	int pipe_fds[2];
	RT_CHECK(code && pipe(pipe_fds) == 0, "set-up");
	if (!code)
		return;
	atomic_store(&child_failing_call, (int)call);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipe_fds[1]);
		_exit(child_without_memory(code, value, detached, pipe_fds[0]));
	}
	atomic_store(&child_failing_call, -1);
	close(pipe_fds[0]);
	RT_CHECK(rt_write_program(code, value + 1), "parent rewrite after the fork");
	RT_CHECK(write(pipe_fds[1], "x", 1) == 1, "pipe write");
	close(pipe_fds[1]);
	int status = rt_wait_child(pid, CHILD_SECONDS);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == NOMEM_OK,
		 "%s refused in the child: status %#x (exit 1 inherited code wrong, 2 write, 3 free,"
		 " 4 new code, 5 pipe, 6 saw the parent's rewrite, 7 emptied detached chunk kept;"
		 " signal 6: aborted)",
		 call == EXECMEM_OS_MEMFD ? "memfd" : "mmap", status);
	RT_CHECK(rt_program_returns(mode, code, value + 1), "the child's write reached the parent");
	RT_CHECK(execmem_free(code) == 0, "parent free");
}

int main(void)
{
	/* Before execmem's first use, so that it runs before execmem's handler. */
	pthread_atfork(NULL, NULL, arm_child_failures);
	mode = rt_mode_from_env();
	if (rt_fork_isolation_unsupported(mode))
		return RT_SKIP;
	rt_can_run_rewritten_code(mode); /* says once, before any fork, what qemu-user cannot run */
	if (rt_no_threads_after_fork())
		printf("NOTE: the children churn on one thread only: %s; the native and qemu-system runs"
		       " churn from several\n", rt_no_threads_after_fork());
	signal(SIGPIPE, SIG_IGN); /* a child that died must fail a check, not kill the parent */
	printf("fork: %d rounds while %d threads churn, default arena in %s mode\n", forks(ROUNDS), CHURN_THREADS,
	       execmem_mode_name(mode));
	struct shared_programs programs = { .parent_value = 0x4000 };
	programs.parent_code = rt_new_program(NULL, 64, programs.parent_value);
	RT_CHECK(programs.parent_code, "parent program: errno %d", errno);
	if (!programs.parent_code)
		return rt_finish("fork");
	pthread_t threads[CHURN_THREADS];
	for (uintptr_t i = 0; i < CHURN_THREADS; i++)
		RT_CHECK(pthread_create(&threads[i], NULL, churn_until_stopped, (void *)(i + 1)) == 0, "thread");
	wait_for_churners();
	for (int round = 0; round < forks(ROUNDS); round++)
		fork_round(&programs, round);
	atomic_store(&stop, true);
	for (int i = 0; i < CHURN_THREADS; i++)
		pthread_join(threads[i], NULL);
	RT_CHECK(atomic_load(&churn_errors) == 0, "%lu churn errors in the parent", atomic_load(&churn_errors));
	RT_CHECK(execmem_free(programs.parent_code) == 0, "final free");
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	printf("fork: %d forks, %lu parent operations meanwhile\n", forks(ROUNDS), atomic_load(&churn_operations));
	test_fork_during_write();
	test_fork_during_first_writes();
	if (mode == EXECMEM_MODE_DUAL) {
		test_fork_without_memory(EXECMEM_OS_MEMFD, false);
		test_fork_without_memory(EXECMEM_OS_MMAP, true);
	}
	return rt_finish("fork");
}
