/* m_stdio.c - a module that uses the C library's variables as default
 * compiler output reaches them: PIE code reads stdin, stdout, stderr and
 * environ PC-relatively (a static linker would copy them next to the
 * program), errno through its accessor, qsort calling back into the module.
 * stdio_main.c links the same code natively, for comparison. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int stdio_report(char *out, size_t len);

static int by_length_then_name(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);
	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static const char *test_variable(void)
{
	static const char key[] = "EXECMEM_STDIO_TEST=";
	for (char **e = environ; *e; e++)
		if (strncmp(*e, key, sizeof(key) - 1) == 0)
			return *e + sizeof(key) - 1;
	return "(unset)";
}

#if defined(__PIC__)
/* The address of a variable of the C library: `lea environ(%rip)` in PIE
 * code.  (Code built with -fno-pic takes it as a 32-bit absolute address,
 * which cannot reach a shared library's data.) */
__attribute__((noinline)) static char ***environ_address(void)
{
	return &environ;
}
#define ENVIRON_SEEN (*environ_address() == environ)
#else
#define ENVIRON_SEEN 1
#endif

int stdio_report(char *out, size_t len)
{
	const char *words[] = { "pear", "fig", "banana", "kiwi", "apple", "date" };
	qsort(words, sizeof(words) / sizeof(words[0]), sizeof(words[0]), by_length_then_name);
	errno = 0;
	long big = strtol("99999999999999999999", NULL, 10);
	int range_errno = errno;
	FILE *missing = fopen("/nonexistent-dir/file", "r");
	int open_errno = missing ? 0 : errno;
	int wrote = fprintf(stdout, "m_stdio: to stdout\n");
	fflush(stdout);
	int wrote_err = fputs("m_stdio: to stderr\n", stderr) >= 0;
	return snprintf(out, len, "fd %d %d %d env %s %d errno %d %d %d sorted %s %s %s %s %s %s "
			"wrote %d %d", fileno(stdin), fileno(stdout), fileno(stderr),
			test_variable(), ENVIRON_SEEN, range_errno, open_errno, big == LONG_MAX,
			words[0], words[1], words[2], words[3], words[4], words[5], wrote,
			wrote_err);
}
