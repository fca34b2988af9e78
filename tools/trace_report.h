/*
 * trace_report.h - what the `execmem trace` command and its agent
 * (libexecmem-trace.so) share: the environment the command sets, the
 * record each traced process appends to the report file, and the table.
 */
#ifndef EXECMEM_TOOLS_TRACE_REPORT_H
#define EXECMEM_TOOLS_TRACE_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The functions to trace, separated by commas: FUNC or FUNC@LIB. */
#define TRACE_ENV_FUNCTIONS "EXECMEM_TRACE_FUNCTIONS"
/* The file each process appends its records to; unset: a table on stderr. */
#define TRACE_ENV_OUTPUT "EXECMEM_TRACE_OUTPUT"

enum { TRACE_NAME_MAX = 256, TRACE_STATUS_MAX = 256, TRACE_MAX_FUNCTIONS = 64 };

/* One function in one process. */
struct trace_result {
	long pid;
	char name[TRACE_NAME_MAX];
	uint64_t calls, total_ns;
	char status[TRACE_STATUS_MAX]; /* "" when traced, else why not */
};

/* The record of r, one line; its length (truncated to size - 1 as snprintf). */
size_t trace_result_format(char *buf, size_t size, const struct trace_result *r);
/* Read a record line (without its newline) into r; false when it is not one. */
bool trace_result_parse(const char *line, struct trace_result *r);

/* Rows of the table: the header, then one row per function; each returns its length. */
size_t trace_table_header(char *buf, size_t size);
size_t trace_table_row(char *buf, size_t size, const char *name, uint64_t calls,
		       uint64_t total_ns, const char *status);

#endif
