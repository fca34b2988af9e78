/*
 * test_link.c - linking like a linker: several inputs, archive members taken
 * on demand, descriptors, bad inputs, the C runtime pieces of
 * libc_nonshared.a; and Debian's real static archives (zlib, OpenSSL's
 * libcrypto), compared with the same code linked natively.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "execmem.h"
#include "module_test.h"

static const char *archiver(void)
{
	return getenv("EXECMEM_TEST_AR") ? getenv("EXECMEM_TEST_AR") : "ar";
}

/* Build WORKDIR/archive from the modules named (NULL-terminated); the
 * archive gets a symbol index unless with_index is 0. */
static int make_archive(const char *archive, int with_index, const char *const *members)
{
	char cmd[2048];
	size_t at = (size_t)snprintf(cmd, sizeof(cmd), "rm -f %s/%s && %s %s %s/%s", workdir,
				     archive, archiver(), with_index ? "rcs" : "rcS", workdir,
				     archive);
	for (size_t i = 0; members[i]; i++) {
		if (compile(members[i]))
			return -1;
		at += (size_t)snprintf(cmd + at, sizeof(cmd) - at, " %s/%s.o", workdir, members[i]);
	}
	return run("%s", cmd) ? -1 : 0;
}

static struct execmem_module_input file_input(char *path, size_t len, const char *name,
					      unsigned flags)
{
	path_in_work(path, len, name);
	return (struct execmem_module_input){ .kind = EXECMEM_MODULE_INPUT_FILE, .path = path,
					      .flags = flags };
}

static int link_inputs(const struct execmem_module_input *inputs, size_t n,
		       struct execmem_module **out)
{
	struct execmem_module_options opt;
	execmem_module_options_init(&opt);
	opt.resolver = static_host_resolver;
	return execmem_module_load(inputs, n, &opt, out);
}

static size_t objects_of(const struct execmem_module *m)
{
	struct execmem_module_stats st;
	execmem_module_stats(m, &st);
	return st.objects;
}

/* Two objects that use each other's functions and data. */
static void test_two_objects(void)
{
	char a[1024], b[1024];
	if (compile("m_link_a") || compile("m_link_b"))
		return failures++, (void)0;
	struct execmem_module_input in[2] = { file_input(a, sizeof(a), "m_link_a.o", 0),
					      file_input(b, sizeof(b), "m_link_b.o", 0) };
	struct execmem_module *m = NULL;
	int err = link_inputs(in, 2, &m);
	CHECK(err == 0, "two objects: %s", execmem_module_last_error());
	if (err)
		return;
	int (*total)(int) = (int (*)(int))sym(m, "link_a_total");
	CHECK(total && total(5) == 2 * 105 + 7 + 2000, "cross references gave %d", total(5));
	CHECK(objects_of(m) == 2, "%zu objects", objects_of(m));
	CHECK(strstr(execmem_module_name(m), "m_link_a.o"), "name %s", execmem_module_name(m));
	execmem_module_unload(m);
}

/*
 * libsel1.a holds the member the object needs, one it needs in turn from
 * libsel2.a, which needs a third back in libsel1.a (a second pass), plus a
 * member needing a symbol nobody defines and one only a weak reference
 * names: neither is linked, unless the archive is linked whole.
 */
static void test_member_selection(int with_index)
{
	static const char *const first[] = { "m_sel_used", "m_sel_broken", "m_sel_third",
					     "m_sel_optional", NULL };
	static const char *const second[] = { "m_sel_second", NULL };
	char main_o[1024], lib1[1024], lib2[1024];
	if (compile("m_sel_main") || make_archive("libsel1.a", with_index, first) ||
	    make_archive("libsel2.a", with_index, second))
		return failures++, (void)0;
	struct execmem_module_input in[3] = { file_input(main_o, sizeof(main_o), "m_sel_main.o", 0),
					      file_input(lib1, sizeof(lib1), "libsel1.a", 0),
					      file_input(lib2, sizeof(lib2), "libsel2.a", 0) };
	struct execmem_module *m = NULL;
	int err = link_inputs(in, 3, &m);
	CHECK(err == 0, "selection (index %d): %s", with_index, execmem_module_last_error());
	if (!err) {
		int (*fn)(int) = (int (*)(int))sym(m, "sel_main");
		CHECK(fn && fn(4) == (4 + 3) * 10 + 1, "sel_main gave %d", fn ? fn(4) : -1);
		CHECK(objects_of(m) == 4, "%zu objects linked, not 4", objects_of(m));
		CHECK(!execmem_module_symbol(m, "sel_broken"), "unneeded member linked");
		CHECK(!execmem_module_symbol(m, "sel_optional"), "a weak reference pulled a member");
		execmem_module_unload(m);
	}
	size_t before = live_allocations();
	in[1].flags = EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE;
	err = link_inputs(in, 3, &m);
	in[1].flags = 0;
	CHECK(err == -ENOENT && !m, "whole archive with a broken member: %d", err);
	CHECK(strstr(execmem_module_last_error(), "'sel_symbol_nobody_defines'"), "message: %s",
	      execmem_module_last_error());
	CHECK(live_allocations() == before, "the failed load left memory behind");
	/* An archive alone pulls nothing in, unless a symbol is required. */
	err = link_inputs(&in[2], 1, &m);
	CHECK(err == -ENOEXEC && strstr(execmem_module_last_error(), "nothing to link"),
	      "an archive alone: %d %s", err, execmem_module_last_error());
	struct execmem_module_options opt;
	const char *const require[] = { "sel_third", NULL };
	execmem_module_options_init(&opt);
	opt.require = require;
	err = execmem_module_load(&in[1], 1, &opt, &m);
	CHECK(err == 0 && objects_of(m) == 1, "required symbol: %d %s", err,
	      execmem_module_last_error());
	if (!err)
		execmem_module_unload(m);
}

/* Append an archive member (60-byte header, data, padding) at *at. */
static void put_member(uint8_t *archive, size_t *at, const char *name, const void *data,
		       size_t size)
{
	char header[61];
	snprintf(header, sizeof(header), "%-16s%-12s%-6s%-6s%-8s%-10zu`\n", name, "0", "0", "0",
		 "644", size);
	memcpy(archive + *at, header, 60);
	memcpy(archive + *at + 60, data, size);
	*at += 60 + size;
	if (*at & 1)
		archive[(*at)++] = '\n';
}

/*
 * Archives made by hand around m_sel_third.o: a symbol index that names a
 * member where there is none is refused; an empty index sends the search to
 * the members' symbol tables.  (Run under ASan, these checked that the
 * message is made before the index is freed, and that an empty one is.)
 */
static void test_archive_index(void)
{
	static uint8_t object[1 << 16], archive[(1 << 16) + 512];
	char path[1024];
	path_in_work(path, sizeof(path), "m_sel_third.o");
	FILE *f = fopen(path, "rb");
	size_t size = f ? fread(object, 1, sizeof(object), f) : 0;
	if (f)
		fclose(f);
	CHECK(size > 0 && size < sizeof(object), "read %s", path);
	if (!size || size == sizeof(object))
		return;
	static const uint8_t bad_index[] = { 0, 0, 0, 1, 0, 0, 0x30, 0x39, 's', 'e', 'l', '_',
					     't', 'h', 'i', 'r', 'd', 0 };
	static const uint8_t empty_index[4] = { 0 };
	const char *const require[] = { "sel_third", NULL };
	struct execmem_module_options opt;
	execmem_module_options_init(&opt);
	opt.require = require;
	for (int empty = 0; empty < 2; empty++) {
		size_t at = 8;
		memcpy(archive, "!<arch>\n", 8);
		put_member(archive, &at, "/", empty ? empty_index : bad_index,
			   empty ? sizeof(empty_index) : sizeof(bad_index));
		put_member(archive, &at, "third.o/", object, size);
		struct execmem_module_input in = { .kind = EXECMEM_MODULE_INPUT_BUFFER,
						   .data = archive, .size = at };
		struct execmem_module *m = NULL;
		int err = execmem_module_load(&in, 1, &opt, &m);
		if (empty) {
			CHECK(err == 0 && execmem_module_symbol(m, "sel_third"), "empty index: %s",
			      execmem_module_last_error());
			if (!err)
				execmem_module_unload(m);
		} else {
			CHECK(err == -ENOEXEC && strstr(execmem_module_last_error(), "'sel_third'"),
			      "bad index: %d %s", err, execmem_module_last_error());
		}
	}
}

/* Every way of getting inputs wrong has its error and a message. */
static void test_bad_inputs(void)
{
	char path[1024];
	struct execmem_module *m = (struct execmem_module *)&m;
	struct execmem_module_input good = file_input(path, sizeof(path), "m_link_b.o", 0);
	struct {
		struct execmem_module_input input;
		size_t count;
		int err;
	} cases[] = {
		{ good, 0, -EINVAL },
		{ { .kind = (enum execmem_module_input_kind)42 }, 1, -EINVAL },
		{ { .kind = EXECMEM_MODULE_INPUT_FILE }, 1, -EINVAL },
		{ { .kind = EXECMEM_MODULE_INPUT_BUFFER, .size = 10 }, 1, -EINVAL },
		{ { .kind = EXECMEM_MODULE_INPUT_FD, .fd = -1 }, 1, -EBADF },
		{ { .kind = EXECMEM_MODULE_INPUT_FILE, .path = path, .flags = 0x80 }, 1, -EINVAL },
		{ { .kind = EXECMEM_MODULE_INPUT_FILE, .path = "/nonexistent/x.o" }, 1, -ENOENT },
		{ { .kind = EXECMEM_MODULE_INPUT_FILE, .path = "/" }, 1, -EISDIR },
		{ { .kind = EXECMEM_MODULE_INPUT_BUFFER, .data = "!<arch>\n", .size = 8 }, 1,
		  -ENOEXEC },
	};
	size_t before = live_allocations();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = execmem_module_load(&cases[i].input, cases[i].count, NULL, &m);
		CHECK(err == cases[i].err && m == NULL, "case %zu: %d, not %d", i, err, cases[i].err);
		CHECK(execmem_module_last_error()[0], "case %zu: no message", i);
	}
	CHECK(execmem_module_load(NULL, 1, NULL, &m) == -EINVAL, "NULL inputs");
	CHECK(execmem_module_load(&good, 1, NULL, NULL) == -EINVAL, "NULL out");
	CHECK(live_allocations() == before, "bad inputs left memory behind");
}

/* A regular file's descriptor is mapped, a pipe's is read to its end. */
static void test_load_fd(void)
{
	static uint8_t image[1 << 20];
	char path[1024];
	path_in_work(path, sizeof(path), "m_sel_third.o");   /* needs nothing */
	struct execmem_module_options opt;
	execmem_module_options_init(&opt);
	opt.flags = EXECMEM_MODULE_LINK_ONLY | EXECMEM_MODULE_NO_EXPORT;
	opt.resolver = static_host_resolver;

	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "open %s", path);
	if (fd < 0)
		return;
	ssize_t size = read(fd, image, sizeof(image));
	struct execmem_module *m = NULL;
	int err = execmem_module_load_fd(fd, NULL, &opt, &m);
	CHECK(err == 0, "load_fd of a file: %s", execmem_module_last_error());
	CHECK(!err && strcmp(execmem_module_name(m), "<fd") > 0, "name %s",
	      m ? execmem_module_name(m) : "-");
	CHECK(fcntl(fd, F_GETFD) >= 0, "load_fd closed the descriptor");
	if (!err)
		execmem_module_unload(m);
	close(fd);
	CHECK(execmem_module_load_fd(fd, "closed", &opt, &m) == -EBADF, "a closed descriptor");
	CHECK(strstr(execmem_module_last_error(), "closed"), "message: %s",
	      execmem_module_last_error());

	int pipe_fds[2];
	if (size <= 0 || size > 65536 || pipe(pipe_fds) != 0)
		return failures++, (void)0;   /* a pipe holds 64 KiB without a reader */
	CHECK(write(pipe_fds[1], image, (size_t)size) == size, "write to the pipe");
	close(pipe_fds[1]);
	err = execmem_module_load_fd(pipe_fds[0], "pipe", &opt, &m);
	CHECK(err == 0, "load_fd of a pipe: %s", execmem_module_last_error());
	if (!err) {
		CHECK(execmem_module_symbol(m, "sel_third") != NULL, "symbol from the pipe");
		execmem_module_unload(m);
	}
	close(pipe_fds[0]);
}

/* ---- the C runtime pieces ------------------------------------------------ */

/* Exit status of a child that runs fn; -1 when it died of a signal. */
static int in_child(int (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn());
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -2;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Load m_atexit.o and call its function arm; 0 or -1. */
static int load_and_arm(const char *arm, int unload)
{
	struct execmem_module *m = load("m_atexit.o", 0);
	int (*fn)(void) = m ? (int (*)(void))execmem_module_symbol(m, arm) : NULL;
	if (!fn || fn() != 0)
		return -1;
	return unload ? execmem_module_unload(m) : 0;
}

static int child_exits_loaded(void)
{
	if (load_and_arm("atexit_arm_exit", 0))
		return 3;
	exit(0);       /* the module's atexit() function ends it with 42 */
}

static int child_quick_exits_loaded(void)
{
	if (load_and_arm("atexit_arm_quick_exit", 0))
		return 3;
	quick_exit(0); /* its at_quick_exit() function ends it with 43 */
}

static int child_quick_exits_unloaded(void)
{
	if (load_and_arm("atexit_arm_quick_exit", 1))
		return 3;
	quick_exit(0); /* unload dropped the function: 0 */
}

static int child_of_fork(void)
{
	return 0;
}

static void test_atexit_family(void)
{
	if (compile("m_atexit"))
		return failures++, (void)0;
	nevents = 0;
	struct execmem_module *m = load("m_atexit.o", 0);
	if (!m)
		return;
	int (*late)(void) = (int (*)(void))sym(m, "atexit_late");
	int (*forks)(void) = (int (*)(void))sym(m, "atexit_forks_seen");
	CHECK(late && late() == 0, "atexit() from a module function");
	CHECK(nevents == 0, "%d registered functions ran at load", nevents);
	CHECK(execmem_module_symbol(m, "atexit") && !execmem_module_symbol(m, "no_such"),
	      "the module's own atexit");
	void *(*stack_chk)(void) = (void *(*)(void))sym(m, "atexit_stack_chk_fail_local");
	CHECK(stack_chk && stack_chk(), "__stack_chk_fail_local");
	/* The child handler runs in the child, in the module's copy of memory. */
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(forks ? forks() : 9);
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "fork handler: status %#x", status);
	CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_module_last_error());
	/* .fini_array first, then the registrations, last first; not at_quick_exit's. */
	CHECK(nevents == 4 && events[0] == 10 && events[1] == 12 && events[2] == 13 &&
	      events[3] == 11, "unload order: %d events: %d %d %d %d", nevents, events[0],
	      events[1], events[2], events[3]);
	/* Its fork handler went with it: the child would run freed code. */
	CHECK(in_child(child_of_fork) == 0, "fork after unload");

	CHECK(in_child(child_exits_loaded) == 42, "atexit() of a loaded module at exit()");
	CHECK(in_child(child_quick_exits_loaded) == 43, "at_quick_exit() of a loaded module");
	CHECK(in_child(child_quick_exits_unloaded) == 0, "an at_quick_exit() function outlived "
	      "its module");
}

void run_link_tests(void)
{
	test_two_objects();
	test_member_selection(1);
	test_member_selection(0);
	test_archive_index();
	test_bad_inputs();
	test_load_fd();
	test_atexit_family();
}

/* ---- Debian's static archives --------------------------------------------- */

/* The compiler's path to a library file, or NULL when it has none. */
static const char *library_path(const char *file, char *path, size_t len)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s -print-file-name=%s", cc, file);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(path, 1, len - 1, p) : 0;
	if (p)
		pclose(p);
	path[n] = '\0';
	path[strcspn(path, "\n")] = '\0';
	return path[0] == '/' && access(path, R_OK) == 0 ? path : NULL;
}

/* What the driver's describe function prints when linked natively. */
static int native_output(const char *driver, const char *describe, const char *archive,
			 const char *libs, char *out, size_t len)
{
	char exe[1024], cmd[4096];
	path_in_work(exe, sizeof(exe), driver);
	const char *no_pie = strstr(cflags, "-fno-pic") ? "-no-pie" : "";
	if (run("%s %s %s -DDESCRIBE=%s -o %s.native %s/modules/%s.c %s/modules/m_native_main.c "
		"%s %s", cc, cflags, no_pie, describe, exe, srcdir, driver, srcdir, archive, libs))
		return -1;
	snprintf(cmd, sizeof(cmd), "%s.native", exe);
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, len - 1, p) : 0;
	int status = p ? pclose(p) : -1;
	out[n] = '\0';
	return status == 0 ? 0 : -1;
}

static void test_real_archive(const char *driver, const char *describe, const char *file,
			      const char *libs, const char *expect)
{
	static char native[4096], loaded[4096];
	char archive[1024], object[1024], name[256];
	if (!library_path(file, archive, sizeof(archive))) {
		CHECK(0, "%s has no %s (scripts/install-deps.sh installs it)", cc, file);
		return;
	}
	snprintf(name, sizeof(name), "%s.o", driver);
	if (compile(driver) || native_output(driver, describe, archive, libs, native,
					     sizeof(native)))
		return failures++, (void)0;
	struct execmem_module_input in[2] = {
		file_input(object, sizeof(object), name, 0),
		{ .kind = EXECMEM_MODULE_INPUT_FILE, .path = archive },
	};
	struct execmem_module *m = NULL;
	int err = link_inputs(in, 2, &m);
	CHECK(err == 0, "%s with %s: %s", driver, file, execmem_module_last_error());
	if (err)
		return;
	int (*fn)(char *, size_t) = (int (*)(char *, size_t))sym(m, describe);
	if (fn)
		fn(loaded, sizeof(loaded));
	CHECK(fn && strcmp(loaded, native) == 0, "%s: module gave\n%s\nnative gave\n%s", driver,
	      loaded, native);
	CHECK(strstr(loaded, expect), "%s: no '%s' in\n%s", driver, expect, loaded);
	CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_module_last_error());
}

void run_real_archive_tests(void)
{
	test_real_archive("m_zlib", "zlib_describe", "libz.a", "", "round trip ok");
	/* SHA-256 and SHA-512 of "abc" (FIPS 180-2 appendix C). */
	test_real_archive("m_crypto", "crypto_describe", "libcrypto.a", "-ldl -pthread",
			  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad "
			  "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
			  "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\n");
}
