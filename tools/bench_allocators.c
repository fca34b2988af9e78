/*
 * bench_allocators.c - the allocators `execmem bench` compares:
 *   execmem            the library in its default mode
 *   execmem-mprotect   the library in mprotect mode
 *   page               a page per program: mmap RW, write, mprotect RX, munmap
 *   mprotect-pool      a pool of RX memory in power-of-two slots, toggled to
 *                      RW with mprotect for each write (freed slots are not
 *                      refilled, as in most such pools)
 *   asmjit-*           asmjit's JitAllocator (bench/asmjit_peer.cpp)
 *   floor              no allocator: the copy into, and trap fill out of,
 *                      memory that is already faulted in
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "execmem.h"

void bench_trap_fill(void *dst, size_t len)
{
#if defined(__x86_64__)
	memset(dst, 0xCC, len);                       /* int3 */
#else
#if defined(__aarch64__)
	const uint32_t trap = 0xD4200000u;            /* brk #0 */
#else
	const uint32_t trap = 0x00100073u;            /* ebreak */
#endif
	uint8_t *p = dst;
	size_t words = len / sizeof(trap);
	for (size_t i = 0; i < words; i++)
		memcpy(p + i * sizeof(trap), &trap, sizeof(trap));
	memset(p + words * sizeof(trap), 0, len % sizeof(trap));
#endif
}

static void sync_icache(void *code, size_t len)
{
	__builtin___clear_cache((char *)code, (char *)code + len);
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

/* ---- execmem ---------------------------------------------------------- */

static int execmem_open_in(enum execmem_mode mode, char *why, size_t whylen)
{
	struct execmem_params params;
	int err;

	if (mode == EXECMEM_MODE_AUTO)
		return 0; /* the default arena, as users get it */
	execmem_params_init(&params);
	params.mode = mode;
	err = execmem_configure(&params);
	if (err)
		snprintf(why, whylen, "execmem_configure(%s): %s", execmem_mode_name(mode),
			 *execmem_last_error() ? execmem_last_error() : strerror(-err));
	return err;
}

static int execmem_open_default(void **self, char *why, size_t whylen)
{
	*self = NULL;
	return execmem_open_in(EXECMEM_MODE_AUTO, why, whylen);
}

static int execmem_open_mprotect(void **self, char *why, size_t whylen)
{
	*self = NULL;
	return execmem_open_in(EXECMEM_MODE_MPROTECT, why, whylen);
}

static int execmem_bench_alloc(void *self, size_t size, struct bench_block *out)
{
	(void)self;
	out->code = execmem_alloc(EXECMEM_CODE, size);
	out->writable = NULL;
	return out->code ? 0 : -errno;
}

static int execmem_bench_write(void *self, const struct bench_block *block, const void *src, size_t len)
{
	(void)self;
	return execmem_write(block->code, src, len);
}

static int execmem_bench_release(void *self, const struct bench_block *block, size_t size)
{
	(void)self;
	(void)size;
	return execmem_free(block->code);
}

static uint64_t execmem_bench_os_calls(void *self)
{
	struct execmem_stats st;
	(void)self;
	return execmem_stats(&st) ? 0 : st.os_calls_total;
}

static const char *execmem_bench_mode(void *self)
{
	struct execmem_stats st;
	(void)self;
	return execmem_stats(&st) ? "?" : execmem_mode_name(st.mode);
}

static void execmem_bench_close(void *self)
{
	(void)self;
}

static const char *execmem_default_config(void *self)
{
	(void)self;
	return "default arena, default parameters";
}

static const char *execmem_mprotect_config(void *self)
{
	(void)self;
	return "default arena, execmem_configure(mode = EXECMEM_MODE_MPROTECT)";
}

static const struct bench_allocator execmem_default_alloc = {
	.name = "execmem",
	.caps = BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE,
	.open = execmem_open_default,
	.alloc = execmem_bench_alloc,
	.write = execmem_bench_write,
	.release = execmem_bench_release,
	.os_calls = execmem_bench_os_calls,
	.mode = execmem_bench_mode,
	.close = execmem_bench_close,
	.config = execmem_default_config,
};

static const struct bench_allocator execmem_mprotect_alloc = {
	.name = "execmem-mprotect",
	.caps = BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_SYSCALL_PER_WRITE,
	.open = execmem_open_mprotect,
	.alloc = execmem_bench_alloc,
	.write = execmem_bench_write,
	.release = execmem_bench_release,
	.os_calls = execmem_bench_os_calls,
	.mode = execmem_bench_mode,
	.close = execmem_bench_close,
	.config = execmem_mprotect_config,
};

/* ---- helpers of the peers that count their own system calls ---------- */

static uint64_t wrapped_os_calls(void *self)
{
	(void)self;
	return bench_wrapped_os_calls();
}

static int open_stateless(void **self, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	*self = NULL;
	return 0;
}

static void close_stateless(void *self)
{
	(void)self;
}

/* ---- a page per program ----------------------------------------------- */

static int page_alloc(void *self, size_t size, struct bench_block *out)
{
	void *p = mmap(NULL, round_up(size, page_size()), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	(void)self;
	if (p == MAP_FAILED)
		return -errno;
	out->code = out->writable = p;
	return 0;
}

static int page_write(void *self, const struct bench_block *block, const void *src, size_t len)
{
	(void)self;
	memcpy(block->writable, src, len);
	if (mprotect(block->code, round_up(len, page_size()), PROT_READ | PROT_EXEC))
		return -errno;
	sync_icache(block->code, len);
	return 0;
}

static int page_release(void *self, const struct bench_block *block, size_t size)
{
	(void)self;
	return munmap(block->code, round_up(size, page_size())) ? -errno : 0;
}

static const char *page_mode(void *self)
{
	(void)self;
	return "mapping per program, RW then RX";
}

static const struct bench_allocator page_alloc_desc = {
	.name = "page",
	.caps = BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER | BENCH_SYSCALL_PER_WRITE,
	.open = open_stateless,
	.alloc = page_alloc,
	.write = page_write,
	.release = page_release,
	.os_calls = wrapped_os_calls,
	.mode = page_mode,
	.close = close_stateless,
};

/* ---- an mprotect-toggled pool ------------------------------------------ */

enum {
	POOL_MIN_SHIFT = 6,               /* 64 B slots ... */
	POOL_CLASSES = 9,                 /* ... up to 16 KiB */
	POOL_REGION = 2 << 20,
};

struct pool_class {
	void **free;
	size_t nfree, cap;
};

struct pool {
	pthread_mutex_t lock;             /* free lists and carving */
	pthread_mutex_t write_lock;       /* one RW window at a time, or a
					   * writer could re-protect a page that
					   * another is still writing */
	struct pool_class classes[POOL_CLASSES];
	uint8_t *carve, *carve_end;
};

static int pool_open(void **self, char *why, size_t whylen)
{
	struct pool *pool = calloc(1, sizeof(*pool));
	if (!pool) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_mutex_init(&pool->write_lock, NULL);
	*self = pool;
	return 0;
}

static int pool_class_of(size_t size)
{
	int cls = 0;
	while (((size_t)1 << (cls + POOL_MIN_SHIFT)) < size)
		cls++;
	return cls < POOL_CLASSES ? cls : -1;
}

static void *pool_carve(struct pool *pool, size_t slot)
{
	if ((size_t)(pool->carve_end - pool->carve) < slot) {
		void *region = mmap(NULL, POOL_REGION, PROT_READ | PROT_EXEC,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (region == MAP_FAILED)
			return NULL;
		pool->carve = region;
		pool->carve_end = pool->carve + POOL_REGION;
	}
	void *p = pool->carve;
	pool->carve += slot;
	return p;
}

static int pool_alloc(void *self, size_t size, struct bench_block *out)
{
	struct pool *pool = self;
	int cls = pool_class_of(size);

	if (cls < 0)
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	struct pool_class *c = &pool->classes[cls];
	out->code = c->nfree ? c->free[--c->nfree] : pool_carve(pool, (size_t)1 << (cls + POOL_MIN_SHIFT));
	pthread_mutex_unlock(&pool->lock);
	out->writable = out->code;
	return out->code ? 0 : -ENOMEM;
}

static int pool_write(void *self, const struct bench_block *block, const void *src, size_t len)
{
	struct pool *pool = self;
	void *code = block->code;
	size_t page = page_size();
	uintptr_t first = (uintptr_t)code & ~(page - 1);
	size_t span = round_up((uintptr_t)code + len, page) - first;
	int err = 0;

	pthread_mutex_lock(&pool->write_lock);
	if (mprotect((void *)first, span, PROT_READ | PROT_WRITE) == 0) {
		memcpy(code, src, len);
		if (mprotect((void *)first, span, PROT_READ | PROT_EXEC))
			err = -errno;
	} else {
		err = -errno;
	}
	pthread_mutex_unlock(&pool->write_lock);
	if (!err)
		sync_icache(code, len);
	return err;
}

static int pool_release(void *self, const struct bench_block *block, size_t size)
{
	struct pool *pool = self;
	int cls = pool_class_of(size);
	int err = 0;

	pthread_mutex_lock(&pool->lock);
	struct pool_class *c = &pool->classes[cls];
	if (c->nfree == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		void **v = realloc(c->free, cap * sizeof(*v));
		if (v) {
			c->free = v;
			c->cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err)
		c->free[c->nfree++] = block->code;
	pthread_mutex_unlock(&pool->lock);
	return err;
}

static const char *pool_mode(void *self)
{
	(void)self;
	return "RX pool, RW toggle per write";
}

static void pool_close(void *self)
{
	struct pool *pool = self;
	for (int cls = 0; cls < POOL_CLASSES; cls++)
		free(pool->classes[cls].free);
	free(pool); /* regions stay mapped: the process ends right after */
}

static const struct bench_allocator pool_alloc_desc = {
	.name = "mprotect-pool",
	.caps = BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER | BENCH_SYSCALL_PER_WRITE,
	.open = pool_open,
	.alloc = pool_alloc,
	.write = pool_write,
	.release = pool_release,
	.os_calls = wrapped_os_calls,
	.mode = pool_mode,
	.close = pool_close,
};

/* ---- the copy floor ------------------------------------------------------ */

enum { FLOOR_BUFFER = 64 << 20, FLOOR_THREADS = 3 }; /* W5: the thread of the lone run and two */

/* A bump pointer into a buffer faulted in beforehand, reset whenever
 * everything has been released: W1 frees each batch whole. */
struct floor_buffer {
	alignas(64) uint8_t *base; /* a line of its own: threads must not share one */
	uint8_t *next;
	size_t live;
	atomic_int taken; /* an int: riscv64 has no one-byte compare-and-swap without libatomic */
};

/* A buffer per thread, so that W5 in two threads shows what the machine
 * gives two threads copying and filling; a thread takes one at its first
 * allocation and gives it back when it exits. */
struct floor {
	struct floor_buffer buffers[FLOOR_THREADS];
	pthread_key_t mine;
};

/* The calling thread's buffer, without a lookup per call in the floor's
 * W1; the key gives it back when the thread exits. */
static _Thread_local struct floor_buffer *thread_buffer;

static void floor_give_back(void *buffer)
{
	atomic_store(&((struct floor_buffer *)buffer)->taken, 0);
}

static void floor_close(void *self)
{
	struct floor *f = self;
	thread_buffer = NULL;
	for (int i = 0; i < FLOOR_THREADS; i++)
		if (f->buffers[i].base)
			munmap(f->buffers[i].base, FLOOR_BUFFER);
	pthread_key_delete(f->mine);
	free(f);
}

static int floor_open(void **self, char *why, size_t whylen)
{
	struct floor *f = aligned_alloc(alignof(struct floor), round_up(sizeof(*f), alignof(struct floor)));
	if (f)
		memset(f, 0, sizeof(*f));
	if (!f || pthread_key_create(&f->mine, floor_give_back) != 0) {
		snprintf(why, whylen, "out of memory");
		free(f);
		return -ENOMEM;
	}
	for (int i = 0; i < FLOOR_THREADS; i++) {
		void *base = mmap(NULL, FLOOR_BUFFER, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (base == MAP_FAILED) {
			snprintf(why, whylen, "cannot map the floor's buffer: %s", strerror(errno));
			floor_close(f);
			return -ENOMEM;
		}
		f->buffers[i].base = f->buffers[i].next = base;
	}
	*self = f;
	return 0;
}

static struct floor_buffer *floor_buffer_of_thread(struct floor *f)
{
	struct floor_buffer *b = thread_buffer;
	for (int i = 0; !b && i < FLOOR_THREADS; i++) {
		int free_one = 0;
		if (atomic_compare_exchange_strong(&f->buffers[i].taken, &free_one, 1)) {
			b = &f->buffers[i];
			b->next = b->base;
			b->live = 0;
			pthread_setspecific(f->mine, b);
			thread_buffer = b;
		}
	}
	return b;
}

static int floor_alloc(void *self, size_t size, struct bench_block *out)
{
	struct floor_buffer *f = floor_buffer_of_thread(self);
	size = round_up(size, 64);
	if (!f || (size_t)(f->base + FLOOR_BUFFER - f->next) < size)
		return -ENOMEM;
	out->code = out->writable = f->next;
	f->next += size;
	f->live++;
	return 0;
}

static int floor_write(void *self, const struct bench_block *block, const void *src, size_t len)
{
	(void)self;
	memcpy(block->writable, src, len);
	return 0;
}

static int floor_release(void *self, const struct bench_block *block, size_t size)
{
	struct floor_buffer *f = floor_buffer_of_thread(self);
	bench_trap_fill(block->writable, size);
	if (--f->live == 0)
		f->next = f->base;
	return 0;
}

static uint64_t floor_os_calls(void *self)
{
	(void)self;
	return 0;
}

static const char *floor_mode(void *self)
{
	(void)self;
	return "no allocator: copy and trap fill in faulted-in RW memory, a buffer per thread";
}

static const struct bench_allocator floor_alloc_desc = {
	.name = "floor",
	.caps = BENCH_FLOOR_ONLY | BENCH_THREAD_SAFE,
	.open = floor_open,
	.alloc = floor_alloc,
	.write = floor_write,
	.release = floor_release,
	.os_calls = floor_os_calls,
	.mode = floor_mode,
	.close = floor_close,
};

/* ---- asmjit, when the build did not find it ---------------------------- */

#ifndef EXECMEM_HAVE_ASMJIT
static int asmjit_unavailable(void **self, char *why, size_t whylen)
{
	*self = NULL;
	snprintf(why, whylen, "asmjit was not found when execmem was built (install libasmjit-dev)");
	return -ENOSYS;
}

const struct bench_allocator bench_asmjit_rwx = {
	.name = "asmjit-rwx",
	.caps = BENCH_PEER,
	.open = asmjit_unavailable,
};

const struct bench_allocator bench_asmjit_dual_fill = {
	.name = "asmjit-dual-fill",
	.caps = BENCH_PEER,
	.open = asmjit_unavailable,
};
#endif

const struct bench_allocator *const bench_allocator_list[] = {
	&execmem_default_alloc,
	&execmem_mprotect_alloc,
	&page_alloc_desc,
	&pool_alloc_desc,
	&bench_rwx_bitmap,
	&bench_asmjit_rwx,
	&bench_asmjit_dual_fill,
	&floor_alloc_desc,
	NULL,
};

const struct bench_allocator *bench_allocator_find(const char *name)
{
	for (size_t i = 0; bench_allocator_list[i]; i++)
		if (strcmp(bench_allocator_list[i]->name, name) == 0)
			return bench_allocator_list[i];
	return NULL;
}
