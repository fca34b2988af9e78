/*
 * bench_modload.h - load speed of execmem's module loader against dlopen().
 */
#ifndef EXECMEM_TOOLS_BENCH_MODLOAD_H
#define EXECMEM_TOOLS_BENCH_MODLOAD_H

#include <stddef.h>

struct modload_result { double median_ms, min_ms, max_ms; };

/* Loads a generated object of a few MiB of code with tens of thousands of relocations via the execmem module loader and dlopen() of the same code built as a .so; returns 0 or -errno and a reason in why. */
int bench_modload(int repeats, int quick, struct modload_result *execmem_load, struct modload_result *dlopen_load, char *why, size_t whylen);

#endif
