/*
 * bench_alloc.h - the interface every allocator of `execmem bench` offers,
 * so that one set of workloads runs over all of them.  Shared with the C++
 * peer in bench/.
 */
#ifndef EXECMEM_TOOLS_BENCH_ALLOC_H
#define EXECMEM_TOOLS_BENCH_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bits of struct bench_allocator.caps. */
#define BENCH_CAN_EXECUTE 0x1u  /* its memory runs code (W3-W5 and calls need it) */
#define BENCH_THREAD_SAFE 0x2u  /* may be used from two threads at once (W5) */
#define BENCH_FLOOR_ONLY  0x4u  /* not an allocator: only the W1 copy floor */
#define BENCH_PEER        0x8u  /* not execmem: its failures are findings, not errors */
#define BENCH_SYSCALL_PER_WRITE 0x10u /* every write makes system calls (no S1) */
#define BENCH_UNSAFE      0x20u /* a reference for speed only: W+X memory, no trap refill */

/* One allocation: where its code runs, and where a peer with a separate
 * writable view lets it be written (NULL when writes go elsewhere). */
struct bench_block {
	void *code;
	void *writable;
};

struct bench_allocator {
	const char *name;
	unsigned caps;
	/*
	 * Set up in *self.  Returns 0, -ENOSYS when the allocator is not
	 * available in this build or on this system, or another negative
	 * errno; why then says what happened.
	 */
	int (*open)(void **self, char *why, size_t whylen);
	/* Memory for size bytes of code into *out; 0 or a negative errno. */
	int (*alloc)(void *self, size_t size, struct bench_block *out);
	/* Put len bytes of code at the start of block; 0 or a negative errno. */
	int (*write)(void *self, const struct bench_block *block, const void *src, size_t len);
	/* Give back block (size as passed to alloc); 0 or a negative errno. */
	int (*release)(void *self, const struct bench_block *block, size_t size);
	/* System calls that touch memory made so far by this allocator. */
	uint64_t (*os_calls)(void *self);
	/* How it protects code, in a few words. */
	const char *(*mode)(void *self);
	void (*close)(void *self);
	/* How it is configured, for the report (NULL: nothing to say). */
	const char *(*config)(void *self);
};

/* mmap, munmap, mprotect and madvise calls made by this process (all code
 * linked into the command, counted where they enter the C library). */
uint64_t bench_wrapped_os_calls(void);

/* Fill len bytes at dst with the architecture's trap instruction. */
void bench_trap_fill(void *dst, size_t len);

extern const struct bench_allocator bench_asmjit_rwx;
extern const struct bench_allocator bench_asmjit_dual_fill;
extern const struct bench_allocator bench_rwx_bitmap;

#ifdef __cplusplus
}
#endif
#endif
