/*
 * cli.h - pieces shared by the subcommands of the `execmem` command.
 */
#ifndef EXECMEM_TOOLS_CLI_H
#define EXECMEM_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "execmem.h"

/* Exit codes of the command (documented in `execmem --help`). */
enum {
	EXIT_OK = 0,
	EXIT_CHECK_FAILED = 1, /* a program returned a wrong value, or a W+X mapping was found */
	EXIT_USAGE = 2,        /* unknown command or bad option */
	EXIT_SYSTEM = 3,       /* the library or the system refused (allocation, /proc, fork) */
};

int cmd_demo(int argc, char **argv);
/* `execmem load ...` (tools/cmd_load.c, built when present; argv[0] = "load"). */
int cmd_load(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* `execmem audit [--json] [PID]` (tools/cmd_audit.c; argv[0] = "audit"). */
int cmd_audit(int argc, char **argv);
/* `execmem trace -f FUNCTION... -- PROGRAM ARGS...` (tools/cmd_trace.c; argv[0] = "trace"). */
int cmd_trace(int argc, char **argv);
/* Runs one workload of one allocator; started by cmd_bench in a fresh process. */
int cmd_bench_child(int argc, char **argv);
void usage_demo(FILE *out);
void usage_bench(FILE *out);
void usage_audit(FILE *out);
void usage_trace(FILE *out);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Parse a decimal count in [min, max]; false (with a message) otherwise. */
bool parse_count(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Parse "dual", "mprotect" or "auto". */
bool parse_mode(const char *text, enum execmem_mode *out);

/* Progress of a long phase, shown on a terminal only ("\r" line on stderr). */
struct progress {
	const char *what;
	uint64_t total, next_update;
	bool on;
};
void progress_start(struct progress *p, const char *what, uint64_t total);
void progress_show(struct progress *p, uint64_t done);
static inline void progress_step(struct progress *p, uint64_t done)
{
	if (p->on && done >= p->next_update)
		progress_show(p, done);
}
void progress_done(struct progress *p);

#endif
