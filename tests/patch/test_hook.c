/*
 * test_hook.c - execmem_hook() and execmem_unhook() on what programs hook:
 * every prologue of hook_subjects.c (gcc and clang, -O0..-O3, branch
 * protection), libc's getpid, time and IFUNC-resolved strlen, the
 * functions of a module loaded with execmem_module_load_file(), execmem
 * code; the refusals and their messages; and a fork()ed child removing a
 * hook without touching its parent's.
 */
#include "execmem/module.h"
#include "execmem/patch.h"
#include "hook_subjects.h"
#include "rtest.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOOKED_OFFSET 1000000

struct build {
	const char *tag;
	const struct hook_subject *subjects;
};

#define HOOK_SUBJECT_ENTRY(tag) { #tag, hook_subjects##tag },
static const struct build builds[] = { HOOK_SUBJECT_BUILDS(HOOK_SUBJECT_ENTRY) };
static const long inputs[] = { 0, 1, 3, 7, -4 };

static long (*subject_original)(long);

static long subject_replacement(long a)
{
	return subject_original(a) + HOOKED_OFFSET;
}

/* The subject called through a pointer the compiler cannot see through. */
static long call_subject(long (*fn)(long), long a)
{
	long (*volatile through)(long) = fn;
	return through(a);
}

static unsigned hooked_count, short_count;

/* Hooks fn, checks every input gives the hooked result, unhooks, checks the
 * own results again. */
static void hook_and_check(const char *name, const char *tag, long (*fn)(long), int flags)
{
	long want[sizeof inputs / sizeof inputs[0]];
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
		want[i] = call_subject(fn, inputs[i]);
	int rc = execmem_hook((void *)fn, (void *)subject_replacement, (void **)&subject_original);
	if (rc == -ENOEXEC && (flags & HOOK_SUBJECT_MAY_BE_SHORT) &&
	    strstr(execmem_last_error(), "too short")) {
		short_count++;
		return;
	}
	RT_CHECK(rc == 0, "hook %s%s: %d %s", name, tag, rc, execmem_last_error());
	if (rc)
		return;
	hooked_count++;
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
		long got = call_subject(fn, inputs[i]);
		RT_CHECK(got == want[i] + HOOKED_OFFSET, "hooked %s%s(%ld) = %ld, expected %ld", name,
			 tag, inputs[i], got, want[i] + HOOKED_OFFSET);
	}
	RT_CHECK(execmem_unhook((void *)fn) == 0, "unhook %s%s: %s", name, tag,
		 execmem_last_error());
	for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
		RT_CHECK(call_subject(fn, inputs[i]) == want[i], "unhooked %s%s(%ld)", name, tag,
			 inputs[i]);
}

static void test_prologues(void)
{
	for (size_t b = 0; b < sizeof builds / sizeof builds[0]; b++)
		for (const struct hook_subject *s = builds[b].subjects; s->name; s++)
			hook_and_check(s->name, builds[b].tag, s->fn, s->flags);
	printf("%u compiled prologues hooked, %u too short\n", hooked_count, short_count);
	RT_CHECK(short_count < hooked_count, "hooked %u, short %u", hooked_count, short_count);
#if defined(__x86_64__)
	RT_CHECK(short_count > 0, "no x86-64 prologue was too short");
#endif
}

/* ---- libc ---- */
static atomic_long getpid_calls, clock_calls, strlen_calls;
static pid_t (*getpid_original)(void);
static int (*clock_original)(clockid_t, struct timespec *);
static size_t (*strlen_original)(const char *);

static pid_t getpid_replacement(void)
{
	getpid_calls++;
	return getpid_original();
}

static int clock_replacement(clockid_t id, struct timespec *ts)
{
	clock_calls++;
	return clock_original(id, ts);
}

static size_t strlen_replacement(const char *s)
{
	strlen_calls++;
	return strlen_original(s);
}

static bool in_vdso(const void *p)
{
	Dl_info info;
	return dladdr(p, &info) && info.dli_fbase == (void *)getauxval(AT_SYSINFO_EHDR);
}

static void test_libc(void)
{
	/* The addresses libc's own calls reach: strlen's and time's are what
	 * their IFUNCs chose for this CPU. */
	pid_t (*volatile pid_fn)(void) = getpid;
	int (*volatile clock_fn)(clockid_t, struct timespec *) = clock_gettime;
	size_t (*volatile strlen_fn)(const char *) = strlen;
	void *time_fn = (void *)time;
	pid_t pid = pid_fn();
	RT_CHECK(execmem_hook((void *)pid_fn, (void *)getpid_replacement,
			      (void **)&getpid_original) == 0, "hook getpid: %s", execmem_last_error());
	RT_CHECK(execmem_hook((void *)clock_fn, (void *)clock_replacement,
			      (void **)&clock_original) == 0, "hook clock_gettime: %s",
		 execmem_last_error());
	RT_CHECK(execmem_hook((void *)strlen_fn, (void *)strlen_replacement,
			      (void **)&strlen_original) == 0, "hook strlen: %s", execmem_last_error());
	RT_CHECK(rt_count_wx_mappings() == 0, "W+X mappings with libc hooked");
	long calls = getpid_calls;
	RT_CHECK(pid_fn() == pid && getpid_calls > calls, "getpid hooked: %ld calls", (long)calls);
	calls = clock_calls;
	struct timespec ts = { 0, 0 };
	RT_CHECK(clock_fn(CLOCK_MONOTONIC, &ts) == 0 && ts.tv_sec + ts.tv_nsec > 0 &&
			 clock_calls > calls, "clock_gettime hooked");
	/* valgrind runs its own strlen in place of libc's, whatever its bytes */
	long strlen_before = strlen_calls;
	RT_CHECK(strlen_fn("hooked strlen") == 13 &&
			 (strlen_calls > strlen_before || rt_under_valgrind()), "strlen hooked");
	RT_CHECK(execmem_unhook((void *)strlen_fn) == 0, "%s", execmem_last_error());
	RT_CHECK(execmem_unhook((void *)clock_fn) == 0, "%s", execmem_last_error());
	RT_CHECK(execmem_unhook((void *)pid_fn) == 0, "%s", execmem_last_error());
	calls = getpid_calls;
	RT_CHECK(pid_fn() == pid && getpid_calls == calls, "getpid unhooked");
	RT_CHECK(strlen_fn("abc") == 3, "strlen unhooked");

	/* time's IFUNC picks the vDSO's, whose pages cannot be replaced */
	void *orig = NULL;
	int rc = execmem_hook(time_fn, (void *)clock_replacement, &orig);
	if (in_vdso(time_fn)) {
		RT_CHECK(rc != 0 && strstr(execmem_last_error(), "vDSO"), "time in the vDSO: %d %s",
			 rc, execmem_last_error());
		printf("refused: %s\n", execmem_last_error());
	} else {
		RT_CHECK(rc == 0 && execmem_unhook(time_fn) == 0, "time: %s", execmem_last_error());
	}
	RT_CHECK(time(NULL) > 0, "time still runs");
}

/* ---- a module, and execmem code ---- */
static void test_module(void)
{
	struct execmem_module *m = NULL;
	int rc = execmem_module_load_file(HOOK_SUBJECT_MODULE, NULL, &m);
	RT_CHECK(rc == 0, "load %s: %s", HOOK_SUBJECT_MODULE, execmem_last_error());
	if (rc)
		return;
	const struct hook_subject *table = execmem_module_symbol(m, "hook_subjects_gcc_O2");
	RT_CHECK(table != NULL, "no subject table in the module");
	unsigned before = hooked_count;
	for (const struct hook_subject *s = table; table && s->name; s++)
		hook_and_check(s->name, " (module)", s->fn, s->flags);
	RT_CHECK(hooked_count > before, "no module function hooked");
	RT_CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_last_error());
}

/* n bytes of no-op instructions */
static void fill_nops(uint8_t *p, size_t n)
{
#if defined(__x86_64__)
	memset(p, 0x90, n);
#else
	for (size_t i = 0; i + 4 <= n; i += 4)
		memcpy(p + i, "\x1f\x20\x03\xd5", 4);
#endif
}

static void test_execmem_code(void)
{
	uint8_t code[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(code, 7);
	/* padded: a return-7 function is shorter than some entry jumps */
	uint8_t padded[64];
	fill_nops(padded, 16);
	memcpy(padded + 16, code, len);
	void *fn = execmem_alloc(EXECMEM_CODE, sizeof padded);
	RT_CHECK(fn && execmem_write(fn, padded, 16 + len) == 0, "%s", execmem_last_error());
	hook_and_check("return-7", " (execmem)", (long (*)(long))fn, 0);
	execmem_free(fn);
}

/* ---- refusals ---- */
static long other_replacement(long a)
{
	return a;
}

static void test_refusals(void)
{
	void *orig = NULL;
	const struct hook_subject *s = &builds[2].subjects[0]; /* arith, gcc -O2 */
	RT_CHECK(execmem_hook(NULL, (void *)other_replacement, &orig) == -EINVAL, "NULL target");
	RT_CHECK(execmem_hook((void *)s->fn, NULL, &orig) == -EINVAL, "NULL replacement");
	RT_CHECK(execmem_unhook(NULL) == -EINVAL, "unhook NULL");
	RT_CHECK(execmem_unhook((void *)s->fn) == -ENOENT, "unhook what is not hooked");
	RT_CHECK(strstr(execmem_last_error(), "not hooked") != NULL, "%s", execmem_last_error());
	printf("refused: %s\n", execmem_last_error());

	RT_CHECK(execmem_hook((void *)s->fn, (void *)subject_replacement,
			      (void **)&subject_original) == 0, "%s", execmem_last_error());
	void *kept = (void *)subject_original;
	RT_CHECK(execmem_hook((void *)s->fn, (void *)other_replacement, &orig) == -EEXIST,
		 "hooked twice");
	RT_CHECK(strstr(execmem_last_error(), "already hooked") != NULL, "%s", execmem_last_error());
	printf("refused: %s\n", execmem_last_error());
	RT_CHECK(execmem_hook((void *)((uintptr_t)s->fn + 1), (void *)other_replacement, &orig) ==
			 -EEXIST, "hooked inside another hook's bytes");
	printf("refused: %s\n", execmem_last_error());
	RT_CHECK((void *)subject_original == kept, "a refused hook changed *original");
	RT_CHECK(call_subject(s->fn, 2) == 17 + HOOKED_OFFSET, "first hook still in place");
	RT_CHECK(execmem_unhook((void *)s->fn) == 0, "%s", execmem_last_error());

	/* x86-64 -O2 makes the identity function a move and a return, shorter
	 * than the jump; aarch64's is a RET, which B replaces whole. */
	for (const struct hook_subject *t = builds[2].subjects; t->name; t++) {
		if (strcmp(t->name, "identity"))
			continue;
		int rc = execmem_hook((void *)t->fn, (void *)other_replacement, &orig);
#if defined(__x86_64__)
		RT_CHECK(rc == -ENOEXEC && strstr(execmem_last_error(), "too short"),
			 "identity: %d %s", rc, execmem_last_error());
		printf("refused: %s\n", execmem_last_error());
#else
		RT_CHECK(rc == 0 && execmem_unhook((void *)t->fn) == 0, "identity: %s",
			 execmem_last_error());
#endif
	}

	/* instructions in memory that is not executable */
	static uint8_t data[64] __attribute__((aligned(16)));
	fill_nops(data, sizeof data);
	int rc = execmem_hook(data, (void *)other_replacement, &orig);
	RT_CHECK(rc == -EFAULT, "hooked data: %d %s", rc, execmem_last_error());
	printf("refused: %s\n", execmem_last_error());
}

/* ---- trampolines are freed ---- */
static size_t live_allocations(void)
{
	struct execmem_stats st;
	RT_CHECK(execmem_stats(&st) == 0, "stats");
	return st.live_allocations;
}

/* With no other thread, every census is clear: retired trampolines go in
 * batches of 16, so at most that many are left waiting. */
static void test_trampolines_freed(void)
{
	const struct hook_subject *s = &builds[2].subjects[0];
	size_t before = live_allocations();
	for (int i = 0; i < 48; i++) {
		int rc = execmem_hook((void *)s->fn, (void *)subject_replacement,
				      (void **)&subject_original);
		RT_CHECK(rc == 0 && execmem_unhook((void *)s->fn) == 0, "cycle %d: %s", i,
			 execmem_last_error());
	}
	size_t after = live_allocations();
	RT_CHECK(after <= before + 16, "%zu trampolines left after 48 cycles", after - before);
}

/* ---- functions that hooking itself runs ---- */

/* Installing and removing a hook allocates, lists the threads and maps
 * pages: with these hooked, the thread doing it meets its own trap. */
static atomic_long uses_calls;
static void *(*malloc_original)(size_t);
static void (*free_original)(void *);
static DIR *(*opendir_original)(const char *);
static struct dirent *(*readdir_original)(DIR *);
static void *(*mmap_original)(void *, size_t, int, int, int, off_t);

static void *malloc_replacement(size_t n)
{
	uses_calls++;
	return malloc_original(n);
}

static void free_replacement(void *p)
{
	uses_calls++;
	free_original(p);
}

static DIR *opendir_replacement(const char *path)
{
	uses_calls++;
	return opendir_original(path);
}

static struct dirent *readdir_replacement(DIR *d)
{
	uses_calls++;
	return readdir_original(d);
}

static void *mmap_replacement(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
	uses_calls++;
	return mmap_original(a, n, prot, flags, fd, off);
}

/* Exit status: 0, or 1 + the index of the function that failed. */
static int hook_what_hooking_uses(void)
{
	struct {
		void *target, *replacement, **original;
	} uses[] = {
		{ (void *)malloc, (void *)malloc_replacement, (void **)&malloc_original },
		{ (void *)free, (void *)free_replacement, (void **)&free_original },
		{ (void *)opendir, (void *)opendir_replacement, (void **)&opendir_original },
		{ (void *)readdir, (void *)readdir_replacement, (void **)&readdir_original },
		{ (void *)mmap, (void *)mmap_replacement, (void **)&mmap_original },
	};
	/* valgrind runs its own malloc and free in their place: calls never
	 * reach the bytes a hook would change */
	for (size_t i = rt_under_valgrind() ? 2 : 0; i < sizeof uses / sizeof uses[0]; i++) {
		long before = uses_calls;
		if (execmem_hook(uses[i].target, uses[i].replacement, uses[i].original) != 0)
			return 1 + (int)i;
		DIR *d = opendir("/");
		bool ok = d && readdir(d);
		free(malloc(64));
		void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ok = ok && page != MAP_FAILED && uses_calls > before;
		if (d)
			closedir(d);
		if (page != MAP_FAILED)
			munmap(page, 4096);
		if (execmem_unhook(uses[i].target) != 0 || !ok)
			return 1 + (int)i;
	}
	return 0;
}

static void test_functions_hooking_uses(void)
{
	if (rt_under_valgrind())
		printf("NOTE: malloc and free are not hooked under valgrind, which replaces them\n");
	fflush(NULL);
	pid_t child = fork();
	if (child == 0)
		_exit(hook_what_hooking_uses());
	int status = child > 0 ? rt_wait_child(child, 20) : -1;
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "hooking malloc, free, opendir, readdir, mmap in turn: status %#x (exit 1..5: that"
		 " function failed; signal 9: hung, killed)", status);
}

/* ---- fork ---- */
static void test_fork(void)
{
	const struct hook_subject *s = &builds[2].subjects[0]; /* arith(2) = 17 */
	RT_CHECK(execmem_hook((void *)s->fn, (void *)subject_replacement,
			      (void **)&subject_original) == 0, "%s", execmem_last_error());
	fflush(NULL);
	pid_t child = fork();
	if (child == 0) {
		int ok = call_subject(s->fn, 2) == 17 + HOOKED_OFFSET &&
			 execmem_unhook((void *)s->fn) == 0 && call_subject(s->fn, 2) == 17 &&
			 execmem_hook((void *)s->fn, (void *)other_replacement,
				      (void **)&subject_original) == 0 &&
			 call_subject(s->fn, 2) == 2 && execmem_unhook((void *)s->fn) == 0;
		_exit(ok ? 0 : 1);
	}
	int status = -1;
	RT_CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork");
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "the child did not see, remove and replace the hook (status %#x)", status);
	RT_CHECK(call_subject(s->fn, 2) == 17 + HOOKED_OFFSET, "the child's unhook reached the parent");
	RT_CHECK(execmem_unhook((void *)s->fn) == 0, "%s", execmem_last_error());
	RT_CHECK(call_subject(s->fn, 2) == 17, "unhooked in the parent");
}

int main(void)
{
	test_prologues();
	test_libc();
	test_module();
	test_execmem_code();
	test_refusals();
	test_trampolines_freed();
	test_fork();
	test_functions_hooking_uses();
	RT_CHECK(rt_count_wx_mappings() == 0, "W+X mappings at the end");
	return rt_finish("test_hook");
}
