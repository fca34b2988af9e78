/*
 * bench_modload.h - load speed of execmem's module loader against dlopen().
 */
#ifndef EXECMEM_TOOLS_BENCH_MODLOAD_H
#define EXECMEM_TOOLS_BENCH_MODLOAD_H

#include <stddef.h>

struct modload_result { double median_ms, min_ms, max_ms; };

/* Receives one summarised figure: workload M1 or M2, the allocator
 * ("execmem-module", "dlopen", "dlopen+text"), the metric and its unit. */
typedef void (*bench_modload_report)(const char *workload, const char *allocator,
				     const char *metric, const char *unit,
				     const struct modload_result *r);

/* Builds M1 (a generated object of a few MiB of code with tens of thousands of
 * relocations) and, where libcrypto.a is installed, M2 (the libcrypto members a
 * SHA/EVP driver needs), and times loading each with the execmem module loader
 * and with dlopen() of the same code built as a .so; returns 0 or -errno and a
 * reason in why. */
int bench_modload(int repeats, int quick, bench_modload_report report, char *why, size_t whylen);

#endif
