/*
 * demo.c - `execmem demo`: load many small programs the way a JIT does,
 * run and check every one, free half, load more into the holes, check
 * again, and report what it cost.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "emit.h"
#include "procfs.h"

#if defined(__x86_64__)
#define ARCH_NAME "x86-64"
#elif defined(__aarch64__)
#define ARCH_NAME "aarch64"
#else
#define ARCH_NAME "riscv64"
#endif

struct program {
	void *code;
	size_t size;
	uint64_t index;
	uint32_t expected;
	bool named;
};

struct demo {
	struct program *programs;
	size_t count;
	uint64_t size_state;    /* drives the size mix */
	uint64_t next_index;    /* each program ever loaded gets a new index */
	uint8_t *scratch;       /* where the emitter builds a program */
};

enum { MAX_SIZE = 16384, WRONG_RESULTS_SHOWN = 5 };

void usage_demo(FILE *out)
{
	fprintf(out,
		"usage: execmem demo [--count N] [--mode dual|mprotect|auto]\n"
		"\n"
		"Loads N small programs (default 10000) whose sizes follow what JIT compilers\n"
		"produce (half under 500 B, three quarters under 2 KiB, a tail up to 16 KiB),\n"
		"runs and checks every one, frees half, loads more into the holes, checks\n"
		"again, and reports memory, huge pages, timings and a W+X audit of the\n"
		"process (execmem audit; valgrind's own mappings are recognised and left\n"
		"out).  Exits 1 on any wrong result or W+X mapping.\n"
		"\n"
		"  --count N     number of programs, 2 to 10000000\n"
		"  --mode MODE   dual (two views of a memfd), mprotect (one view toggled),\n"
		"                auto (dual, else mprotect; default: EXECMEM_MODE or auto)\n");
}

/* Emit and load one program into slot; returns 0 or a negative errno. */
static int load_one(struct demo *d, struct program *slot)
{
	size_t size = size_mix_next(&d->size_state);
	uint64_t index = d->next_index++;
	size_t len = emit_program(d->scratch, size, index, &slot->expected);
	void *code;

	slot->size = len;
	code = execmem_alloc(EXECMEM_CODE, len);
	if (!code)
		return -errno;
	int err = execmem_write(code, d->scratch, len);
	if (err) {
		execmem_free(code);
		return err;
	}
	slot->code = code;
	slot->index = index;
	slot->named = false;
	return 0;
}

/* Profilers and debuggers show which program ran (docs/tools.md).  Timed
 * apart from the load: naming is a cost of those tools, not of loading. */
static int name_new_programs(struct demo *d)
{
	char name[32];
	for (size_t i = 0; i < d->count; i++) {
		struct program *p = &d->programs[i];
		if (!p->code || p->named)
			continue;
		snprintf(name, sizeof name, "demo_program_%" PRIu64, p->index);
		int err = execmem_set_name(p->code, p->size, name);
		if (err) {
			fprintf(stderr, "execmem demo: naming program %zu failed: %s\n", i, strerror(-err));
			return err;
		}
		p->named = true;
	}
	return 0;
}

/* Load programs into every empty slot; returns how many, or a negative errno. */
static long load_empty_slots(struct demo *d, const char *what)
{
	struct progress bar;
	long loaded = 0;

	progress_start(&bar, what, d->count);
	for (size_t i = 0; i < d->count; i++) {
		progress_step(&bar, i);
		if (d->programs[i].code)
			continue;
		int err = load_one(d, &d->programs[i]);
		if (err) {
			progress_done(&bar);
			fprintf(stderr, "execmem demo: loading program %zu of %zu bytes failed: %s%s%s\n",
				i, d->programs[i].size, strerror(-err),
				*execmem_last_error() ? ": " : "", execmem_last_error());
			return err;
		}
		loaded++;
	}
	progress_done(&bar);
	return loaded;
}

/* Call every live program; returns the number of wrong results. */
static size_t check_all(const struct demo *d)
{
	size_t wrong = 0;
	struct progress bar;

	progress_start(&bar, "running and checking", d->count);
	for (size_t i = 0; i < d->count; i++) {
		const struct program *p = &d->programs[i];
		progress_step(&bar, i);
		if (!p->code)
			continue;
		uint32_t got = ((program_fn)(uintptr_t)p->code)();
		if (got == p->expected)
			continue;
		if (wrong++ < WRONG_RESULTS_SHOWN) {
			progress_done(&bar);
			fprintf(stderr, "execmem demo: program %zu at %p (%zu bytes) returned %#" PRIx32
				", expected %#" PRIx32 "\n", i, p->code, p->size, got, p->expected);
		}
	}
	progress_done(&bar);
	return wrong;
}

/* Free every other program, leaving holes of every size. */
static int free_half(struct demo *d)
{
	for (size_t i = 1; i < d->count; i += 2) {
		int err = execmem_free(d->programs[i].code);
		if (err) {
			fprintf(stderr, "execmem demo: freeing program %zu failed: %s\n", i, strerror(-err));
			return err;
		}
		d->programs[i].code = NULL;
	}
	return 0;
}

static void free_all(struct demo *d)
{
	for (size_t i = 0; i < d->count; i++)
		if (d->programs[i].code)
			execmem_free(d->programs[i].code);
}

static int compare_addresses(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return (x > y) - (x < y);
}

struct footprint {
	size_t code_bytes;      /* sum of program sizes */
	size_t page_bytes;      /* each program rounded up to whole pages */
	size_t pss_bytes;       /* what the chunks holding them really use */
	size_t live;
};

static int measure_footprint(const struct demo *d, struct footprint *fp)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t *addrs = malloc(d->count * sizeof(*addrs));

	if (!addrs)
		return -ENOMEM;
	memset(fp, 0, sizeof(*fp));
	for (size_t i = 0; i < d->count; i++) {
		const struct program *p = &d->programs[i];
		if (!p->code)
			continue;
		addrs[fp->live++] = (uintptr_t)p->code;
		fp->code_bytes += p->size;
		fp->page_bytes += (p->size + page - 1) / page * page;
	}
	qsort(addrs, fp->live, sizeof(*addrs), compare_addresses);
	int err = procfs_pss_of(addrs, fp->live, &fp->pss_bytes);
	free(addrs);
	return err;
}

static double mib(size_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

static double per_program_ns(uint64_t ns, size_t n)
{
	return n ? (double)ns / (double)n : 0.0;
}

struct timings {
	uint64_t load, name, check1, free_half, reload, rename, check2;
	size_t loaded, freed, reloaded;
	size_t chunks_loaded, chunks_reloaded; /* chunks made by each load phase */
};

/* Chunks the default arena holds now; their creation dominates a first load. */
static size_t chunk_count(void)
{
	struct execmem_stats st;
	return execmem_stats(&st) ? 0 : st.chunks;
}

static void print_report(const struct demo *d, const struct timings *t, const struct footprint *fp,
			 const struct execmem_stats *st, int wx, const char *wx_first, size_t wrong)
{
	printf("execmem demo: %zu programs on %s, mode %s\n", d->count, ARCH_NAME,
	       execmem_mode_name(st->mode));
	printf("  load         %zu programs in %.1f ms (%.0f ns each: allocate + write),\n"
	       "               making %zu chunk%s of 2 MiB\n",
	       t->loaded, (double)t->load / 1e6, per_program_ns(t->load, t->loaded), t->chunks_loaded,
	       t->chunks_loaded == 1 ? "" : "s");
	printf("  name         %zu programs in %.1f ms (%.0f ns each, for profilers and debuggers)\n",
	       t->loaded, (double)t->name / 1e6, per_program_ns(t->name, t->loaded));
	printf("  run + check  %zu programs in %.1f ms\n", t->loaded, (double)t->check1 / 1e6);
	printf("  free half    %zu programs in %.1f ms (%.0f ns each)\n",
	       t->freed, (double)t->free_half / 1e6, per_program_ns(t->free_half, t->freed));
	printf("  refill holes %zu programs in %.1f ms (%.0f ns each), making %zu more chunk%s\n",
	       t->reloaded, (double)t->reload / 1e6, per_program_ns(t->reload, t->reloaded),
	       t->chunks_reloaded, t->chunks_reloaded == 1 ? "" : "s");
	printf("  name         %zu more in %.1f ms (%.0f ns each)\n", t->reloaded,
	       (double)t->rename / 1e6, per_program_ns(t->rename, t->reloaded));
	printf("  run + check  all %zu programs again in %.1f ms\n", fp->live, (double)t->check2 / 1e6);
	printf("  code         %.2f MiB in %zu live programs\n", mib(fp->code_bytes), fp->live);
	printf("  memory used  %.2f MiB (Pss of execmem's chunks, both views once): %.2fx the code\n",
	       mib(fp->pss_bytes), fp->code_bytes ? (double)fp->pss_bytes / (double)fp->code_bytes : 0);
	printf("  page each    %.2f MiB if every program had pages of its own: %.2fx the code\n",
	       mib(fp->page_bytes), fp->code_bytes ? (double)fp->page_bytes / (double)fp->code_bytes : 0);
	printf("  huge pages   %.2f MiB of %.2f MiB reserved in %zu chunks of 2 MiB\n",
	       mib(st->bytes_huge), mib(st->bytes_reserved), st->chunks);
	printf("  W+X audit    %d writable+executable mapping%s in /proc/self/maps%s%s\n",
	       wx, wx == 1 ? "" : "s", wx > 0 ? ", first: " : "", wx > 0 ? wx_first : "");
	printf("  results      %s\n", wrong ? "WRONG (see above)" : "all correct");
}

static int parse_demo_options(int argc, char **argv, struct demo *d, bool *mode_set,
			      enum execmem_mode *mode)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t count = 10000;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+n:m:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!parse_count("--count", optarg, 2, 10000000, &count))
				return EXIT_USAGE;
			break;
		case 'm':
			if (!parse_mode(optarg, mode))
				return EXIT_USAGE;
			*mode_set = true;
			break;
		case 'h':
			usage_demo(stdout);
			return -1;
		default:
			fprintf(stderr, "execmem demo: bad option '%s' (see execmem demo --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "execmem demo: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	d->count = (size_t)count;
	return EXIT_OK;
}

static int configure_mode(enum execmem_mode mode)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = mode;
	int err = execmem_configure(&params);
	if (err)
		fprintf(stderr, "execmem demo: cannot set mode %s: %s\n", execmem_mode_name(mode),
			*execmem_last_error() ? execmem_last_error() : strerror(-err));
	return err;
}

static int run_demo(struct demo *d)
{
	struct timings t = { 0 };
	struct footprint fp;
	struct execmem_stats st;
	char wx_first[256];
	uint64_t t0 = now_ns();
	long n;

	if ((n = load_empty_slots(d, "loading programs")) < 0)
		return EXIT_SYSTEM;
	t.loaded = (size_t)n;
	t.load = now_ns() - t0;
	t.chunks_loaded = chunk_count();

	t0 = now_ns();
	if (name_new_programs(d))
		return EXIT_SYSTEM;
	t.name = now_ns() - t0;

	t0 = now_ns();
	size_t wrong = check_all(d);
	t.check1 = now_ns() - t0;

	t0 = now_ns();
	if (free_half(d))
		return EXIT_SYSTEM;
	t.free_half = now_ns() - t0;
	t.freed = d->count / 2;

	t0 = now_ns();
	if ((n = load_empty_slots(d, "loading into the holes")) < 0)
		return EXIT_SYSTEM;
	t.reloaded = (size_t)n;
	t.reload = now_ns() - t0;
	t.chunks_reloaded = chunk_count() - t.chunks_loaded;

	t0 = now_ns();
	if (name_new_programs(d))
		return EXIT_SYSTEM;
	t.rename = now_ns() - t0;

	t0 = now_ns();
	wrong += check_all(d);
	t.check2 = now_ns() - t0;

	int wx = procfs_count_wx(wx_first, sizeof(wx_first));
	if (wx < 0 || measure_footprint(d, &fp) || execmem_stats(&st)) {
		fprintf(stderr, "execmem demo: cannot read /proc/self/maps or smaps\n");
		return EXIT_SYSTEM;
	}
	print_report(d, &t, &fp, &st, wx, wx_first, wrong);
	if (wrong || wx) {
		fprintf(stderr, "execmem demo: FAILED: %zu wrong result%s, %d W+X mapping%s\n",
			wrong, wrong == 1 ? "" : "s", wx, wx == 1 ? "" : "s");
		return EXIT_CHECK_FAILED;
	}
	return EXIT_OK;
}

int cmd_demo(int argc, char **argv)
{
	struct demo d = { .size_state = 0x5eed, .next_index = 1 };
	enum execmem_mode mode = EXECMEM_MODE_AUTO;
	bool mode_set = false;
	int rc = parse_demo_options(argc, argv, &d, &mode_set, &mode);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (mode_set && configure_mode(mode))
		return EXIT_SYSTEM;
	d.programs = calloc(d.count, sizeof(*d.programs));
	d.scratch = malloc(MAX_SIZE);
	if (!d.programs || !d.scratch) {
		fprintf(stderr, "execmem demo: out of memory\n");
		return EXIT_SYSTEM;
	}
	rc = run_demo(&d);
	free_all(&d);
	free(d.programs);
	free(d.scratch);
	return rc;
}
