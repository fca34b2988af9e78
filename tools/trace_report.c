/*
 * trace_report.c - the report records and table of `execmem trace`.
 * Records are tab-separated: "execmem-trace PID NAME CALLS NS STATUS";
 * a status of "-" means traced (a name holds no tab: the command refuses it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_report.h"

#define RECORD_TAG "execmem-trace"

static size_t clamp(int n, size_t size)
{
	if (n < 0)
		return 0;
	return (size_t)n < size ? (size_t)n : size ? size - 1 : 0;
}

size_t trace_result_format(char *buf, size_t size, const struct trace_result *r)
{
	return clamp(snprintf(buf, size, RECORD_TAG "\t%ld\t%s\t%" PRIu64 "\t%" PRIu64 "\t%s\n",
			      r->pid, r->name, r->calls, r->total_ns, *r->status ? r->status : "-"),
		     size);
}

/* The next tab-separated field of *s into out (at most size - 1 bytes); false at the end. */
static bool next_field(const char **s, char *out, size_t size)
{
	if (!*s)
		return false;
	const char *tab = strchr(*s, '\t');
	size_t len = tab ? (size_t)(tab - *s) : strlen(*s);
	if (len >= size)
		return false;
	memcpy(out, *s, len);
	out[len] = '\0';
	*s = tab ? tab + 1 : NULL;
	return true;
}

static bool parse_u64(const char *text, uint64_t *out)
{
	char *end;
	if (!*text)
		return false;
	*out = strtoull(text, &end, 10);
	return !*end;
}

bool trace_result_parse(const char *line, struct trace_result *r)
{
	char field[TRACE_STATUS_MAX];
	uint64_t pid;

	if (!next_field(&line, field, sizeof(field)) || strcmp(field, RECORD_TAG) ||
	    !next_field(&line, field, sizeof(field)) || !parse_u64(field, &pid) ||
	    !next_field(&line, r->name, sizeof(r->name)) ||
	    !next_field(&line, field, sizeof(field)) || !parse_u64(field, &r->calls) ||
	    !next_field(&line, field, sizeof(field)) || !parse_u64(field, &r->total_ns) ||
	    !next_field(&line, r->status, sizeof(r->status)) || line)
		return false;
	r->pid = (long)pid;
	if (!strcmp(r->status, "-"))
		r->status[0] = '\0';
	return true;
}

enum { NAME_WIDTH = 24 };

size_t trace_table_header(char *buf, size_t size)
{
	return clamp(snprintf(buf, size, "%-*s %12s %12s\n", NAME_WIDTH, "FUNCTION", "CALLS",
			      "MEAN"),
		     size);
}

/* A duration with a unit that keeps 3 or 4 significant digits. */
static void format_duration(char *buf, size_t size, double ns)
{
	if (ns < 10)
		snprintf(buf, size, "%.2f ns", ns);
	else if (ns < 1e4)
		snprintf(buf, size, "%.0f ns", ns);
	else if (ns < 1e7)
		snprintf(buf, size, "%.1f us", ns / 1e3);
	else if (ns < 1e10)
		snprintf(buf, size, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, size, "%.2f s", ns / 1e9);
}

size_t trace_table_row(char *buf, size_t size, const char *name, uint64_t calls,
		       uint64_t total_ns, const char *status)
{
	char mean[32] = "-";

	if (*status)
		return clamp(snprintf(buf, size, "%-*s %12s   %s\n", NAME_WIDTH, name, "-", status),
			     size);
	if (calls)
		format_duration(mean, sizeof(mean), (double)total_ns / (double)calls);
	return clamp(snprintf(buf, size, "%-*s %12" PRIu64 " %12s\n", NAME_WIDTH, name, calls, mean),
		     size);
}
