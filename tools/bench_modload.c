/*
 * bench_modload.c - how long loading a large module takes with execmem's
 * module loader, against dlopen() of the same code built as a shared
 * library.
 *
 * A C source of a few thousand functions is generated (calls between them,
 * calls into libc, global arrays, string literals, a table of function
 * pointers), compiled once with -O1 -fPIC -ffunction-sections into an
 * object, and that object linked into a .so, in a temporary directory.
 * With one section per function the module's code is packed into
 * execmem's shared 2 MiB chunks; one giant .text section would instead
 * need a fresh mapping of its own on every load (see docs/modules.md).  One "load" is, for both:
 * load the file, look up a function, call it, so both leave code that runs;
 * unloading is not timed.  dlopen() uses RTLD_NOW, since the module loader
 * also binds every symbol at load time.  Runs alternate between the two and
 * the first of each is a warm-up (page cache, first-touch faults).
 *
 * Nothing is printed on stdout: `execmem bench` reads its children's stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_modload.h"
#include "execmem/module.h"

#define GLOBALS 512
#define CHECK_VALUE 4242L

struct bench_files {
	char dir[256], src[300], obj[300], so[300];
};

static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * One statement of a generated function.  Three in ten refer to a global
 * array, another function or libc (one or two relocations each); the rest
 * is arithmetic: 1000 functions make 2.5 MiB of code and 37,000 relocations,
 * a density like that of ordinary compiled C.
 */
static void emit_statement(FILE *f, int fn, int k, int nfuncs)
{
	unsigned salt = (unsigned)(fn * 131 + k * 17);
	switch (k % 10) {
	case 0:
		fprintf(f, "\tx = x * %uL + bm_g%u[%u];\n", salt | 1, salt % GLOBALS, k % 8);
		break;
	case 3:
		fprintf(f, "\tif (x & %u) x ^= bm_f%d(x >> %u);\n", 1u << (k % 13),
			(fn + 1 + k) % nfuncs, k % 7 + 1);
		break;
	case 6:
		if (k % 20 == 6)
			fprintf(f, "\tif (x == %u) x += strtol(\"%u\", 0, 10);\n", salt, salt);
		else
			fprintf(f, "\tbm_g%u[%u] = x;\n", (salt * 3) % GLOBALS, k % 8);
		break;
	default:
		fprintf(f, "\tx = (x ^ (x >> %u)) * %uL + %u;\n", k % 29 + 3, salt | 3,
			salt * 2654435761u);
		break;
	}
}

static int generate(const char *path, int nfuncs, int nstatements)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "#include <stdlib.h>\n");
	for (int g = 0; g < GLOBALS; g++)
		fprintf(f, "long bm_g%d[8] = { %d };\n", g, g);
	for (int i = 0; i < nfuncs; i++)
		fprintf(f, "long bm_f%d(long x);\n", i);
	for (int i = 0; i < nfuncs; i++) {
		fprintf(f, "long bm_f%d(long x)\n{\n", i);
		for (int k = 0; k < nstatements; k++)
			emit_statement(f, i, k, nfuncs);
		fprintf(f, "\treturn x;\n}\n");
	}
	fprintf(f, "long (*const bm_table[])(long) = {\n");
	for (int i = 0; i < nfuncs; i++)
		fprintf(f, "\tbm_f%d,\n", i);
	fprintf(f, "};\n");
	fprintf(f, "long bm_check(void)\n{\n\treturn %ldL - bm_g1[0] + (bm_table[1] == bm_f1) - 1;\n}\n",
		CHECK_VALUE + 1);
	return fclose(f) ? -errno : 0;
}

static int build(struct bench_files *bf, int quick, char *why, size_t whylen)
{
	const char *cc = getenv("CC") ? getenv("CC") : "cc";
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char cmd[2048];

	snprintf(bf->dir, sizeof(bf->dir), "%s/execmem-modload-XXXXXX", tmp);
	if (!mkdtemp(bf->dir)) {
		int err = errno;
		bf->dir[0] = '\0';        /* nothing to clean */
		say(why, whylen, "mkdtemp in %s: %s", tmp, strerror(err));
		return -err;
	}
	int n = snprintf(bf->src, sizeof(bf->src), "%s/big.c", bf->dir);
	n |= snprintf(bf->obj, sizeof(bf->obj), "%s/big.o", bf->dir);
	n |= snprintf(bf->so, sizeof(bf->so), "%s/big.so", bf->dir);
	if (n < 0 || (size_t)snprintf(cmd, sizeof(cmd), "%s -O1 -fPIC -ffunction-sections -c "
				      "-o %s %s && %s -shared -o %s %s", cc, bf->obj, bf->src,
				      cc, bf->so, bf->obj) >= sizeof(cmd)) {
		say(why, whylen, "temporary directory path too long");
		return -ENAMETOOLONG;
	}
	int err = generate(bf->src, quick ? 250 : 1000, 100);
	if (err) {
		say(why, whylen, "writing %s: %s", bf->src, strerror(-err));
		return err;
	}
	if (system(cmd) != 0) {
		say(why, whylen, "compiling the generated module failed: %s", cmd);
		return -ENOEXEC;
	}
	return 0;
}

static void clean(const struct bench_files *bf)
{
	unlink(bf->src);
	unlink(bf->obj);
	unlink(bf->so);
	rmdir(bf->dir);
}

typedef long (*check_fn)(void);

static int time_execmem(const char *obj, double *ms, char *why, size_t whylen)
{
	struct execmem_module *m;
	double t0 = now_ms();
	int err = execmem_module_load_file(obj, NULL, &m);
	if (err) {
		say(why, whylen, "module load: %s", execmem_module_last_error());
		return err;
	}
	check_fn check = (check_fn)execmem_module_symbol(m, "bm_check");
	long value = check ? check() : -1;
	*ms = now_ms() - t0;
	execmem_module_unload(m);
	if (value != CHECK_VALUE) {
		say(why, whylen, "the loaded module computed %ld instead of %ld", value, CHECK_VALUE);
		return -EIO;
	}
	return 0;
}

static int time_dlopen(const char *so, double *ms, char *why, size_t whylen)
{
	double t0 = now_ms();
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		say(why, whylen, "dlopen: %s", dlerror());
		return -ENOEXEC;
	}
	check_fn check = (check_fn)dlsym(h, "bm_check");
	long value = check ? check() : -1;
	*ms = now_ms() - t0;
	dlclose(h);
	if (value != CHECK_VALUE) {
		say(why, whylen, "the shared library computed %ld instead of %ld", value, CHECK_VALUE);
		return -EIO;
	}
	return 0;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void summarise(double *samples, int n, struct modload_result *out)
{
	qsort(samples, (size_t)n, sizeof(*samples), compare_doubles);
	out->min_ms = samples[0];
	out->max_ms = samples[n - 1];
	out->median_ms = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
}

static int measure(const struct bench_files *bf, int repeats, struct modload_result *mine,
		   struct modload_result *theirs, char *why, size_t whylen)
{
	double *a = calloc((size_t)repeats, sizeof(*a)), *b = calloc((size_t)repeats, sizeof(*b));
	double warm;
	int err = a && b ? 0 : -ENOMEM;

	if (!err)
		err = time_execmem(bf->obj, &warm, why, whylen);
	if (!err)
		err = time_dlopen(bf->so, &warm, why, whylen);
	for (int i = 0; i < repeats && !err; i++) {
		err = time_execmem(bf->obj, &a[i], why, whylen);
		if (!err)
			err = time_dlopen(bf->so, &b[i], why, whylen);
	}
	if (!err) {
		summarise(a, repeats, mine);
		summarise(b, repeats, theirs);
	}
	free(a);
	free(b);
	return err;
}

int bench_modload(int repeats, int quick, struct modload_result *execmem_load,
		  struct modload_result *dlopen_load, char *why, size_t whylen)
{
	struct bench_files bf;

	memset(&bf, 0, sizeof(bf));
	if (repeats < 1 || !execmem_load || !dlopen_load || !why || !whylen)
		return -EINVAL;
	why[0] = '\0';
	int err = build(&bf, quick, why, whylen);
	if (!err)
		err = measure(&bf, repeats, execmem_load, dlopen_load, why, whylen);
	if (bf.dir[0])
		clean(&bf);
	return err;
}
