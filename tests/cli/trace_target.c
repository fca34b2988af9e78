/*
 * trace_target.c - the program trace_test.py runs under `execmem trace`:
 * each flavour calls the traced functions a number of times known exactly.
 *   calls N      trace_target_exported() N times, count_static() 2N times
 *   getpid N     getpid() N times
 *   fork         trace_target_exported() 2 times, then 3 in a child, then 1
 *   threads      trace_target_exported() 10,000 times in each of 4 threads
 *   status N     trace_target_exported() once, then exit status N
 *   _exit        trace_target_exported() once, then _exit(0)
 *   preload      prints LD_PRELOAD
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* No inlining, and no clone with another calling convention: the calls must reach the symbol. */
#ifdef __clang__
#define TRACED __attribute__((noinline))
#else
#define TRACED __attribute__((noinline, noipa))
#endif

long trace_target_exported(long x);

static volatile long sink;

/* Long enough to be hooked at any optimisation level. */
TRACED long trace_target_exported(long x)
{
	long acc = x;
	for (int i = 0; i < 4; i++)
		acc = acc * 31 + i;
	sink = acc;
	return acc;
}

TRACED static long count_static(long x)
{
	long acc = x;
	for (int i = 0; i < 3; i++)
		acc = acc * 17 + i;
	sink = acc;
	return acc;
}

static void *call_many(void *arg)
{
	for (long i = 0; i < 10000; i++)
		trace_target_exported(i + (long)(intptr_t)arg);
	return NULL;
}

static void call_n(long n)
{
	for (long i = 0; i < n; i++)
		trace_target_exported(i);
}

int main(int argc, char **argv)
{
	const char *flavour = argc > 1 ? argv[1] : "";
	long n = argc > 2 ? atol(argv[2]) : 0;

	if (!strcmp(flavour, "calls")) {
		call_n(n);
		for (long i = 0; i < 2 * n; i++)
			count_static(i);
	} else if (!strcmp(flavour, "getpid")) {
		for (long i = 0; i < n; i++)
			sink = getpid();
	} else if (!strcmp(flavour, "fork")) {
		call_n(2);
		pid_t pid = fork();
		if (pid == 0) {
			call_n(3);
			exit(0);
		}
		waitpid(pid, NULL, 0);
		call_n(1);
	} else if (!strcmp(flavour, "threads")) {
		pthread_t t[4];
		for (long i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, call_many, (void *)(intptr_t)i);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	} else if (!strcmp(flavour, "status")) {
		call_n(1);
		return (int)n;
	} else if (!strcmp(flavour, "_exit")) {
		call_n(1);
		_exit(0);
	} else if (!strcmp(flavour, "preload")) {
		const char *p = getenv("LD_PRELOAD");
		printf("%s\n", p ? p : "");
	} else {
		fprintf(stderr, "trace_target: unknown flavour '%s'\n", flavour);
		return 2;
	}
	return 0;
}
