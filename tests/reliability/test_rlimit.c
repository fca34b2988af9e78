/*
 * test_rlimit.c - execmem under resource limits that leave it nothing
 * spare.  (a) The address space limit just above what the process uses:
 * a forked child must keep running the code it inherited and rewrite it,
 * and its parent rewrite its own (in dual mode each process's first write
 * to a chunk since the fork copies it, which must need no memory beyond
 * what it maps already).  (b) No free file
 * descriptor: in auto mode allocation falls back to mprotect mode instead
 * of failing, a forced dual arena fails cleanly, and a fork still keeps
 * parent and child apart.  Each case
 * runs in a child of its own, so that the limits stay there.
 * The mode of the default arena comes from EXECMEM_MODE.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtest.h"

/* A grandchild is given up on before its parent is. */
enum { PROGRAMS = 4, CHILD_SECONDS = 10, GRANDCHILD_SECONDS = 5 };
/* Address space left to the limited process: less than a chunk. */
#define AS_HEADROOM ((size_t)1 << 20)

static enum execmem_mode mode;

struct program {
	void *code;
	uint32_t value;
};

/* Programs in several chunks: small ones, a data neighbour, a large one. */
static bool make_programs(struct execmem_arena *arena, struct program p[PROGRAMS])
{
	static const size_t sizes[PROGRAMS] = { 64, 4096, EXECMEM_CHUNK_SIZE / 2 + 4096, 200 };
	for (int i = 0; i < PROGRAMS; i++) {
		p[i].value = 0x5150u + (uint32_t)i;
		p[i].code = rt_new_program(arena, sizes[i], p[i].value);
		if (!p[i].code)
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

static int run_in_child(int (*body)(void), const char *what)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(body());
	int status = rt_wait_child(pid, CHILD_SECONDS);
	if (WIFEXITED(status) && WEXITSTATUS(status) == RT_SKIP)
		return RT_SKIP;
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "%s: status %#x (see its message; signal 6: execmem aborted, 9: hung)", what, status);
	return 0;
}

/* ---- (a) address space ---- */

static size_t vm_size(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	if (!status)
		return 0;
	char line[256];
	size_t kib = 0;
	while (fgets(line, sizeof line, status))
		if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
			break;
	fclose(status);
	return kib * 1024;
}

/* The grandchild: its inherited programs run, its own rewrite works. */
static int limited_grandchild(struct program p[PROGRAMS])
{
	if (!all_return(p)) {
		fprintf(stderr, "FAIL grandchild: an inherited program does not return its value\n");
		return 1;
	}
	if (!rt_write_program(p[0].code, p[0].value + 1) || !rt_program_returns(mode, p[0].code, p[0].value + 1)) {
		fprintf(stderr, "FAIL grandchild: rewrite of an inherited program\n");
		return 2;
	}
	return 0;
}

static int address_space_limited(void)
{
	struct program p[PROGRAMS];
	if (!make_programs(NULL, p)) {
		fprintf(stderr, "FAIL programs: errno %d\n", errno);
		return 1;
	}
	size_t used = vm_size();
	struct rlimit limit;
	getrlimit(RLIMIT_AS, &limit);
	limit.rlim_cur = used + AS_HEADROOM;
	if (!used || setrlimit(RLIMIT_AS, &limit) != 0) {
		fprintf(stderr, "FAIL RLIMIT_AS: %s\n", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(limited_grandchild(p));
	if (pid < 0) {
		fprintf(stderr, "FAIL fork under RLIMIT_AS: %s\n", strerror(errno));
		return 1;
	}
	int status = rt_wait_child(pid, GRANDCHILD_SECONDS);
	int rc = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "FAIL child forked with %zu KiB of address space to spare: status %#x"
			" (signal 6: execmem aborted giving it chunks of its own)\n", AS_HEADROOM >> 10, status);
		rc = 1;
	}
	if (!all_return(p)) {
		fprintf(stderr, "FAIL parent's programs after the fork under RLIMIT_AS\n");
		rc = 1;
	}
	/* The parent's first write since the fork copies the chunk, in place. */
	if (!rt_write_program(p[1].code, p[1].value + 1) || !rt_program_returns(mode, p[1].code, p[1].value + 1)) {
		fprintf(stderr, "FAIL parent's first rewrite after the fork under RLIMIT_AS\n");
		rc = 1;
	}
	return rc;
}

/* ---- (b) descriptors ---- */

/* Lets the process open no further descriptor; returns the limit set. */
static int use_up_descriptors(void)
{
	int lowest_free = dup(0);
	if (lowest_free < 0)
		return -1;
	close(lowest_free);
	struct rlimit limit;
	getrlimit(RLIMIT_NOFILE, &limit);
	limit.rlim_cur = (rlim_t)lowest_free;
	if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
		return -1;
	return dup(0) < 0 && errno == EMFILE ? lowest_free : -1;
}

/* Reading /proc/self/maps needs descriptors (under qemu-user, more than
 * one): a few more for a look (LOOK), given back after it (-LOOK). */
enum { LOOK = 8 };
static void change_descriptor_limit(int by)
{
	struct rlimit limit;
	getrlimit(RLIMIT_NOFILE, &limit);
	limit.rlim_cur = (rlim_t)((long)limit.rlim_cur + by);
	setrlimit(RLIMIT_NOFILE, &limit);
}

static bool mapped_privately(const void *code)
{
	change_descriptor_limit(LOOK);
	uintptr_t start, end;
	char perms[5];
	bool private = rt_find_mapping(code, &start, &end, perms) && perms[3] == 'p';
	change_descriptor_limit(-LOOK);
	return private;
}

/* new_chunk: the arena has no chunk yet, so the program gets a new one. */
static bool fresh_program_works(struct execmem_arena *arena, uint32_t value, bool new_chunk,
				const char *what)
{
	void *code = rt_new_program(arena, 128, value);
	if (!code) {
		fprintf(stderr, "FAIL %s: allocation with no free descriptor: errno %d\n", what, errno);
		return false;
	}
	/* With no descriptor for a memfd, the chunk is private memory toggled
	 * by mprotect (in either mode of the test). */
	bool private = !new_chunk || mapped_privately(code);
	bool ok = rt_program_returns(mode, code, value);
	ok = execmem_free(code) == 0 && ok;
	if (!ok || !private)
		fprintf(stderr, "FAIL %s: program, free or private mapping (%s) with no free descriptor\n",
			what, private ? "private" : "not private");
	return ok && private;
}

/* Auto mode falls back; forced dual fails with a clean error. */
static int descriptors_exhausted_alloc(void)
{
	setenv("EXECMEM_MODE", "auto", 1); /* the default arena is first used here */
	struct execmem_arena *automatic = rt_arena_in(EXECMEM_MODE_AUTO);
	struct execmem_arena *dual = rt_arena_in(EXECMEM_MODE_DUAL);
	if (!automatic || !dual || use_up_descriptors() < 0) {
		fprintf(stderr, "FAIL set-up: %s\n", strerror(errno));
		return 1;
	}
	int rc = 0;
	if (!fresh_program_works(automatic, 0x6001, true, "auto-mode arena"))
		rc = 1;
	if (!fresh_program_works(NULL, 0x6002, false, "default arena, EXECMEM_MODE=auto"))
		rc = 1;
	struct execmem_stats stats;
	/* A missing descriptor is a passing state: later chunks try dual again. */
	if (execmem_arena_stats(automatic, &stats) != 0 || stats.mode != EXECMEM_MODE_DUAL) {
		fprintf(stderr, "FAIL auto-mode arena gave up dual mode for good over EMFILE\n");
		rc = 1;
	}
	errno = 0;
	void *code = execmem_arena_alloc(dual, EXECMEM_CODE, 64);
	if (code || (errno != EMFILE && errno != ENOMEM)) {
		fprintf(stderr, "FAIL forced dual arena with no descriptor: %p, errno %d\n", code, errno);
		rc = 1;
	}
	change_descriptor_limit(LOOK);
	if (rt_count_wx_mappings() != 0) {
		fprintf(stderr, "FAIL a W+X mapping\n");
		rc = 1;
	}
	return rc;
}

/* Fork with no free descriptor (a first write since the fork copies
 * without one): still apart. */
static int descriptors_exhausted_fork(void)
{
	struct program p[PROGRAMS];
	int sync[2];
	if (!make_programs(NULL, p) || pipe(sync) != 0 || use_up_descriptors() < 0) {
		fprintf(stderr, "FAIL set-up: %s\n", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(sync[1]);
		char byte;
		bool ok = all_return(p) && rt_write_program(p[1].code, 0xc41d) &&
			  rt_program_returns(mode, p[1].code, 0xc41d);
		/* The parent has rewritten p[0] once this byte arrives. */
		ok = read(sync[0], &byte, 1) == 1 && rt_program_returns(mode, p[0].code, p[0].value) && ok;
		if (!ok)
			fprintf(stderr, "FAIL child forked with no free descriptor: inherited code, own"
				" rewrite, or it saw the parent's rewrite\n");
		_exit(ok ? 0 : 1);
	}
	close(sync[0]);
	bool ok = pid > 0 && rt_write_program(p[0].code, p[0].value + 1);
	ok = write(sync[1], "x", 1) == 1 && ok;
	int status = rt_wait_child(pid, GRANDCHILD_SECONDS);
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && ok;
	if (!rt_program_returns(mode, p[1].code, p[1].value) ||
	    !rt_program_returns(mode, p[0].code, p[0].value + 1)) {
		fprintf(stderr, "FAIL parent: the child's rewrite reached it, or its own was lost\n");
		ok = false;
	}
	return ok ? 0 : 1;
}

int main(void)
{
	mode = rt_mode_from_env();
	signal(SIGPIPE, SIG_IGN);
	printf("rlimit: default arena in %s mode\n", execmem_mode_name(mode));
	if (rt_under_asan() || rt_under_tsan())
		printf("NOTE: RLIMIT_AS part not run: the sanitizer's runtime maps memory of its own;"
		       " the plain build runs it\n");
	else
		run_in_child(address_space_limited, "RLIMIT_AS nearly used up, then fork");
	run_in_child(descriptors_exhausted_alloc, "allocation with no free descriptor");
	run_in_child(descriptors_exhausted_fork, "fork with no free descriptor");
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	return rt_finish("rlimit");
}
