/*
 * bench_patch.h - P1 of `execmem bench`: hook install and remove, calls
 * through a hook and a trace thunk, and live patches of 1 and 1,000 sites
 * against an mprotect(RWX) patcher (bench_patch.c).
 */
#ifndef EXECMEM_TOOLS_BENCH_PATCH_H
#define EXECMEM_TOOLS_BENCH_PATCH_H

#include <stdbool.h>

/* Measure both peers in this process, repeats (at least 5) interleaved rounds; print child records. */
int bench_patch(int repeats, bool quick);

#endif
