/*
 * error.c - the sentence behind the last failure of the calling thread:
 * every layer that refuses parameters or placement says why here.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[256];

void em_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
}

const char *execmem_last_error(void)
{
	return last_error;
}
