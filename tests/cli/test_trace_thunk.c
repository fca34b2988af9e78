/*
 * test_trace_thunk.c - the entry/exit thunks of `execmem trace`, called
 * directly (no hook): each runs an ordinary function through its slot, and
 * every argument, result and count must come out as without the thunk.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unwind.h>

#include "../test_util.h"
#include "trace_thunk.h"

#define NOINLINE __attribute__((noinline))

/* Ten integer arguments: six in registers, four on the stack. */
NOINLINE static long weigh_ints(long a, long b, long c, long d, long e, long f, long g, long h,
				long i, long j)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i + 10 * j;
}

/* Ten doubles and an int: eight in vector registers, two on the stack. */
NOINLINE static double weigh_doubles(double a, double b, double c, double d, double e, double f,
				     double g, double h, int n, double i, double j)
{
	return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + n * (i - j);
}

/* Varargs: al says how many vector registers carry arguments. */
NOINLINE static double sum_varargs(int n, ...)
{
	va_list ap;
	double sum = 0;

	va_start(ap, n);
	for (int k = 0; k < n; k++)
		sum += k % 2 ? va_arg(ap, double) : (double)va_arg(ap, long);
	va_end(ap);
	return sum;
}

/* Returned in memory (a hidden pointer argument) and passed on the stack. */
struct big {
	long v[5];
};

NOINLINE static struct big make_big(long seed)
{
	struct big b;
	for (int k = 0; k < 5; k++)
		b.v[k] = seed * (k + 1);
	return b;
}

NOINLINE static long sum_big(long first, struct big b, long last)
{
	return first + b.v[0] + b.v[1] + b.v[2] + b.v[3] + b.v[4] + last;
}

/* Returned in two integer registers, in two vector registers, on the x87 stack. */
struct two_longs {
	long a, b;
};
struct two_doubles {
	double a, b;
};

NOINLINE static struct two_longs split_long(long x)
{
	return (struct two_longs){ x / 1000, x % 1000 };
}

NOINLINE static struct two_doubles halves(double x)
{
	return (struct two_doubles){ x / 2, x / 4 };
}

NOINLINE static long double third(long double x)
{
	return x / 3;
}

/* Recursion through the thunk: every level is a traced call. */
static long (*fib_entry)(long);

NOINLINE static long fib(long n)
{
	return n < 2 ? n : fib_entry(n - 1) + fib_entry(n - 2);
}

/* The unwinder crosses a thunk: its frame is one more, and the walk goes on to main(). */
static _Unwind_Reason_Code count_frame(struct _Unwind_Context *context, void *arg)
{
	(void)context;
	++*(int *)arg;
	return _URC_NO_REASON;
}

NOINLINE static int frames_above(void)
{
	int frames = 0;
	_Unwind_Backtrace(count_frame, &frames);
	return frames;
}

/* Counters outlive their thunks, which stay until the end: a static pool. */
static struct trace_counters *counters_new(void *function)
{
	static struct trace_counters pool[16];
	static size_t used;

	if (used == sizeof(pool) / sizeof(pool[0]))
		abort();
	pool[used].original = function;
	return &pool[used++];
}

static uint64_t calls_of(const struct trace_counters *c)
{
	return __atomic_load_n(&c->calls, __ATOMIC_RELAXED);
}

/* A thunk for function, or the test ends. */
static void *thunk_for(struct trace_counters *c)
{
	void *thunk = trace_thunk_create(c, c->original);
	if (!thunk) {
		perror("trace_thunk_create");
		exit(1);
	}
	return thunk;
}

static void test_arguments(void)
{
	struct trace_counters *ci = counters_new((void *)weigh_ints);
	struct trace_counters *cd = counters_new((void *)weigh_doubles);
	struct trace_counters *cv = counters_new((void *)sum_varargs);
	long (*ints)(long, long, long, long, long, long, long, long, long, long) = thunk_for(ci);
	double (*doubles)(double, double, double, double, double, double, double, double, int,
			  double, double) = thunk_for(cd);
	double (*varargs)(int, ...) = thunk_for(cv);

	CHECK_EQ(ints(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), weigh_ints(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
	CHECK_EQ(ints(-5, 0, 7, 1L << 40, 3, 2, 1, -9, 11, 13),
		 weigh_ints(-5, 0, 7, 1L << 40, 3, 2, 1, -9, 11, 13));
	CHECK(doubles(0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 3, 10.25, 0.125) ==
	      weigh_doubles(0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 3, 10.25, 0.125));
	CHECK(varargs(12, 1L, 0.5, 2L, 1.5, 3L, 2.5, 4L, 3.5, 5L, 4.5, 6L, 5.5) == 39.0);
	CHECK(varargs(20, 1L, 1.0, 1L, 1.0, 1L, 1.0, 1L, 1.0, 1L, 1.0, 1L, 1.0, 1L, 1.0, 1L, 1.0,
		      1L, 1.0, 1L, 1.0) == 20.0);
	CHECK_EQ(calls_of(ci), 2);
	CHECK_EQ(calls_of(cd), 1);
	CHECK_EQ(calls_of(cv), 2);
	CHECK(__atomic_load_n(&ci->ticks, __ATOMIC_RELAXED) > 0);
}

static void test_results(void)
{
	struct trace_counters *cm = counters_new((void *)make_big);
	struct trace_counters *cs = counters_new((void *)sum_big);
	struct trace_counters *cl = counters_new((void *)split_long);
	struct trace_counters *ch = counters_new((void *)halves);
	struct trace_counters *ct = counters_new((void *)third);
	struct big (*make)(long) = thunk_for(cm);
	long (*sum)(long, struct big, long) = thunk_for(cs);
	struct two_longs (*split)(long) = thunk_for(cl);
	struct two_doubles (*half)(double) = thunk_for(ch);
	long double (*thirds)(long double) = thunk_for(ct);

	struct big b = make(7);
	for (int k = 0; k < 5; k++)
		CHECK_EQ(b.v[k], 7 * (k + 1));
	CHECK_EQ(sum(1000, b, 100000), 1000 + 7 * 15 + 100000);
	struct two_longs l = split(123456);
	CHECK_EQ(l.a, 123);
	CHECK_EQ(l.b, 456);
	struct two_doubles d = half(10.0);
	CHECK(d.a == 5.0 && d.b == 2.5);
	CHECK(thirds(9.0L) == third(9.0L));
	CHECK_EQ(calls_of(cm) + calls_of(cs) + calls_of(cl) + calls_of(ch) + calls_of(ct), 5);
}

static void test_recursion(void)
{
	struct trace_counters *c = counters_new((void *)fib);
	fib_entry = thunk_for(c);

	CHECK_EQ(fib_entry(15), 610);
	CHECK_EQ(calls_of(c), 1973); /* fib(n) makes 2 * fib(n + 1) - 1 calls */
}

enum { THREADS = 4, CALLS_PER_THREAD = 100000 };

static long (*shared_entry)(long, long, long, long, long, long, long, long, long, long);

static void *call_many(void *arg)
{
	long id = (long)(intptr_t)arg, wrong = 0;

	for (long k = 0; k < CALLS_PER_THREAD; k++)
		if (shared_entry(id, k, 0, 0, 0, 0, 0, 0, 0, k) != id + 2 * k + 10 * k)
			wrong++;
	return (void *)(intptr_t)wrong;
}

static void test_threads(void)
{
	struct trace_counters *c = counters_new((void *)weigh_ints);
	pthread_t t[THREADS];

	shared_entry = thunk_for(c);
	for (long k = 0; k < THREADS; k++)
		CHECK_EQ(pthread_create(&t[k], NULL, call_many, (void *)(intptr_t)k), 0);
	for (int k = 0; k < THREADS; k++) {
		void *wrong;
		pthread_join(t[k], &wrong);
		CHECK_EQ((intptr_t)wrong, 0);
	}
	CHECK_EQ(calls_of(c), (uint64_t)THREADS * CALLS_PER_THREAD);
}

static void test_unwind(void)
{
	struct trace_counters *c = counters_new((void *)frames_above);
	int (*through)(void) = thunk_for(c);
	int direct = frames_above();

	CHECK(direct > 2);
	CHECK_EQ(through(), direct + 1);
	CHECK_EQ(trace_thunk_destroy((void *)through), 0);
}

static void test_clock(void)
{
	struct trace_clock clock;

	trace_clock_start(&clock);
	double ns_per_tick = trace_clock_ns_per_tick(&clock);
	CHECK(ns_per_tick > 0);
}

int main(void)
{
#if !defined(__x86_64__) && !defined(__aarch64__)
	/* No thunk generator for this CPU: refused, not faked. */
	struct trace_counters c = { .original = (void *)fib };
	errno = 0;
	CHECK(trace_thunk_create(&c, NULL) == NULL && errno == ENOTSUP);
	return tu_finish("test_trace_thunk");
#endif
	test_arguments();
	test_results();
	test_recursion();
	test_threads();
	test_unwind();
	test_clock();
	return tu_finish("test_trace_thunk");
}
