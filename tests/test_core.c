/*
 * test_core - behaviour of the core library in both modes: code runs, traps
 * fill what is free, placement holds, bad input is refused, the steady state
 * makes no system call, fork keeps processes apart, nothing is ever W+X.
 */
#include "internal.h"
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const enum execmem_mode modes[] = { EXECMEM_MODE_DUAL, EXECMEM_MODE_MPROTECT };
static enum execmem_mode current_mode = EXECMEM_MODE_DUAL;

static struct execmem_arena *arena_in(enum execmem_mode mode)
{
	struct execmem_params p;
	execmem_params_init(&p);
	p.mode = mode;
	struct execmem_arena *a = execmem_arena_create(&p);
	CHECK(a != NULL);
	return a;
}

/* Allocate code of `size` bytes returning value; NULL on failure. */
static void *jit(struct execmem_arena *a, enum execmem_type type, size_t size, int32_t value)
{
	uint8_t code[16];
	size_t len = tu_emit_return(code, value);
	void *p = execmem_arena_alloc(a, type, size < len ? len : size);
	if (p && execmem_write(p, code, len) != 0)
		return NULL;
	return p;
}

static bool is_trap(const void *p, size_t len)
{
	uint8_t trap[4];
	size_t n = tu_trap(trap);
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		if (b[i] != trap[((uintptr_t)(b + i)) % n])
			return false;
	return true;
}

static size_t program_size(unsigned i)
{
	/* Half small, a quarter medium, a quarter up to 16 KiB. */
	unsigned r = (i * 2654435761u) >> 8;
	switch (i % 4) {
	case 0:
	case 1:
		return 16 + r % 484;
	case 2:
		return 500 + r % 1548;
	default:
		return 2048 + r % 14336;
	}
}

static void many_programs(enum execmem_mode mode)
{
	enum { N = 4000 };
	struct execmem_arena *a = arena_in(mode);
	static void *prog[N];
	int wrong = 0;
	for (unsigned i = 0; i < N; i++) {
		prog[i] = jit(a, EXECMEM_CODE, program_size(i), (int32_t)(i * 7 + 1));
		if (!prog[i]) {
			wrong++;
			continue;
		}
		/* Fresh memory past the code holds traps. */
		wrong += !is_trap((uint8_t *)prog[i] + 16, program_size(i) - 16);
	}
	for (unsigned i = 0; i < N; i++)
		wrong += prog[i] && !tu_returns(prog[i], (int32_t)(i * 7 + 1), current_mode == EXECMEM_MODE_DUAL);
	CHECK_EQ(wrong, 0);
	for (unsigned i = 0; i < N; i += 2) {
		size_t size = execmem_usable_size(prog[i]);
		CHECK_EQ(execmem_free(prog[i]), 0);
		wrong += !is_trap(prog[i], size); /* freed code reads as traps */
	}
	CHECK_EQ(wrong, 0);
	for (unsigned i = 0; i < N; i += 2)
		prog[i] = jit(a, EXECMEM_CODE, program_size(i + 1), (int32_t)(i * 3));
	for (unsigned i = 0; i < N; i++)
		wrong += !prog[i] || !tu_returns(prog[i], (int32_t)(i % 2 ? i * 7 + 1 : i * 3), current_mode == EXECMEM_MODE_DUAL);
	CHECK_EQ(wrong, 0);
	struct execmem_stats st;
	CHECK_EQ(execmem_arena_stats(a, &st), 0);
	CHECK_EQ(st.mode, mode);
	CHECK_EQ(st.live_allocations, N);
	CHECK(st.bytes_in_use >= N * 16 && st.bytes_in_use <= st.bytes_reserved);
	CHECK(st.chunks >= 1 && st.bytes_huge % EXECMEM_CHUNK_SIZE == 0);
	CHECK_EQ(tu_wx_mappings(), 0);
	CHECK_EQ(execmem_arena_destroy(a), 0);
	CHECK_EQ(execmem_usable_size(prog[1]), 0); /* gone with its arena */
}

static bool thp_possible(void)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char line[128] = "";
	if (!f)
		return false;
	if (!fgets(line, sizeof line, f))
		line[0] = 0;
	fclose(f);
	return strstr(line, "[never]") == NULL && line[0];
}

static void huge_pages_and_steady_state(enum execmem_mode mode)
{
	struct execmem_arena *a = arena_in(mode);
	void *keep = jit(a, EXECMEM_CODE, 64, 5);
	struct execmem_stats before, after;
	CHECK_EQ(execmem_arena_stats(a, &before), 0);
	if (mode == EXECMEM_MODE_DUAL && thp_possible())
		CHECK(before.bytes_huge >= EXECMEM_CHUNK_SIZE);
	uint8_t code[16];
	size_t len = tu_emit_return(code, 9);
	int wrong = 0;
	for (int i = 0; i < 20000; i++) {
		void *p = execmem_arena_alloc(a, EXECMEM_CODE, 64 + (size_t)(i % 7) * 64);
		wrong += !p || execmem_write(p, code, len) != 0 || !tu_returns(p, 9, current_mode == EXECMEM_MODE_DUAL) ||
			 execmem_free(p) != 0;
	}
	CHECK_EQ(wrong, 0);
	CHECK_EQ(execmem_arena_stats(a, &after), 0);
	/* riscv64 has no user-space instruction cache flush for all harts: its
	 * only calls are the kernel's flush, one per write or trap fill. */
	uint64_t flushes = after.os_calls[EXECMEM_OS_FLUSH_ICACHE] - before.os_calls[EXECMEM_OS_FLUSH_ICACHE];
#if defined(__riscv)
	CHECK_EQ(flushes, 40000);
#else
	CHECK_EQ(flushes, 0);
#endif
	if (mode == EXECMEM_MODE_DUAL)
		CHECK_EQ(after.os_calls_total - before.os_calls_total - flushes, 0);
	else /* two toggles per write and per trap fill on free */
		CHECK(after.os_calls[EXECMEM_OS_MPROTECT] - before.os_calls[EXECMEM_OS_MPROTECT] >= 40000);
	CHECK_EQ(after.live_allocations, 1);
	if (mode == EXECMEM_MODE_MPROTECT)
		CHECK_EQ(after.bytes_huge, 0); /* page toggles split huge pages */
	CHECK(tu_returns(keep, 5, current_mode == EXECMEM_MODE_DUAL));
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

static uintptr_t distance(uintptr_t a, uintptr_t b)
{
	return a > b ? a - b : b - a;
}

static void placement(void)
{
	uintptr_t lo, hi;
	em_image_bounds(&lo, &hi);
	size_t reach = em_arch.code_fallback_reach ? em_arch.code_fallback_reach : em_arch.code_reach;
	for (int t = EXECMEM_CODE_NEAR; t < EXECMEM_TYPE_MAX; t++) {
		uint8_t *p = execmem_alloc((enum execmem_type)t, 4096);
		CHECK(p != NULL);
		if (!p)
			continue;
		uintptr_t end = (uintptr_t)p + 4096;
		CHECK(distance((uintptr_t)p, lo) < reach && distance(end, hi) < reach &&
		      distance((uintptr_t)p, hi) < reach && distance(end, lo) < reach);
		CHECK_EQ(execmem_free(p), 0);
	}
	/* near an arbitrary target */
	static char anchor;
	size_t want = 64 << 20;
	uint8_t *p = execmem_alloc_near(EXECMEM_CODE, 1000, &anchor, want);
	CHECK(p && distance((uintptr_t)p, (uintptr_t)&anchor) <= want &&
	      distance((uintptr_t)p + 999, (uintptr_t)&anchor) <= want);
	CHECK_EQ(execmem_free(p), 0);
	uint8_t *q = execmem_alloc_near(EXECMEM_CODE, 1 << 20, &anchor, 48 << 20);
	CHECK(q && distance((uintptr_t)q, (uintptr_t)&anchor) <= (48 << 20) &&
	      distance((uintptr_t)q + (1 << 20) - 1, (uintptr_t)&anchor) <= (48 << 20));
	CHECK_EQ(execmem_free(q), 0);
	/* impossible: nothing can be mapped in the first page */
	errno = 0;
	CHECK(execmem_alloc_near(EXECMEM_CODE, 64, (void *)4096, 4096) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(execmem_alloc_near(EXECMEM_CODE, 64, &anchor, 0) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(execmem_alloc_near(EXECMEM_CODE, 64, NULL, 1 << 30) == NULL && errno == EINVAL);
	struct execmem_range r[EXECMEM_TYPE_MAX];
	CHECK_EQ(execmem_get_ranges(NULL, r), 0);
	CHECK(r[EXECMEM_CODE].flags & EXECMEM_RANGE_ANYWHERE);
	CHECK(r[EXECMEM_CODE_NEAR].start < lo && r[EXECMEM_CODE_NEAR].end > hi);
}

static void bad_inputs(void)
{
	errno = 0;
	CHECK(execmem_alloc(EXECMEM_TYPE_MAX, 64) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(execmem_alloc((enum execmem_type)-1, 64) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(execmem_alloc(EXECMEM_CODE, 0) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(execmem_alloc(EXECMEM_CODE, SIZE_MAX) == NULL && errno == EINVAL);
	CHECK_EQ(execmem_free(NULL), 0);
	int on_stack = 0;
	CHECK_EQ(execmem_free(&on_stack), -EINVAL);
	CHECK_EQ(execmem_usable_size(&on_stack), 0);
	CHECK_EQ(execmem_write(&on_stack, "x", 1), -EINVAL);
	CHECK_EQ(on_stack, 0);

	uint8_t *p = execmem_alloc(EXECMEM_CODE, 100);
	CHECK(p != NULL);
	CHECK_EQ(execmem_usable_size(p), 128);
	CHECK_EQ(execmem_usable_size(p + 64), 0);
	CHECK_EQ(execmem_free(p + 64), -EINVAL);
	uint8_t junk[200];
	memset(junk, 0x90, sizeof junk);
	CHECK_EQ(execmem_write(p, junk, 129), -EINVAL);
	CHECK_EQ(execmem_write(p + 100, junk, 29), -EINVAL);
	CHECK(is_trap(p, 128)); /* nothing written */
	CHECK_EQ(execmem_write(p, NULL, 4), -EINVAL);
	CHECK_EQ(execmem_write(p + 120, junk, 8), 0);
	CHECK_EQ(execmem_invalidate(p + 120, 8), 0);
	CHECK(is_trap(p, 128));
	CHECK_EQ(execmem_invalidate(p, 129), -EINVAL);
	CHECK_EQ(execmem_seal(p), -EINVAL);
	CHECK_EQ(execmem_write_end(p), -EINVAL);
	CHECK_EQ(execmem_free(p), 0);
	CHECK_EQ(execmem_free(p), -EINVAL);
	CHECK_EQ(execmem_write(p, junk, 1), -EINVAL);
	CHECK(execmem_write_begin(p) == NULL && errno == EINVAL);

	struct execmem_params bad;
	execmem_params_init(&bad);
	bad.granularity = 8;
	errno = 0;
	CHECK(execmem_arena_create(&bad) == NULL && errno == EINVAL);
	CHECK(strstr(execmem_last_error(), "granularity") != NULL);
	execmem_params_init(&bad);
	struct execmem_range ranges[EXECMEM_TYPE_MAX] = { 0 };
	ranges[EXECMEM_CODE_NEAR].flags = EXECMEM_RANGE_SET;
	ranges[EXECMEM_CODE_NEAR].start = 1 << 30;
	ranges[EXECMEM_CODE_NEAR].end = 1 << 20; /* end before start */
	bad.ranges = ranges;
	CHECK(execmem_arena_create(&bad) == NULL && errno == EINVAL);
	ranges[EXECMEM_CODE_NEAR].end = 2u << 30;
	ranges[EXECMEM_CODE_NEAR].protection = EXECMEM_PROT_READ | EXECMEM_PROT_WRITE | EXECMEM_PROT_EXEC;
	CHECK(execmem_arena_create(&bad) == NULL && errno == EINVAL);
	CHECK_EQ(execmem_configure(&bad), -EINVAL);
	execmem_params_init(&bad);
	CHECK_EQ(execmem_configure(&bad), -EBUSY); /* the default arena is in use */
	CHECK_EQ(execmem_arena_destroy(NULL), -EINVAL);
	struct execmem_arena *a = execmem_arena_create(NULL);
	CHECK(a != NULL);
	CHECK_EQ(execmem_arena_destroy(a), 0);
	CHECK_EQ(execmem_arena_destroy(a), -EINVAL);
}

/* Whether storing to p faults (checked in a child process). */
static bool store_faults(volatile uint8_t *p)
{
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* sanitizers catch it otherwise */
		*p = 1;
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

static void data_types(enum execmem_mode mode)
{
	struct execmem_arena *a = arena_in(mode);
	uint8_t *d = execmem_arena_alloc(a, EXECMEM_DATA, 300);
	CHECK(d && d[0] == 0 && d[299] == 0);
	d[5] = 7; /* plain read-write */
	CHECK_EQ(d[5], 7);
	uint8_t *ro = execmem_arena_alloc(a, EXECMEM_RODATA, 64);
	CHECK(ro != NULL);
	CHECK_EQ(execmem_write(ro, "hello", 6), 0);
	CHECK(!strcmp((char *)ro, "hello"));
	CHECK(store_faults(ro));
	uint8_t *init = execmem_arena_alloc(a, EXECMEM_RO_AFTER_INIT, 100);
	CHECK(init != NULL && ((uintptr_t)init % (uintptr_t)em_os_page_size()) == 0);
	init[0] = 42; /* writable until sealed */
	CHECK(!store_faults(init));
	CHECK_EQ(execmem_seal(init), 0);
	CHECK_EQ(execmem_seal(init), -EALREADY);
	CHECK_EQ(init[0], 42);
	CHECK(store_faults(init));
	CHECK_EQ(execmem_write(init, "x", 1), -EPERM);
	CHECK(execmem_write_begin(init) == NULL && errno == EPERM);
	CHECK_EQ(execmem_seal(d), -EINVAL);
	CHECK_EQ(execmem_free(init), 0);
	uint8_t *again = execmem_arena_alloc(a, EXECMEM_RO_AFTER_INIT, 100);
	CHECK(again && again[0] == 0);
	again[0] = 1;
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

static void windows_and_large(enum execmem_mode mode)
{
	struct execmem_arena *a = arena_in(mode);
	uint8_t *p = execmem_arena_alloc(a, EXECMEM_CODE, 256);
	uint8_t *w = execmem_write_begin(p);
	CHECK(w != NULL);
	CHECK(execmem_write_begin(p) == NULL && errno == EBUSY);
	CHECK_EQ(execmem_free(p), -EBUSY);
	tu_emit_return(w, 77);
	CHECK_EQ(tu_wx_mappings(), 0);
	CHECK_EQ(execmem_write_end(p), 0);
	CHECK_EQ(execmem_write_end(p), -EINVAL);
	CHECK(tu_returns(p, 77, current_mode == EXECMEM_MODE_DUAL));
	CHECK_EQ(execmem_free(p), 0);

	size_t big = 3 << 20;
	uint8_t *l = execmem_arena_alloc(a, EXECMEM_CODE, big);
	CHECK(l != NULL && ((uintptr_t)l % EXECMEM_CHUNK_SIZE) == 0);
	CHECK(execmem_usable_size(l) >= big);
	CHECK(is_trap(l + big - 4096, 4096));
	uint8_t code[16];
	size_t len = tu_emit_return(code, 123);
	CHECK_EQ(execmem_write(l + big - 64, code, len), 0);
	CHECK(tu_returns(l + big - 64, 123, current_mode == EXECMEM_MODE_DUAL));
	CHECK_EQ(execmem_free(l + 64), -EINVAL);
	struct execmem_stats st;
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.large_mappings, 1);
	CHECK_EQ(execmem_free(l), 0);
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.large_mappings, 0);
	CHECK_EQ(execmem_usable_size(l), 0);

	/* A coarser granularity is honoured. */
	struct execmem_params params;
	execmem_params_init(&params);
	params.granularity = 256;
	params.mode = mode;
	struct execmem_arena *coarse = execmem_arena_create(&params);
	uint8_t *c1 = execmem_arena_alloc(coarse, EXECMEM_CODE, 10);
	uint8_t *c2 = execmem_arena_alloc(coarse, EXECMEM_CODE, 10);
	CHECK_EQ(execmem_usable_size(c1), 256);
	CHECK(distance((uintptr_t)c1, (uintptr_t)c2) >= 256 && (uintptr_t)c2 % 256 == 0);
	CHECK_EQ(execmem_free(c1), 0); /* any arena's pointer */
	CHECK_EQ(execmem_arena_destroy(coarse), 0);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* Aligned code of every alignment from 64 bytes to a chunk runs, is freed
 * refilled with traps, and large alignments get mappings of their own. */
static void aligned_allocations(enum execmem_mode mode)
{
	struct execmem_arena *a = arena_in(mode);
	uint8_t code[16];
	size_t len = tu_emit_return(code, 41);
	for (size_t align = 64; align <= EXECMEM_CHUNK_SIZE; align <<= 1) {
		uint8_t *p = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 100, align);
		CHECK(p != NULL && (uintptr_t)p % align == 0);
		CHECK(is_trap(p, 100));
		CHECK_EQ(execmem_write(p, code, len), 0);
		CHECK(tu_returns(p, 41, current_mode == EXECMEM_MODE_DUAL));
		CHECK_EQ(execmem_usable_size(p), 128);
		CHECK_EQ(execmem_free(p), 0);
		CHECK(is_trap(p, 100));
	}
	uint8_t *data = execmem_arena_alloc_aligned(a, EXECMEM_DATA, 64, 4096);
	CHECK(data && (uintptr_t)data % 4096 == 0 && data[0] == 0);
	uint8_t *ro = execmem_arena_alloc_aligned(a, EXECMEM_RODATA, 64, 8192);
	CHECK(ro && (uintptr_t)ro % 8192 == 0 && execmem_write(ro, code, len) == 0);
	CHECK(execmem_free(data) == 0 && execmem_free(ro) == 0);

	/* Two 4 KiB-aligned 100-byte blocks share a chunk; the gap before the
	 * second is where the next allocations go. */
	struct execmem_stats st;
	execmem_arena_stats(a, &st);
	size_t chunks = st.chunks;
	uint8_t *first = execmem_arena_alloc(a, EXECMEM_CODE, 64);
	uint8_t *x = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 100, 4096);
	uint8_t *y = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 100, 4096);
	uint8_t *gap = execmem_arena_alloc(a, EXECMEM_CODE, 64);
	CHECK(x && y && (uintptr_t)x % 4096 == 0 && (uintptr_t)y % 4096 == 0);
	CHECK(gap > x && gap < y);
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.chunks, chunks);
	CHECK_EQ(st.bytes_in_use, 64 + 128 + 128 + 64);
	CHECK(execmem_free(first) == 0 && execmem_free(x) == 0 && execmem_free(y) == 0 &&
	      execmem_free(gap) == 0);

	/* Beyond a chunk, and for large sizes: a mapping of its own. */
	size_t huge_align = EXECMEM_CHUNK_SIZE * 4;
	uint8_t *l = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 100, huge_align);
	uint8_t *m = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 3 << 20, huge_align);
	CHECK(l && (uintptr_t)l % huge_align == 0 && m && (uintptr_t)m % huge_align == 0);
	CHECK(l && is_trap(l, 4096) && execmem_write(l, code, len) == 0);
	CHECK(tu_returns(l, 41, current_mode == EXECMEM_MODE_DUAL));
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.large_mappings, 2);
	CHECK(execmem_free(l) == 0 && execmem_free(m) == 0);

	/* Aligned memory grows through realloc's pattern: new, copy, free. */
	uint8_t *r = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 64, 1024);
	CHECK(r && execmem_write(r, code, len) == 0);
	uint8_t *r2 = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 2048, 1024);
	CHECK(r2 && (uintptr_t)r2 % 1024 == 0 && execmem_write(r2, r, 64) == 0);
	CHECK(execmem_free(r) == 0 && tu_returns(r2, 41, current_mode == EXECMEM_MODE_DUAL));
	CHECK_EQ(execmem_free(r2), 0);

	/* The writable pointer of a window keeps the alignment. */
	uint8_t *wa = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 64, 4096);
	uint8_t *w = wa ? execmem_write_begin(wa) : NULL;
	CHECK(w && (uintptr_t)w % 4096 == 0);
	CHECK(wa && execmem_write_end(wa) == 0 && execmem_free(wa) == 0);

	CHECK(!execmem_arena_alloc_aligned(a, EXECMEM_CODE, 64, 0) && errno == EINVAL);
	CHECK(!execmem_arena_alloc_aligned(a, EXECMEM_CODE, 64, 96) && errno == EINVAL);
	CHECK(!execmem_arena_alloc_aligned(a, EXECMEM_CODE, 64, EXECMEM_ALIGN_MAX * 2) &&
	      errno == EINVAL);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

static struct execmem_arena *in_place_arena(enum execmem_mode mode)
{
	struct execmem_params p;
	execmem_params_init(&p);
	p.mode = mode;
	p.write = EXECMEM_WRITE_IN_PLACE;
	return execmem_arena_create(&p);
}

/*
 * An in-place arena: a window's pointer is the allocation itself, never
 * executable while open; closing it publishes code that runs.  Automatic
 * and mprotect modes give it, dual mode is refused.
 */
static void in_place_writing(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	CHECK(!in_place_arena(EXECMEM_MODE_DUAL) && errno == EINVAL);
	struct execmem_params bad;
	execmem_params_init(&bad);
	bad.write = (enum execmem_write)7;
	CHECK(!execmem_arena_create(&bad) && errno == EINVAL);
	CHECK(execmem_configure(&bad) == -EINVAL);

	enum execmem_mode given[] = { EXECMEM_MODE_AUTO, EXECMEM_MODE_MPROTECT };
	for (size_t m = 0; m < 2; m++) {
		struct execmem_arena *a = in_place_arena(given[m]);
		CHECK(a != NULL);
		struct execmem_stats st;
		execmem_arena_stats(a, &st);
		CHECK_EQ(st.mode, EXECMEM_MODE_MPROTECT);
		uint8_t *f = execmem_arena_alloc(a, EXECMEM_CODE, 100);
		uint8_t *g = execmem_arena_alloc(a, EXECMEM_CODE, 100);
		CHECK(f && (uintptr_t)f % page == 0 && execmem_usable_size(f) == page);
		CHECK(g && distance((uintptr_t)f, (uintptr_t)g) >= page);
		uint8_t *w = execmem_write_begin(f);
		CHECK(w == f);
		tu_emit_return(w, 64);
		CHECK_EQ(tu_wx_mappings(), 0);
		CHECK_EQ(execmem_free(f), -EBUSY);
		CHECK_EQ(execmem_write_end(f), 0);
		CHECK(tu_returns(f, 64, 0));
		CHECK(store_faults(f));
		uint8_t code[16];
		size_t len = tu_emit_return(code, 65);
		CHECK(execmem_write(g, code, len) == 0 && tu_returns(g, 65, 0));

		uint8_t *ro = execmem_arena_alloc(a, EXECMEM_RODATA, 10);
		CHECK(ro && execmem_write_begin(ro) == ro);
		memcpy(ro, "table", 6);
		CHECK(ro && execmem_write_end(ro) == 0 && !strcmp((char *)ro, "table"));
		CHECK(store_faults(ro));
		uint8_t *d = execmem_arena_alloc(a, EXECMEM_DATA, 10);
		CHECK(d && execmem_write_begin(d) == d && execmem_write_end(d) == 0);
		/* Large and aligned allocations take the same path. */
		uint8_t *l = execmem_arena_alloc_aligned(a, EXECMEM_CODE, 3 << 20, 1 << 16);
		CHECK(l && (uintptr_t)l % (1 << 16) == 0 && execmem_write_begin(l) == l);
		tu_emit_return(l + (2 << 20), 66);
		CHECK(l && execmem_write_end(l) == 0 && tu_returns(l + (2 << 20), 66, 0));
		CHECK_EQ(tu_wx_mappings(), 0);
		CHECK_EQ(execmem_arena_destroy(a), 0);
	}
}

static void *page_of(const void *p)
{
	return (void *)((uintptr_t)p & ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1));
}

/*
 * A client's mprotect() to W+X of execmem memory: refused for the view of
 * dual mode (its memfd is sealed against writable mappings); for the RW
 * alias and the toggled view of mprotect mode, the next window end finds
 * it, says -EPERM, counts it and puts the protection back.
 */
static void wx_hole(enum execmem_mode mode)
{
	const int rwx = PROT_READ | PROT_WRITE | PROT_EXEC;
	struct execmem_arena *a = arena_in(mode);
	uint8_t *p = execmem_arena_alloc(a, EXECMEM_CODE, 64);
	uint8_t *other = execmem_arena_alloc(a, EXECMEM_CODE, 64);
	uint8_t *w = execmem_write_begin(p);
	CHECK(p && other && w);
	tu_emit_return(w, 90);
	CHECK_EQ(execmem_write_end(p), 0); /* nothing to find yet */
	struct execmem_stats st;
	if (mode == EXECMEM_MODE_DUAL) {
		CHECK(mprotect(page_of(p), 4096, rwx) != 0 && errno == EACCES);
		CHECK(mprotect(page_of(p), 4096, PROT_READ | PROT_WRITE) != 0 && errno == EACCES);
		CHECK(mprotect(page_of(w), 4096, rwx) == 0); /* the alias: not preventable */
	} else {
		CHECK(mprotect(page_of(p), 4096, rwx) == 0);
	}
	CHECK_EQ(tu_wx_mappings(), 1);
	CHECK(execmem_write_begin(other) != NULL);
	CHECK_EQ(execmem_write_end(other), -EPERM);
	CHECK_EQ(tu_wx_mappings(), 0);
	CHECK(tu_returns(p, 90, mode == EXECMEM_MODE_DUAL));
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.wx_holes, 1);
	CHECK(execmem_write_begin(other) != NULL);
	CHECK_EQ(execmem_write_end(other), 0); /* repaired: reported once */
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

static size_t round_up(size_t size, size_t unit)
{
	return (size + unit - 1) / unit * unit;
}

/* The usable size of a new allocation of type and size in a, 0 if none. */
static size_t usable_of_new(struct execmem_arena *a, enum execmem_type type, size_t size)
{
	void *p = execmem_arena_alloc(a, type, size);
	size_t usable = p ? execmem_usable_size(p) : 0;
	CHECK(p != NULL && execmem_free(p) == 0);
	return usable;
}

/* What execmem.h says of execmem_usable_size(): the granularity up to 1 MiB,
 * the page size above it (a mapping of its own) and for RO_AFTER_INIT. */
static void usable_sizes(void)
{
	static const size_t small[] = { 1, 17, 100, 4097, EXECMEM_CHUNK_SIZE / 2 - 1,
					EXECMEM_CHUNK_SIZE / 2 };
	static const size_t large[] = { EXECMEM_CHUNK_SIZE / 2 + 1, EXECMEM_CHUNK_SIZE + 17,
					(3 << 20) + 4097 };
	size_t page = (size_t)sysconf(_SC_PAGESIZE), granularity = 16;
	struct execmem_params p;
	execmem_params_init(&p);
	p.granularity = granularity;
	struct execmem_arena *a = execmem_arena_create(&p);
	CHECK(a != NULL);
	for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
		CHECK_EQ(usable_of_new(a, EXECMEM_CODE, small[i]), round_up(small[i], granularity));
		CHECK_EQ(usable_of_new(a, EXECMEM_DATA, small[i]), round_up(small[i], granularity));
		CHECK_EQ(usable_of_new(a, EXECMEM_RO_AFTER_INIT, small[i]), round_up(small[i], page));
	}
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
		CHECK_EQ(usable_of_new(a, EXECMEM_CODE, large[i]), round_up(large[i], page));
		CHECK_EQ(usable_of_new(a, EXECMEM_RODATA, large[i]), round_up(large[i], page));
		CHECK_EQ(usable_of_new(a, EXECMEM_RO_AFTER_INIT, large[i]), round_up(large[i], page));
	}
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* Parent and child each rewrite a shared-before-fork program; neither sees the other's. */
static void fork_apart(enum execmem_mode mode)
{
	struct execmem_arena *a = arena_in(mode);
	void *p = jit(a, EXECMEM_CODE, 64, 1);
	CHECK(p != NULL);
	int to_child[2], to_parent[2];
	CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		uint8_t code[16];
		char byte;
		int ok = tu_returns(p, 1, current_mode == EXECMEM_MODE_DUAL);
		size_t len = tu_emit_return(code, 2);
		ok &= execmem_write(p, code, len) == 0 && tu_returns(p, 2, current_mode == EXECMEM_MODE_DUAL);
		ok &= write(to_parent[1], "c", 1) == 1;       /* child wrote 2 */
		ok &= read(to_child[0], &byte, 1) == 1;       /* parent wrote 3 */
		ok &= tu_returns(p, 2, current_mode == EXECMEM_MODE_DUAL);
		void *q = jit(a, EXECMEM_CODE, 64, 4);
		ok &= q && tu_returns(q, 4, current_mode == EXECMEM_MODE_DUAL) && execmem_free(q) == 0 && tu_wx_mappings() == 0;
		_exit(ok ? 0 : 1);
	}
	char byte;
	CHECK(read(to_parent[0], &byte, 1) == 1);
	CHECK(tu_returns(p, 1, current_mode == EXECMEM_MODE_DUAL)); /* the child's write did not reach us */
	uint8_t code[16];
	size_t len = tu_emit_return(code, 3);
	CHECK_EQ(execmem_write(p, code, len), 0);
	CHECK(write(to_child[1], "p", 1) == 1);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(tu_returns(p, 3, current_mode == EXECMEM_MODE_DUAL));
	close(to_child[0]), close(to_child[1]), close(to_parent[0]), close(to_parent[1]);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* A refused memfd switches an automatic arena to mprotect mode. */
static void fallback_when_refused(void)
{
	struct execmem_params p;
	execmem_params_init(&p);
	struct execmem_arena *a = execmem_arena_create(&p);
	em_os_fail_nth(EXECMEM_OS_MEMFD, 1, EPERM, 1);
	void *code = jit(a, EXECMEM_CODE, 64, 11);
	em_os_fail_clear();
	CHECK(code && tu_returns(code, 11, 0)); /* mprotect mode now */
	struct execmem_stats st;
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.mode, EXECMEM_MODE_MPROTECT);
	CHECK_EQ(execmem_arena_destroy(a), 0);

	/* A forced dual arena reports the refusal instead. */
	p.mode = EXECMEM_MODE_DUAL;
	a = execmem_arena_create(&p);
	em_os_fail_nth(EXECMEM_OS_MEMFD, 1, EPERM, 1);
	errno = 0;
	CHECK(execmem_arena_alloc(a, EXECMEM_CODE, 64) == NULL && errno == EPERM);
	em_os_fail_clear();
	CHECK(jit(a, EXECMEM_CODE, 64, 1) != NULL); /* usable afterwards */
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* Every byte of the chunk holding p is the pool's fill, but for the
 * `skip` bytes at p. */
static bool chunk_filled(const uint8_t *p, size_t skip, bool code)
{
	const uint8_t *chunk = (const uint8_t *)((uintptr_t)p & ~(EXECMEM_CHUNK_SIZE - 1));
	const uint8_t *end = chunk + EXECMEM_CHUNK_SIZE;
	if (code)
		return is_trap(chunk, (size_t)(p - chunk)) && is_trap(p + skip, (size_t)(end - p - skip));
	for (const uint8_t *b = chunk; b < end; b++)
		if (*b && (b < p || b >= p + skip))
			return false;
	return true;
}

/* A code and a rodata allocation of a new dual arena, with the nth call of
 * `call` failing with err; checks the chunks' fill and whether the code runs. */
static void fill_with_failure(enum execmem_os_call call, uint64_t nth, int err, bool sticky)
{
	struct execmem_params p;
	execmem_params_init(&p);
	p.mode = EXECMEM_MODE_DUAL;
	struct execmem_arena *a = execmem_arena_create(&p);
	em_os_fail_nth(call, nth, err, sticky);
	void *code = jit(a, EXECMEM_CODE, 64, 12);
	uint64_t failed_code = em_os_failures();
	em_os_fail_nth(call, nth, err, sticky);
	uint8_t *ro = execmem_arena_alloc(a, EXECMEM_RODATA, 64);
	uint64_t failed_ro = em_os_failures();
	em_os_fail_clear();
	CHECK(failed_code >= 1 && failed_ro >= 1);
	CHECK(code && tu_returns(code, 12, 1) && chunk_filled(code, 16, true));
	CHECK(ro && chunk_filled(ro, 0, false));
	struct execmem_stats st;
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.mode, EXECMEM_MODE_DUAL);
	if (call == EXECMEM_OS_MADVISE)
		CHECK_EQ(st.bytes_huge, 0);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/*
 * The kernel writes a dual chunk's memfd (OTHER calls): the fill does not
 * depend on it.  Refused, the chunk is filled through its alias; without
 * huge pages, the kernel writes every page.  Code memory traps, rodata is
 * zero, either way.
 */
static void fill_when_refused(void)
{
	fill_with_failure(EXECMEM_OS_OTHER, 1, ENOSPC, false);
	fill_with_failure(EXECMEM_OS_OTHER, 1, ENOSPC, true);
	/* The first madvise() keeps the RW alias out of children (fork.c) and
	 * must succeed; every later one (the huge page) is refused. */
	fill_with_failure(EXECMEM_OS_MADVISE, 2, EINVAL, true);
}

/*
 * Space freed in an older chunk is used before the fresh space of a newer
 * one: otherwise every allocation after a new chunk lands there, and the
 * holes of the older chunks stay resident and unused.
 */
static void older_holes_first(void)
{
	enum { PAGE = 4096, PER_CHUNK = EXECMEM_CHUNK_SIZE / PAGE, MADE = PER_CHUNK + 88, FREED = 10 };
	static void *p[MADE];
	struct execmem_params params;
	execmem_params_init(&params);
	struct execmem_arena *a = execmem_arena_create(&params);
	for (int i = 0; i < MADE; i++)
		p[i] = execmem_arena_alloc(a, EXECMEM_CODE, PAGE);
	uintptr_t first = (uintptr_t)p[0] & ~(EXECMEM_CHUNK_SIZE - 1);
	CHECK(p[MADE - 1] && ((uintptr_t)p[MADE - 1] & ~(EXECMEM_CHUNK_SIZE - 1)) != first);
	for (int i = 0; i < FREED; i++)
		CHECK_EQ(execmem_free(p[i * 50]), 0);
	int in_first = 0;
	for (int i = 0; i < FREED; i++) {
		uintptr_t q = (uintptr_t)execmem_arena_alloc(a, EXECMEM_CODE, PAGE);
		in_first += (q & ~(EXECMEM_CHUNK_SIZE - 1)) == first;
	}
	CHECK_EQ(in_first, FREED);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* ------------- W+X audit while threads write code in mprotect mode ------- */

static atomic_bool stop_audit;
static atomic_int wx_seen;

static void *audit(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_audit))
		atomic_fetch_add(&wx_seen, tu_wx_mappings());
	return NULL;
}

static void *churn(void *arg)
{
	struct execmem_arena *a = arg;
	long wrong = 0;
	for (int i = 0; i < 3000; i++) {
		void *p = jit(a, EXECMEM_CODE, 64 + (size_t)(i % 5) * 100, i);
		wrong += !p || !tu_returns(p, i, current_mode == EXECMEM_MODE_DUAL) || execmem_free(p) != 0;
	}
	return (void *)wrong;
}

static void audit_under_stress(enum execmem_mode mode)
{
	struct execmem_arena *a = arena_in(mode);
	pthread_t auditor, workers[2];
	atomic_store(&stop_audit, false);
	atomic_store(&wx_seen, 0);
	pthread_create(&auditor, NULL, audit, NULL);
	for (int i = 0; i < 2; i++)
		pthread_create(&workers[i], NULL, churn, a);
	for (int i = 0; i < 2; i++) {
		void *wrong;
		pthread_join(workers[i], &wrong);
		CHECK_EQ((long)wrong, 0);
	}
	atomic_store(&stop_audit, true);
	pthread_join(auditor, NULL);
	CHECK_EQ(atomic_load(&wx_seen), 0);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* Small allocations pack densely, holes are reused, empty chunks go back. */
static void packing_and_retention(void)
{
	struct execmem_params p;
	execmem_params_init(&p);
	p.retained_chunks = 2;
	struct execmem_arena *a = execmem_arena_create(&p);
	enum { N = 1000 };
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	static void *small[N];
	for (int i = 0; i < N; i++) {
		small[i] = execmem_arena_alloc(a, EXECMEM_CODE, 64);
		uintptr_t at = (uintptr_t)small[i];
		lo = at < lo ? at : lo;
		hi = at > hi ? at : hi;
	}
	CHECK_EQ(hi - lo, (N - 1) * 64); /* one contiguous run, no headers between */
	struct execmem_stats st;
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.chunks, 1);
	CHECK_EQ(st.bytes_in_use, N * 64);

	/* Fill the chunk; a freed hole in it is where the next allocation goes. */
	size_t half_left = (EXECMEM_CHUNK_SIZE - N * 64) / 2; /* each under the large threshold */
	void *rest[2] = { execmem_arena_alloc(a, EXECMEM_CODE, half_left),
			  execmem_arena_alloc(a, EXECMEM_CODE, half_left) };
	CHECK(rest[0] && rest[1]);
	CHECK_EQ(execmem_free(small[500]), 0);
	void *again = execmem_arena_alloc(a, EXECMEM_CODE, 64);
	CHECK(again == small[500]);
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.chunks, 1);

	/* Twenty 1 MiB allocations take ten chunks; freed, at most the retained
	 * limit plus the current chunk of this thread's shard stay mapped. */
	static void *big[20];
	for (int i = 0; i < 20; i++)
		big[i] = execmem_arena_alloc(a, EXECMEM_CODE, 1 << 20);
	execmem_arena_stats(a, &st);
	CHECK(st.chunks >= 11);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(execmem_free(big[i]), 0);
	for (int i = 0; i < N; i++)
		execmem_free(i == 500 ? again : small[i]);
	CHECK(execmem_free(rest[0]) == 0 && execmem_free(rest[1]) == 0);
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.live_allocations, 0);
	CHECK(st.chunks <= 3);
	CHECK_EQ(st.retained_chunks, st.chunks);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/*
 * A chunk a shard stops working in while it is empty is retained (or
 * released), not left behind: here the first chunk lies anywhere, the
 * second must lie near the program, so the shard moves on from the first.
 */
static void emptied_chunk_not_left_behind(void)
{
	struct execmem_params p;
	execmem_params_init(&p);
	struct execmem_arena *a = execmem_arena_create(&p);
	static char anchor;
	for (int i = 0; i < 3; i++) {
		void *anywhere = execmem_arena_alloc(a, EXECMEM_CODE, 64);
		CHECK(anywhere && execmem_free(anywhere) == 0);
		void *near = execmem_arena_alloc_near(a, EXECMEM_CODE, 64, &anchor, 64 << 20);
		CHECK(near && execmem_free(near) == 0);
	}
	struct execmem_stats st;
	execmem_arena_stats(a, &st);
	CHECK_EQ(st.live_allocations, 0);
	CHECK_EQ(st.retained_chunks, st.chunks);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/*
 * A thread's wholly free chunk goes back to the thread's shard: a thread
 * that needs a chunk again takes its own retained one, whose memory its
 * CPU's caches hold, before another thread's, even one retained later.
 */
enum { TURN_PIECES = 40, TURN_PIECE = 64 << 10 }; /* 2.5 MiB: two chunks */

struct turn_taker {
	struct execmem_arena *arena;
	sem_t go, done;
	uintptr_t chunks[2 * TURN_PIECES]; /* chunk of each piece, both turns */
};

static uintptr_t chunk_of(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)(EXECMEM_CHUNK_SIZE - 1);
}

/* Two turns of: allocate TURN_PIECES pieces (one step), free them (another). */
static void *take_turns(void *arg)
{
	struct turn_taker *t = arg;
	void *pieces[TURN_PIECES];
	for (int step = 0; step < 4; step++) {
		sem_wait(&t->go);
		for (int i = 0; i < TURN_PIECES; i++) {
			if (step % 2) {
				execmem_free(pieces[i]);
			} else {
				pieces[i] = execmem_arena_alloc(t->arena, EXECMEM_CODE, TURN_PIECE);
				t->chunks[step / 2 * TURN_PIECES + i] = chunk_of(pieces[i]);
			}
		}
		sem_post(&t->done);
	}
	return NULL;
}

static void step(struct turn_taker *t)
{
	sem_post(&t->go);
	sem_wait(&t->done);
}

static bool used_by(const struct turn_taker *t, int from, int to, uintptr_t chunk)
{
	for (int i = from; i < to; i++)
		if (t->chunks[i] == chunk)
			return true;
	return false;
}

static void retained_chunks_go_back_to_their_shard(void)
{
	if (em_os_cpu_count() < 2) {
		printf("note: one CPU, so one shard: no other shard's chunk to take\n");
		return;
	}
	struct execmem_arena *arena = execmem_arena_create(NULL);
	struct turn_taker a = { .arena = arena }, b = { .arena = arena };
	pthread_t ta, tb;
	sem_init(&a.go, 0, 0), sem_init(&a.done, 0, 0), sem_init(&b.go, 0, 0), sem_init(&b.done, 0, 0);
	bool started = arena && pthread_create(&ta, NULL, take_turns, &a) == 0;
	if (started && pthread_create(&tb, NULL, take_turns, &b) != 0) {
		for (int i = 0; i < 4; i++)
			step(&a);
		pthread_join(ta, NULL);
		started = false;
	}
	CHECK(started);
	if (!started)
		return;
	step(&a), step(&b); /* each fills two chunks of its own */
	step(&a), step(&b); /* a retains one, then b does */
	step(&a), step(&b); /* a needs one again */
	step(&a), step(&b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	int b_chunks_taken_by_a = 0;
	for (int i = TURN_PIECES; i < 2 * TURN_PIECES; i++)
		b_chunks_taken_by_a += used_by(&b, 0, TURN_PIECES, a.chunks[i]) &&
				       !used_by(&a, 0, TURN_PIECES, a.chunks[i]);
	CHECK(!used_by(&b, 0, TURN_PIECES, a.chunks[0])); /* two shards */
	CHECK_EQ(b_chunks_taken_by_a, 0);
	CHECK(arena && execmem_arena_destroy(arena) == 0);
}

/* An arena honours a range table of its own; unset entries inherit CODE's. */
static void custom_ranges(void)
{
	static char anchor;
	uintptr_t center = ((uintptr_t)&anchor) & ~(uintptr_t)(EXECMEM_CHUNK_SIZE - 1);
	struct execmem_range r[EXECMEM_TYPE_MAX] = { 0 };
	r[EXECMEM_CODE].flags = EXECMEM_RANGE_SET;
	r[EXECMEM_CODE].start = center > (256u << 20) ? center - (256u << 20) : EXECMEM_CHUNK_SIZE;
	r[EXECMEM_CODE].end = r[EXECMEM_CODE].start + (512u << 20);
	struct execmem_params p;
	execmem_params_init(&p);
	p.ranges = r;
	struct execmem_arena *a = execmem_arena_create(&p);
	CHECK(a != NULL);
	struct execmem_range got[EXECMEM_TYPE_MAX];
	CHECK_EQ(execmem_get_ranges(a, got), 0);
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++) {
		CHECK(got[t].start == r[EXECMEM_CODE].start && got[t].end == r[EXECMEM_CODE].end);
		uint8_t *x = execmem_arena_alloc(a, (enum execmem_type)t, 5000);
		CHECK(x && (uintptr_t)x >= got[t].start && (uintptr_t)x + 5000 <= got[t].end);
	}
	CHECK_EQ(got[EXECMEM_DATA].protection, EXECMEM_PROT_READ | EXECMEM_PROT_WRITE);
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

/* The break, as the kernel has it. */
static uintptr_t program_break(void)
{
	return (uintptr_t)syscall(SYS_brk, 0);
}

/*
 * glibc's sbrk() is not safe to call while another thread may make the
 * process's first malloc(): execmem must not call it.  This one, which
 * the library's calls bind to in this program, counts them.
 */
static atomic_int sbrk_calls;

void *sbrk(intptr_t increment)
{
	atomic_fetch_add(&sbrk_calls, 1);
	uintptr_t old = program_break();
	if (increment && (uintptr_t)syscall(SYS_brk, old + (uintptr_t)increment) != old + (uintptr_t)increment) {
		errno = ENOMEM;
		return (void *)-1;
	}
	return (void *)old;
}

/*
 * The 256 MiB above the program break are the C library's heap's to grow
 * in: a range that has space elsewhere is placed there, and one with space
 * only in that room still gets memory.
 */
static void heap_room_left_alone(void)
{
	uintptr_t room = (uintptr_t)256 << 20, chunk = EXECMEM_CHUNK_SIZE;
	uintptr_t brk = (program_break() + chunk - 1) & ~(chunk - 1);
	struct execmem_range r[EXECMEM_TYPE_MAX] = { 0 };
	r[EXECMEM_CODE].flags = EXECMEM_RANGE_SET;
	r[EXECMEM_CODE].start = brk;
	r[EXECMEM_CODE].end = brk + room + (32u << 20);
	struct execmem_params p;
	execmem_params_init(&p);
	p.ranges = r;
	enum { ARENAS = 12 };
	struct execmem_arena *arenas[ARENAS];
	int above_room = 0;
	for (int i = 0; i < ARENAS; i++) {
		arenas[i] = execmem_arena_create(&p);
		uintptr_t code = arenas[i] ? (uintptr_t)execmem_arena_alloc(arenas[i], EXECMEM_CODE, 64) : 0;
		above_room += code >= brk + room && code < r[EXECMEM_CODE].end;
	}
	CHECK_EQ(above_room, ARENAS);
	for (int i = 0; i < ARENAS; i++)
		CHECK(arenas[i] && execmem_arena_destroy(arenas[i]) == 0);
	/* Placement stays random: the slot just past the room is one of 128,
	 * not where the probes that fall in the room land. */
	r[EXECMEM_CODE].end = brk + room + (256u << 20);
	int at_room_end = 0;
	for (int i = 0; i < 40; i++) {
		struct execmem_arena *a = execmem_arena_create(&p);
		uintptr_t code = a ? (uintptr_t)execmem_arena_alloc(a, EXECMEM_CODE, 64) : 0;
		uintptr_t room_end = (program_break() + room + chunk - 1) & ~(chunk - 1);
		at_room_end += (code & ~(chunk - 1)) == room_end;
		CHECK(code && execmem_arena_destroy(a) == 0);
	}
	CHECK(at_room_end <= 5);
	CHECK_EQ(atomic_load(&sbrk_calls), 0);
	r[EXECMEM_CODE].start = brk + (64u << 20);
	r[EXECMEM_CODE].end = brk + (72u << 20);
	struct execmem_arena *inside = execmem_arena_create(&p);
	uintptr_t code = inside ? (uintptr_t)execmem_arena_alloc(inside, EXECMEM_CODE, 64) : 0;
	CHECK(code >= r[EXECMEM_CODE].start && code < r[EXECMEM_CODE].end);
	CHECK(inside && execmem_arena_destroy(inside) == 0);
}

static void sync_cores(void)
{
	struct execmem_stats before, after;
	execmem_stats(&before);
	int rc = execmem_sync_cores();
	execmem_stats(&after);
#if defined(__x86_64__)
	CHECK_EQ(rc, 0); /* nothing to do, and no system call for it */
	CHECK_EQ(after.os_calls[EXECMEM_OS_MEMBARRIER], before.os_calls[EXECMEM_OS_MEMBARRIER]);
#else
	CHECK(rc == 0 || rc == -ENOSYS || rc == -EINVAL);
	CHECK(after.os_calls[EXECMEM_OS_MEMBARRIER] > before.os_calls[EXECMEM_OS_MEMBARRIER]);
	if (rc)
		printf("note: membarrier SYNC_CORE unavailable here (%d)\n", rc);
#endif
}

/* ---- mprotect mode: code on a page being rewritten keeps running ---- */

struct runner {
	void *fn;
	atomic_bool started, stop;
	long calls, wrong;
};

static void *run_until_stopped(void *arg)
{
	struct runner *r = arg;
	while (!atomic_load(&r->stop)) {
		r->wrong += ((int (*)(void))r->fn)() != 1234;
		r->calls++;
		atomic_store(&r->started, true);
	}
	return NULL;
}

static void guard_lets_runners_through(void)
{
	struct execmem_arena *a = arena_in(EXECMEM_MODE_MPROTECT);
	struct runner r = { .fn = jit(a, EXECMEM_CODE, 64, 1234) };
	uint8_t *neighbour = execmem_arena_alloc(a, EXECMEM_CODE, 64); /* same page */
	CHECK(r.fn && neighbour && ((uintptr_t)r.fn >> 12) == ((uintptr_t)neighbour >> 12));
	pthread_t t;
	pthread_create(&t, NULL, run_until_stopped, &r);
	/* a scheduler that runs one thread at a time (valgrind's) could
	 * otherwise let the writes end before the runner ever ran */
	while (!atomic_load(&r.started))
		sched_yield();
	uint8_t code[16];
	int failed = 0;
	for (int i = 0; i < 3000; i++)
		failed += execmem_write(neighbour, code, tu_emit_return(code, i)) != 0;
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	CHECK_EQ(failed, 0);
	CHECK_EQ(r.wrong, 0);
	CHECK(r.calls > 0);

	/* A real fault in such a page still reaches the process: no endless retry. */
	pid_t pid = fork();
	if (pid == 0) {
		freopen("/dev/null", "w", stderr); /* a sanitizer may report the fault */
		alarm(5);
		*(volatile uint8_t *)neighbour = 0;
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));
	CHECK(!(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM));
	CHECK_EQ(execmem_arena_destroy(a), 0);
}

int main(void)
{
	bad_inputs();
	placement();
	fallback_when_refused();
	fill_when_refused();
	older_holes_first();
	guard_lets_runners_through();
	packing_and_retention();
	emptied_chunk_not_left_behind();
	retained_chunks_go_back_to_their_shard();
	custom_ranges();
	heap_room_left_alone();
	sync_cores();
	usable_sizes();
	in_place_writing();
	for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
		current_mode = modes[m];
		many_programs(modes[m]);
		huge_pages_and_steady_state(modes[m]);
		data_types(modes[m]);
		windows_and_large(modes[m]);
		aligned_allocations(modes[m]);
		wx_hole(modes[m]);
		fork_apart(modes[m]);
		audit_under_stress(modes[m]);
	}
	return tu_finish("test_core");
}
