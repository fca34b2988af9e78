/*
 * bench_oscount.c - counting the memory system calls of the peers.
 *
 * The command is linked with --wrap for mmap, munmap, mprotect and madvise,
 * so every call that code linked into it makes through the C library comes
 * here first.  This counts the calls of the peers whose code we do not own
 * (asmjit) the same way as those of our own peers.  execmem's figures come
 * from its own counters (execmem_stats) instead.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "bench_alloc.h"

static _Atomic uint64_t wrapped_calls;

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_mprotect(void *addr, size_t len, int prot);
int __real_madvise(void *addr, size_t len, int advice);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_mprotect(void *addr, size_t len, int prot);
int __wrap_madvise(void *addr, size_t len, int advice);

static void count_call(void)
{
	atomic_fetch_add_explicit(&wrapped_calls, 1, memory_order_relaxed);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	count_call();
	return __real_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
	count_call();
	return __real_munmap(addr, len);
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
	count_call();
	return __real_mprotect(addr, len, prot);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	count_call();
	return __real_madvise(addr, len, advice);
}

uint64_t bench_wrapped_os_calls(void)
{
	return atomic_load_explicit(&wrapped_calls, memory_order_relaxed);
}
