/*
 * test_security.c - the security properties of execmem, observed from the
 * outside: no mapping is ever writable and executable (sampled while another
 * thread works), the RW alias of dual mode lies apart from its executable
 * view at a randomised distance, the memfd behind it is sealed, nothing but
 * trap instructions lies in code memory outside live allocations (so no
 * allocator metadata is reachable through a code mapping), and freed code
 * traps when run.  The mode comes from EXECMEM_MODE.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtest.h"

static enum execmem_mode mode;

static struct execmem_arena *new_arena(void)
{
	struct execmem_arena *arena = rt_arena_in(mode);
	RT_CHECK(arena, "arena_create in %s mode: errno %d", execmem_mode_name(mode), errno);
	return arena;
}

/* ---- no W+X at any sampled moment ---- */

struct sampler {
	atomic_bool stop;
	unsigned long samples, wx_seen;
};

static void *sample_mappings(void *arg)
{
	struct sampler *sampler = arg;
	while (!atomic_load(&sampler->stop)) {
		sampler->samples++;
		if (rt_count_wx_mappings() != 0)
			sampler->wx_seen++;
	}
	return NULL;
}

/* Everything that changes protections: writes, windows, seals, large mappings, frees. */
static void churn(struct execmem_arena *arena, uint64_t *seed)
{
	enum { LIVE = 64 };
	void *live[LIVE] = { 0 };
	for (int round = 0; round < 400; round++) {
		unsigned slot = rt_random(seed) % LIVE;
		if (live[slot]) {
			execmem_free(live[slot]);
			live[slot] = NULL;
			continue;
		}
		size_t size = 16 + rt_random(seed) % (round % 50 == 0 ? EXECMEM_CHUNK_SIZE : 4096);
		enum execmem_type type = (enum execmem_type)(rt_random(seed) % EXECMEM_TYPE_MAX);
		void *p = execmem_arena_alloc(arena, type, size);
		if (!p)
			continue;
		live[slot] = p;
		uint8_t program[RT_PROGRAM_MAX];
		size_t len = rt_emit_return(program, (uint32_t)round);
		if (type == EXECMEM_RO_AFTER_INIT) {
			execmem_seal(p);
		} else if (round % 3 == 0 && execmem_write_begin(p)) {
			execmem_write_end(p);
		} else {
			execmem_write(p, program, len);
		}
	}
	for (unsigned slot = 0; slot < LIVE; slot++)
		execmem_free(live[slot]);
}

static void test_no_wx_ever(void)
{
	struct sampler sampler = { .stop = false };
	pthread_t thread;
	struct execmem_arena *arena = new_arena();
	if (!arena || pthread_create(&thread, NULL, sample_mappings, &sampler) != 0)
		return;
	uint64_t seed = 42;
	for (int pass = 0; pass < 5; pass++)
		churn(arena, &seed);
	atomic_store(&sampler.stop, true);
	pthread_join(thread, NULL);
	RT_CHECK(sampler.wx_seen == 0, "%lu of %lu samples of /proc/self/maps held a W+X mapping",
		 sampler.wx_seen, sampler.samples);
	RT_CHECK(sampler.samples > 0, "the sampler never ran");
	printf("no W+X: %lu samples of the address space while 2000 operations ran\n", sampler.samples);
	execmem_arena_destroy(arena);
}

/* ---- the RW alias ---- */

/* The alias of a code allocation: the window pointer execmem hands out. */
static uint8_t *alias_of(void *code)
{
	uint8_t *alias = execmem_write_begin(code);
	RT_CHECK(alias, "write_begin: errno %d", errno);
	if (alias)
		execmem_write_end(code);
	return alias;
}

static void check_alias_placement(void *code, uint8_t *alias)
{
	uintptr_t view_start, view_end, alias_start, alias_end;
	char view_perms[5], alias_perms[5];
	bool found = rt_find_mapping(code, &view_start, &view_end, view_perms) &&
		     rt_find_mapping(alias, &alias_start, &alias_end, alias_perms);
	RT_CHECK(found, "the view or the alias is not in /proc/self/maps");
	if (!found)
		return;
	RT_CHECK(strncmp(view_perms, "r-x", 3) == 0, "code view is %s", view_perms);
	RT_CHECK(strncmp(alias_perms, "rw-", 3) == 0, "alias is %s", alias_perms);
	RT_CHECK(alias_end != view_start && view_end != alias_start,
		 "alias [%#lx, %#lx) touches its view [%#lx, %#lx)", (unsigned long)alias_start,
		 (unsigned long)alias_end, (unsigned long)view_start, (unsigned long)view_end);
}

static int compare_offsets(const void *a, const void *b)
{
	intptr_t x = *(const intptr_t *)a, y = *(const intptr_t *)b;
	return (x > y) - (x < y);
}

/* Distinct alias - view distances over several arenas: the placement is randomised. */
static void test_alias_apart_and_random(void)
{
	enum { ARENAS = 6 };
	struct execmem_arena *arenas[ARENAS];
	intptr_t offsets[ARENAS];
	for (int i = 0; i < ARENAS; i++) {
		arenas[i] = new_arena();
		void *code = arenas[i] ? execmem_arena_alloc(arenas[i], EXECMEM_CODE, 64) : NULL;
		uint8_t *alias = code ? alias_of(code) : NULL;
		offsets[i] = alias ? (intptr_t)((uintptr_t)alias - (uintptr_t)code) : 0;
		if (alias) {
			RT_CHECK(alias != code, "dual mode handed out the executable view for writing");
			check_alias_placement(code, alias);
		}
	}
	qsort(offsets, ARENAS, sizeof(offsets[0]), compare_offsets);
	int distinct = 1;
	for (int i = 1; i < ARENAS; i++)
		distinct += offsets[i] != offsets[i - 1];
	printf("alias: %d distinct view-to-alias distances over %d chunks\n", distinct, ARENAS);
	if (rt_under_tsan())
		printf("NOTE: alias placement is not random under ThreadSanitizer (it allows mappings only in"
		       " its own windows, and execmem leaves the kernel to place them); not checked here\n");
	else
		RT_CHECK(distinct >= ARENAS - 1, "only %d distinct alias distances over %d chunks", distinct, ARENAS);
	for (int i = 0; i < ARENAS; i++)
		execmem_arena_destroy(arenas[i]);
}

/* 1 when addr lies in W+X memory the audit recognises as the tool's own. */
static int in_tool_memory(const struct execmem_finding *f, void *addr)
{
	return f->kind == EXECMEM_FINDING_WX && f->mapping.tool && (uintptr_t)addr >= f->mapping.start &&
	       (uintptr_t)addr < f->mapping.end;
}

/* In mprotect mode a window is ordinary memory, never executable, and the
 * code it is for stays executable while it is open.  (Under valgrind,
 * ordinary memory comes from valgrind's allocator, whose heap is W+X
 * memory of its own.) */
static void test_window_not_executable(void)
{
	struct execmem_arena *arena = new_arena();
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, 64) : NULL;
	uint8_t *window = code ? execmem_write_begin(code) : NULL;
	RT_CHECK(window, "write_begin: errno %d", errno);
	if (window) {
		uintptr_t start, end;
		char perms[5];
		RT_CHECK(rt_find_mapping(window, &start, &end, perms) &&
				 (perms[2] != 'x' || execmem_audit(0, in_tool_memory, window, NULL) == 1),
			 "open window is mapped %s", perms);
		RT_CHECK(rt_find_mapping(code, &start, &end, perms) && strncmp(perms, "r-x", 3) == 0,
			 "code with its window open is mapped %s", perms);
		RT_CHECK(execmem_write_end(code) == 0, "write_end failed");
		RT_CHECK(rt_find_mapping(code, &start, &end, perms) && strncmp(perms, "r-x", 3) == 0,
			 "code after the window is mapped %s", perms);
	}
	execmem_arena_destroy(arena);
}

/* ---- the memfd ---- */

/* Opens the file behind the mapping at addr (the memfd) through /proc. */
static int open_backing_file(const void *addr)
{
	uintptr_t start, end;
	char perms[5], path[PATH_MAX];
	if (!rt_find_mapping(addr, &start, &end, perms))
		return -1;
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)start, (unsigned long)end);
	return open(path, O_RDWR | O_CLOEXEC);
}

static void test_memfd_sealed(void)
{
	struct execmem_arena *arena = new_arena();
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, 64) : NULL;
	int fd = code ? open_backing_file(code) : -1;
	RT_CHECK(fd >= 0, "cannot open the memfd behind %p: %s", code, strerror(errno));
	if (fd >= 0) {
		int seals = fcntl(fd, F_GET_SEALS);
		RT_CHECK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW),
			 "memfd seals %#x lack SHRINK|GROW", seals);
		RT_CHECK(ftruncate(fd, 4096) != 0 && errno == EPERM, "the memfd could be shrunk");
		printf("memfd: seals %#x; shrinking it is refused\n", seals);
		close(fd);
	}
	execmem_arena_destroy(arena);
}

/* ---- nothing but traps outside live code ---- */

/* Checks [from, to) of a code chunk, skipping live, for trap instructions. */
static void check_traps_around(uintptr_t from, uintptr_t to, void *const *live, size_t nlive)
{
	uintptr_t at = from;
	while (at < to) {
		uintptr_t next = to;
		bool inside = false;
		for (size_t i = 0; i < nlive; i++) {
			uintptr_t lo = (uintptr_t)live[i], hi = lo + execmem_usable_size(live[i]);
			if (at >= lo && at < hi) {
				inside = true;
				next = hi;
			} else if (lo > at && lo < next) {
				next = lo;
			}
		}
		RT_CHECK(inside || rt_is_trap_filled((void *)at, next - at),
			 "non-trap bytes in unused code memory at %#lx", (unsigned long)at);
		at = next;
	}
}

/* The part of p's chunk that is mapped (the chunk may be mapped partly). */
static void chunk_bounds(const void *p, uintptr_t *from, uintptr_t *to)
{
	uintptr_t chunk = (uintptr_t)p & ~(EXECMEM_CHUNK_SIZE - 1), start, end;
	char perms[5];
	*from = *to = chunk;
	if (rt_find_mapping(p, &start, &end, perms)) {
		*from = start > chunk ? start : chunk;
		*to = end < chunk + EXECMEM_CHUNK_SIZE ? end : chunk + EXECMEM_CHUNK_SIZE;
	}
}

static void test_only_traps_outside_live_code(void)
{
	enum { MANY = 300, KEEP = 5 };
	struct execmem_arena *arena = new_arena();
	void *programs[MANY];
	uint64_t seed = 7;
	for (int i = 0; i < MANY && arena; i++) {
		programs[i] = rt_new_program(arena, 16 + rt_random(&seed) % 2000, (uint32_t)i);
		RT_CHECK(programs[i], "allocation %d failed: errno %d", i, errno);
		if (!programs[i])
			return;
	}
	for (int i = KEEP; i < MANY; i++)
		RT_CHECK(execmem_free(programs[i]) == 0, "free %d", i);
	uintptr_t from, to;
	chunk_bounds(programs[0], &from, &to);
	check_traps_around(from, to, programs, KEEP);
	for (int i = 0; i < KEEP; i++)
		RT_CHECK(rt_program_returns(mode, programs[i], (uint32_t)i), "kept program %d changed", i);
	printf("traps: %lu bytes of a code chunk read as traps outside %d live programs after %d frees\n",
	       (unsigned long)(to - from), KEEP, MANY - KEEP);
	execmem_arena_destroy(arena);
}

/* Running freed code kills with SIGTRAP (or SIGILL): it never runs stale code. */
static void test_freed_code_traps(void)
{
	struct execmem_arena *arena = new_arena();
	void *keep = arena ? rt_new_program(arena, 64, 1) : NULL;
	void *freed = arena ? rt_new_program(arena, 64, 2) : NULL;
	RT_CHECK(keep && freed, "allocation failed: errno %d", errno);
	if (!keep || !freed)
		return;
	RT_CHECK(execmem_free(freed) == 0, "free failed");
	RT_CHECK(rt_is_trap_filled(freed, 64), "freed code does not read as trap instructions");
	fflush(NULL);
	pid_t child = fork();
	if (child == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core); /* the trap is expected: no core file */
		rt_call(freed); /* never called before: even qemu-user translates it afresh */
		_exit(0);
	}
	int status = rt_wait_child(child, 10);
	RT_CHECK(WIFSIGNALED(status) && (WTERMSIG(status) == SIGTRAP || WTERMSIG(status) == SIGILL),
		 "calling freed code ended with status %#x, not a trap", status);
	execmem_arena_destroy(arena);
}

int main(void)
{
	mode = rt_mode_under_test();
	printf("security properties in %s mode\n", execmem_mode_name(mode));
	test_no_wx_ever();
	if (mode == EXECMEM_MODE_DUAL) {
		test_alias_apart_and_random();
		test_memfd_sealed();
	} else {
		test_window_not_executable();
	}
	test_only_traps_outside_live_code();
	test_freed_code_traps();
	return rt_finish("security");
}
