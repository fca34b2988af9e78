/*
 * test_windows.c - writing code while code of the same pages runs, and
 * moving code inside an allocation.
 *   - A thread that holds a write window keeps running the other programs
 *     on the window's page, writes one of them with execmem_write(), then
 *     fills and closes its window: a JIT running code while it emits more.
 *   - A timer signal whose handler runs a program interrupts, again and
 *     again, a thread rewriting another program on the same page.
 *   - Writes and invalidations of an allocation whose window is open are
 *     refused; an arena destroyed with windows open gives everything back.
 *   - execmem_write() with a source inside the destination's allocation
 *     moves bytes as memmove() does, both ways, across pages, in a chunk
 *     and in a large mapping.
 * The first two can hang the process when they fail, so they run in a
 * child that is killed after CHILD_SECONDS and reported as hung.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtest.h"

enum { CHILD_SECONDS = 10 };

static enum execmem_mode mode;

static bool same_page(const void *a, const void *b)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	return (uintptr_t)a / page == (uintptr_t)b / page;
}

/* Runs fn in a child; reports a failure (status) or a hang by name. */
static void in_child(int (*fn)(void), const char *what)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		exit(fn());
	int status = pid > 0 ? rt_wait_child(pid, CHILD_SECONDS) : -1;
	RT_CHECK(status != -1, "%s: no child", what);
	if (status == -1)
		return;
	bool hung = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	RT_CHECK(!hung, "%s: hung (killed after %d s)", what, CHILD_SECONDS);
	RT_CHECK(hung || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "%s: child status %#x", what,
		 status);
	printf("%s: %s\n", what, status == 0 ? "ok" : "FAILED");
}

/* ---- a window held while code of its page runs ---- */

enum { WINDOW_SETUP = 2, WINDOW_CALL = 3, WINDOW_WRITE = 4, WINDOW_END = 5, WINDOW_RESULT = 6 };

static int window_while_running(void)
{
	struct execmem_arena *arena = rt_arena_in(mode);
	uint8_t *held = arena ? rt_new_program(arena, 64, 1) : NULL;
	uint8_t *other = arena ? rt_new_program(arena, 64, 2) : NULL;
	if (!held || !other || !same_page(held, other))
		return WINDOW_SETUP;
	uint8_t *window = execmem_write_begin(held);
	if (!window)
		return WINDOW_SETUP;
	if (!rt_program_returns(mode, other, 2))
		return WINDOW_CALL;
	/* The emitter writes through the window while the page's code runs. */
	rt_emit_return(window, 11);
	if (!rt_program_returns(mode, other, 2))
		return WINDOW_CALL;
	if (!rt_write_program(other, 22) || !rt_program_returns(mode, other, 22))
		return WINDOW_WRITE;
	if (execmem_write_end(held) != 0)
		return WINDOW_END;
	if (!rt_program_returns(mode, held, 11) || !rt_program_returns(mode, other, 22))
		return WINDOW_RESULT;
	return execmem_arena_destroy(arena) == 0 ? 0 : WINDOW_SETUP;
}

static void test_window_while_running(void)
{
	in_child(window_while_running, "window held while code of its page runs");
}

/* ---- a signal handler running code of a page being rewritten ---- */

enum { SIGNAL_SETUP = 2, SIGNAL_WRITE = 3, SIGNAL_WRONG = 4, SIGNAL_NEVER = 5 };
enum { REWRITES = 200000, ENOUGH_SIGNALS = 300 };

static void *handler_program;
static atomic_uint handler_calls, handler_wrong;

static void on_alarm(int sig)
{
	(void)sig;
	if (!rt_program_returns(mode, handler_program, 7))
		atomic_fetch_add(&handler_wrong, 1);
	atomic_fetch_add(&handler_calls, 1);
}

static int start_timer(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	struct itimerval every = { { 0, 100 }, { 0, 100 } };
	return sigaction(SIGALRM, &sa, NULL) || setitimer(ITIMER_REAL, &every, NULL);
}

static void stop_timer(void)
{
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
}

static int signal_during_write(void)
{
	struct execmem_arena *arena = rt_arena_in(mode);
	handler_program = arena ? rt_new_program(arena, 64, 7) : NULL;
	uint8_t *rewritten = arena ? rt_new_program(arena, 64, 0) : NULL;
	if (!handler_program || !rewritten || !same_page(handler_program, rewritten) || start_timer())
		return SIGNAL_SETUP;
	uint32_t i;
	bool written = true;
	for (i = 1; i <= REWRITES && written && atomic_load(&handler_calls) < ENOUGH_SIGNALS; i++)
		written = rt_write_program(rewritten, i);
	stop_timer();
	if (!written || !rt_program_returns(mode, rewritten, i - 1))
		return SIGNAL_WRITE;
	if (atomic_load(&handler_wrong))
		return SIGNAL_WRONG;
	if (!atomic_load(&handler_calls))
		return SIGNAL_NEVER;
	printf("  %u rewrites, %u signals handled\n", i - 1, atomic_load(&handler_calls));
	return execmem_arena_destroy(arena) == 0 ? 0 : SIGNAL_SETUP;
}

static void test_signal_during_write(void)
{
	in_child(signal_during_write, "signal handler running code of a page being rewritten");
}

/* ---- what an open window refuses, and what destroy gives back ---- */

static void test_window_refuses_writes(void)
{
	static const enum execmem_type types[] = { EXECMEM_CODE, EXECMEM_RODATA, EXECMEM_DATA };
	struct execmem_arena *arena = rt_arena_in(mode);
	RT_CHECK(arena, "arena_create: errno %d", errno);
	for (size_t t = 0; arena && t < sizeof(types) / sizeof(types[0]); t++) {
		uint8_t *p = execmem_arena_alloc(arena, types[t], 256);
		uint8_t *window = p ? execmem_write_begin(p) : NULL;
		RT_CHECK(window, "type %d: write_begin: errno %d", types[t], errno);
		if (!window)
			continue;
		uint8_t before[64], payload[64];
		memcpy(before, p, sizeof(before));
		memset(payload, 0x5a, sizeof(payload));
		RT_CHECK(execmem_write(p + 64, payload, sizeof(payload)) == -EBUSY,
			 "type %d: write during a window", types[t]);
		RT_CHECK(execmem_invalidate(p, 64) == -EBUSY, "type %d: invalidate during a window", types[t]);
		RT_CHECK(execmem_free(p) == -EBUSY, "type %d: free during a window", types[t]);
		RT_CHECK(memcmp(p, before, sizeof(before)) == 0, "type %d: bytes changed", types[t]);
		if (types[t] == EXECMEM_DATA)
			RT_CHECK(window == p, "the window of data is not the data itself");
		memcpy(window + 128, payload, sizeof(payload));
		RT_CHECK(execmem_write_end(p) == 0, "type %d: write_end", types[t]);
		RT_CHECK(memcmp(p + 128, payload, sizeof(payload)) == 0, "type %d: window bytes lost", types[t]);
		RT_CHECK(execmem_write(p, payload, sizeof(payload)) == 0, "type %d: write after the window",
			 types[t]);
		RT_CHECK(execmem_free(p) == 0, "type %d: free after the window", types[t]);
	}
	execmem_arena_destroy(arena);
}

/* In sanitizer builds LeakSanitizer checks that no window's memory is left. */
static void test_destroy_with_windows_open(void)
{
	struct execmem_arena *arena = rt_arena_in(mode);
	RT_CHECK(arena, "arena_create: errno %d", errno);
	static const size_t sizes[] = { 64, 5000, 3 << 20 };
	for (size_t i = 0; arena && i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *code = execmem_arena_alloc(arena, EXECMEM_CODE, sizes[i]);
		RT_CHECK(code && execmem_write_begin(code), "window on %zu bytes: errno %d", sizes[i], errno);
	}
	RT_CHECK(!arena || execmem_arena_destroy(arena) == 0, "destroy with windows open");
}

/* ---- moving code inside an allocation ---- */

static void fill_random(uint8_t *buf, size_t len, uint64_t *seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)rt_random(seed);
}

/* Moves len bytes from offset from to offset to, in code and in model. */
static bool move_matches(uint8_t *code, uint8_t *model, size_t size, size_t from, size_t to, size_t len)
{
	int rc = execmem_write(code + to, code + from, len);
	memmove(model + to, model + from, len);
	if (rc != 0 || memcmp(code, model, size) != 0) {
		size_t at = 0;
		while (at < size && code[at] == model[at])
			at++;
		RT_CHECK(false, "moving %zu bytes from +%zu to +%zu of %zu: rc %d, first wrong byte at +%zu",
			 len, from, to, size, rc, at);
		memcpy(model, code, size); /* go on from what is there */
		return false;
	}
	return true;
}

static void moves_in(struct execmem_arena *arena, size_t size, const size_t *lens, size_t nlens)
{
	static const size_t shifts[] = { 1, 8, 63, 4096, 4101 };
	uint64_t seed = size;
	uint8_t *code = execmem_arena_alloc(arena, EXECMEM_CODE, size);
	uint8_t *model = malloc(size);
	RT_CHECK(code && model, "allocating %zu bytes", size);
	if (model)
		fill_random(model, size, &seed);
	if (!code || !model || execmem_write(code, model, size) != 0) {
		free(model);
		return;
	}
	unsigned moves = 0, right = 0;
	for (size_t l = 0; l < nlens; l++) {
		for (size_t s = 0; s < sizeof(shifts) / sizeof(shifts[0]); s++) {
			size_t len = lens[l], shift = shifts[s];
			if (len + shift > size)
				continue;
			size_t low = rt_random(&seed) % (size - len - shift + 1);
			right += move_matches(code, model, size, low + shift, low, len); /* down */
			right += move_matches(code, model, size, low, low + shift, len); /* up */
			moves += 2;
		}
	}
	printf("  %zu-byte allocation: %u of %u overlapping moves right\n", size, right, moves);
	free(model);
	RT_CHECK(execmem_free(code) == 0, "free");
}

static void test_overlapping_moves(void)
{
	static const size_t small_lens[] = { 1, 7, 64, 100, 300, 4096, 4104, 9000, 40000 };
	static const size_t large_lens[] = { 8192 + 5, (1 << 20) + 17 };
	struct execmem_arena *arena = rt_arena_in(mode);
	RT_CHECK(arena, "arena_create: errno %d", errno);
	if (!arena)
		return;
	moves_in(arena, 64 << 10, small_lens, sizeof(small_lens) / sizeof(small_lens[0]));
	moves_in(arena, 3 << 20, large_lens, sizeof(large_lens) / sizeof(large_lens[0]));
	execmem_arena_destroy(arena);
}

int main(void)
{
	mode = rt_mode_under_test();
	printf("writing while code runs, %s mode\n", execmem_mode_name(mode));
	test_window_while_running();
	test_signal_during_write();
	test_window_refuses_writes();
	test_destroy_with_windows_open();
	test_overlapping_moves();
	return rt_finish("windows");
}
