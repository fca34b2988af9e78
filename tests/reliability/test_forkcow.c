/*
 * test_forkcow.c - fork copies no chunk: whichever process writes a chunk
 * first after a fork gives it memory of its own first.  Each case checks
 * that a write in one process never shows in the other, in each order and
 * through each way of writing (execmem_write(), a write window, the trap
 * fill of a free), and that nothing is copied before a process writes: a
 * fork makes no memfd in either process, a first write to a chunk makes
 * one, a second write to it none.  Also: a window open across the fork, a
 * grandchild, a child that never calls execmem again, and a child whose
 * alias address a fork handler of the program took.
 * The mode comes from EXECMEM_MODE (mprotect mode has nothing shared: the
 * same checks hold, and no memfd is ever made).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtest.h"

#include <valgrind/valgrind.h>

/* Programs in chunks of their own: each is nearly half a chunk, and so is
 * the spacer allocated after it, which stays (each chunk has at most one
 * hole of that size).  Cases rewrite the first three and free the last. */
enum { PROGRAMS = 4, CHILD_SECONDS = 10 };
#define BIG (EXECMEM_CHUNK_SIZE / 2 - 4096)

static enum execmem_mode mode;

struct program {
	void *code;
	uint32_t value;
};

static uint64_t memfds_made(void)
{
	struct execmem_stats s;
	return execmem_stats(&s) == 0 ? s.os_calls[EXECMEM_OS_MEMFD] : UINT64_MAX;
}

static bool make_programs(struct program p[PROGRAMS], uint32_t base)
{
	for (int i = 0; i < PROGRAMS; i++) {
		p[i].value = base + (uint32_t)i;
		p[i].code = rt_new_program(NULL, BIG, p[i].value);
		if (!p[i].code || !execmem_alloc(EXECMEM_CODE, BIG))
			return false;
	}
	return true;
}

static bool all_return(const struct program p[PROGRAMS])
{
	for (int i = 0; i < PROGRAMS; i++)
		if (!rt_program_returns(mode, p[i].code, p[i].value))
			return false;
	return true;
}

/* Writable mappings of execmem's memfds: a child must have none. */
static int writable_memfd_mappings(void)
{
	FILE *maps = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	if (!maps)
		return -1;
	while (fgets(line, sizeof line, maps)) {
		char perms[5] = "";
		if (sscanf(line, "%*x-%*x %4s", perms) == 1 && perms[1] == 'w' &&
		    strstr(line, "memfd:execmem"))
			n++;
	}
	fclose(maps);
	return n;
}

static bool write_window(void *code, uint32_t value)
{
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value);
	void *w = execmem_write_begin(code);
	if (!w)
		return false;
	memcpy(w, bytes, len);
	return execmem_write_end(code) == 0;
}

static void tell(int fd)
{
	RT_CHECK(write(fd, "x", 1) == 1, "pipe write");
}

static bool await(int fd)
{
	char byte;
	return read(fd, &byte, 1) == 1;
}

static void wait_ok(pid_t pid, const char *what)
{
	int status = rt_wait_child(pid, CHILD_SECONDS);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "%s: status %#x (exit code: the failed step, see its message; 9: hung)", what, status);
}

/* ---- (a) the parent writes first, then the child ---- */

static int child_after_parent(struct program p[PROGRAMS], uint64_t memfds, int from_parent)
{
	if (memfds_made() != memfds) {
		fprintf(stderr, "FAIL child: fork made %llu memfds in the child\n",
			(unsigned long long)(memfds_made() - memfds));
		return 1;
	}
	if (writable_memfd_mappings() != 0) {
		fprintf(stderr, "FAIL child: it inherited a writable mapping of a memfd\n");
		return 2;
	}
	if (!await(from_parent))
		return 3;
	/* The parent rewrote 0 and 1, wrote 2 through a window, freed 3. */
	if (!all_return(p)) {
		fprintf(stderr, "FAIL child: it sees a write the parent made after the fork\n");
		return 4;
	}
	for (int i = 0; i < PROGRAMS - 1; i++)
		if (!rt_write_program(p[i].code, p[i].value + 0x100) ||
		    !rt_program_returns(mode, p[i].code, p[i].value + 0x100)) {
			fprintf(stderr, "FAIL child: its own rewrite of program %d\n", i);
			return 5;
		}
	return 0;
}

static void parent_writes_first(void)
{
	struct program p[PROGRAMS];
	int pipe_fds[2];
	RT_CHECK(make_programs(p, 0x6100) && pipe(pipe_fds) == 0, "set-up: errno %d", errno);
	uint64_t memfds = memfds_made();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pipe_fds[1]);
		_exit(child_after_parent(p, memfds, pipe_fds[0]));
	}
	close(pipe_fds[0]);
	RT_CHECK(memfds_made() == memfds, "the parent's fork made a memfd");
	uint64_t copies = mode == EXECMEM_MODE_DUAL ? 1 : 0;
	RT_CHECK(rt_write_program(p[0].code, p[0].value + 1), "parent rewrite");
	RT_CHECK(memfds_made() == memfds + copies, "first write to a chunk: %llu memfds",
		 (unsigned long long)(memfds_made() - memfds));
	RT_CHECK(rt_write_program(p[0].code, p[0].value + 2), "parent rewrite again");
	RT_CHECK(memfds_made() == memfds + copies, "second write to a chunk copied it again");
	RT_CHECK(rt_write_program(p[1].code, p[1].value + 1), "parent rewrite of another chunk");
	RT_CHECK(write_window(p[2].code, p[2].value + 1), "parent write window");
	RT_CHECK(execmem_free(p[3].code) == 0, "parent free");
	RT_CHECK(memfds_made() == memfds + 4 * copies, "writes to four chunks: %llu memfds",
		 (unsigned long long)(memfds_made() - memfds));
	tell(pipe_fds[1]);
	close(pipe_fds[1]);
	wait_ok(pid, "child after the parent's writes");
	RT_CHECK(rt_program_returns(mode, p[0].code, p[0].value + 2) &&
		 rt_program_returns(mode, p[1].code, p[1].value + 1) &&
		 rt_program_returns(mode, p[2].code, p[2].value + 1), "the child's writes reached the parent");
	for (int i = 0; i < PROGRAMS - 1; i++)
		execmem_free(p[i].code);
}

/* ---- (b) the child writes first; the parent goes on meanwhile ---- */

static int child_first(struct program p[PROGRAMS], int to_parent, int from_parent)
{
	for (int i = 0; i < PROGRAMS - 1; i++)
		if (!rt_write_program(p[i].code, p[i].value + 0x200))
			return 1;
	if (execmem_free(p[PROGRAMS - 1].code) != 0)
		return 2;
	tell(to_parent);
	if (!await(from_parent))
		return 3;
	for (int i = 0; i < PROGRAMS - 1; i++)
		if (!rt_program_returns(mode, p[i].code, p[i].value + 0x200)) {
			fprintf(stderr, "FAIL child: the parent's write of program %d reached it\n", i);
			return 4;
		}
	return 0;
}

static void child_writes_first(void)
{
	struct program p[PROGRAMS];
	int up[2], down[2];
	RT_CHECK(make_programs(p, 0x6200) && pipe(up) == 0 && pipe(down) == 0, "set-up: errno %d", errno);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		_exit(child_first(p, up[1], down[0]));
	}
	close(up[1]);
	close(down[0]);
	RT_CHECK(await(up[0]), "the child's writes");
	RT_CHECK(all_return(p), "the child's writes reached the parent");
	for (int i = 0; i < PROGRAMS - 1; i++)
		RT_CHECK(rt_write_program(p[i].code, p[i].value + 3), "parent rewrite");
	tell(down[1]);
	close(down[1]);
	close(up[0]);
	wait_ok(pid, "child that wrote first");
	for (int i = 0; i < PROGRAMS; i++)
		execmem_free(p[i].code);
}

/* ---- (e) the child's alias address taken before execmem's handler ran ---- */

static void *squat_target, *squat_program;
static uint8_t *squatter;
#define SQUAT_BYTE 0x5a

/* Before fork: the RW alias showing the program's chunk. */
static void find_alias(void)
{
	uintptr_t view = (uintptr_t)squat_program & ~(uintptr_t)(EXECMEM_CHUNK_SIZE - 1);
	FILE *maps = squat_program ? fopen("/proc/self/maps", "r") : NULL;
	char line[512];
	squat_target = NULL;
	while (maps && fgets(line, sizeof line, maps)) {
		uintptr_t start, end;
		char perms[5] = "";
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3 && perms[1] == 'w' &&
		    strstr(line, "memfd:execmem") && end - start == EXECMEM_CHUNK_SIZE &&
		    memcmp((void *)start, (void *)view, EXECMEM_CHUNK_SIZE) == 0)
			squat_target = (void *)start;
	}
	if (maps)
		fclose(maps);
}

/* In the child, before execmem's handler: a mapping of the program's own
 * where the alias was. */
static void squat(void)
{
	void *p = squat_target ? mmap(squat_target, EXECMEM_CHUNK_SIZE, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
			       : MAP_FAILED;
	squatter = p == squat_target ? p : NULL;
	if (squatter)
		memset(squatter, SQUAT_BYTE, EXECMEM_CHUNK_SIZE);
}

/* ---- (c) a write window open across the fork, in both processes ---- */

static void window_across_fork(void)
{
	uint32_t value = 0x6300;
	void *code = rt_new_program(NULL, 64, value);
	uint8_t *w = code ? execmem_write_begin(code) : NULL;
	int pipe_fds[2];
	RT_CHECK(w && pipe(pipe_fds) == 0, "set-up: errno %d", errno);
	if (!w)
		return;
	uint8_t child_bytes[RT_PROGRAM_MAX], parent_bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(child_bytes, value + 1);
	rt_emit_return(parent_bytes, value + 2);
	squat_program = code; /* the child's first fork handler tries to map over the alias */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* The window goes on in the child: through the pointer it had,
		 * which must still be the alias. */
		close(pipe_fds[1]);
		if (squatter)
			_exit(4);
		memcpy(w, child_bytes, len);
		int rc = execmem_write_end(code);
		if (!await(pipe_fds[0]))
			_exit(1);
		_exit(rc != 0 ? 2 : !rt_program_returns(mode, code, value + 1) ? 3 : 0);
	}
	close(pipe_fds[0]);
	squat_program = NULL;
	memcpy(w, parent_bytes, len);
	RT_CHECK(execmem_write_end(code) == 0, "parent window end");
	tell(pipe_fds[1]);
	close(pipe_fds[1]);
	wait_ok(pid, "child with a window open at the fork (3: it saw the parent's write, 4: its"
		" alias was not inherited)");
	RT_CHECK(rt_program_returns(mode, code, value + 2), "the child's window write reached the parent");
	execmem_free(code);
}

/* ---- (d) a grandchild, and a child that never calls execmem again ---- */

static int grandchild(const struct program p[PROGRAMS])
{
	return rt_write_program(p[0].code, p[0].value + 0x300) &&
	       rt_program_returns(mode, p[0].code, p[0].value + 0x300) ? 0 : 1;
}

static int middle_child(struct program p[PROGRAMS])
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(grandchild(p));
	int status = rt_wait_child(pid, CHILD_SECONDS / 2);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;
	if (!all_return(p)) {
		fprintf(stderr, "FAIL child: its child's write reached it\n");
		return 2;
	}
	if (!rt_write_program(p[1].code, p[1].value + 0x400))
		return 3;
	/* And a grandchild that only runs the code it inherited. */
	pid = fork();
	if (pid == 0)
		_exit(rt_program_returns(mode, p[1].code, p[1].value + 0x400) ? 0 : 1);
	status = rt_wait_child(pid, CHILD_SECONDS / 2);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
}

/* A child that only runs code, while the parent rewrites it. */
static int idle_child(const struct program p[PROGRAMS], int from_parent)
{
	if (!await(from_parent))
		return 1;
	return all_return(p) ? 0 : 2;
}

static void nested_and_idle(void)
{
	struct program p[PROGRAMS];
	int pipe_fds[2];
	RT_CHECK(make_programs(p, 0x6400) && pipe(pipe_fds) == 0, "set-up: errno %d", errno);
	fflush(NULL);
	pid_t idle = fork();
	if (idle == 0) {
		close(pipe_fds[1]);
		_exit(idle_child(p, pipe_fds[0]));
	}
	close(pipe_fds[0]);
	pid_t middle = fork();
	if (middle == 0)
		_exit(middle_child(p));
	wait_ok(middle, "child with children of its own (2: its child's write reached it)");
	RT_CHECK(all_return(p), "a write of a child or grandchild reached the parent");
	for (int i = 0; i < PROGRAMS - 1; i++)
		RT_CHECK(rt_write_program(p[i].code, p[i].value + 5), "parent rewrite");
	tell(pipe_fds[1]);
	close(pipe_fds[1]);
	wait_ok(idle, "idle child (2: it saw the parent's write)");
	for (int i = 0; i < PROGRAMS; i++)
		execmem_free(p[i].code);
}

static bool squatter_intact(void)
{
	for (size_t i = 0; i < EXECMEM_CHUNK_SIZE; i++)
		if (squatter[i] != SQUAT_BYTE)
			return false;
	return true;
}

static int child_of_squatter(uint32_t value)
{
	/* Under ThreadSanitizer its runtime's thread stack may be there first. */
	uintptr_t start, end;
	char perms[5];
	bool held = squatter || (squat_target && rt_find_mapping(squat_target, &start, &end, perms));
	if (!held && RUNNING_ON_VALGRIND) {
		/* valgrind's record of the address space keeps the alias after
		 * fork (it does not model MADV_DONTFORK), so neither the program
		 * nor execmem can map there: the address is lost all the same. */
		fprintf(stderr, "NOTE child: under valgrind the alias address stays unusable\n");
	} else if (!held) {
		fprintf(stderr, "FAIL child: no mapping at the alias address\n");
		return 1;
	}
	if (!rt_program_returns(mode, squat_program, value) ||
	    !rt_write_program(squat_program, value + 1) ||
	    !rt_program_returns(mode, squat_program, value + 1))
		return 2;
	return !squatter || squatter_intact() ? 0 : 3;
}

static void alias_address_taken(void)
{
	uint32_t value = 0x6500;
	squat_program = rt_new_program(NULL, 64, value);
	RT_CHECK(squat_program, "set-up: errno %d", errno);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_of_squatter(value));
	squat_target = NULL;
	RT_CHECK(rt_write_program(squat_program, value + 2), "parent rewrite");
	wait_ok(pid, "child whose alias address was taken (2: its rewrite, 3: it wrote over the"
		" program's mapping)");
	RT_CHECK(rt_program_returns(mode, squat_program, value + 2), "the child's write reached the parent");
	execmem_free(squat_program);
	squat_program = NULL;
}

int main(void)
{
	/* Before execmem's first use: the child handler runs before execmem's. */
	pthread_atfork(find_alias, NULL, squat);
	mode = rt_mode_from_env();
	if (rt_fork_isolation_unsupported(mode))
		return RT_SKIP;
	rt_can_run_rewritten_code(mode); /* says once, before any fork, what qemu-user cannot run */
	printf("forkcow: default arena in %s mode\n", execmem_mode_name(mode));
	parent_writes_first();
	child_writes_first();
	window_across_fork();
	nested_and_idle();
	if (mode == EXECMEM_MODE_DUAL)
		alias_address_taken();
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	return rt_finish("forkcow");
}
