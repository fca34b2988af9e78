/*
 * test_observed.c - execmem under the tools that watch a process, and what
 * /proc/PID/maps says its mappings are.
 *   - In a child traced by this process (PTRACE_TRACEME: TracerPid is the
 *     parent), an "auto" arena takes mprotect mode and its stats say a
 *     debugger is why; forced dual arenas stay dual and print, once in the
 *     process, one line naming the problem and both fixes; a forced
 *     mprotect arena says it was asked for.
 *   - Untraced, "auto" stays dual (the default reason), or, under valgrind
 *     (CTest runs this test under it too), takes mprotect mode for it.
 *   - Dual-mode memfds are named after their type; anonymous mappings
 *     carry "[anon:execmem:TYPE]" where the kernel names mappings, and the
 *     stats say it cannot where a direct prctl() is refused as well.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "rtest.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

enum { CHILD_SECONDS = 20, PROGRAM_SIZE = 64 };

static struct execmem_stats stats_of(struct execmem_arena *arena)
{
	struct execmem_stats st;
	memset(&st, 0xff, sizeof st);
	RT_CHECK(execmem_arena_stats(arena, &st) == 0, "no stats");
	return st;
}

/* An arena of the mode, checked to run code, its stats in *st. */
static struct execmem_arena *working_arena(enum execmem_mode mode, struct execmem_stats *st)
{
	struct execmem_arena *arena = rt_arena_in(mode);
	RT_CHECK(arena, "no %s arena: %s", execmem_mode_name(mode), strerror(errno));
	if (!arena)
		return NULL;
	void *code = rt_new_program(arena, PROGRAM_SIZE, 42);
	RT_CHECK(code && rt_call(code) == 42, "%s arena: code does not run", execmem_mode_name(mode));
	*st = stats_of(arena);
	return arena;
}

static void check_mode(const struct execmem_stats *st, enum execmem_mode mode,
		       enum execmem_mode_reason reason, const char *what)
{
	RT_CHECK(st->mode == mode && st->mode_reason == reason, "%s: %s (%s), expected %s (%s)", what,
		 execmem_mode_name(st->mode), execmem_mode_reason_name(st->mode_reason),
		 execmem_mode_name(mode), execmem_mode_reason_name(reason));
}

/* ---- a traced child ---- */

static int traced_child(int stderr_pipe)
{
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
		return 3;
	dup2(stderr_pipe, STDERR_FILENO);
	struct execmem_stats st;
	bool valgrind = RUNNING_ON_VALGRIND;
	enum execmem_mode_reason watched = valgrind ? EXECMEM_REASON_VALGRIND : EXECMEM_REASON_DEBUGGER;
	working_arena(EXECMEM_MODE_AUTO, &st);
	check_mode(&st, EXECMEM_MODE_MPROTECT, watched, "traced, auto");
	for (int i = 0; i < 2; i++) {
		working_arena(EXECMEM_MODE_DUAL, &st);
		check_mode(&st, EXECMEM_MODE_DUAL, EXECMEM_REASON_ASKED, "traced, dual");
	}
	working_arena(EXECMEM_MODE_MPROTECT, &st);
	check_mode(&st, EXECMEM_MODE_MPROTECT, EXECMEM_REASON_ASKED, "traced, mprotect");
	fflush(stdout);
	return rt_failures ? 1 : 0;
}

/* Lets the traced child run to its end (a tracer sees its signals first). */
static int wait_traced(pid_t pid)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	for (int waited = 0; waited < CHILD_SECONDS * 100; waited++) {
		int status;
		pid_t got = waitpid(pid, &status, WNOHANG);
		if (got == pid && WIFSTOPPED(status)) {
			int sig = WSTOPSIG(status);
			ptrace(PTRACE_CONT, pid, NULL, (void *)(long)(sig == SIGSTOP ? 0 : sig));
		} else if (got == pid) {
			return status;
		}
		nanosleep(&tick, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* qemu-user implements no ptrace: say so, and check that it refuses. */
static void check_no_ptrace_here(void)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : 3);
	int status = pid > 0 ? rt_wait_child(pid, CHILD_SECONDS) : -1;
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3,
		 "qemu-user accepted PTRACE_TRACEME (status %#x): run the traced checks", status);
	printf("NOTE: qemu-user has no ptrace, so no debugger can attach; the traced checks run "
	       "natively and on the emulated machine (scripts/ci-qemu-system.sh)\n");
}

static void check_traced(void)
{
	if (rt_under_qemu_user()) {
		check_no_ptrace_here();
		return;
	}
	int fds[2];
	RT_CHECK(pipe(fds) == 0, "no pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		_exit(traced_child(fds[1]));
	}
	close(fds[1]);
	int status = wait_traced(pid);
	char said[4096] = "";
	size_t len = 0;
	ssize_t n;
	while (len < sizeof said - 1 && (n = read(fds[0], said + len, sizeof said - 1 - len)) > 0)
		len += (size_t)n;
	said[len] = '\0';
	close(fds[0]);
	RT_CHECK(status == 0, "traced child: status %#x (3: no ptrace), it said: %s", status, said);

	size_t lines = 0;
	for (const char *p = said; (p = strchr(p, '\n')); p++)
		lines++;
	if (RUNNING_ON_VALGRIND) {
		RT_CHECK(lines == 0, "under valgrind, nothing is said of a debugger: %s", said);
		return;
	}
	RT_CHECK(lines == 1, "two forced dual arenas said %zu lines, not one: %s", lines, said);
	RT_CHECK(strstr(said, "EXECMEM_MODE=mprotect") && strstr(said, "hbreak"),
		 "the line names no fix: %s", said);
}

/* ---- untraced ---- */

static void check_untraced(void)
{
	struct execmem_stats st;
	struct execmem_arena *arena = working_arena(EXECMEM_MODE_AUTO, &st);
	if (RUNNING_ON_VALGRIND)
		check_mode(&st, EXECMEM_MODE_MPROTECT, EXECMEM_REASON_VALGRIND, "auto under valgrind");
	else
		check_mode(&st, EXECMEM_MODE_DUAL, EXECMEM_REASON_DEFAULT, "auto");
	execmem_arena_destroy(arena);
}

/* ---- names in /proc/self/maps ---- */

/* The maps line of the mapping holding addr. */
static bool maps_line(const void *addr, char *line, size_t size)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	bool found = false;
	while (maps && !found && fgets(line, (int)size, maps)) {
		uintptr_t start, end;
		found = sscanf(line, "%lx-%lx", &start, &end) == 2 && (uintptr_t)addr >= start &&
			(uintptr_t)addr < end;
	}
	if (maps)
		fclose(maps);
	return found;
}

/* Whether the kernel names anonymous mappings, asked directly. */
static bool kernel_names_mappings(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool named = p != MAP_FAILED &&
		     prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, page, "probe") == 0;
	if (p != MAP_FAILED)
		munmap(p, page);
	return named;
}

static void check_name(struct execmem_arena *arena, enum execmem_type type, const char *name)
{
	void *p = execmem_arena_alloc(arena, type, PROGRAM_SIZE);
	char line[512] = "";
	RT_CHECK(p && maps_line(p, line, sizeof line), "no mapping for type %d", type);
	RT_CHECK(strstr(line, name), "mapping of type %d is not named %s: %s", type, name, line);
}

static void check_names(void)
{
	bool kernel_names = kernel_names_mappings();
	struct execmem_arena *dual = rt_arena_in(EXECMEM_MODE_DUAL);
	struct execmem_arena *toggled = rt_arena_in(EXECMEM_MODE_MPROTECT);
	RT_CHECK(dual && toggled, "no arenas");
	if (!dual || !toggled)
		return;
	check_name(dual, EXECMEM_CODE, "/memfd:execmem:code ");
	check_name(dual, EXECMEM_RODATA, "/memfd:execmem:rodata ");
	struct execmem_stats st = stats_of(toggled);
	RT_CHECK(st.named_mappings == -1, "named_mappings %d before any anonymous mapping",
		 st.named_mappings);
	void *code = execmem_arena_alloc(toggled, EXECMEM_CODE, PROGRAM_SIZE);
	RT_CHECK(code, "no mprotect-mode code");
	st = stats_of(toggled);
	RT_CHECK(st.named_mappings == kernel_names, "named_mappings %d, the kernel %s names mappings",
		 st.named_mappings, kernel_names ? "does" : "does not");
	if (kernel_names) {
		check_name(toggled, EXECMEM_CODE, "[anon:execmem:code]");
		check_name(dual, EXECMEM_DATA, "[anon:execmem:data]");
	}
	printf("anonymous mapping names: %s by this kernel\n",
	       kernel_names ? "supported" : "not supported (checked: named_mappings is 0)");
	execmem_arena_destroy(dual);
	execmem_arena_destroy(toggled);
}

int main(void)
{
	check_names(); /* first: no anonymous mapping of execmem exists yet */
	check_untraced();
	check_traced();
	return rt_finish("observed");
}
