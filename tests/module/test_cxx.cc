// test_cxx.cc - C++ modules, compiled at test time with a C++ compiler,
// loaded and run: static constructors and destructors, std::map and
// std::string, virtual calls and RTTI, exceptions caught inside the module
// and thrown from it to this program, and two modules sharing an inline
// function (one copy: the same address from both).  The module's log must
// equal what the same code prints linked natively (modules/cxx_main.cc).
//
//   test_cxx CXX "FLAGS" SRCDIR WORKDIR
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include "execmem/module.h"
#include "execmem/unwind.h"
#include "module_check.h"

static const char *cxx, *flags, *srcdir, *workdir;
static int failures;

static std::string transcript;

// Exported to the modules (ENABLE_EXPORTS).
extern "C" __attribute__((visibility("default"))) void host_cxx_log(const char *line)
{
	transcript += line;
	transcript += "\n";
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	std::vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = std::system(cmd);
	if (rc != 0)
		std::fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc;
}

static int compile(const char *name)
{
	return run("%s %s -I%s/modules -c -o %s/%s.o %s/modules/%s.cc", cxx, flags, srcdir,
		   workdir, name, srcdir, name);
}

// What the code prints linked natively.
static std::string native_output()
{
	const char *no_pie = std::strstr(flags, "-fno-pic") ? "-no-pie" : "";
	std::string out;
	if (run("%s %s %s -I%s/modules -o %s/cxx_native %s/modules/m_cxx.cc %s/modules/cxx_main.cc",
		cxx, flags, no_pie, srcdir, workdir, srcdir, srcdir))
		return out;
	// Under an emulator, the program runs under it too (EXECMEM_TEST_RUNNER).
	const char *runner = std::getenv("EXECMEM_TEST_RUNNER");
	std::string cmd = std::string(runner ? runner : "") + " " + workdir + "/cxx_native";
	FILE *p = popen(cmd.c_str(), "r");
	char buf[512];
	while (p && std::fgets(buf, sizeof(buf), p))
		out += buf;
	if (p)
		pclose(p);
	return out;
}

static execmem_module *load(const char *name)
{
	std::string path = std::string(workdir) + "/" + name;
	execmem_module *m = nullptr;
	int err = execmem_module_load_file(path.c_str(), nullptr, &m);
	CHECK(err == 0, "load %s: %s", name, execmem_module_last_error());
	return m;
}

template <typename F> static F symbol(execmem_module *m, const char *name)
{
	void *p = execmem_module_symbol(m, name);
	CHECK(p != nullptr, "symbol %s missing", name);
	return reinterpret_cast<F>(p);
}

// The module's log, from its constructors to its destructors, with the
// exceptions it throws caught here.
static void test_module_log(execmem_module *a)
{
	symbol<void (*)()>(a, "cxx_run")();
	auto throw_to_host = symbol<void (*)(int)>(a, "cxx_throw_to_host");
	for (int code = 0; code < 2; code++) {
		try {
			throw_to_host(code * 7);
			host_cxx_log("nothing thrown");
		} catch (const std::exception &e) {
			host_cxx_log((std::string("host caught: ") + e.what()).c_str());
		}
	}
}

// The second module uses the first one's copy of the shared inline
// function and template instance.
static void test_shared_inline(execmem_module *a)
{
	execmem_module *b = load("m_cxx_b.o");
	if (!b)
		return;
	void *in_a = symbol<void *(*)()>(a, "cxx_shared_address")();
	void *in_b = symbol<void *(*)()>(b, "cxx_b_shared_address")();
	CHECK(in_a == in_b, "shared_next() at %p in one module, %p in the other", in_a, in_b);
	int first = symbol<int (*)()>(a, "cxx_shared_next")();
	int second = symbol<int (*)()>(b, "cxx_b_shared_next")();
	CHECK(second == first + 1, "one static counter: %d then %d", first, second);
	CHECK(symbol<int (*)(int)>(a, "cxx_box_get")(5) == 5, "template instance in the first");
	CHECK(symbol<int (*)(int)>(b, "cxx_b_box_get")(5) == 6, "template instance in the second");
	CHECK(execmem_module_unload(a) == -EBUSY, "the first module is used by the second");
	CHECK(execmem_module_unload(b) == 0, "unload: %s", execmem_module_last_error());
}

// The registration API on its own: a table of nothing but its terminator.
static void test_unwind_api()
{
	static const unsigned char empty[4] = { 0, 0, 0, 0 };
	static const unsigned char truncated[8] = { 16, 0, 0, 0, 0, 0, 0, 0 };
	CHECK(execmem_unwind_register(nullptr, 4) == -EINVAL, "NULL table");
	CHECK(execmem_unwind_register(truncated, sizeof(truncated)) == -EINVAL,
	      "an entry longer than the table");
	CHECK(execmem_unwind_register(empty, 3) == -EINVAL, "no room for the terminator");
	CHECK(execmem_unwind_register(empty, 4) == 0, "empty table");
	CHECK(execmem_unwind_register(empty, 4) == -EEXIST, "registered twice");
	CHECK(execmem_unwind_unregister(empty) == 0, "unregister");
	CHECK(execmem_unwind_unregister(empty) == -ENOENT, "unregistered twice");
	CHECK(execmem_unwind_unregister(nullptr) == -EINVAL, "unregister NULL");
}

// Many tables at once, as a module of hundreds of objects registers, given
// back in another order: each stays known until it goes, and only it.
static void test_unwind_many()
{
	enum { TABLES = 1500 };
	static uint32_t empty[TABLES];       // each a table of its terminator
	for (int i = 0; i < TABLES; i++)
		CHECK(execmem_unwind_register(&empty[i], 4) == 0, "register table %d", i);
	for (int i = 0; i < TABLES; i++)
		CHECK(execmem_unwind_register(&empty[i], 4) == -EEXIST, "table %d known", i);
	for (int k = 0; k < TABLES; k++) {
		int i = (int)((k * 7919L) % TABLES);   // a prime stride: every table once
		CHECK(execmem_unwind_unregister(&empty[i]) == 0, "unregister table %d", i);
		CHECK(execmem_unwind_unregister(&empty[i]) == -ENOENT, "table %d gone", i);
		int next = (int)(((k + 1) * 7919L) % TABLES);
		if (k + 1 < TABLES)
			CHECK(execmem_unwind_register(&empty[next], 4) == -EEXIST,
			      "table %d still known after %d went", next, i);
	}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		std::fprintf(stderr, "usage: %s CXX FLAGS SRCDIR WORKDIR\n", argv[0]);
		return 2;
	}
	cxx = argv[1];
	flags = argv[2];
	srcdir = argv[3];
	workdir = argv[4];
	if (run("mkdir -p %s", workdir) || compile("m_cxx") || compile("m_cxx_b"))
		return 1;
	test_unwind_api();
	test_unwind_many();
	std::string expected = native_output();
	CHECK(!expected.empty(), "the native program printed nothing");
	execmem_module *a = load("m_cxx.o");
	if (a) {
		test_module_log(a);
		test_shared_inline(a);
		CHECK(execmem_module_unload(a) == 0, "unload: %s", execmem_module_last_error());
	}
	CHECK(transcript == expected, "the module logged\n%s\nthe native program\n%s",
	      transcript.c_str(), expected.c_str());
	if (failures)
		std::fprintf(stderr, "%d check(s) failed (%s %s)\n", failures, cxx, flags);
	else
		std::printf("all C++ module tests passed (%s %s)\n", cxx, flags);
	return failures ? 1 : 0;
}
