/*
 * bench_modload.c - how long loading a large module takes with execmem's
 * module loader, against dlopen() of the same code built as a shared
 * library.  Two modules, built in a temporary directory:
 *
 *   M1  a generated C source of a few thousand functions (calls between
 *       them, calls into libc, global arrays, string literals, a table of
 *       function pointers), compiled once with -O1 -fPIC
 *       -ffunction-sections into an object, and that object linked into a
 *       .so.  With one section per function the module's code is packed
 *       into execmem's shared 2 MiB chunks (see docs/modules.md).
 *   M2  a small driver calling SHA-256 and EVP, linked with the system's
 *       libcrypto.a: the loader takes the archive members the driver
 *       needs, and the .so is linked by the static linker from the same
 *       driver object and archive, which pulls in the same members by the
 *       same rule (the bench reports both sides' code size).
 *
 * One "load" is, for every variant: load, look a function up, call it, so
 * each leaves code that runs; unloading is not timed.  dlopen() uses
 * RTLD_NOW, since the module loader also binds every symbol at load time,
 * and is timed twice: alone (its code pages are mapped lazily, and never
 * read), and followed by reading one byte of every page of its executable
 * segment, which is what a program running the code pays and what the
 * loader's copy already did.  Runs alternate between the three, the first
 * of each is a warm-up (page cache, first-touch faults), and the loader's
 * own stage times (execmem_module_load_times()) are reported too.  Each is
 * timed by the wall clock and by the process's CPU time, the figure that
 * other processes on a busy machine disturb least.
 *
 * Nothing is printed on stdout: `execmem bench` reads its children's stdout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_modload.h"
#include "execmem/module.h"

#define GLOBALS 512
#define CHECK_VALUE 4242L
#define SHA256_ABC_HEAD 0xba7816bfL   /* first bytes of SHA-256("abc") */

struct bench_files {
	char dir[256], src[300], obj[300], so[300];
	char crypto_src[300], crypto_obj[300], crypto_so[300], libcrypto[512];
};

/* One module of the bench, in both forms. */
struct bench_module {
	const char *workload;
	const char *obj, *archive, *so;  /* archive: NULL, or linked by selection */
	long check;                      /* what bm_check() returns */
};

static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

static double clock_ms(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* The process's CPU time (user and system: mappings and page faults
 * count), which other processes on a busy machine disturb far less than
 * the wall clock. */
static double cpu_ms(void)
{
	return clock_ms(CLOCK_PROCESS_CPUTIME_ID);
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

/* The M2 driver: SHA-256 through the one-shot call (what bm_check()
 * runs) and SHA-512 through EVP (linked, not run: EVP's first use sets up
 * the library's providers, which is not loading). */
static const char crypto_source[] =
	"#include <openssl/evp.h>\n"
	"#include <openssl/sha.h>\n"
	"long bm_check(void)\n"
	"{\n"
	"\tunsigned char d[SHA256_DIGEST_LENGTH];\n"
	"\tSHA256((const unsigned char *)\"abc\", 3, d);\n"
	"\treturn (long)((unsigned long)d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3]);\n"
	"}\n"
	"int bm_sha512(const void *m, size_t n, unsigned char *out, unsigned *len)\n"
	"{\n"
	"\tEVP_MD_CTX *c = EVP_MD_CTX_new();\n"
	"\tint ok = c && EVP_DigestInit_ex(c, EVP_sha512(), NULL) &&\n"
	"\t\t EVP_DigestUpdate(c, m, n) && EVP_DigestFinal_ex(c, out, len);\n"
	"\tEVP_MD_CTX_free(c);\n"
	"\treturn ok;\n"
	"}\n";

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

static int run(const char *cmd, char *why, size_t whylen)
{
	if (system(cmd) == 0)
		return 0;
	say(why, whylen, "building a module failed: %s", cmd);
	return -ENOEXEC;
}

/* Where the compiler finds libcrypto.a, or "" (it echoes the bare name). */
static void find_libcrypto(const char *cc, char *out, size_t len)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s -print-file-name=libcrypto.a 2>/dev/null", cc);
	FILE *p = popen(cmd, "r");
	out[0] = '\0';
	if (p && fgets(out, (int)len, p))
		out[strcspn(out, "\n")] = '\0';
	if (p)
		pclose(p);
	if (out[0] != '/' || access(out, R_OK) != 0)
		out[0] = '\0';
}

/* M2, when the system has libcrypto.a and its headers; 0 when built. */
static int build_crypto(struct bench_files *bf, const char *cc, char *why, size_t whylen)
{
	char cmd[2048];
	find_libcrypto(cc, bf->libcrypto, sizeof(bf->libcrypto));
	if (!bf->libcrypto[0]) {
		say(why, whylen, "no libcrypto.a (libssl-dev)");
		return -ENOENT;
	}
	int err = write_file(bf->crypto_src, crypto_source);
	if (err) {
		say(why, whylen, "writing %s: %s", bf->crypto_src, strerror(-err));
		return err;
	}
	if ((size_t)snprintf(cmd, sizeof(cmd), "%s -O2 -fPIC -c -o %s %s 2>/dev/null && "
			     "%s -shared -o %s %s %s -ldl -pthread", cc, bf->crypto_obj,
			     bf->crypto_src, cc, bf->crypto_so, bf->crypto_obj,
			     bf->libcrypto) >= sizeof(cmd)) {
		say(why, whylen, "temporary directory path too long");
		return -ENAMETOOLONG;
	}
	return run(cmd, why, whylen);
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
	n |= snprintf(bf->crypto_src, sizeof(bf->crypto_src), "%s/sha.c", bf->dir);
	n |= snprintf(bf->crypto_obj, sizeof(bf->crypto_obj), "%s/sha.o", bf->dir);
	n |= snprintf(bf->crypto_so, sizeof(bf->crypto_so), "%s/sha.so", bf->dir);
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
	err = run(cmd, why, whylen);
	if (!err && build_crypto(bf, cc, why, whylen)) {
		fprintf(stderr, "execmem bench: M2 left out: %s\n", why);
		bf->libcrypto[0] = '\0';
		why[0] = '\0';
	}
	return err;
}

static void clean(const struct bench_files *bf)
{
	const char *files[] = { bf->src, bf->obj, bf->so, bf->crypto_src, bf->crypto_obj,
				bf->crypto_so };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(bf->dir);
}

typedef long (*check_fn)(void);

/* What one load of each variant measured. */
struct sample {
	double execmem_ms, dlopen_ms, touch_ms;
	double execmem_cpu_ms, dlopen_cpu_ms, touch_cpu_ms;
	double stage_ms[EXECMEM_MODULE_STAGES];
	size_t module_code, so_code;
};

static int load_module(const struct bench_module *bm, struct execmem_module **m)
{
	struct execmem_module_input in[2] = {
		{ .kind = EXECMEM_MODULE_INPUT_FILE, .path = bm->obj },
		{ .kind = EXECMEM_MODULE_INPUT_FILE, .path = bm->archive },
	};
	if (!bm->archive)
		in[0].flags = EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE;
	return execmem_module_load(in, bm->archive ? 2 : 1, NULL, m);
}

static int time_execmem(const struct bench_module *bm, struct sample *s, char *why,
			size_t whylen)
{
	struct execmem_module *m;
	struct execmem_module_stats st;
	double t0 = now_ms(), c0 = cpu_ms();
	int err = load_module(bm, &m);
	if (err) {
		say(why, whylen, "module load: %s", execmem_module_last_error());
		return err;
	}
	check_fn check = (check_fn)execmem_module_symbol(m, "bm_check");
	long value = check ? check() : -1;
	s->execmem_ms = now_ms() - t0;
	s->execmem_cpu_ms = cpu_ms() - c0;
	uint64_t ns[EXECMEM_MODULE_STAGES] = { 0 };
	execmem_module_stats(m, &st);
	execmem_module_load_times(m, ns, EXECMEM_MODULE_STAGES);
	for (int k = 0; k < EXECMEM_MODULE_STAGES; k++)
		s->stage_ms[k] = ns[k] / 1e6;
	s->module_code = st.bytes[EXECMEM_CODE_NEAR] + st.bytes[EXECMEM_CODE];
	execmem_module_unload(m);
	if (value != bm->check) {
		say(why, whylen, "%s: the loaded module computed %ld instead of %ld", bm->workload,
		    value, bm->check);
		return -EIO;
	}
	return 0;
}

struct text_walk {
	const char *path;
	size_t bytes;
	unsigned sum;
};

/* Read one byte of every page of the library's executable segments. */
static int read_text_pages(struct dl_phdr_info *info, size_t size, void *context)
{
	struct text_walk *w = context;
	long page = sysconf(_SC_PAGESIZE);
	(void)size;
	if (strcmp(info->dlpi_name, w->path))
		return 0;
	for (int k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		const volatile unsigned char *text =
			(const volatile unsigned char *)(info->dlpi_addr + ph->p_vaddr);
		for (size_t at = 0; at < ph->p_memsz; at += (size_t)page)
			w->sum += text[at];
		w->bytes += ph->p_memsz;
	}
	return 1;
}

static int time_dlopen(const struct bench_module *bm, int touch, double *ms, double *cpu,
		       size_t *code, char *why, size_t whylen)
{
	struct text_walk walk = { bm->so, 0, 0 };
	double t0 = now_ms(), c0 = cpu_ms();
	void *h = dlopen(bm->so, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		say(why, whylen, "dlopen: %s", dlerror());
		return -ENOEXEC;
	}
	if (touch)
		dl_iterate_phdr(read_text_pages, &walk);
	check_fn check = (check_fn)dlsym(h, "bm_check");
	long value = check ? check() : -1;
	*ms = now_ms() - t0;
	*cpu = cpu_ms() - c0;
	dlclose(h);
	if (touch)
		*code = walk.bytes;
	if (value != bm->check) {
		say(why, whylen, "%s: the shared library computed %ld instead of %ld", bm->workload,
		    value, bm->check);
		return -EIO;
	}
	if (touch && !walk.bytes) {
		say(why, whylen, "%s: no executable segment of %s found", bm->workload, bm->so);
		return -ENOEXEC;
	}
	return 0;
}

static int one_round(const struct bench_module *bm, struct sample *s, char *why, size_t whylen)
{
	int err = time_execmem(bm, s, why, whylen);
	if (!err)
		err = time_dlopen(bm, 0, &s->dlopen_ms, &s->dlopen_cpu_ms, &s->so_code, why, whylen);
	if (!err)
		err = time_dlopen(bm, 1, &s->touch_ms, &s->touch_cpu_ms, &s->so_code, why, whylen);
	return err;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Summarise field values (at offset `offset` of each sample, or the ratio
 * of two fields when `over` is not negative) and report them. */
static void report_field(const struct sample *s, int n, size_t offset, long over,
			 const struct bench_module *bm, const char *allocator, const char *metric,
			 const char *unit, bench_modload_report report)
{
	double v[n];
	for (int i = 0; i < n; i++) {
		double x = *(const double *)((const char *)&s[i] + offset);
		v[i] = over < 0 ? x : x / *(const double *)((const char *)&s[i] + over);
	}
	qsort(v, (size_t)n, sizeof(*v), compare_doubles);
	struct modload_result r = { n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0],
				    v[n - 1] };
	report(bm->workload, allocator, metric, unit, &r);
}

static const char *const stage_names[EXECMEM_MODULE_STAGES] = {
	"stage_read_ms", "stage_parse_ms", "stage_select_ms", "stage_layout_ms",
	"stage_resolve_ms", "stage_place_ms", "stage_relocate_ms", "stage_publish_ms",
	"stage_copy_ms",
};

#define FIELD(f) offsetof(struct sample, f)

static void report_all(const struct bench_module *bm, const struct sample *s, int n,
		       bench_modload_report report)
{
	report_field(s, n, FIELD(execmem_ms), -1, bm, "execmem-module", "ms_per_load", "ms", report);
	report_field(s, n, FIELD(dlopen_ms), -1, bm, "dlopen", "ms_per_load", "ms", report);
	report_field(s, n, FIELD(touch_ms), -1, bm, "dlopen+text", "ms_per_load", "ms", report);
	report_field(s, n, FIELD(execmem_ms), (long)FIELD(touch_ms), bm, "execmem-module",
		     "ratio_to_dlopen+text", "x", report);
	report_field(s, n, FIELD(execmem_ms), (long)FIELD(dlopen_ms), bm, "execmem-module",
		     "ratio_to_dlopen", "x", report);
	report_field(s, n, FIELD(execmem_cpu_ms), -1, bm, "execmem-module", "cpu_ms_per_load", "ms",
		     report);
	report_field(s, n, FIELD(dlopen_cpu_ms), -1, bm, "dlopen", "cpu_ms_per_load", "ms", report);
	report_field(s, n, FIELD(touch_cpu_ms), -1, bm, "dlopen+text", "cpu_ms_per_load", "ms",
		     report);
	report_field(s, n, FIELD(execmem_cpu_ms), (long)FIELD(touch_cpu_ms), bm, "execmem-module",
		     "cpu_ratio_to_dlopen+text", "x", report);
	report_field(s, n, FIELD(execmem_cpu_ms), (long)FIELD(dlopen_cpu_ms), bm, "execmem-module",
		     "cpu_ratio_to_dlopen", "x", report);
	for (int k = 0; k < EXECMEM_MODULE_STAGES; k++)
		report_field(s, n, FIELD(stage_ms) + (size_t)k * sizeof(double), -1, bm,
			     "execmem-module", stage_names[k], "ms", report);
	struct modload_result code = { s[0].module_code / 1024.0, s[0].module_code / 1024.0,
				       s[0].module_code / 1024.0 };
	report(bm->workload, "execmem-module", "code_kib", "KiB", &code);
	code = (struct modload_result){ s[0].so_code / 1024.0, s[0].so_code / 1024.0,
					s[0].so_code / 1024.0 };
	report(bm->workload, "dlopen", "code_kib", "KiB", &code);
}

static int measure(const struct bench_module *bm, int repeats, bench_modload_report report,
		   char *why, size_t whylen)
{
	struct sample warm, *s = calloc((size_t)repeats, sizeof(*s));
	int err = s ? one_round(bm, &warm, why, whylen) : -ENOMEM;
	for (int i = 0; i < repeats && !err; i++)
		err = one_round(bm, &s[i], why, whylen);
	if (!err)
		report_all(bm, s, repeats, report);
	free(s);
	return err;
}

int bench_modload(int repeats, int quick, bench_modload_report report, char *why, size_t whylen)
{
	struct bench_files bf;

	memset(&bf, 0, sizeof(bf));
	if (repeats < 1 || !report || !why || !whylen)
		return -EINVAL;
	why[0] = '\0';
	int err = build(&bf, quick, why, whylen);
	const struct bench_module generated = { "M1", bf.obj, NULL, bf.so, CHECK_VALUE };
	const struct bench_module crypto = { "M2", bf.crypto_obj, bf.libcrypto, bf.crypto_so,
					     SHA256_ABC_HEAD };
	if (!err)
		err = measure(&generated, repeats, report, why, whylen);
	if (!err && bf.libcrypto[0])
		err = measure(&crypto, repeats, report, why, whylen);
	if (bf.dir[0])
		clean(&bf);
	return err;
}
