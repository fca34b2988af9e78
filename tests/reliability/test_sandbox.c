/*
 * test_sandbox.c - execmem inside sandboxes that refuse what dual mode
 * needs.  In forked children, a seccomp filter makes memfd_create() fail
 * with ENOSYS, EPERM or EACCES, or refuses shared executable mappings; an
 * auto-mode arena must then make, write, run and free code in mprotect mode
 * and say so in its statistics, and a forced dual arena must fail cleanly.
 * Under PR_SET_MDWE (no mapping may gain execute permission) dual and auto
 * mode must work, and a forced mprotect arena must fail cleanly.  Nothing
 * may crash, hang or leave a writable and executable mapping.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rtest.h"

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_RISCV64
#endif

enum { CHILD_SECONDS = 10 };

static enum execmem_mode mode;

/* ---- seccomp filters ---- */

#define ARG_LOW(n) (offsetof(struct seccomp_data, args) + 8 * (n)) /* little-endian */
#define LOAD(offset) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (offset))
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define REFUSE(err) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))
/* Every filter starts so: other architectures' calls pass, then the call number is loaded. */
#define NATIVE_CALLS_ONLY                                                     \
	LOAD(offsetof(struct seccomp_data, arch)),                            \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0), ALLOW, \
	LOAD(offsetof(struct seccomp_data, nr))

static int install(struct sock_filter *code, size_t len)
{
	struct sock_fprog program = { (unsigned short)len, code };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0 ? 0 : -errno;
}

/* memfd_create() fails with err. */
static int refuse_memfd(int err)
{
	struct sock_filter code[] = {
		NATIVE_CALLS_ONLY,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
		REFUSE(err),
		ALLOW,
	};
	return install(code, sizeof code / sizeof code[0]);
}

/* mmap() with PROT_EXEC and MAP_SHARED fails with EPERM. */
static int refuse_shared_exec(void)
{
	struct sock_filter code[] = {
		NATIVE_CALLS_ONLY,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 1, 0),
		ALLOW,
		LOAD(ARG_LOW(2)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 0),
		ALLOW,
		LOAD(ARG_LOW(3)),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_SHARED, 0, 1),
		REFUSE(EPERM),
		ALLOW,
	};
	return install(code, sizeof code / sizeof code[0]);
}

/* ---- what must work, or fail cleanly, inside ---- */

/* Makes, writes, runs, rewrites and frees code in an arena of arena_mode;
 * the arena must then report `expected` as its mode.  Returns success. */
static bool code_works(enum execmem_mode arena_mode, enum execmem_mode expected, const char *sandbox)
{
	struct execmem_arena *arena = rt_arena_in(arena_mode);
	void *small = arena ? rt_new_program(arena, 64, 0x5a5a) : NULL;
	void *large = arena ? rt_new_program(arena, EXECMEM_CHUNK_SIZE, 0x6b6b) : NULL;
	const char *mode_name = execmem_mode_name(arena_mode);
	if (!small || !large) {
		fprintf(stderr, "FAIL %s: %s arena: allocation or write failed: errno %d (%s)\n",
			sandbox, mode_name, errno, execmem_last_error());
		return false;
	}
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, 0x7c7c);
	bool ok = rt_program_returns(mode, small, 0x5a5a) && rt_program_returns(mode, large, 0x6b6b) &&
		  execmem_write(small, bytes, len) == 0 && rt_program_returns(mode, small, 0x7c7c);
	struct execmem_stats stats;
	bool reported = execmem_arena_stats(arena, &stats) == 0 && stats.mode == expected;
	ok = execmem_free(small) == 0 && execmem_free(large) == 0 && ok;
	if (!ok)
		fprintf(stderr, "FAIL %s: %s arena: code does not run, rewrite or free\n", sandbox, mode_name);
	if (!reported)
		fprintf(stderr, "FAIL %s: %s arena reports mode %s, not %s\n", sandbox, mode_name,
			execmem_mode_name(stats.mode), execmem_mode_name(expected));
	execmem_arena_destroy(arena);
	return ok && reported;
}

/* A forced mode the sandbox refuses: NULL with an errno, nothing else. */
static bool refused_cleanly(enum execmem_mode arena_mode, const char *sandbox)
{
	struct execmem_arena *arena = rt_arena_in(arena_mode);
	errno = 0;
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, 64) : NULL;
	int err = errno;
	if (arena)
		execmem_arena_destroy(arena);
	if (code || err == 0) {
		fprintf(stderr, "FAIL %s: forced %s arena: %p, errno %d (expected a refusal)\n", sandbox,
			execmem_mode_name(arena_mode), code, err);
		return false;
	}
	return true;
}

static bool no_wx(const char *sandbox)
{
	if (rt_count_wx_mappings() == 0)
		return true;
	fprintf(stderr, "FAIL %s: a W+X mapping\n", sandbox);
	return false;
}

/* ---- the sandboxes, each in a child ---- */

struct sandbox {
	const char *name;
	int (*enter)(int arg); /* 0, or -errno when it cannot be set up */
	int arg;
};

static int enter_refuse_shared_exec(int unused)
{
	(void)unused;
	return refuse_shared_exec();
}

enum { CHILD_UNSUPPORTED = 3 };

static int seccomp_child(const struct sandbox *s)
{
	int rc = s->enter(s->arg);
	if (rc == -EINVAL && rt_under_qemu_user())
		return CHILD_UNSUPPORTED; /* qemu-user refuses seccomp filters: they would bind qemu */
	if (rc) {
		fprintf(stderr, "FAIL %s: cannot install the filter: %s\n", s->name, strerror(-rc));
		return 1;
	}
	bool ok = code_works(EXECMEM_MODE_AUTO, EXECMEM_MODE_MPROTECT, s->name);
	ok = code_works(EXECMEM_MODE_MPROTECT, EXECMEM_MODE_MPROTECT, s->name) && ok;
	ok = refused_cleanly(EXECMEM_MODE_DUAL, s->name) && ok;
	return no_wx(s->name) && ok ? 0 : 1;
}

static int mdwe_child(void)
{
	const char *name = "PR_SET_MDWE(REFUSE_EXEC_GAIN)";
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0)
		return errno == EINVAL ? CHILD_UNSUPPORTED : 1;
	bool ok = code_works(EXECMEM_MODE_DUAL, EXECMEM_MODE_DUAL, name);
	ok = code_works(EXECMEM_MODE_AUTO, EXECMEM_MODE_DUAL, name) && ok;
	ok = refused_cleanly(EXECMEM_MODE_MPROTECT, name) && ok;
	return no_wx(name) && ok ? 0 : 1;
}

static int wait_for(pid_t pid, const char *name)
{
	int status = rt_wait_child(pid, CHILD_SECONDS);
	bool exited = WIFEXITED(status);
	RT_CHECK(exited && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == CHILD_UNSUPPORTED),
		 "%s: child status %#x (exit 1: see its message; a signal: crashed, 9: hung)", name, status);
	return exited ? WEXITSTATUS(status) : -1;
}

static void in_child(const struct sandbox *s)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(seccomp_child(s));
	if (wait_for(pid, s->name) == CHILD_UNSUPPORTED)
		printf("NOTE: %s not run: qemu-user refuses seccomp filters\n", s->name);
}

int main(void)
{
	mode = rt_mode_from_env();
	printf("sandbox: arenas under seccomp filters and MDWE\n");
	static const struct sandbox sandboxes[] = {
		{ "memfd_create -> ENOSYS", refuse_memfd, ENOSYS },
		{ "memfd_create -> EPERM", refuse_memfd, EPERM },
		{ "memfd_create -> EACCES", refuse_memfd, EACCES },
		{ "shared PROT_EXEC mmap -> EPERM", enter_refuse_shared_exec, 0 },
	};
	for (size_t i = 0; i < sizeof sandboxes / sizeof sandboxes[0]; i++)
		in_child(&sandboxes[i]);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(mdwe_child());
	if (wait_for(pid, "MDWE") == CHILD_UNSUPPORTED)
		printf("NOTE: the kernel lacks PR_SET_MDWE (Linux 6.3+): the MDWE case did not run\n");
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	return rt_finish("sandbox");
}
