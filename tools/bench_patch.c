/*
 * bench_patch.c - P1 of `execmem bench`: hooks and live patches.
 *
 * Two peers, measured in one process, their repetitions interleaved:
 *   execmem-patch  execmem_hook()/execmem_unhook() on a function of this
 *                  program, a call through the hook against a direct call,
 *                  and execmem_patch() / execmem_patch_batch() of
 *                  execmem code: 1 site, and 1,000 sites one call each or
 *                  in one batch;
 *   mprotect-rwx   the same patches made the way hooking libraries make
 *                  them: mprotect(RWX) over the site's pages, memcpy,
 *                  mprotect(RX), instruction cache flush; a batch makes one
 *                  mprotect pair over the whole range.  W+X while it
 *                  patches, and nothing keeps other threads from running
 *                  half-written instructions.
 * The hooks also run a function through an `execmem trace` thunk, and the
 * two clocks a thunk could read are timed: the tick counter it reads and
 * clock_gettime(CLOCK_MONOTONIC).
 * Each site is a small function `return imm` 64 bytes from the next; a
 * patch changes imm, and every function is called after each round to
 * check that it returns the new value (wrong results are reported).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_patch.h"
#include "cli.h"
#include "execmem/patch.h"
#include "trace_thunk.h"

enum { SITES = 1000, SITE_STRIDE = 64, MAX_REPEATS = 64 };

#define REGION_BYTES ((size_t)SITES * SITE_STRIDE)

/* ---- the sites ----------------------------------------------------------- */

#if defined(__x86_64__)
enum { SITE_PATCH_LEN = 5 }; /* mov eax, imm32 */

static size_t site_code(uint8_t *out, uint32_t value)
{
	out[0] = 0xb8;
	memcpy(out + 1, &value, 4);
	out[5] = 0xc3; /* ret */
	return 6;
}
#elif defined(__aarch64__)
enum { SITE_PATCH_LEN = 4 }; /* movz w0, #imm16 */

static size_t site_code(uint8_t *out, uint32_t value)
{
	uint32_t insns[2] = { 0x52800000u | (value & 0xffffu) << 5, 0xd65f03c0u /* ret */ };
	memcpy(out, insns, sizeof(insns));
	return sizeof(insns);
}
#endif

#if defined(__x86_64__) || defined(__aarch64__)

/* The value site i returns after round r (fits the 16 bits of aarch64's movz). */
static uint32_t site_value(size_t i, unsigned round)
{
	return (uint32_t)((i * 7 + round * 131 + 1) & 0xffff);
}

/* A region of SITES functions, each returning site_value(i, 0). */
static void fill_region(uint8_t *region)
{
	memset(region, 0, REGION_BYTES);
	for (size_t i = 0; i < SITES; i++)
		site_code(region + i * SITE_STRIDE, site_value(i, 0));
}

/* The new first instruction of every site for round r. */
struct round_bytes {
	uint8_t bytes[SITES][8];
};

static void round_bytes_make(struct round_bytes *rb, unsigned round)
{
	for (size_t i = 0; i < SITES; i++)
		site_code(rb->bytes[i], site_value(i, round));
}

/* Calls every site of region and counts those that do not return round's values (site 0: value0). */
static size_t wrong_sites(const uint8_t *region, unsigned round, size_t count)
{
	size_t wrong = 0;
	for (size_t i = 0; i < count; i++) {
		unsigned (*fn)(void) = (unsigned (*)(void))(uintptr_t)(region + i * SITE_STRIDE);
		wrong += fn() != site_value(i, round);
	}
	return wrong;
}

/* ---- the peers ---------------------------------------------------------------- */

struct patcher {
	const char *name;
	uint8_t *code;   /* where the sites run */
	int (*patch_one)(struct patcher *p, void *addr, const void *bytes, size_t len);
	int (*patch_all)(struct patcher *p, const struct round_bytes *rb);
	long page;
};

static int execmem_one(struct patcher *p, void *addr, const void *bytes, size_t len)
{
	(void)p;
	return execmem_patch(addr, bytes, len);
}

static int execmem_all(struct patcher *p, const struct round_bytes *rb)
{
	static struct execmem_patch_site sites[SITES];
	for (size_t i = 0; i < SITES; i++)
		sites[i] = (struct execmem_patch_site){ p->code + i * SITE_STRIDE, rb->bytes[i],
							SITE_PATCH_LEN };
	return execmem_patch_batch(sites, SITES);
}

/* mprotect over the pages of [addr, addr + len). */
static int protect_range(struct patcher *p, void *addr, size_t len, int prot)
{
	uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(p->page - 1);
	uintptr_t end = ((uintptr_t)addr + len + (uintptr_t)p->page - 1) & ~(uintptr_t)(p->page - 1);
	return mprotect((void *)start, end - start, prot) ? -errno : 0;
}

static int mprotect_one(struct patcher *p, void *addr, const void *bytes, size_t len)
{
	int rc = protect_range(p, addr, len, PROT_READ | PROT_WRITE | PROT_EXEC);
	if (rc)
		return rc;
	memcpy(addr, bytes, len);
	rc = protect_range(p, addr, len, PROT_READ | PROT_EXEC);
	__builtin___clear_cache((char *)addr, (char *)addr + len);
	return rc;
}

static int mprotect_all(struct patcher *p, const struct round_bytes *rb)
{
	int rc = protect_range(p, p->code, REGION_BYTES, PROT_READ | PROT_WRITE | PROT_EXEC);
	if (rc)
		return rc;
	for (size_t i = 0; i < SITES; i++)
		memcpy(p->code + i * SITE_STRIDE, rb->bytes[i], SITE_PATCH_LEN);
	rc = protect_range(p, p->code, REGION_BYTES, PROT_READ | PROT_EXEC);
	__builtin___clear_cache((char *)p->code, (char *)p->code + REGION_BYTES);
	return rc;
}

static int execmem_setup(struct patcher *p, char *why, size_t whylen)
{
	static uint8_t initial[REGION_BYTES];
	p->code = execmem_alloc(EXECMEM_CODE, REGION_BYTES);
	if (!p->code) {
		snprintf(why, whylen, "execmem_alloc: %s", strerror(errno));
		return -errno;
	}
	fill_region(initial);
	int rc = execmem_write(p->code, initial, REGION_BYTES);
	if (rc)
		snprintf(why, whylen, "execmem_write: %s", strerror(-rc));
	return rc;
}

static int mprotect_setup(struct patcher *p, char *why, size_t whylen)
{
	p->code = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->code == MAP_FAILED) {
		snprintf(why, whylen, "mmap: %s", strerror(errno));
		return -errno;
	}
	fill_region(p->code);
	if (protect_range(p, p->code, REGION_BYTES, PROT_READ | PROT_EXEC)) {
		snprintf(why, whylen, "mprotect(RX): %s", strerror(errno));
		return -errno;
	}
	__builtin___clear_cache((char *)p->code, (char *)p->code + REGION_BYTES);
	/* Refused under PR_SET_MDWE, and by some hardened kernels: then the peer is out. */
	if (protect_range(p, p->code, 1, PROT_READ | PROT_WRITE | PROT_EXEC)) {
		snprintf(why, whylen, "mprotect(RWX) refused: %s", strerror(errno));
		return -errno;
	}
	protect_range(p, p->code, 1, PROT_READ | PROT_EXEC);
	return 0;
}

/* ---- samples -------------------------------------------------------------------- */

struct samples {
	double v[MAX_REPEATS];
	int n;
};

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *peer, const char *metric, const char *unit, struct samples *s)
{
	if (!s->n)
		return;
	qsort(s->v, (size_t)s->n, sizeof(double), compare_doubles);
	double median = s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
	printf("R\tP1\t%s\t%s\t%s\t%.6f\t%.6f\t%.6f\n", peer, metric, unit, median, s->v[0],
	       s->v[s->n - 1]);
}

static void add(struct samples *s, double v)
{
	s->v[s->n++] = v;
}

/* The patch figures of one peer. */
struct patch_figures {
	struct samples one_us, each_ms, batch_ms;
	size_t wrong;
	int error;
};

/*
 * One repetition of a peer: one site patched `single` times (alternating
 * between two rounds' bytes), then all sites one call each, then all in one
 * batch, each round checked by calling every site.
 */
static void patch_round(struct patcher *p, struct patch_figures *f, unsigned rep, int single)
{
	static struct round_bytes rb;
	unsigned round = 1 + 3 * rep;
	uint64_t t0 = now_ns();

	for (int k = 0; k < single && !f->error; k++) {
		uint8_t bytes[8];
		site_code(bytes, site_value(0, round + (unsigned)(k & 1)));
		f->error = p->patch_one(p, p->code, bytes, SITE_PATCH_LEN);
	}
	add(&f->one_us, (double)(now_ns() - t0) / single / 1e3);
	f->wrong += wrong_sites(p->code, round + (unsigned)((single - 1) & 1), 1);

	round_bytes_make(&rb, round + 1);
	t0 = now_ns();
	for (size_t i = 0; i < SITES && !f->error; i++)
		f->error = p->patch_one(p, p->code + i * SITE_STRIDE, rb.bytes[i], SITE_PATCH_LEN);
	add(&f->each_ms, (double)(now_ns() - t0) / 1e6);
	f->wrong += wrong_sites(p->code, round + 1, SITES);

	round_bytes_make(&rb, round + 2);
	t0 = now_ns();
	if (!f->error)
		f->error = p->patch_all(p, &rb);
	add(&f->batch_ms, (double)(now_ns() - t0) / 1e6);
	f->wrong += wrong_sites(p->code, round + 2, SITES);
}

/* ---- hooks ------------------------------------------------------------------------ */

static long (*target_original)(long);
static long (*volatile call_target)(long);

/* Long enough to be hooked; the loop keeps the compiler from folding it. */
__attribute__((noinline)) static long hook_target(long x)
{
	long acc = x;
	for (int i = 0; i < 3; i++)
		acc = acc * 33 + i;
	return acc;
}

__attribute__((noinline)) static long hook_replacement(long x)
{
	return target_original(x) + 1;
}

struct hook_figures {
	struct samples install_remove_us, direct_ns, hooked_ns, traced_ns;
	size_t wrong;
	int error;
	char why[192]; /* execmem_last_error() of the failure */
};

struct clock_figures {
	struct samples ticks_ns, gettime_ns;
};

static double ns_per_call(long calls, long *sum)
{
	uint64_t t0 = now_ns();
	for (long i = 0; i < calls; i++)
		*sum += call_target(i);
	return (double)(now_ns() - t0) / (double)calls;
}

/* A call through a trace thunk hooked on the target: what `execmem trace` adds to a call. */
static int traced_round(struct hook_figures *f, long calls, long direct_sum)
{
	static struct trace_counters counters;
	long traced_sum = 0;
	void *thunk = trace_thunk_create(&counters, (void *)hook_target);

	if (!thunk)
		return -errno;
	int rc = execmem_hook((void *)hook_target, thunk, &counters.original);
	if (!rc) {
		uint64_t before = __atomic_load_n(&counters.calls, __ATOMIC_RELAXED);
		add(&f->traced_ns, ns_per_call(calls, &traced_sum));
		rc = execmem_unhook((void *)hook_target);
		f->wrong += traced_sum != direct_sum;
		f->wrong += __atomic_load_n(&counters.calls, __ATOMIC_RELAXED) - before != (uint64_t)calls;
	}
	/* Only this thread calls the target: after execmem_unhook() nothing runs the thunk. */
	trace_thunk_destroy(thunk);
	return rc;
}

/* The two clocks a thunk could read, per reading. */
static void clock_round(struct clock_figures *f, long reads)
{
	volatile uint64_t sink = 0;
	struct timespec ts;
	uint64_t t0 = now_ns();

	for (long i = 0; i < reads; i++)
		sink += trace_ticks();
	add(&f->ticks_ns, (double)(now_ns() - t0) / (double)reads);
	t0 = now_ns();
	for (long i = 0; i < reads; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		sink += (uint64_t)ts.tv_nsec;
	}
	add(&f->gettime_ns, (double)(now_ns() - t0) / (double)reads);
	(void)sink;
}

static void hook_round(struct hook_figures *f, int pairs, long calls)
{
	long direct_sum = 0, hooked_sum = 0;
	uint64_t t0 = now_ns();

	call_target = hook_target;
	for (int k = 0; k < pairs && !f->error; k++) {
		f->error = execmem_hook((void *)hook_target, (void *)hook_replacement,
					(void **)&target_original);
		if (!f->error)
			f->error = execmem_unhook((void *)hook_target);
	}
	add(&f->install_remove_us, (double)(now_ns() - t0) / pairs / 1e3);
	if (f->error)
		return;
	add(&f->direct_ns, ns_per_call(calls, &direct_sum));
	f->error = execmem_hook((void *)hook_target, (void *)hook_replacement, (void **)&target_original);
	if (f->error)
		return;
	add(&f->hooked_ns, ns_per_call(calls, &hooked_sum));
	f->error = execmem_unhook((void *)hook_target);
	f->wrong += hooked_sum != direct_sum + calls; /* every hooked call adds one */
	if (!f->error)
		f->error = traced_round(f, calls, direct_sum);
	f->wrong += hook_target(5) != (((5 * 33) * 33 + 1) * 33 + 2);
	if (f->error) {
		const char *why = execmem_last_error();
		snprintf(f->why, sizeof(f->why), "%s", why && *why ? why : strerror(-f->error));
	}
}

/* ---- the child ------------------------------------------------------------------------ */

/* "; " prefix text at the end of config. */
static void append(char *config, size_t size, const char *prefix, const char *text)
{
	size_t len = strlen(config);
	snprintf(config + len, size - len, "; %s%s", prefix, text);
}

static void print_peer(const char *name, size_t wrong, const char *config, int wx)
{
	printf("P\t%s\t%d\t%zu\t%s\n", name, wx, wrong, config);
}

int bench_patch(int repeats, bool quick)
{
	struct patcher peers[2] = {
		{ .name = "execmem-patch", .patch_one = execmem_one, .patch_all = execmem_all },
		{ .name = "mprotect-rwx", .patch_one = mprotect_one, .patch_all = mprotect_all },
	};
	static struct patch_figures figures[2];
	static struct hook_figures hooks;
	static struct clock_figures clocks;
	char why[2][192] = { "", "" };
	bool ok[2];
	struct execmem_stats st;
	int single = quick ? 20 : 100, pairs = quick ? 10 : 100;
	long calls = quick ? 100000 : 1000000;

	repeats = repeats < 5 ? 5 : repeats > MAX_REPEATS ? MAX_REPEATS : repeats;
	for (int p = 0; p < 2; p++)
		peers[p].page = sysconf(_SC_PAGESIZE);
	ok[0] = !execmem_setup(&peers[0], why[0], sizeof(why[0]));
	ok[1] = !mprotect_setup(&peers[1], why[1], sizeof(why[1]));
	for (int r = 0; r < repeats; r++) {
		for (int p = 0; p < 2; p++)
			if (ok[p] && !figures[p].error)
				patch_round(&peers[p], &figures[p], (unsigned)r, single);
		if (ok[0] && !hooks.error)
			hook_round(&hooks, pairs, calls);
		clock_round(&clocks, calls);
	}

	char config[2][448];
	snprintf(config[0], sizeof(config[0]),
		 "mode %s; execmem_patch of %d-byte sites %d B apart in one execmem allocation, "
		 "execmem_patch_batch of all %d; hooks on a function of the command",
		 execmem_stats(&st) ? "?" : execmem_mode_name(st.mode), SITE_PATCH_LEN, SITE_STRIDE,
		 SITES);
	snprintf(config[1], sizeof(config[1]),
		 "mprotect(RWX) of the site's pages + memcpy + mprotect(RX) + cache flush per site; "
		 "batch: one mprotect pair over all %d sites; W+X while patching, no thread protocol",
		 SITES);
	for (int p = 0; p < 2; p++) {
		if (!ok[p])
			append(config[p], sizeof(config[p]), "", why[p]);
		else if (figures[p].error)
			append(config[p], sizeof(config[p]), "patching failed: ", strerror(-figures[p].error));
	}
	if (ok[0] && hooks.error)
		append(config[0], sizeof(config[0]), "hooks failed: ", hooks.why);
	for (int p = 0; p < 2; p++) {
		print_peer(peers[p].name, figures[p].wrong + (p == 0 ? hooks.wrong : 0), config[p],
			   p == 1);
		if (!ok[p] || figures[p].error)
			continue;
		report(peers[p].name, "patch_1_site_us", "us", &figures[p].one_us);
		report(peers[p].name, "patch_1000_sites_each_ms", "ms", &figures[p].each_ms);
		report(peers[p].name, "patch_1000_sites_batch_ms", "ms", &figures[p].batch_ms);
	}
	if (ok[0] && !hooks.error) {
		report(peers[0].name, "hook_install_remove_us", "us", &hooks.install_remove_us);
		report(peers[0].name, "call_direct_ns", "ns", &hooks.direct_ns);
		report(peers[0].name, "call_hooked_ns", "ns", &hooks.hooked_ns);
		report(peers[0].name, "call_traced_ns", "ns", &hooks.traced_ns);
	}
	report(peers[0].name, "clock_ticks_ns", "ns", &clocks.ticks_ns);
	report(peers[0].name, "clock_gettime_ns", "ns", &clocks.gettime_ns);
	if (figures[0].wrong || figures[1].wrong || hooks.wrong)
		return EXIT_CHECK_FAILED;
	return ok[0] && !figures[0].error && !hooks.error ? EXIT_OK : EXIT_SYSTEM;
}

#else

int bench_patch(int repeats, bool quick)
{
	(void)repeats;
	(void)quick;
	printf("U\tpatching is measured on x86-64 and aarch64 only\n");
	return BENCH_CHILD_UNAVAILABLE;
}

#endif
