/*
 * common.c - the helpers every stage of the loader shares: the per-thread
 * error message, the clock of the stage times, array growth, names of
 * memory types.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "common.h"

static __thread char last_error[512];

int mod_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return -err;
}

void mod_clear_error(void)
{
	last_error[0] = '\0';
}

const char *mod_last_error(void)
{
	return last_error;
}

uint64_t mod_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *mod_grow(void *items, size_t count, size_t *capacity, size_t item_size, size_t first)
{
	if (count < *capacity)
		return items;
	size_t ncap = *capacity ? *capacity * 2 : first;
	void *n = realloc(items, ncap * item_size);
	if (n)
		*capacity = ncap;
	return n;
}

const char *mod_type_name(enum execmem_type type)
{
	switch (type) {
	case EXECMEM_CODE:          return "code";
	case EXECMEM_CODE_NEAR:     return "code_near";
	case EXECMEM_DATA:          return "data";
	case EXECMEM_RODATA:        return "rodata";
	case EXECMEM_RO_AFTER_INIT: return "ro_after_init";
	default:                    return "absolute";
	}
}
