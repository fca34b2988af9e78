/*
 * test_hook_stress.c - 8 threads call a function in tight loops while
 * another hooks and unhooks it over and over (100,000 times natively,
 * fewer under sanitizers and emulators) and a third audits the mappings
 * for W+X throughout: every call must return either the function's own
 * result or the replacement's, and no mapping may be writable and
 * executable at any check.
 *
 * The replacement does not call the original: a caller may still be
 * inside the replacement when the hook goes and its trampoline is freed
 * (execmem_unhook() documents that obligation); the trampoline's own code
 * is run by test_hook.
 */
#include "execmem/patch.h"
#include "hook_subjects.h"
#include "rtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define CALLERS 8
#define HOOKED_OFFSET 1000000

static long (*target)(long); /* arith, gcc -O2: 7a + 3 */
static atomic_bool stop;
static atomic_ulong own_results, hooked_results, wrong_results, wx_seen, audits;

static long replacement(long a)
{
	return a + HOOKED_OFFSET;
}

static void *caller(void *arg)
{
	long (*volatile fn)(long) = target;
	unsigned long own = 0, hooked = 0, wrong = 0;
	for (long i = (long)(uintptr_t)arg; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
		long a = i & 1023, r = fn(a);
		if (r == 7 * a + 3)
			own++;
		else if (r == a + HOOKED_OFFSET)
			hooked++;
		else if (wrong++ == 0)
			fprintf(stderr, "FAIL: f(%ld) = %ld\n", a, r);
	}
	own_results += own;
	hooked_results += hooked;
	wrong_results += wrong;
	return NULL;
}

static void *auditor(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (rt_count_wx_mappings() != 0)
			wx_seen++;
		audits++;
	}
	return NULL;
}

static int hook_target(void **original)
{
	return execmem_hook((void *)target, (void *)replacement, original);
}

static int unhook_target(void **unused)
{
	(void)unused;
	return execmem_unhook((void *)target);
}

/* -EBUSY (a caller stayed inside the bytes being changed) and -ETIMEDOUT
 * (a thread did not answer the census in time): nothing changed, the
 * operation is tried again, a bounded number of times. */
static int retried(int rc, int (*op)(void **), void **arg, unsigned long *busy)
{
	for (int tries = 0; (rc == -EBUSY || rc == -ETIMEDOUT) && tries < 100; tries++) {
		++*busy;
		rc = op(arg);
	}
	return rc;
}

/* Each cycle waits for a census of every thread (twice), which on a
 * machine with fewer cores than threads takes scheduling rounds: the loop
 * also stops after TIME_BUDGET_S, and says how far it got. */
#define TIME_BUDGET_S 10

static bool out_of_time(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - start->tv_sec >= TIME_BUDGET_S;
}

static unsigned long cycles(void)
{
	if (rt_under_qemu_user())
		return 500;
	if (rt_under_tsan() || rt_under_asan() || rt_under_valgrind())
		return 5000;
	return 100000;
}

int main(void)
{
	for (const struct hook_subject *s = hook_subjects_gcc_O2; s->name; s++)
		if (!strcmp(s->name, "arith"))
			target = s->fn;
	pthread_t callers[CALLERS], audit;
	for (uintptr_t i = 0; i < CALLERS; i++)
		RT_CHECK(pthread_create(&callers[i], NULL, caller, (void *)(i * 97)) == 0, "thread");
	RT_CHECK(pthread_create(&audit, NULL, auditor, NULL) == 0, "auditor");

	unsigned long n = cycles(), busy = 0, failed = 0, done = 0;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (; done < n && failed < 10 && !out_of_time(&start); done++) {
		void *original;
		int rc = retried(hook_target(&original), hook_target, &original, &busy);
		if (rc == 0)
			rc = retried(unhook_target(NULL), unhook_target, NULL, &busy);
		if (rc) {
			failed++;
			fprintf(stderr, "FAIL: cycle %lu: %d %s\n", done, rc, execmem_last_error());
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < CALLERS; i++)
		pthread_join(callers[i], NULL);
	pthread_join(audit, NULL);

	printf("%lu of %lu hook+unhook cycles%s (%lu retried: a thread stayed inside or did not "
	       "answer), %lu calls (%lu own, %lu hooked), %lu audits\n", done, n,
	       done < n ? ", then out of time" : "", busy, own_results + hooked_results,
	       (unsigned long)own_results, (unsigned long)hooked_results, (unsigned long)audits);
	RT_CHECK(failed == 0, "%lu hook operations failed", failed);
	RT_CHECK(done > 0, "no cycle in the time budget");
	RT_CHECK(wrong_results == 0, "%lu calls returned neither result", (unsigned long)wrong_results);
	RT_CHECK(own_results > 0 && hooked_results > 0, "own %lu hooked %lu: the hook never raced",
		 (unsigned long)own_results, (unsigned long)hooked_results);
	RT_CHECK(audits > 0 && wx_seen == 0, "%lu of %lu audits saw W+X", (unsigned long)wx_seen,
		 (unsigned long)audits);
	RT_CHECK(target(2) == 17, "unhooked at the end");
	return rt_finish("test_hook_stress");
}
