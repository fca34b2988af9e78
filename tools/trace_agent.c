/*
 * trace_agent.c - libexecmem-trace.so, the agent `execmem trace` preloads:
 * hooks each function named in EXECMEM_TRACE_FUNCTIONS with an entry/exit
 * thunk (trace_thunk.c) when the program starts, and at its exit appends a
 * record per function to the file EXECMEM_TRACE_OUTPUT names, or prints a
 * table on stderr when that is unset.
 *
 * Everything is hidden (the static execmem library included, by the link)
 * but the constructor and the destructor.  The report is written by the
 * destructor, which runs when the program returns from main() or calls
 * exit(), after its own destructors and atexit() handlers; _exit() and a
 * fatal signal end the process without it, and nothing is reported.
 * A forked child starts counting from zero and reports on its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "execmem/patch.h"
#include "trace_report.h"
#include "trace_symbols.h"
#include "trace_thunk.h"

#define AGENT_API __attribute__((visibility("default")))

/* Run by the dynamic linker, and visible to say which library this is. */
AGENT_API void execmem_trace_start(void);
AGENT_API void execmem_trace_stop(void);

struct traced {
	char name[TRACE_NAME_MAX];
	void *target;
	char status[TRACE_STATUS_MAX]; /* "" while traced */
};

/* Static, so that nothing is allocated once a function (malloc?) may be traced. */
static struct traced traced[TRACE_MAX_FUNCTIONS];
static struct trace_counters counters[TRACE_MAX_FUNCTIONS]; /* for traced[i], a cache line each */
static void *thunks[TRACE_MAX_FUNCTIONS];
static size_t ntraced;
static struct trace_clock clock_start;

/* Split the comma-separated list into traced[]. */
static void parse_list(const char *list)
{
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		if (len && ntraced == TRACE_MAX_FUNCTIONS) {
			fprintf(stderr, "execmem trace: more than %d functions, %.*s and the rest not traced\n",
				TRACE_MAX_FUNCTIONS, (int)len, p);
			return;
		}
		if (len) {
			snprintf(traced[ntraced].name, sizeof(traced[ntraced].name), "%.*s", (int)len, p);
			ntraced++;
		}
		p += len + (p[len] == ',');
	}
}

/* Find every function and make its thunk, before any hook can count the agent's own calls. */
static void prepare(void)
{
	for (size_t i = 0; i < ntraced; i++) {
		struct traced *t = &traced[i];
		t->target = trace_resolve(t->name, t->status, sizeof(t->status));
		for (size_t j = 0; t->target && j < i; j++)
			if (traced[j].target == t->target) {
				/* formatted aside: the compiler cannot see that j < i
				 * keeps the name out of the status it writes */
				char status[sizeof(t->status)];
				snprintf(status, sizeof(status), "the same function as %.*s",
					 (int)(sizeof(status) - sizeof("the same function as ")),
					 traced[j].name);
				memcpy(t->status, status, sizeof(status));
				t->target = NULL;
			}
		if (!t->target)
			continue;
		thunks[i] = trace_thunk_create(&counters[i], t->target);
		if (!thunks[i]) {
			snprintf(t->status, sizeof(t->status), "no thunk: %s", strerror(errno));
			t->target = NULL;
		}
	}
}

static void hook_all(void)
{
	for (size_t i = 0; i < ntraced; i++) {
		struct traced *t = &traced[i];
		if (!t->target)
			continue;
		int rc = execmem_hook(t->target, thunks[i], &counters[i].original);
		if (rc) {
			const char *why = execmem_last_error();
			snprintf(t->status, sizeof(t->status), "not hooked: %s",
				 why && *why ? why : strerror(-rc));
			trace_thunk_destroy(thunks[i]);
		}
	}
}

/* In a forked child: its report counts its own calls only. */
static void zero_counters(void)
{
	for (size_t i = 0; i < ntraced; i++) {
		__atomic_store_n(&counters[i].calls, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&counters[i].ticks, 0, __ATOMIC_RELAXED);
	}
}

AGENT_API __attribute__((constructor)) void execmem_trace_start(void)
{
	const char *list = getenv(TRACE_ENV_FUNCTIONS);

	if (!list || !*list)
		return;
	trace_clock_start(&clock_start);
	parse_list(list);
	prepare();
	hook_all();
	pthread_atfork(NULL, NULL, zero_counters);
}

/* write() all of buf, through short writes and EINTR. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

AGENT_API __attribute__((destructor)) void execmem_trace_stop(void)
{
	static char report[(TRACE_MAX_FUNCTIONS + 1) * (TRACE_NAME_MAX + TRACE_STATUS_MAX + 64)];
	const char *output = getenv(TRACE_ENV_OUTPUT);
	uint64_t calls[TRACE_MAX_FUNCTIONS], ticks[TRACE_MAX_FUNCTIONS];
	size_t len = 0;

	if (!ntraced)
		return;
	for (size_t i = 0; i < ntraced; i++) {
		calls[i] = __atomic_load_n(&counters[i].calls, __ATOMIC_RELAXED);
		ticks[i] = __atomic_load_n(&counters[i].ticks, __ATOMIC_RELAXED);
	}
	double ns_per_tick = trace_clock_ns_per_tick(&clock_start);
	long pid = (long)getpid();
	if (!output)
		len += trace_table_header(report, sizeof(report));
	for (size_t i = 0; i < ntraced; i++) {
		struct trace_result r = { .pid = pid, .calls = calls[i],
					  .total_ns = (uint64_t)((double)ticks[i] * ns_per_tick) };
		memcpy(r.name, traced[i].name, sizeof(r.name));
		memcpy(r.status, traced[i].status, sizeof(r.status));
		len += output ? trace_result_format(report + len, sizeof(report) - len, &r)
			      : trace_table_row(report + len, sizeof(report) - len, r.name, r.calls,
						r.total_ns, r.status);
	}
	/* One write: the records of processes that end together do not interleave. */
	int fd = output ? open(output, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : STDERR_FILENO;
	if (fd >= 0) {
		write_all(fd, report, len);
		if (output)
			close(fd);
	}
}
