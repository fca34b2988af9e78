/*
 * rtest.h - what the reliability tests share: a tiny per-architecture
 * emitter of "return a constant" functions, calling or checking such code,
 * the mode under test, /proc/self/maps scans, and counted checks.
 */
#ifndef EXECMEM_RTEST_H
#define EXECMEM_RTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "execmem.h"

/* Exit status CTest reads as "skipped" (SKIP_RETURN_CODE). */
#define RT_SKIP 77

/* Longest function rt_emit_return() makes. */
#define RT_PROGRAM_MAX 16

/* ---- counted checks: a failed check is reported and the test goes on ---- */
extern unsigned long rt_checks, rt_failures;

#define RT_CHECK(cond, ...)                                                   \
	do {                                                                  \
		rt_checks++;                                                  \
		if (!(cond)) {                                                \
			rt_failures++;                                        \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

/* Prints the closing line and returns the exit status for main(). */
int rt_finish(const char *test_name);

/* ---- machine code ---- */
/* Writes a function returning `value` into buf; returns its length. */
size_t rt_emit_return(uint8_t buf[RT_PROGRAM_MAX], uint32_t value);
/* Calls a function made by rt_emit_return(). */
uint32_t rt_call(const void *code);
/* The architecture's trap instruction as execmem fills code memory with it. */
const uint8_t *rt_trap_pattern(size_t *len);
/* True when [p, p + len) holds nothing but trap instructions. */
bool rt_is_trap_filled(const void *p, size_t len);

/* ---- the mode under test ---- */
/* EXECMEM_MODE of the environment (the tests' CTest entries set it). */
enum execmem_mode rt_mode_from_env(void);
/* The same, "auto" taken as dual (what it starts as); says once, before
 * any fork, what qemu-user cannot run. */
enum execmem_mode rt_mode_under_test(void);
/* True when scripts/ci-cross.sh runs the tests under qemu-user. */
bool rt_under_qemu_user(void);
/* True, having said why, where dual mode's fork isolation cannot hold:
 * qemu-user ignores MADV_DONTFORK, so a child inherits the RW aliases (the
 * emulated machine of scripts/ci-qemu-system.sh runs these tests on a
 * kernel that honours it). */
bool rt_fork_isolation_unsupported(enum execmem_mode mode);
/* True in a ThreadSanitizer build. */
bool rt_under_tsan(void);
/* True in an AddressSanitizer build. */
bool rt_under_asan(void);
/* True when the test runs under valgrind (scripts/ci-valgrind.sh), where a
 * fork costs about a hundred times what it costs natively. */
bool rt_under_valgrind(void);
/* Why a child of a threaded process cannot start threads here, or NULL. */
const char *rt_no_threads_after_fork(void);
/*
 * qemu-user runs code rewritten through an alias mapping stale (it only
 * watches the mapping being executed), so code execmem rewrote in dual mode
 * cannot be run there.  The script that runs the tests under qemu-user sets
 * EXECMEM_TEST_QEMU_USER=1.  Prints the reason once when it answers false.
 */
bool rt_can_run_rewritten_code(enum execmem_mode mode);
/*
 * Checks that the program at code returns value: by calling it where
 * rt_can_run_rewritten_code(mode), else by comparing its bytes with what
 * rt_emit_return(value) makes.  Returns whether it does.
 */
bool rt_program_returns(enum execmem_mode mode, const void *code, uint32_t value);
/* Writes "return value" into code; returns whether execmem_write() took it. */
bool rt_write_program(void *code, uint32_t value);
/* Allocates code in arena (NULL: default) holding "return value". */
void *rt_new_program(struct execmem_arena *arena, size_t size, uint32_t value);

/* An arena of the given mode, other parameters the defaults; NULL with errno. */
struct execmem_arena *rt_arena_in(enum execmem_mode mode);

/* ---- the address space ---- */
/* Mappings that are writable and executable at once (0 is the only good answer). */
int rt_count_wx_mappings(void);
/* Number of mappings, and bytes mapped, as /proc/self/maps lists them,
 * leaving out the C library's heap (LeakSanitizer watches that). */
void rt_mapping_totals(size_t *mappings, size_t *bytes);
/* Open file descriptors of the process. */
int rt_count_fds(void);
/* Finds the mapping holding addr: its bounds and "rwxp" permission text. */
bool rt_find_mapping(const void *addr, uintptr_t *start, uintptr_t *end, char perms[5]);

/* Waits for child pid up to seconds, then kills it (SIGKILL: "hung");
 * returns its wait status, or -1. */
int rt_wait_child(pid_t pid, int seconds);

/* Small, fast, seeded pseudo-random numbers (one state per thread). */
uint64_t rt_random(uint64_t *state);

#endif
