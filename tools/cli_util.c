/*
 * cli_util.c - clock, option parsing and terminal progress for the command.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool parse_count(const char *opt, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!text || !*text || *text == '-') {
		fprintf(stderr, "execmem: %s needs a number from %llu to %llu\n", opt,
			(unsigned long long)min, (unsigned long long)max);
		return false;
	}
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || *end || v < min || v > max) {
		fprintf(stderr, "execmem: %s %s: expected a number from %llu to %llu\n", opt, text,
			(unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

bool parse_mode(const char *text, enum execmem_mode *out)
{
	static const struct { const char *name; enum execmem_mode mode; } modes[] = {
		{ "auto", EXECMEM_MODE_AUTO },
		{ "dual", EXECMEM_MODE_DUAL },
		{ "mprotect", EXECMEM_MODE_MPROTECT },
	};
	for (size_t i = 0; text && i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strcmp(text, modes[i].name) == 0) {
			*out = modes[i].mode;
			return true;
		}
	}
	fprintf(stderr, "execmem: --mode %s: expected dual, mprotect or auto\n", text ? text : "");
	return false;
}

void progress_start(struct progress *p, const char *what, uint64_t total)
{
	p->what = what;
	p->total = total;
	p->next_update = 0;
	p->on = isatty(STDERR_FILENO) && total > 0;
}

void progress_show(struct progress *p, uint64_t done)
{
	fprintf(stderr, "\r  %-28s %3llu%%", p->what,
		(unsigned long long)(done * 100 / p->total));
	fflush(stderr);
	p->next_update = done + (p->total + 99) / 100;
}

void progress_done(struct progress *p)
{
	if (p->on)
		fprintf(stderr, "\r%*s\r", 40, "");
}
