/* rtest.c - helpers of the reliability tests; see rtest.h. */
#include "rtest.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

unsigned long rt_checks, rt_failures;

int rt_finish(const char *test_name)
{
	printf("%s: %lu checks, %lu failed\n", test_name, rt_checks, rt_failures);
	return rt_failures ? 1 : 0;
}

/* ---- machine code ---- */

static size_t put_u32(uint8_t *buf, size_t at, uint32_t word)
{
	memcpy(buf + at, &word, sizeof(word)); /* all three targets are little-endian */
	return at + sizeof(word);
}

#if defined(__x86_64__)
size_t rt_emit_return(uint8_t buf[RT_PROGRAM_MAX], uint32_t value)
{
	buf[0] = 0xb8;                    /* mov eax, imm32 */
	size_t n = put_u32(buf, 1, value);
	buf[n++] = 0xc3;                  /* ret */
	return n;
}
static const uint8_t trap_pattern[] = { 0xcc };            /* int3 */
#elif defined(__aarch64__)
size_t rt_emit_return(uint8_t buf[RT_PROGRAM_MAX], uint32_t value)
{
	size_t n = put_u32(buf, 0, 0x52800000u | (value & 0xffff) << 5);  /* movz w0, #lo */
	n = put_u32(buf, n, 0x72a00000u | (value >> 16) << 5);            /* movk w0, #hi, lsl 16 */
	return put_u32(buf, n, 0xd65f03c0u);                              /* ret */
}
static const uint8_t trap_pattern[] = { 0x00, 0x00, 0x20, 0xd4 };  /* brk #0 */
#elif defined(__riscv) && __riscv_xlen == 64
size_t rt_emit_return(uint8_t buf[RT_PROGRAM_MAX], uint32_t value)
{
	/* lui a0, hi; addiw a0, a0, lo with lo sign-extended, so hi is rounded. */
	uint32_t hi = ((value + 0x800u) >> 12) & 0xfffffu;
	uint32_t lo = (value - (hi << 12)) & 0xfffu;
	size_t n = put_u32(buf, 0, hi << 12 | 10u << 7 | 0x37u);
	n = put_u32(buf, n, lo << 20 | 10u << 15 | 10u << 7 | 0x1bu);
	return put_u32(buf, n, 0x00008067u);                              /* ret */
}
static const uint8_t trap_pattern[] = { 0x73, 0x00, 0x10, 0x00 };  /* ebreak */
#else
#error "no emitter for this architecture"
#endif

uint32_t rt_call(const void *code)
{
	uint32_t (*function)(void);
	memcpy(&function, &code, sizeof(function)); /* object to function pointer, without a warning */
	return function();
}

const uint8_t *rt_trap_pattern(size_t *len)
{
	*len = sizeof(trap_pattern);
	return trap_pattern;
}

bool rt_is_trap_filled(const void *p, size_t len)
{
	const uint8_t *bytes = p;
	for (size_t i = 0; i < len; i++)
		if (bytes[i] != trap_pattern[((uintptr_t)(bytes + i)) % sizeof(trap_pattern)])
			return false;
	return true;
}

/* ---- the mode under test ---- */

enum execmem_mode rt_mode_from_env(void)
{
	const char *mode = getenv("EXECMEM_MODE");
	if (mode && strcmp(mode, "mprotect") == 0)
		return EXECMEM_MODE_MPROTECT;
	if (mode && strcmp(mode, "dual") == 0)
		return EXECMEM_MODE_DUAL;
	return EXECMEM_MODE_AUTO;
}

enum execmem_mode rt_mode_under_test(void)
{
	enum execmem_mode mode = rt_mode_from_env();
	rt_can_run_rewritten_code(mode);
	return mode == EXECMEM_MODE_AUTO ? EXECMEM_MODE_DUAL : mode;
}

bool rt_under_qemu_user(void)
{
	const char *qemu_user = getenv("EXECMEM_TEST_QEMU_USER");
	return qemu_user && strcmp(qemu_user, "1") == 0;
}

#if defined(__SANITIZE_THREAD__)
#define RT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RT_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define RT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RT_ASAN 1
#endif
#endif

bool rt_under_asan(void)
{
#ifdef RT_ASAN
	return true;
#else
	return false;
#endif
}

const char *rt_no_threads_after_fork(void)
{
#ifdef RT_TSAN
	return "ThreadSanitizer cannot start threads after a multi-threaded fork";
#else
	return rt_under_qemu_user() ? "QEMU 7.2's user mode aborts creating threads in the child of a threaded process"
				    : NULL;
#endif
}

bool rt_under_tsan(void)
{
#ifdef RT_TSAN
	return true;
#else
	return false;
#endif
}

bool rt_under_valgrind(void)
{
	return RUNNING_ON_VALGRIND;
}

bool rt_can_run_rewritten_code(enum execmem_mode mode)
{
	static bool said;
	if (mode == EXECMEM_MODE_MPROTECT || !rt_under_qemu_user())
		return true;
	if (!said) {
		said = true;
		printf("NOTE: not calling code rewritten through the dual-mode alias: qemu-user runs it stale;"
		       " its bytes are checked instead (scripts/ci-qemu-system.sh runs these calls)\n");
	}
	return false;
}

bool rt_program_returns(enum execmem_mode mode, const void *code, uint32_t value)
{
	if (rt_can_run_rewritten_code(mode))
		return rt_call(code) == value;
	uint8_t expected[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(expected, value);
	return memcmp(code, expected, len) == 0;
}

bool rt_write_program(void *code, uint32_t value)
{
	uint8_t program[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(program, value);
	return execmem_write(code, program, len) == 0;
}

void *rt_new_program(struct execmem_arena *arena, size_t size, uint32_t value)
{
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, size)
			   : execmem_alloc(EXECMEM_CODE, size);
	if (code && !rt_write_program(code, value)) {
		execmem_free(code);
		return NULL;
	}
	return code;
}

struct execmem_arena *rt_arena_in(enum execmem_mode mode)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = mode;
	return execmem_arena_create(&params);
}

/* ---- the address space ---- */

/* Calls visit(start, end, perms, arg) for each line of /proc/self/maps;
 * with skip_heap, not for the C library's brk heap (found by its top, as
 * qemu-user does not name it "[heap]"). */
static void for_each_mapping(void (*visit)(uintptr_t, uintptr_t, const char *, void *), void *arg,
			     bool skip_heap)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	if (!maps)
		return;
	uintptr_t heap_top = (uintptr_t)sbrk(0);
	char line[512];
	while (fgets(line, sizeof(line), maps)) {
		uintptr_t start, end;
		char perms[8];
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &start, &end, perms) != 3)
			continue;
		bool heap = strstr(line, "[heap]") || (heap_top > start && heap_top <= end);
		if (!(skip_heap && heap))
			visit(start, end, perms, arg);
	}
	fclose(maps);
}

/* The report leaves the tool's own memory (valgrind's translations) out. */
int rt_count_wx_mappings(void)
{
	struct execmem_audit_report report;
	return execmem_audit(0, NULL, NULL, &report) ? -1 : (int)report.wx;
}

struct totals {
	size_t mappings, bytes;
};

static void add_mapping(uintptr_t start, uintptr_t end, const char *perms, void *arg)
{
	struct totals *totals = arg;
	(void)perms;
	totals->mappings++;
	totals->bytes += end - start;
}

void rt_mapping_totals(size_t *mappings, size_t *bytes)
{
	struct totals totals = { 0, 0 };
	for_each_mapping(add_mapping, &totals, true);
	*mappings = totals.mappings;
	*bytes = totals.bytes;
}

int rt_count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	int count = 0;
	for (struct dirent *entry; (entry = readdir(dir));)
		if (entry->d_name[0] != '.')
			count++;
	closedir(dir);
	return count - 1; /* the directory's own descriptor */
}

struct lookup {
	uintptr_t addr, start, end;
	char perms[5];
	bool found;
};

static void match_mapping(uintptr_t start, uintptr_t end, const char *perms, void *arg)
{
	struct lookup *lookup = arg;
	if (lookup->addr >= start && lookup->addr < end) {
		lookup->start = start;
		lookup->end = end;
		memcpy(lookup->perms, perms, 4);
		lookup->perms[4] = '\0';
		lookup->found = true;
	}
}

bool rt_find_mapping(const void *addr, uintptr_t *start, uintptr_t *end, char perms[5])
{
	struct lookup lookup = { .addr = (uintptr_t)addr };
	for_each_mapping(match_mapping, &lookup, false);
	if (lookup.found) {
		*start = lookup.start;
		*end = lookup.end;
		memcpy(perms, lookup.perms, 5);
	}
	return lookup.found;
}

/* Before a hung child is killed, its stacks go to stderr: a hang seen once
 * in CI must be diagnosable from the log alone.  Best effort, needs gdb. */
static void print_stacks_of_hung(pid_t pid)
{
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	fprintf(stderr, "child %d hung; its threads:\n", (int)pid);
	fflush(NULL);
	pid_t gdb = fork();
	if (gdb == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execlp("timeout", "timeout", "30", "gdb", "-nx", "-batch", "-p", pid_text,
		       "-ex", "thread apply all bt", (char *)NULL);
		_exit(127);
	}
	if (gdb > 0)
		waitpid(gdb, NULL, 0);
}

int rt_wait_child(pid_t pid, int seconds)
{
	/* The parent keeps the clock: a hung child may not get its own alarm
	 * (ThreadSanitizer defers signals while a thread spins in a handler).
	 * A clock, not a count of sleeps: a signal (live patching's census)
	 * ends a sleep early. */
	int status = 0;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t got = waitpid(pid, &status, WNOHANG);
		if (got == pid)
			return status;
		if (got < 0 && errno != EINTR)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= seconds) {
			print_stacks_of_hung(pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return status;
		}
		usleep(10000);
	}
}

uint64_t rt_random(uint64_t *state)
{
	/* xorshift64*: plenty for choosing sizes and operations. */
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15u;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1du;
}

bool rt_fork_isolation_unsupported(enum execmem_mode mode)
{
	if (mode != EXECMEM_MODE_DUAL || !rt_under_qemu_user())
		return false;
	printf("SKIP: qemu-user ignores MADV_DONTFORK, which keeps the RW alias out of a child\n");
	return true;
}
