/*
 * CHECK() of the module tests: a failed condition is counted in the
 * `failures` the including file defines, and reported with its place, its
 * text and a printf-style message.
 */
#ifndef EXECMEM_MODULE_CHECK_H
#define EXECMEM_MODULE_CHECK_H

#include <stdio.h>

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			failures++;                                                      \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                    \
			fprintf(stderr, "\n");                                           \
		}                                                                        \
	} while (0)

#endif
