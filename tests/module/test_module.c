/*
 * test_module.c - compile real C modules with the system compiler, load them
 * with the execmem module loader and run them.
 *
 *   test_module CC "CFLAGS" SRCDIR WORKDIR
 *   test_module --aarch64-relocations AARCH64_CC SRCDIR WORKDIR
 *   test_module --real-archives CC "CFLAGS" SRCDIR WORKDIR
 *
 * CC builds the modules (the same compiler, and for the same machine, as
 * this program when cross-building); CFLAGS picks the optimisation and code
 * model (-O0/-O2, -fno-pic/-fPIC).  With --aarch64-relocations, an aarch64
 * compiler builds an object that is relocated without being run and checked
 * by decoding its instructions, which tests the aarch64 relocations on any
 * host.  With --real-archives, modules linked with Debian's static
 * archives (test_link.c).  A compiler that cannot build a C program (absent, or without its C
 * library's headers) makes the whole run report itself skipped (exit 77).
 * The host's own functions used by modules are exported (ENABLE_EXPORTS).
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "execmem.h"
#include "execmem/module.h"

#include "module_test.h"

const char *cc, *cflags, *srcdir, *workdir;
int failures;

/* ---- what the host offers to modules --------------------------------- */

/* Exported to modules (ENABLE_EXPORTS); declared here for -Wmissing-prototypes. */
int host_add(int a, int b);
int host_scan_wx(void);

int host_value = 1000;
int events[16], nevents;

__attribute__((visibility("default"), noinline)) int host_add(int a, int b)
{
	return a + b;
}

__attribute__((visibility("default"))) void host_log(int event)
{
	if (nevents < 16)
		events[nevents++] = event;
}

/* The tool's own memory (valgrind's translations) is not the program's W+X. */
static int report_wx(const struct execmem_finding *f, void *found)
{
	if (f->kind != EXECMEM_FINDING_WX || f->mapping.tool)
		return 0;
	fprintf(stderr, "W+X mapping: %" PRIxPTR "-%" PRIxPTR " %s\n", f->mapping.start, f->mapping.end,
		f->mapping.name);
	*(int *)found = 1;
	return 0;
}

/* 1 when some mapping of the process is writable and executable. */
__attribute__((visibility("default"))) int host_scan_wx(void)
{
	int found = 0;
	return execmem_audit(0, report_wx, &found, NULL) ? -1 : found;
}

/*
 * Statically linked test binaries (cross builds run under qemu-user) have no
 * dynamic symbol table for dlsym() to search, so the host symbols modules
 * use are also offered through a resolver.  In a dynamic binary the resolver
 * steps aside, so that the default lookup through dlsym() is what is tested.
 */
void *static_host_resolver(const char *name, void *context)
{
	static const struct {
		const char *name;
		void *address;
	} table[] = {
		{ "snprintf", (void *)snprintf }, { "qsort", (void *)qsort },
		{ "malloc", (void *)malloc },     { "free", (void *)free },
		{ "strtol", (void *)strtol },     { "strlen", (void *)strlen },
		{ "memcpy", (void *)memcpy },     { "memset", (void *)memset },
		{ "abs", (void *)abs },           { "host_add", (void *)host_add },
		{ "host_log", (void *)host_log }, { "host_scan_wx", (void *)host_scan_wx },
		{ "host_value", (void *)&host_value }, { "_exit", (void *)_exit },
		/* m_stdio */
		{ "stdin", (void *)&stdin },      { "stdout", (void *)&stdout },
		{ "stderr", (void *)&stderr },    { "environ", (void *)&environ },
		{ "fileno", (void *)fileno },     { "fflush", (void *)fflush },
		{ "fopen", (void *)fopen },       { "fprintf", (void *)fprintf },
		{ "fputs", (void *)fputs },       { "strcmp", (void *)strcmp },
		{ "strncmp", (void *)strncmp },   { "__errno_location", (void *)__errno_location },
		/* m_loads */
		{ "optarg", (void *)&optarg },
	};
	(void)context;
	if (dlsym(RTLD_DEFAULT, name))
		return NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(table[i].name, name) == 0)
			return table[i].address;
	return NULL;
}

/* ---- helpers -------------------------------------------------------- */

void path_in_work(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", workdir, name);
}

int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

/* Compile SRCDIR/name.c into WORKDIR/name.o; returns 0 or -1. */
int compile_with(const char *compiler, const char *flags, const char *name)
{
	return run("%s %s -c -o %s/%s.o %s/modules/%s.c", compiler, flags, workdir, name, srcdir,
		   name) ? -1 : 0;
}

int compile(const char *name)
{
	return compile_with(cc, cflags, name);
}

struct execmem_module *load(const char *name, int expect_error)
{
	char path[1024];
	struct execmem_module *m = NULL;
	struct execmem_module_options opt;
	execmem_module_options_init(&opt);
	opt.resolver = static_host_resolver;
	snprintf(path, sizeof(path), "%s/%s", workdir, name);
	int err = execmem_module_load_file(path, &opt, &m);
	if (!expect_error)
		CHECK(err == 0 && m, "load %s: %d %s", name, err, execmem_module_last_error());
	return m;
}

void *sym(struct execmem_module *m, const char *name)
{
	void *p = execmem_module_symbol(m, name);
	CHECK(p != NULL, "symbol %s missing", name);
	return p;
}

size_t live_allocations(void)
{
	struct execmem_stats st;
	execmem_stats(&st);
	return st.live_allocations;
}

/* ---- tests ------------------------------------------------------------- */

static void test_libc(void)
{
	if (compile("m_libc"))
		return failures++, (void)0;
	struct execmem_module *m = load("m_libc.o", 0);
	if (!m)
		return;
	int (*format)(char *, size_t, int) = (int (*)(char *, size_t, int))sym(m, "libc_format");
	int (*sort)(int) = (int (*)(int))sym(m, "libc_sort");
	int (*apply)(int, int, int) = (int (*)(int, int, int))sym(m, "libc_apply");
	int (*ncalls)(void) = (int (*)(void))sym(m, "libc_calls");
	int *global = (int *)sym(m, "module_global");
	char buf[64];

	format(buf, sizeof(buf), 6);
	CHECK(strcmp(buf, "blue:17:-42") == 0, "snprintf gave '%s'", buf);
	CHECK(sort(1000) == 1, "qsort with a module callback");
	CHECK(apply(0, 6, 7) == 13 + 42, "function tables: %d", apply(0, 6, 7));
	CHECK(apply(2, 6, 7) == 42 + 13, "function tables");
	CHECK(*global == 1234, "exported data %d", *global);
	*global = 0;
	CHECK(ncalls() == 4 + 0 + 5 + 4, "static state: %d", ncalls());
	CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_module_last_error());
}

static void test_host_callback(void)
{
	if (compile("m_host"))
		return failures++, (void)0;
	struct execmem_module *m = load("m_host.o", 0);
	if (!m)
		return;
	int (*call)(int) = (int (*)(int))sym(m, "call_host");
	void *(*address)(void) = (void *(*)(void))sym(m, "host_fn_address");
	int expect = strstr(cflags, "-fno-pic") ? 100 : host_value;
	CHECK(call(41) == 42 + expect, "host callback gave %d", call(41));
	/* -fno-pic code may get the PLT stub that stands for the function. */
	int (*fn)(int, int) = (int (*)(int, int))address();
	CHECK(fn && fn(2, 3) == 5, "host function address from the module");
	execmem_module_unload(m);
}

static void test_dependencies(void)
{
	if (compile("m_base") || compile("m_user"))
		return failures++, (void)0;
	struct execmem_module *user = load("m_user.o", 1);
	CHECK(user == NULL, "m_user loaded without m_base");
	CHECK(strstr(execmem_module_last_error(), "undefined symbol"), "message: %s",
	      execmem_module_last_error());
	struct execmem_module *base = load("m_base.o", 0);
	user = load("m_user.o", 0);
	if (!base || !user)
		return;
	int (*value)(int) = (int (*)(int))sym(user, "user_value");
	CHECK(value(2) == 6 + 10 + 11000, "cross-module call gave %d", value(2));
	CHECK(execmem_module_unload(base) == -EBUSY, "unloading a used module");
	CHECK(strstr(execmem_module_last_error(), "m_user.o"), "message: %s",
	      execmem_module_last_error());
	CHECK(execmem_module_unload(user) == 0, "unload user");
	CHECK(execmem_module_unload(base) == 0, "unload base once unused: %s",
	      execmem_module_last_error());
}

static sigjmp_buf fault_jump;

static void on_fault(int sig)
{
	siglongjmp(fault_jump, sig);
}

/* 1 when writing *p faults. */
static int write_faults(volatile int *p)
{
	struct sigaction sa, old_segv, old_bus;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	int faulted = 0;
	if (sigsetjmp(fault_jump, 1) == 0)
		*p = 7;
	else
		faulted = 1;
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return faulted;
}

static void test_constructors_and_ro_after_init(void)
{
	if (compile("m_ctor"))
		return failures++, (void)0;
	nevents = 0;
	struct execmem_module *m = load("m_ctor.o", 0);
	if (!m)
		return;
	CHECK(nevents == 2 && events[0] == 1 && events[1] == 2, "constructor order (%d events)",
	      nevents);
	int *(*roai)(void) = (int *(*)(void))sym(m, "roai_address");
	int *saw_wx = (int *)sym(m, "ctor_saw_wx");
	CHECK(*roai() == 42, "ro_after_init written by the constructor: %d", *roai());
	CHECK(*saw_wx == 0, "a W+X mapping existed while constructors ran");
	CHECK(write_faults(roai()), "ro_after_init is writable after load");
	CHECK(*roai() == 42, "ro_after_init changed");
	CHECK(execmem_module_unload(m) == 0, "unload");
	CHECK(nevents == 3 && events[2] == 3, "destructor ran (%d events)", nevents);
}

static void test_unsupported_tls(void)
{
	if (compile("m_tls"))
		return failures++, (void)0;
	size_t before = live_allocations();
	struct execmem_module *m = load("m_tls.o", 1);
	CHECK(m == NULL, "TLS module loaded");
	CHECK(strstr(execmem_module_last_error(), "thread-local"), "message: %s",
	      execmem_module_last_error());
	CHECK(live_allocations() == before, "a failed load left memory behind");
}

static void test_archive_and_merged(void)
{
	char a[1024], b[1024], lib[1024], merged[1024];
	char common_flags[1024];
	snprintf(common_flags, sizeof(common_flags), "%s -fcommon", cflags);
	if (compile_with(cc, common_flags, "m_arch_a") || compile("m_arch_b"))
		return failures++, (void)0;
	path_in_work(a, sizeof(a), "m_arch_a.o");
	path_in_work(b, sizeof(b), "m_arch_b.o");
	path_in_work(lib, sizeof(lib), "libarch.a");
	path_in_work(merged, sizeof(merged), "merged.o");
	unlink(lib);
	const char *ar = getenv("EXECMEM_TEST_AR") ? getenv("EXECMEM_TEST_AR") : "ar";
	if (run("%s rcs %s %s %s", ar, lib, a, b) || run("%s -r -nostdlib -o %s %s %s", cc, merged, a, b))
		return failures++, (void)0;
	const char *files[] = { "libarch.a", "merged.o" };
	for (int i = 0; i < 2; i++) {
		struct execmem_module *m = load(files[i], 0);
		if (!m)
			continue;
		int (*fn)(int) = (int (*)(int))sym(m, "arch_a");
		CHECK(fn(23) == (3 + 7) * 2, "%s: arch_a gave %d", files[i], fn(23));
		struct execmem_module_stats st;
		execmem_module_stats(m, &st);
		CHECK(st.objects == (i == 0 ? 2u : 1u), "%s: %zu objects", files[i], st.objects);
		execmem_module_unload(m);
	}
}

struct placement {
	uintptr_t host;
	int bad_types, text_sections, far_text;
};

static int check_section(const struct execmem_module_section_info *s, void *ctx)
{
	struct placement *p = ctx;
	int want = -1;
	if (strncmp(s->name, ".text", 5) == 0 || strcmp(s->name, "<plt>") == 0 ||
	    strcmp(s->name, "<stubs>") == 0) {
		p->text_sections++;
		uintptr_t a = (uintptr_t)s->address;
		uintptr_t d = a > p->host ? a - p->host : p->host - a;
		p->far_text += d >= ((uintptr_t)1 << 31);
		if (s->type != EXECMEM_CODE_NEAR && s->type != EXECMEM_CODE)
			p->bad_types++;
		return 0;
	}
	if (strncmp(s->name, ".rodata", 7) == 0 || strcmp(s->name, ".eh_frame") == 0)
		want = EXECMEM_RODATA;
	else if (strncmp(s->name, ".data", 5) == 0 || strncmp(s->name, ".bss", 4) == 0)
		want = EXECMEM_DATA;
	if (want >= 0 && (int)s->type != want) {
		fprintf(stderr, "section %s has type %s\n", s->name, execmem_module_type_name(s->type));
		p->bad_types++;
	}
	return 0;
}

static void test_placement(void)
{
	struct execmem_module *m = load("m_libc.o", 0);
	if (!m)
		return;
	struct placement p = { (uintptr_t)&host_add, 0, 0, 0 };
	struct execmem_module_stats st;
	execmem_module_foreach_section(m, check_section, &p);
	execmem_module_stats(m, &st);
	CHECK(p.bad_types == 0, "sections in memory of the wrong type");
	CHECK(p.text_sections > 0, "no code section");
	/* Code within branch reach of the host, or calling out through stubs. */
	CHECK(p.far_text == 0 || st.plt_stubs > 0, "far code without PLT stubs");
	execmem_module_unload(m);
}

/* Every stage of a load is timed; the count is cut to the stages there are. */
static void test_load_times(void)
{
	struct execmem_module *m = load("m_libc.o", 0);
	if (!m)
		return;
	uint64_t ns[EXECMEM_MODULE_STAGES + 2], total = 0;
	memset(ns, 0xff, sizeof(ns));
	CHECK(execmem_module_load_times(m, ns, EXECMEM_MODULE_STAGES + 2) ==
	      EXECMEM_MODULE_STAGES, "all stages, no more");
	for (int k = 0; k < EXECMEM_MODULE_STAGES; k++)
		total += ns[k];
	CHECK(total > 0, "the stages took no time");
	CHECK(ns[EXECMEM_MODULE_STAGE_COPY] > 0, "the copying of the sections is timed");
	CHECK(ns[EXECMEM_MODULE_STAGES] == UINT64_MAX, "nothing written past the stages");
	CHECK(execmem_module_load_times(m, ns, 1) == 1, "the first stage only");
	CHECK(execmem_module_load_times(m, NULL, 0) == 0, "no stage");
	CHECK(execmem_module_load_times(m, NULL, 1) == -EINVAL, "NULL times");
	CHECK(execmem_module_load_times(NULL, ns, 1) == -EINVAL, "NULL module");
	execmem_module_unload(m);
}

static atomic_int scanning; /* the watcher thread reads it */
static int scan_found_wx;

static void *scan_maps(void *arg)
{
	(void)arg;
	while (scanning)
		scan_found_wx |= host_scan_wx() == 1;
	return NULL;
}

static void test_never_wx_while_loading(void)
{
	pthread_t t;
	scanning = 1;
	if (pthread_create(&t, NULL, scan_maps, NULL))
		return;
	for (int i = 0; i < 30; i++) {
		struct execmem_module *m = load("m_libc.o", 0);
		if (m)
			execmem_module_unload(m);
	}
	scanning = 0;
	pthread_join(t, NULL);
	CHECK(!scan_found_wx, "a W+X mapping appeared during loads");
}

/* ---- placement driven by the relocations ------------------------------ */

/* The line a command prints last, or "" (the emulator runs it when the test
 * itself runs under one: EXECMEM_TEST_RUNNER). */
static void last_output_line(const char *command, char *line, size_t len)
{
	const char *runner = getenv("EXECMEM_TEST_RUNNER");
	char cmd[2048], buf[512];
	snprintf(cmd, sizeof(cmd), "%s %s", runner ? runner : "", command);
	line[0] = '\0';
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	while (fgets(buf, sizeof(buf), p))
		snprintf(line, len, "%s", buf);
	pclose(p);
	line[strcspn(line, "\n")] = '\0';
}

/*
 * C that reads stdin/stdout/stderr/environ as the compiler's default output
 * does (PC-relative references to the C library's data), errno, qsort with
 * a callback: the module reports the same as the code linked natively.
 */
static void test_stdio_default_output(void)
{
	const char *runner = getenv("EXECMEM_TEST_RUNNER");
	int no_pic = strstr(cflags, "-fno-pic") != NULL;
	char native[512], loaded[512];
	if (compile("m_stdio") ||
	    run("%s %s %s %s -o %s/stdio_native %s/modules/m_stdio.c %s/modules/stdio_main.c", cc,
		cflags, no_pic ? "-no-pie" : "", runner ? "-static" : "", workdir, srcdir, srcdir))
		return failures++, (void)0;
	setenv("EXECMEM_STDIO_TEST", "seen", 1);
	struct execmem_module *m = load("m_stdio.o", 0);
	if (!m)
		return;
	int (*report)(char *, size_t) = (int (*)(char *, size_t))sym(m, "stdio_report");
	report(loaded, sizeof(loaded));
	char command[1024];
	snprintf(command, sizeof(command), "%s/stdio_native", workdir);
	last_output_line(command, native, sizeof(native));
	CHECK(strcmp(loaded, native) == 0, "module reports '%s', native code '%s'", loaded, native);
	CHECK(strstr(loaded, "env seen 1") != NULL, "environ: %s", loaded);
	CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_module_last_error());
}

static uintptr_t distance(uintptr_t a, uintptr_t b)
{
	return a > b ? a - b : b - a;
}

/* A libc variable the module loads and takes the address of, PC-relatively:
 * wherever the module lies, both give what the program sees. */
static void test_far_loads(void)
{
	static char value[] = "optarg value";
	if (compile_with(cc, "-O2 -fPIE", "m_loads"))
		return failures++, (void)0;
	struct execmem_module *m = load("m_loads.o", 0);
	if (!m)
		return;
	char *(*get)(void) = (char *(*)(void))sym(m, "loads_value");
	char **(*address)(void) = (char **(*)(void))sym(m, "loads_address");
	/* Through a pointer: code of this program that used optarg itself
	 * would make the linker copy it next to the program. */
	char **where = dlsym(RTLD_DEFAULT, "optarg");
	int in_library = where != NULL;
	if (!where)
		where = static_host_resolver("optarg", NULL);
	if (!get || !address || !where)
		return;
	*where = value;
	CHECK(get() == value, "loads_value() = %p, optarg %p", (void *)get(), (void *)value);
	CHECK(address() == where, "loads_address() = %p, &optarg %p", (void *)address(),
	      (void *)where);
	*where = NULL;
	CHECK(get() == NULL, "loads_value() after a change");
	/* The case of interest on x86-64 (aarch64's ADRP reaches 4 GiB): libc
	 * far from the program (not so under valgrind, which loads it low),
	 * the module near the program, so its reads of optarg cannot reach. */
	int x86_64 = 0;
#if defined(__x86_64__)
	x86_64 = 1;
#endif
	int libc_far = distance((uintptr_t)&distance, (uintptr_t)where) > ((uintptr_t)4 << 30);
	CHECK(!x86_64 || !in_library || !libc_far ||
		      distance((uintptr_t)get, (uintptr_t)where) > ((uintptr_t)2 << 30),
	      "module at %p, optarg at %p: within reach", (void *)get, (void *)where);
	execmem_module_unload(m);
}

/* Where m_far's two variables are: a page of the test's, near or far. */
struct far_targets {
	int *first, *second;
};

static void *resolve_far(const char *name, void *context)
{
	const struct far_targets *t = context;
	if (strcmp(name, "far_first") == 0)
		return t->first;
	if (strcmp(name, "far_second") == 0)
		return t->second;
	return static_host_resolver(name, NULL);
}

static int load_far(struct far_targets *t, struct execmem_module **m)
{
	char path[1024];
	struct execmem_module_options opt;
	execmem_module_options_init(&opt);
	opt.resolver = resolve_far;
	opt.resolver_context = t;
	path_in_work(path, sizeof(path), "m_far.o");
	return execmem_module_load_file(path, &opt, m);
}

/* How far PC-relative data references reach: x86-64 PC32, aarch64 ADRP. */
#if defined(__aarch64__)
#define DATA_REACH ((uintptr_t)4 << 30)
#else
#define DATA_REACH ((uintptr_t)2 << 30)
#endif

/* A page 64 GiB or more away from the program's data (NULL if none). */
static int *far_page(void)
{
	for (uintptr_t step = 64; step <= 1024; step *= 2) {
		uintptr_t hint = ((uintptr_t)&host_value + (step << 30)) & ~(uintptr_t)0xfff;
		void *p = mmap((void *)hint, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			continue;
		if (distance((uintptr_t)p, (uintptr_t)&host_value) >= ((uintptr_t)16 << 30))
			return p;
		munmap(p, 4096);
	}
	return NULL;
}

/*
 * Data reached PC-relatively that lies far from the program: the module is
 * placed near it.  Two such targets too far apart for any placement: the
 * load fails, naming both.
 */
static void test_far_data(void)
{
	int *page = far_page();
	CHECK(page != NULL, "no page 16 GiB away from the program");
	if (compile_with(cc, "-O2 -fPIE", "m_far") || !page)
		return failures++, (void)0;
	page[0] = 40;
	page[1] = 2;
	struct far_targets together = { &page[0], &page[1] };
	struct execmem_module *m = NULL;
	int err = load_far(&together, &m);
	CHECK(err == 0, "far data in one page: %s", execmem_module_last_error());
	if (!err) {
		int (*sum)(void) = (int (*)(void))sym(m, "far_sum");
		CHECK(sum && sum() == 42, "far_sum() = %d", sum ? sum() : -1);
		CHECK(distance((uintptr_t)sum, (uintptr_t)page) < DATA_REACH,
		      "code at %p, its data at %p", (void *)sum, (void *)page);
		execmem_module_unload(m);
	}
	struct far_targets apart = { &host_value, &page[1] };
	size_t before = live_allocations();
	err = load_far(&apart, &m);
	const char *msg = execmem_module_last_error();
	CHECK(err == -ERANGE && !m, "targets too far apart: %d", err);
	CHECK(strstr(msg, "'far_first'") && strstr(msg, "'far_second'"),
	      "message names both symbols: %s", msg);
	CHECK(live_allocations() == before, "a failed load left memory behind");
	munmap(page, 4096);
}

/* A module in an arena of the caller's, with a resolver of the caller's. */
static void *resolve_host_add_twice(const char *name, void *context)
{
	int *calls = context;
	if (strcmp(name, "host_add") != 0)
		return static_host_resolver(name, NULL);
	++*calls;
	return (void *)host_add;
}

/* An arena whose types may lie anywhere: -fno-pic modules need one whose
 * ranges include the low 2 GiB for every memory type they use. */
static struct execmem_arena *arena_for_variant(void)
{
	if (!strstr(cflags, "-fno-pic"))
		return execmem_arena_create(NULL);
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	struct execmem_params params;
	memset(ranges, 0, sizeof(ranges));
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++)
		ranges[t].flags = EXECMEM_RANGE_SET | EXECMEM_RANGE_ANYWHERE;
	execmem_params_init(&params);
	params.ranges = ranges;
	return execmem_arena_create(&params);
}

static void test_own_arena(void)
{
	struct execmem_arena *arena = arena_for_variant();
	CHECK(arena != NULL, "arena: %s", execmem_last_error());
	if (!arena)
		return;
	struct execmem_module_options opt;
	char path[1024];
	int calls = 0;
	execmem_module_options_init(&opt);
	opt.arena = arena;
	opt.resolver = resolve_host_add_twice;
	opt.resolver_context = &calls;
	opt.name = "in-own-arena";
	path_in_work(path, sizeof(path), "m_host.o");
	struct execmem_module *m = NULL;
	int err = execmem_module_load_file(path, &opt, &m);
	CHECK(err == 0, "load into an arena: %s", execmem_module_last_error());
	if (!err) {
		int (*call)(int) = (int (*)(int))execmem_module_symbol(m, "call_host");
		CHECK(call && call(1) > 2, "call through the arena's module");
		CHECK(calls == 1, "resolver asked %d times for host_add", calls);
		CHECK(strcmp(execmem_module_name(m), "in-own-arena") == 0, "module name");
		execmem_module_unload(m);
	}
	struct execmem_stats st;
	execmem_arena_stats(arena, &st);
	CHECK(st.live_allocations == 0, "%zu allocations left in the arena", st.live_allocations);
	execmem_arena_destroy(arena);
}

/* Two threads loading, running and unloading at once. */
static void *load_loop(void *arg)
{
	long bad = 0;
	(void)arg;
	for (int i = 0; i < 20; i++) {
		struct execmem_module *m = load("m_libc.o", 0);
		if (!m) {
			bad++;
			continue;
		}
		int (*apply)(int, int, int) = (int (*)(int, int, int))execmem_module_symbol(m, "libc_apply");
		bad += !apply || apply(1, 9, 4) != 5 + 5;
		bad += execmem_module_unload(m) != 0;
	}
	return (void *)bad;
}

static void test_concurrent_loads(void)
{
	pthread_t t[2];
	void *bad[2] = { 0, 0 };
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, load_loop, NULL))
			return failures++, (void)0;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], &bad[i]);
	CHECK(bad[0] == NULL && bad[1] == NULL, "concurrent loads failed");
}

/* The bytes of a module built in the work directory, or 0 (a failure). */
static size_t read_work_file(const char *name, uint8_t *buffer, size_t capacity)
{
	char path[1024];
	path_in_work(path, sizeof(path), name);
	FILE *f = fopen(path, "rb");
	size_t size = f ? fread(buffer, 1, capacity, f) : 0;
	if (f)
		fclose(f);
	CHECK(size > 0, "cannot read %s", path);
	return size;
}

/* Options that link a module without running it or exporting its symbols. */
static void link_only_options(struct execmem_module_options *opt)
{
	execmem_module_options_init(opt);
	opt->flags = EXECMEM_MODULE_LINK_ONLY | EXECMEM_MODULE_NO_EXPORT;
	opt->resolver = static_host_resolver;
}

/* Truncated and corrupted objects must fail cleanly (or load), never crash. */
static void test_malformed(void)
{
	static uint8_t good[1 << 20];
	size_t size = read_work_file("m_libc.o", good, sizeof(good));
	if (!size)
		return;
	uint8_t *copy = malloc(size);
	struct execmem_module_options opt;
	link_only_options(&opt);
	size_t before = live_allocations();
	uint64_t seed = 12345;
	int rejected = 0;
	for (int i = 0; i < 3000; i++) {
		size_t len = size;
		memcpy(copy, good, size);
		if (i < 300) {
			len = (size * (size_t)i) / 300;          /* truncations */
		} else {
			for (int k = 0; k < 1 + i % 4; k++) {    /* byte corruptions */
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				copy[(seed >> 33) % size] = (uint8_t)(seed >> 20);
			}
		}
		struct execmem_module *m = NULL;
		int err = execmem_module_load_buffer(copy, len, "corrupt.o", &opt, &m);
		if (err) {
			rejected++;
			CHECK(execmem_module_last_error()[0], "error %d without a message", err);
		} else {
			execmem_module_unload(m);
		}
	}
	free(copy);
	CHECK(rejected >= 300, "only %d corrupt inputs rejected", rejected);
	CHECK(live_allocations() == before, "corrupt loads leaked execmem memory (%zu -> %zu)",
	      before, live_allocations());
	struct execmem_module *m = NULL;
	CHECK(execmem_module_load_buffer("hello", 5, "text", NULL, &m) == -ENOEXEC, "not ELF");
	CHECK(strstr(execmem_module_last_error(), "ELF"), "message: %s", execmem_module_last_error());
}

/*
 * Two sections whose bytes overlap in the file are refused, whatever the
 * order of their headers: the last PROGBITS section is moved onto the
 * first, so the check must sort the sections by offset to see it.
 */
static void test_overlapping_sections(void)
{
	static uint8_t image[1 << 20];
	size_t size = read_work_file("m_libc.o", image, sizeof(image));
	Elf64_Ehdr eh;
	Elf64_Shdr first = { 0 }, last = { 0 };
	int first_index = -1, last_index = -1;

	if (size < sizeof(eh))
		return;
	memcpy(&eh, image, sizeof(eh));
	for (int i = 1; i < eh.e_shnum; i++) {
		Elf64_Shdr sh;
		memcpy(&sh, image + eh.e_shoff + (size_t)i * sizeof(sh), sizeof(sh));
		if (sh.sh_type != SHT_PROGBITS || sh.sh_size == 0)
			continue;
		if (first_index < 0) {
			first_index = i;
			first = sh;
		}
		last_index = i;
		last = sh;
	}
	CHECK(first_index > 0 && last_index > first_index, "two PROGBITS sections in m_libc.o");
	if (first_index <= 0 || last_index <= first_index || first.sh_offset + last.sh_size > size)
		return;
	last.sh_offset = first.sh_offset;
	memcpy(image + eh.e_shoff + (size_t)last_index * sizeof(last), &last, sizeof(last));

	struct execmem_module_options opt;
	struct execmem_module *m = NULL;
	link_only_options(&opt);
	int err = execmem_module_load_buffer(image, size, "overlap.o", &opt, &m);
	CHECK(err == -ENOEXEC && !m, "overlapping sections: %d", err);
	CHECK(strstr(execmem_module_last_error(), "overlap"), "message: %s",
	      execmem_module_last_error());
}

/* ---- aarch64 relocations, checked by decoding --------------------------- */

static uint32_t insn_at(uintptr_t a)
{
	const uint8_t *p = (const uint8_t *)a;
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t sign_extend(uint64_t v, unsigned bits)
{
	return (int64_t)(v << (64 - bits)) >> (64 - bits);
}

struct a64_fn {
	const char *name;
	uintptr_t address;
	size_t size;
};

static int find_fn(const struct execmem_module_symbol_info *s, void *ctx)
{
	struct a64_fn *f = ctx;
	if (strcmp(s->name, f->name) == 0) {
		f->address = (uintptr_t)s->address;
		f->size = s->size;
	}
	return 0;
}

static struct a64_fn a64_function(struct execmem_module *m, const char *name)
{
	struct a64_fn f = { name, 0, 0 };
	execmem_module_foreach_symbol(m, find_fn, &f);
	return f;
}

/* Targets of the BL instructions of fn, up to max. */
static int bl_targets(struct a64_fn fn, uintptr_t *out, int max)
{
	int n = 0;
	for (uintptr_t a = fn.address; a < fn.address + fn.size && n < max; a += 4) {
		uint32_t insn = insn_at(a);
		if ((insn & 0xfc000000u) == 0x94000000u)
			out[n++] = a + (uintptr_t)(sign_extend(insn & 0x03ffffff, 26) * 4);
	}
	return n;
}

/* The address an ADRP + ADD/LDR pair in fn forms, or 0. */
static uintptr_t adrp_address(struct a64_fn fn)
{
	for (uintptr_t a = fn.address; a + 4 < fn.address + fn.size; a += 4) {
		uint32_t insn = insn_at(a);
		if ((insn & 0x9f000000u) != 0x90000000u)
			continue;
		uint64_t imm = ((insn >> 29) & 3) | (((insn >> 5) & 0x7ffff) << 2);
		uintptr_t page = (a & ~(uintptr_t)0xfff) + (uintptr_t)sign_extend(imm, 21) * 4096;
		uint32_t next = insn_at(a + 4);
		uint32_t lo12 = (next >> 10) & 0xfff;
		if ((next & 0xff800000u) == 0x91000000u)          /* ADD Xd, Xn, #imm */
			return page + lo12;
		if ((next & 0xffc00000u) == 0xf9400000u)          /* LDR Xt, [Xn, #imm*8] (GOT) */
			return *(const uintptr_t *)(page + lo12 * 8);
	}
	return 0;
}

static void test_aarch64_relocations(const char *flags)
{
	char name[64];
	snprintf(name, sizeof(name), "a64_%s", strstr(flags, "fPIC") ? "pic" : "nopic");
	if (run("%s %s -c -o %s/%s.o %s/modules/m_a64.c", cc, flags, workdir, name, srcdir))
		return failures++, (void)0;
	char file[128];
	snprintf(file, sizeof(file), "%s.o", name);
	struct execmem_module_options opt;
	execmem_module_options_init(&opt);
	opt.flags = EXECMEM_MODULE_LINK_ONLY | EXECMEM_MODULE_NO_EXPORT;
	char path[1024];
	path_in_work(path, sizeof(path), file);
	struct execmem_module *m = NULL;
	int err = execmem_module_load_file(path, &opt, &m);
	CHECK(err == 0, "aarch64 link-only load (%s): %s", flags, execmem_module_last_error());
	if (err)
		return;
	uintptr_t data = (uintptr_t)execmem_module_symbol(m, "a64_data");
	struct a64_fn callee = a64_function(m, "a64_callee");
	struct a64_fn caller = a64_function(m, "a64_caller");
	struct a64_fn addr = a64_function(m, "a64_data_address");
	uintptr_t *ptrs = (uintptr_t *)execmem_module_symbol(m, "a64_ptrs");
	CHECK(ptrs && ptrs[0] == data && ptrs[1] == data + 8, "R_AARCH64_ABS64 (%s)", flags);
	uintptr_t targets[4];
	int n = bl_targets(caller, targets, 4);
	CHECK(n >= 1 && targets[0] == callee.address, "R_AARCH64_CALL26 to the module (%s)", flags);
	/* abs() lives in the host: a call through a PLT stub holding its
	 * address, or straight to it when the host lies within branch reach
	 * (valgrind maps the module that close to the C library). */
	int via_stub = 0;
	for (int i = 0; i < n; i++) {
		via_stub |= targets[i] == (uintptr_t)abs;
		if (targets[i] == callee.address || targets[i] == (uintptr_t)abs)
			continue;
		const uint8_t *stub = (const uint8_t *)targets[i];
		uint64_t literal;
		memcpy(&literal, stub + 8, 8);
		via_stub |= insn_at(targets[i]) == 0x58000050u && literal == (uintptr_t)abs;
	}
	CHECK(via_stub, "call to abs() neither direct nor through a PLT stub (%s)", flags);
	CHECK(adrp_address(addr) == data, "ADRP pair to a64_data (%s): %#lx vs %#lx", flags,
	      (unsigned long)adrp_address(addr), (unsigned long)data);
	execmem_module_unload(m);
}

/* ---- which tests can run ----------------------------------------------- */

/* CTest's SKIP_RETURN_CODE for these tests. */
#define SKIP_STATUS 77

/*
 * 1 when CC compiles and links a program using the C library's headers: a
 * compiler installed without them builds no module, and that is a missing
 * tool, not a loader failure.
 */
static int compiler_builds_programs(void)
{
	char src[1024];
	path_in_work(src, sizeof(src), "probe.c");
	FILE *f = fopen(src, "w");
	if (!f)
		return 0;
	fputs("#include <stdint.h>\n#include <stdio.h>\n"
	      "int main(void) { return printf(\"%d\\n\", INT8_MAX) < 0; }\n", f);
	if (fclose(f) != 0)
		return 0;
	return run("%s -o %s/probe %s", cc, workdir, src) == 0;
}

static void run_module_tests(void)
{
	test_libc();
	test_host_callback();
	test_dependencies();
	test_constructors_and_ro_after_init();
	test_unsupported_tls();
	test_archive_and_merged();
	test_placement();
	test_load_times();
	test_stdio_default_output();
	test_far_data();
	test_far_loads();
	test_never_wx_while_loading();
	test_concurrent_loads();
	test_own_arena();
	test_malformed();
	test_overlapping_sections();
	run_link_tests();
}

static void run_aarch64_relocation_tests(void)
{
	test_aarch64_relocations("-O2 -fno-pic -fno-builtin");
	test_aarch64_relocations("-O0 -fPIC -fno-builtin");
}

int main(int argc, char **argv)
{
	const int aarch64_only = argc == 5 && strcmp(argv[1], "--aarch64-relocations") == 0;
	const int real_archives = argc == 6 && strcmp(argv[1], "--real-archives") == 0;
	if (argc != 5 && !real_archives) {
		fprintf(stderr, "usage: %s CC CFLAGS SRCDIR WORKDIR\n"
				"       %s --aarch64-relocations AARCH64_CC SRCDIR WORKDIR\n"
				"       %s --real-archives CC CFLAGS SRCDIR WORKDIR\n",
			argv[0], argv[0], argv[0]);
		return 2;
	}
	argv += real_archives;
	cc = argv[aarch64_only ? 2 : 1];
	cflags = aarch64_only ? "" : argv[2];
	srcdir = argv[3];
	workdir = argv[4];
	if (run("mkdir -p %s", workdir))
		return 2;
	if (!compiler_builds_programs()) {
		printf("SKIP: %s cannot build a C program using <stdint.h> and <stdio.h>: it is "
		       "not installed, or installed without its C library's headers\n", cc);
		return SKIP_STATUS;
	}

	if (aarch64_only)
		run_aarch64_relocation_tests();
	else if (real_archives)
		run_real_archive_tests();
	else
		run_module_tests();
	if (failures)
		fprintf(stderr, "%d check(s) failed (%s %s)\n", failures, cc, cflags);
	else
		printf("all module tests passed (%s %s)\n", cc, cflags);
	return failures ? 1 : 0;
}
