/*
 * test_trace_symbols.c - `execmem trace` finds functions by name: exported
 * ones of the program (linked with --export-dynamic), its static ones
 * through /proc/self/exe's symbol table, a library's, and says why not
 * for the rest.
 */
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

#include "../test_util.h"
#include "trace_symbols.h"

int trace_exported(int x);
int (*trace_twin_here(void))(void);
extern char **environ;

__attribute__((noinline)) int trace_exported(int x)
{
	return x + 1;
}

__attribute__((noinline)) static int trace_static_only(int x)
{
	return x * 3;
}

__attribute__((noinline)) static int twin(void)
{
	return 1;
}

static char why[256];

static void *resolve(const char *spec)
{
	why[0] = '\0';
	return trace_resolve(spec, why, sizeof(why));
}

static void check_refused(const char *spec, const char *reason)
{
	CHECK(resolve(spec) == NULL);
	if (!strstr(why, reason)) {
		tu_failed++;
		fprintf(stderr, "%s: refused with \"%s\", expected \"%s\"\n", spec, why, reason);
	}
}

int main(void)
{
	CHECK(resolve("trace_exported") == (void *)trace_exported);
	CHECK(resolve("trace_static_only") == (void *)trace_static_only);
	CHECK(resolve("getpid") == dlsym(RTLD_DEFAULT, "getpid"));
	CHECK(resolve("getpid@libc") == dlsym(RTLD_DEFAULT, "getpid"));
	CHECK(resolve("getpid@libc.so.6") == dlsym(RTLD_DEFAULT, "getpid"));
	CHECK(resolve("getpid@libc.so") == dlsym(RTLD_DEFAULT, "getpid"));
	CHECK(trace_twin_here()() == 2 && twin() == 1);

	check_refused("twin", "2 local functions of the program or its libraries");
	check_refused("environ", "is not a function");
	check_refused("no_such_function_anywhere", "not found in the program or its libraries");
	check_refused("no_such_function_anywhere@libc", "not found in /");
	check_refused("trace_static_only@libc", "not found in /");
	check_refused("getpid@libnosuch", "no loaded library is named libnosuch");
	check_refused("@libc", "not a function name");
	check_refused("getpid@", "not a function name");
	return tu_finish("test_trace_symbols");
}
