/*
 * bench.c - `execmem bench`: runs every workload of every allocator, each
 * in a fresh child process so that no allocator inherits another's address
 * space, page tables or retained memory, then gathers the samples and
 * prints medians, minima and maxima as a table or as JSON lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_patch.h"
#include "cli.h"

#ifdef EXECMEM_HAVE_MODLOAD
#include "bench_modload.h"
#endif
#ifdef EXECMEM_HAVE_LLVM_PAIR
#include "bench_llvm.h"
#endif

enum { REPEATS = 5, ROUNDS = 3 /* of W1 and W2: see run_rounds() */ };

#define MODLOAD_CHILD "modload" /* pseudo-allocator of the child that runs M1 and M2 */
#define LLVM_CHILD "llvm"       /* pseudo-allocator of the child that runs L1 */
#define PATCH_CHILD "patch"     /* pseudo-allocator of the child that runs P1 */

/* Children that measure two peers, each reported as an allocator of its own. */
struct peer_pair {
	const char *child, *workload;
	const char *peers[2];
	const char *ours; /* the peer whose W+X mappings fail the run */
};
static const struct peer_pair peer_pairs[] = {
	{ LLVM_CHILD, "L1", { "orc-default", "orc-execmem" }, "orc-execmem" },
	{ PATCH_CHILD, "P1", { "execmem-patch", "mprotect-rwx" }, "execmem-patch" },
};
#define NPAIRS (sizeof(peer_pairs) / sizeof(peer_pairs[0]))

void usage_bench(FILE *out)
{
	fprintf(out,
		"usage: execmem bench [--quick] [--json] [--only NAME[,NAME...]] [--workload W[,W...]]\n"
		"\n"
		"Compares execmem with what JIT compilers use today, on this machine, each\n"
		"allocator and workload in a fresh process, every workload repeated %d times;\n"
		"without --quick, W1 and W2 run in %d rounds of a process per allocator:\n"
		"  W1 churn    allocate + write + free 10,000 programs of the demo's size mix\n"
		"              in steady state (after one untimed round)\n"
		"  W2 cycle    allocate + write 64 B + free, one at a time\n"
		"  W3 memory   Pss of the code of 10,000 and 100,000 programs / their size;\n"
		"              after 100,000 random frees and loads; after the demo's refill\n"
		"  W4 calls    calls in random order over 16,384 and 262,144 small programs,\n"
		"              and how much of their code is in 2 MiB pages\n"
		"  W5 threads  W1 in two threads; W1 while another thread runs JIT code\n"
		"  W6 syscalls system calls and page faults per W1 program in steady state\n"
		"  W7 cold     10,000 programs loaded by a fresh process, then again warm\n"
		"  W8 fork     fork() and fork + exec with 1, 16, 64 MiB of live code,\n"
		"              against the same amount of plain memory\n"
		"  S1 scale    1,000,000 live programs: memory, W1, calls (not with --quick)\n"
		"  S2 threads  W1 in 1, 2, 4, 8, 16 threads (not with --quick)\n"
		"  L1 LLVM     (when built with LLVM) JIT 1,000 one-function modules with ORC:\n"
		"              time and Pss of their code, ORC's own memory manager against\n"
		"              execmem's (orc-default, orc-execmem); 100 with --quick\n"
		"  P1 patching hook install + remove, a call through a hook, a trace\n"
		"              thunk and directly; execmem_patch of 1 site, of 1,000 one\n"
		"              call each and in one execmem_patch_batch, against\n"
		"              mprotect(RWX) + memcpy + mprotect(RX) (execmem-patch,\n"
		"              mprotect-rwx)\n"
		"  M1 modules  load a generated 2.5 MiB object; M2 the libcrypto.a members a\n"
		"              SHA/EVP driver needs: against dlopen() of the same code as a\n"
		"              .so, alone and followed by reading each page of its text\n"
		"Allocators: execmem (default mode), execmem-mprotect, page (a mapping per\n"
		"program), mprotect-pool, rwx-bitmap (unsafe reference), asmjit-rwx,\n"
		"asmjit-dual-fill (when built with libasmjit-dev), and floor (W1's copy +\n"
		"trap fill alone, no allocator; W1 and W5 in two threads).\n"
		"\n"
		"  --quick          smaller counts (W1 2,000 programs, W3 10,000 and 2,000\n"
		"                   for churn and refill, W4 16,384, W7 2,000, W8 up to\n"
		"                   4 MiB), no S1 or S2, and the allocators that make system\n"
		"                   calls for every write skip W3 churn/refill, W7 and W8\n"
		"  --json           one JSON object per line instead of a table\n"
		"  --only LIST      run only these allocators (comma-separated names)\n"
		"  --workload LIST  run only these workloads (W1 ... W8, S1, S2; W3 and W5\n"
		"                   include their parts, W3-churn names one part)\n",
		REPEATS, ROUNDS);
}

/* ---- results ------------------------------------------------------------ */

struct row {
	char workload[8], allocator[32], metric[48], unit[16];
	double *samples;
	size_t n, cap;
	bool summarized;        /* median/min/max given by the child (M1, M2) */
	size_t summarized_from; /* the repetitions the child took them over */
	double median, min, max;
};

enum alloc_status { ALLOC_OK, ALLOC_UNAVAILABLE, ALLOC_FAILED };

struct alloc_info {
	const char *name;
	const struct bench_allocator *desc; /* NULL for the pairs' and the module loader's children */
	bool audit_passed;      /* and so runs in the rounds */
	bool peer;              /* a peer's failure is a finding, not an error of the run */
	enum alloc_status status;
	char mode[200], config[256], first_wx[256], reason[256];
	int wx;
	size_t wrong;
	bool audited;
};

struct results {
	struct row *rows;
	size_t nrows, cap;
	struct alloc_info *allocs;
	size_t nallocs;
	bool check_failed, system_failed;
};

static struct row *row_get(struct results *res, const char *workload, const char *allocator,
			   const char *metric, const char *unit)
{
	for (size_t i = 0; i < res->nrows; i++) {
		struct row *r = &res->rows[i];
		if (!strcmp(r->workload, workload) && !strcmp(r->allocator, allocator) &&
		    !strcmp(r->metric, metric))
			return r;
	}
	if (res->nrows == res->cap) {
		size_t cap = res->cap ? res->cap * 2 : 64;
		struct row *rows = realloc(res->rows, cap * sizeof(*rows));
		if (!rows)
			return NULL;
		res->rows = rows;
		res->cap = cap;
	}
	struct row *r = &res->rows[res->nrows++];
	memset(r, 0, sizeof(*r));
	snprintf(r->workload, sizeof(r->workload), "%s", workload);
	snprintf(r->allocator, sizeof(r->allocator), "%s", allocator);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	return r;
}

static void row_add_sample(struct row *r, double v)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		double *s = realloc(r->samples, cap * sizeof(*s));
		if (!s)
			return;
		r->samples = s;
		r->cap = cap;
	}
	r->samples[r->n++] = v;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void row_summarize(struct row *r)
{
	if (r->summarized || r->n == 0)
		return;
	qsort(r->samples, r->n, sizeof(double), compare_doubles);
	r->min = r->samples[0];
	r->max = r->samples[r->n - 1];
	r->median = r->n % 2 ? r->samples[r->n / 2]
			     : (r->samples[r->n / 2 - 1] + r->samples[r->n / 2]) / 2;
	r->summarized = true;
}

static const struct row *row_find(const struct results *res, const char *workload,
				  const char *allocator, const char *metric)
{
	for (size_t i = 0; i < res->nrows; i++) {
		const struct row *r = &res->rows[i];
		if (!strcmp(r->workload, workload) && !strcmp(r->allocator, allocator) &&
		    !strcmp(r->metric, metric) && r->summarized)
			return r;
	}
	return NULL;
}

static void results_free(struct results *res)
{
	for (size_t i = 0; i < res->nrows; i++)
		free(res->rows[i].samples);
	free(res->rows);
	free(res->allocs);
}

/* ---- children ----------------------------------------------------------- */

/* Split a tab-separated line in place; returns the number of fields. */
static size_t split_tabs(char *line, char **fields, size_t max)
{
	size_t n = 0;
	line[strcspn(line, "\n")] = '\0';
	while (n < max) {
		fields[n++] = strsep(&line, "\t");
		if (!line)
			break;
	}
	return n;
}

static bool have_alloc_info(const struct results *res, const char *name)
{
	for (size_t a = 0; a < res->nallocs; a++)
		if (!strcmp(res->allocs[a].name, name))
			return true;
	return false;
}

/* P name wx wrong config: one of a pair of peers, reported as an allocator
 * (once: plan_and_run() made room for two per pair). */
static void take_peer(struct results *res, char **f)
{
	for (size_t p = 0; p < 2 * NPAIRS; p++) {
		const struct peer_pair *pair = &peer_pairs[p / 2];
		const char *name = pair->peers[p % 2];
		if (strcmp(f[1], name) || have_alloc_info(res, name))
			continue;
		struct alloc_info *ai = &res->allocs[res->nallocs++];
		memset(ai, 0, sizeof(*ai));
		ai->name = name;
		ai->peer = strcmp(name, pair->ours) != 0;
		ai->wx = atoi(f[2]);
		ai->wrong = strtoul(f[3], NULL, 10);
		snprintf(ai->mode, sizeof(ai->mode), "%s", f[4]);
		ai->audited = true;
		if (ai->wrong || (ai->wx && !ai->peer))
			res->check_failed = true;
	}
}

static void take_record(struct results *res, struct alloc_info *ai, char *line, int repeats)
{
	char *f[8];
	size_t n = split_tabs(line, f, 8);
	struct row *r;

	if (n == 5 && !strcmp(f[0], "S") && (r = row_get(res, f[1], ai->name, f[2], f[3]))) {
		row_add_sample(r, strtod(f[4], NULL));
	} else if (n == 8 && !strcmp(f[0], "R") && (r = row_get(res, f[1], f[2], f[3], f[4]))) {
		r->median = strtod(f[5], NULL);
		r->min = strtod(f[6], NULL);
		r->max = strtod(f[7], NULL);
		r->summarized = true;
		r->summarized_from = (size_t)repeats;
	} else if (n == 5 && !strcmp(f[0], "A")) {
		snprintf(ai->mode, sizeof(ai->mode), "%s", f[1]);
		ai->wx = atoi(f[2]);
		ai->wrong = strtoul(f[3], NULL, 10);
		snprintf(ai->first_wx, sizeof(ai->first_wx), "%s", f[4]);
		ai->audited = true;
	} else if (n == 5 && !strcmp(f[0], "P")) {
		take_peer(res, f);
	} else if (n == 2 && !strcmp(f[0], "C")) {
		snprintf(ai->config, sizeof(ai->config), "%s", f[1]);
	} else if (n == 2 && !strcmp(f[0], "U")) {
		ai->status = ALLOC_UNAVAILABLE;
		snprintf(ai->reason, sizeof(ai->reason), "%s", f[1]);
	}
}

static pid_t spawn_child(const char *alloc, const char *workload, int repeats, bool quick, int *out_fd)
{
	char reps[16];
	int fds[2];
	pid_t pid;

	snprintf(reps, sizeof(reps), "%d", repeats);
	if (pipe2(fds, O_CLOEXEC))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		char *argv[] = { "execmem", "__bench-child", (char *)alloc, (char *)workload, reps,
				 quick ? "1" : "0", NULL };
		dup2(fds[1], STDOUT_FILENO);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fds[1]);
	if (pid < 0)
		close(fds[0]);
	*out_fd = fds[0];
	return pid;
}

/* Keep going with the allocator's other workloads, and say what failed. */
static void note_failure(struct results *res, struct alloc_info *ai, const char *workload, int status)
{
	size_t used = strlen(ai->reason);
	char *at = ai->reason + used;
	size_t left = sizeof(ai->reason) - used;

	if (!ai->peer && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_CHECK_FAILED)
		res->check_failed = true;
	else if (!ai->peer)
		res->system_failed = true;
	ai->status = ALLOC_FAILED;
	if (used && left > 2) {
		snprintf(at, left, "; ");
		at += 2;
		left -= 2;
	}
	if (WIFSIGNALED(status))
		snprintf(at, left, "%s killed by signal %d (%s)", workload, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(at, left, "%s exited with status %d", workload, WEXITSTATUS(status));
}

/* Run one workload in a fresh process; false when the allocator is out. */
static bool run_child(struct results *res, struct alloc_info *ai, const char *workload, int repeats,
		      bool quick)
{
	const char *child_alloc = !strcmp(workload, "M1") ? MODLOAD_CHILD : ai->name;
	for (size_t p = 0; p < NPAIRS; p++)
		if (!strcmp(workload, peer_pairs[p].workload))
			child_alloc = peer_pairs[p].child;
	char *line = NULL;
	size_t cap = 0;
	int fd, status = 0;
	pid_t pid = spawn_child(child_alloc, workload, repeats, quick, &fd);

	if (pid < 0) {
		fprintf(stderr, "execmem bench: cannot start a child process: %s\n", strerror(errno));
		res->system_failed = true;
		return false;
	}
	FILE *f = fdopen(fd, "r");
	while (f && getline(&line, &cap, f) > 0)
		take_record(res, ai, line, repeats);
	free(line);
	if (f)
		fclose(f);
	else
		close(fd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OK)
		return true;
	if (WIFEXITED(status) && WEXITSTATUS(status) == BENCH_CHILD_UNAVAILABLE)
		return false;
	note_failure(res, ai, workload, status);
	return false;
}

/* ---- plan ---------------------------------------------------------------- */

/* Child workloads; the parts of W3 and W5 run apart (see bench_workloads.c). */
static const char *const all_workloads[] = {
	"W1", "W2", "W3", "W3-churn", "W3-refill", "W4", "W5-threads", "W5-jit-thread", "W6", "W7", "W8",
	"S1", "S2",
};

static void show_running(const char *alloc, const char *workload)
{
	if (isatty(STDERR_FILENO)) {
		fprintf(stderr, "\r  bench: %-18s %-14s", alloc, workload);
		fflush(stderr);
	}
}

/*
 * W4 runs in several processes: code placement differs from one to the
 * next; W7 is about a fresh process, so each of its repetitions has one.
 */
static void run_workload(struct results *res, struct alloc_info *ai, const char *workload, bool quick)
{
	bool across_processes = (!strcmp(workload, "W4") && !quick) || !strcmp(workload, "W7");
	int processes = across_processes ? REPEATS : 1;

	show_running(ai->name, workload);
	for (int p = 0; p < processes; p++)
		if (!run_child(res, ai, workload, across_processes ? 1 : REPEATS, quick))
			break;
}

/* Copy the next name of a comma-separated list into name; false at the end. */
static bool next_name(const char **list, char *name, size_t len)
{
	if (!*list || !**list)
		return false;
	size_t n = strcspn(*list, ",");
	snprintf(name, len, "%.*s", (int)n, *list);
	*list += n + ((*list)[n] == ',');
	return true;
}

static bool selected(const char *only, const char *name)
{
	char candidate[64];
	while (next_name(&only, candidate, sizeof(candidate)))
		if (!strcmp(candidate, name))
			return true;
	return !only;
}

static bool is_newer_workload(const char *workload)
{
	return !strcmp(workload, "W3-churn") || !strcmp(workload, "W3-refill") || !strcmp(workload, "W7") ||
	       !strcmp(workload, "W8");
}

static bool workload_applies(const struct bench_allocator *a, const char *workload, bool quick)
{
	bool threaded = !strncmp(workload, "W5", 2) || !strcmp(workload, "S2");

	if (a->caps & BENCH_FLOOR_ONLY)
		return !strcmp(workload, "W1") || !strcmp(workload, "W5-threads");
	if (quick && workload[0] == 'S')
		return false;
	/* --quick is for checking the report: the slowest peers get the old workloads only. */
	if (quick && (a->caps & BENCH_SYSCALL_PER_WRITE) && is_newer_workload(workload))
		return false;
	/* A million programs would take a million system calls (or mappings). */
	if ((a->caps & BENCH_SYSCALL_PER_WRITE) && !strcmp(workload, "S1"))
		return false;
	if (!(a->caps & BENCH_CAN_EXECUTE) && (!strcmp(workload, "W4") || !strcmp(workload, "W5-jit-thread")))
		return false;
	return (a->caps & BENCH_THREAD_SAFE) || !threaded;
}

/* Does the --workload list name workload ("W3" names W3, W3-churn and W3-refill)? */
static bool workload_selected(const char *list, const char *workload)
{
	char name[32];
	if (!list)
		return true;
	while (next_name(&list, name, sizeof(name))) {
		size_t n = strlen(name);
		if (!strncmp(workload, name, n) && (workload[n] == '\0' || workload[n] == '-'))
			return true;
	}
	return false;
}

static bool workload_known(const char *name)
{
	for (size_t w = 0; w < sizeof(all_workloads) / sizeof(all_workloads[0]); w++)
		if (workload_selected(name, all_workloads[w]))
			return true;
	return false;
}

/*
 * W1 and W2, whose ratios between allocators are goals, run in ROUNDS: in
 * each, every allocator runs once in a process of its own.  This machine
 * has slow phases that last seconds and span processes (W2 of asmjit RWX
 * read 27 ns in some processes and 46 in others, runs of one in a row, with
 * address randomisation off too), and one process per allocator put a
 * phase on one allocator's figure alone.
 */
static bool in_rounds(const char *workload, bool quick)
{
	return !quick && (!strcmp(workload, "W1") || !strcmp(workload, "W2"));
}

static bool runs(const struct bench_allocator *a, const char *workloads, const char *workload, bool quick)
{
	return workload_applies(a, workload, quick) && workload_selected(workloads, workload);
}

/* The audit, then every workload not run in rounds; false when the audit failed. */
static bool run_allocator(struct results *res, struct alloc_info *ai, const struct bench_allocator *a,
			  const char *workloads, bool quick)
{
	show_running(ai->name, "audit");
	if (!run_child(res, ai, "audit", 1, quick))
		return false;
	if (ai->wrong || (ai->wx && !ai->peer))
		res->check_failed = true;
	for (size_t w = 0; w < sizeof(all_workloads) / sizeof(all_workloads[0]); w++)
		if (!in_rounds(all_workloads[w], quick) && runs(a, workloads, all_workloads[w], quick))
			run_workload(res, ai, all_workloads[w], quick);
	return true;
}

static void run_rounds(struct results *res, const char *workloads, bool quick)
{
	for (size_t w = 0; w < sizeof(all_workloads) / sizeof(all_workloads[0]); w++) {
		const char *workload = all_workloads[w];
		if (!in_rounds(workload, quick))
			continue;
		bool *going = calloc(res->nallocs + 1, sizeof(*going));
		for (size_t i = 0; going && i < res->nallocs; i++) {
			const struct alloc_info *ai = &res->allocs[i];
			going[i] = ai->audit_passed && runs(ai->desc, workloads, workload, quick);
		}
		for (int round = 0; going && round < ROUNDS; round++)
			for (size_t i = 0; i < res->nallocs; i++) {
				if (!going[i])
					continue;
				show_running(res->allocs[i].name, workload);
				going[i] = run_child(res, &res->allocs[i], workload, REPEATS, quick);
			}
		if (!going)
			res->system_failed = true;
		free(going);
	}
}

/* Does the --only list name a peer of the pair that runs workload? */
static bool pair_selected(const char *only, const char *workload)
{
	for (size_t p = 0; p < NPAIRS; p++)
		if (!strcmp(peer_pairs[p].workload, workload))
			return !only || selected(only, peer_pairs[p].peers[0]) ||
			       selected(only, peer_pairs[p].peers[1]);
	return false;
}

static bool names_peer(const char *name)
{
	for (size_t p = 0; p < 2 * NPAIRS; p++)
		if (!strcmp(peer_pairs[p / 2].peers[p % 2], name))
			return true;
	return false;
}

static int plan_and_run(struct results *res, const char *only, const char *workloads, bool quick)
{
	size_t n = 0;
	while (bench_allocator_list[n])
		n++;
	/* Besides the allocators: the M1 child, and each pair's child and its two peers. */
	res->allocs = calloc(n + 1 + 3 * NPAIRS, sizeof(*res->allocs));
	if (!res->allocs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct bench_allocator *a = bench_allocator_list[i];
		if (!selected(only, a->name))
			continue;
		struct alloc_info *ai = &res->allocs[res->nallocs++];
		ai->name = a->name;
		ai->desc = a;
		ai->peer = (a->caps & BENCH_PEER) != 0;
		ai->audit_passed = run_allocator(res, ai, a, workloads, quick);
	}
	run_rounds(res, workloads, quick);
#ifdef EXECMEM_HAVE_MODLOAD
	if ((!only || selected(only, "execmem-module") || selected(only, "dlopen")) &&
	    (!workloads || selected(workloads, "M1"))) {
		struct alloc_info *ai = &res->allocs[res->nallocs++];
		ai->name = MODLOAD_CHILD;
		show_running("module loader", "M1");
		run_child(res, ai, "M1", REPEATS, quick);
	}
#endif
#ifdef EXECMEM_HAVE_LLVM_PAIR
	if (pair_selected(only, "L1")) {
		struct alloc_info *ai = &res->allocs[res->nallocs++];
		ai->name = LLVM_CHILD;
		show_running("LLVM ORC", "L1");
		run_child(res, ai, "L1", REPEATS, quick);
	}
#endif
	if (pair_selected(only, "P1") && (!workloads || selected(workloads, "P1"))) {
		struct alloc_info *ai = &res->allocs[res->nallocs++];
		ai->name = PATCH_CHILD;
		show_running("patching", "P1");
		run_child(res, ai, "P1", REPEATS, quick);
	}
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r%50s\r", "");
	for (size_t i = 0; i < res->nrows; i++)
		row_summarize(&res->rows[i]);
	return 0;
}

/* ---- output --------------------------------------------------------------- */

static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_alloc_line(FILE *out, const struct alloc_info *ai)
{
	static const char *const status_names[] = { "ok", "unavailable", "failed" };

	fprintf(out, "{\"allocator\": ");
	json_string(out, ai->name);
	if (ai->audited) {
		fprintf(out, ", \"mode\": ");
		json_string(out, ai->mode);
		fprintf(out, ", \"wx_mappings\": %d, \"wrong_results\": %zu", ai->wx, ai->wrong);
		fprintf(out, ", \"config\": ");
		json_string(out, ai->config);
	}
	fprintf(out, ", \"status\": \"%s\"", status_names[ai->status]);
	if (ai->status != ALLOC_OK) {
		fprintf(out, ", \"reason\": ");
		json_string(out, ai->reason);
	}
	fprintf(out, "}\n");
}

static void json_row(FILE *out, const struct row *r)
{
	fprintf(out, "{\"workload\": ");
	json_string(out, r->workload);
	fprintf(out, ", \"allocator\": ");
	json_string(out, r->allocator);
	fprintf(out, ", \"metric\": ");
	json_string(out, r->metric);
	fprintf(out, ", \"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"samples\": %zu, \"unit\": ",
		r->median, r->min, r->max, r->n ? r->n : r->summarized_from);
	json_string(out, r->unit);
	fprintf(out, "}\n");
}

/* A child that measures a pair of peers; its peers carry the results. */
static bool pair_child(const struct alloc_info *ai)
{
	for (size_t p = 0; p < NPAIRS; p++)
		if (!strcmp(ai->name, peer_pairs[p].child))
			return true;
	return !strcmp(ai->name, MODLOAD_CHILD);
}

static bool row_of(const struct row *r, const struct alloc_info *ai)
{
	if (!strcmp(ai->name, MODLOAD_CHILD))
		return r->workload[0] == 'M';
	return !strcmp(r->allocator, ai->name);
}

static const char *fmt_value(char *buf, size_t len, double v)
{
	snprintf(buf, len, v >= 100 || v == 0 ? "%.0f" : v >= 1 ? "%.2f" : "%.4f", v);
	return buf;
}

/* The load average says how much other work competed with the run. */
static double load_average(void)
{
	double load = -1;
	FILE *f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%lf", &load) != 1)
			load = -1;
		fclose(f);
	}
	return load;
}

/* Where and when the run happened. */
struct run_info {
	struct utsname u;
	char date[32];
	long cpus;
	double load_before, load_after;
	bool quick;
};

static void run_info_get(struct run_info *ri, bool quick, double load_before)
{
	time_t now = time(NULL);

	uname(&ri->u);
	strftime(ri->date, sizeof(ri->date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	ri->cpus = sysconf(_SC_NPROCESSORS_ONLN);
	ri->load_before = load_before;
	ri->load_after = load_average();
	ri->quick = quick;
}

static void json_run_line(FILE *out, const struct run_info *ri)
{
	fprintf(out, "{\"run\": \"execmem bench\", \"quick\": %s, \"date\": ", ri->quick ? "true" : "false");
	json_string(out, ri->date);
	fprintf(out, ", \"machine\": ");
	json_string(out, ri->u.machine);
	fprintf(out, ", \"kernel\": ");
	json_string(out, ri->u.release);
	fprintf(out, ", \"cpus\": %ld, \"load_before\": %.2f, \"load_after\": %.2f}\n", ri->cpus,
		ri->load_before, ri->load_after);
}

static void print_machine(const struct run_info *ri)
{
	printf("execmem bench%s: %s, %s %s, Linux %s, %ld CPUs online\n", ri->quick ? " --quick" : "",
	       ri->date, ri->u.machine, ri->u.nodename, ri->u.release, ri->cpus);
	printf("load average (1 min) before the run %.2f, after %.2f\n", ri->load_before, ri->load_after);
}

static void print_json(const struct results *res, const struct run_info *ri)
{
	json_run_line(stdout, ri);
	for (size_t a = 0; a < res->nallocs; a++) {
		const struct alloc_info *ai = &res->allocs[a];
		if (!pair_child(ai) || ai->status != ALLOC_OK)
			json_alloc_line(stdout, ai);
		for (size_t i = 0; i < res->nrows; i++)
			if (res->rows[i].summarized && row_of(&res->rows[i], ai))
				json_row(stdout, &res->rows[i]);
	}
}

static void print_allocators(const struct results *res)
{
	printf("\n%-18s %-6s %s\n", "allocator", "W+X", "mode; configuration");
	for (size_t a = 0; a < res->nallocs; a++) {
		const struct alloc_info *ai = &res->allocs[a];
		if (pair_child(ai) && ai->status == ALLOC_OK)
			continue;
		if (ai->status == ALLOC_UNAVAILABLE)
			printf("%-18s %-6s unavailable: %s\n", ai->name, "-", ai->reason);
		else if (ai->status == ALLOC_FAILED && !ai->audited)
			printf("%-18s %-6s FAILED: %s\n", ai->name, "-", ai->reason);
		else
			printf("%-18s %-6d %s%s%s%s%s%s\n", ai->name, ai->wx, ai->mode, ai->config[0] ? "; " : "",
			       ai->config,
			       ai->wrong ? " WRONG RESULTS" : "",
			       ai->status == ALLOC_FAILED ? "; FAILED: " : "",
			       ai->status == ALLOC_FAILED ? ai->reason : "");
	}
}

static void print_rows(const struct results *res)
{
	char med[32], lo[32], hi[32];

	for (size_t i = 0; i < res->nrows; i++) {
		const struct row *first = &res->rows[i];
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = !strcmp(res->rows[k].workload, first->workload) &&
			       !strcmp(res->rows[k].metric, first->metric);
		if (seen || !first->summarized)
			continue;
		const struct row *base = row_find(res, first->workload, "execmem", first->metric);
		printf("\n%s %s (%s): median [min .. max]%s\n", first->workload, first->metric, first->unit,
		       base && base->median ? "  / execmem" : "");
		for (size_t k = i; k < res->nrows; k++) {
			const struct row *r = &res->rows[k];
			if (strcmp(r->workload, first->workload) || strcmp(r->metric, first->metric) ||
			    !r->summarized)
				continue;
			printf("  %-18s %10s  [%s .. %s]", r->allocator, fmt_value(med, sizeof(med), r->median),
			       fmt_value(lo, sizeof(lo), r->min), fmt_value(hi, sizeof(hi), r->max));
			if (base && base->median)
				printf("  %.2fx", r->median / base->median);
			printf("\n");
		}
	}
}

/* The goals, computed from the medians of this run. */
struct goal {
	const char *text, *workload, *metric, *numerator, *denominator;
	double target;
	bool at_least;
};

static const struct goal goals[] = {
	{ "W1 execmem / copy floor", "W1", "ns_per_op", "execmem", "floor", 1.25, false },
	{ "W1 execmem / asmjit RWX", "W1", "ns_per_op", "execmem", "asmjit-rwx", 1, false },
	{ "W1 asmjit dual+fill / execmem", "W1", "ns_per_op", "asmjit-dual-fill", "execmem", 2, true },
	{ "W1 page per program / execmem", "W1", "ns_per_op", "page", "execmem", 30, true },
	{ "W2 execmem / asmjit RWX", "W2", "ns_per_op", "execmem", "asmjit-rwx", 1, false },
	{ "W3 Pss / size, 10,000 programs", "W3", "pss_ratio_10000", "execmem", NULL, 1.10, false },
	{ "W3 Pss / size after churn", "W3", "pss_ratio_churn", "execmem", NULL, 1.10, false },
	{ "W3 churn, execmem / asmjit RWX", "W3", "pss_ratio_churn", "execmem", "asmjit-rwx", 1, false },
	{ "W3 Pss / size after refill", "W3", "pss_ratio_refill", "execmem", NULL, 1.10, false },
	{ "W3 refill, execmem / asmjit RWX", "W3", "pss_ratio_refill", "execmem", "asmjit-rwx", 1, false },
	{ "W4 execmem / asmjit RWX, 262,144", "W4", "ns_per_call_262144", "execmem", "asmjit-rwx", 1, false },
	{ "W4 page / execmem, 262,144", "W4", "ns_per_call_262144", "page", "execmem", 4, true },
	{ "W5 two-thread speedup", "W5", "two_thread_speedup", "execmem", NULL, 1.9, true },
	{ "W5 slowdown by a JIT thread", "W5", "jit_thread_slowdown", "execmem", NULL, 1.10, false },
	{ "W6 system calls per op", "W6", "syscalls_per_op", "execmem", NULL, 0, false },
	{ "W6 page faults per op", "W6", "faults_per_op", "execmem", NULL, 0, false },
	{ "W7 cold / warm, 10,000 programs", "W7", "cold_warm_ratio", "execmem", NULL, 1.5, false },
	{ "W7 chunk creation (us)", "W7", "chunk_creation_us", "execmem", NULL, 1000, false },
	{ "W8 fork with 16 MiB / plain", "W8", "fork_ratio_16mib", "execmem", NULL, 1.5, false },
	{ "W8 fork with 64 MiB / plain", "W8", "fork_ratio_64mib", "execmem", NULL, 1.5, false },
	{ "S2 16 threads / 1 thread", "S2", "throughput_vs_1t_16t", "execmem", NULL, 1, true },
	{ "M1 module load / dlopen+text", "M1", "ratio_to_dlopen+text", "execmem-module", NULL, 1.5, false },
	{ "M2 module load / dlopen+text", "M2", "ratio_to_dlopen+text", "execmem-module", NULL, 1.5, false },
	{ "M1 the same in CPU time", "M1", "cpu_ratio_to_dlopen+text", "execmem-module", NULL, 1.5, false },
	{ "M2 the same in CPU time", "M2", "cpu_ratio_to_dlopen+text", "execmem-module", NULL, 1.5, false },
};

/* The goal's value in this run into *value; false when it was not measured. */
static bool goal_value(const struct results *res, const struct goal *gl, double *value)
{
	const struct row *num = row_find(res, gl->workload, gl->numerator, gl->metric);
	const struct row *den = gl->denominator ? row_find(res, gl->workload, gl->denominator, gl->metric) : NULL;

	if (!num || (gl->denominator && (!den || den->median == 0)))
		return false;
	*value = den ? num->median / den->median : num->median;
	return true;
}

static bool goal_met(const struct goal *gl, double value)
{
	return gl->at_least ? value >= gl->target : value <= gl->target;
}

static void print_goals(const struct results *res)
{
	printf("\n%-36s %10s %8s  %s\n", "goal (medians)", "measured", "target", "");
	for (size_t g = 0; g < sizeof(goals) / sizeof(goals[0]); g++) {
		const struct goal *gl = &goals[g];
		char v[32], t[32];
		double value;
		bool measured = goal_value(res, gl, &value);

		printf("%-36s %10s %s%-7s  %s\n", gl->text, measured ? fmt_value(v, sizeof(v), value) : "-",
		       gl->at_least ? ">=" : "<=", fmt_value(t, sizeof(t), gl->target),
		       !measured ? "not measured" : goal_met(gl, value) ? "met" : "MISSED");
	}
}

/* The goals measured, one JSON line each. */
static void json_goals(const struct results *res)
{
	for (size_t g = 0; g < sizeof(goals) / sizeof(goals[0]); g++) {
		const struct goal *gl = &goals[g];
		double value;
		if (!goal_value(res, gl, &value))
			continue;
		printf("{\"goal\": ");
		json_string(stdout, gl->text);
		printf(", \"measured\": %.6g, \"target\": %.6g, \"at_least\": %s, \"met\": %s}\n", value,
		       gl->target, gl->at_least ? "true" : "false", goal_met(gl, value) ? "true" : "false");
	}
}

static void print_table(const struct results *res, const struct run_info *ri)
{
	print_machine(ri);
	print_allocators(res);
	print_rows(res);
	print_goals(res);
}

/* ---- entry points ----------------------------------------------------------- */

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "workload", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct results res = { 0 };
	bool quick = false, json = false;
	const char *only = NULL, *workloads = NULL;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+qjo:w:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q': quick = true; break;
		case 'j': json = true; break;
		case 'o': only = optarg; break;
		case 'w': workloads = optarg; break;
		case 'h': usage_bench(stdout); return EXIT_OK;
		default:
			fprintf(stderr, "execmem bench: bad option '%s' (see execmem help bench)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "execmem bench: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	char name[64];
	for (const char *p = only; next_name(&p, name, sizeof(name));) {
		if (!bench_allocator_find(name) && strcmp(name, "execmem-module") && strcmp(name, "dlopen") &&
		    !names_peer(name)) {
			fprintf(stderr, "execmem bench: --only: unknown allocator '%s'\n", name);
			return EXIT_USAGE;
		}
	}
	for (const char *p = workloads; next_name(&p, name, sizeof(name));) {
		if (!workload_known(name) && strcmp(name, "M1") && strcmp(name, "P1")) {
			fprintf(stderr, "execmem bench: --workload: unknown workload '%s'\n", name);
			return EXIT_USAGE;
		}
	}
	double load_before = load_average();
	if (plan_and_run(&res, only, workloads, quick)) {
		fprintf(stderr, "execmem bench: out of memory\n");
		return EXIT_SYSTEM;
	}
	struct run_info ri;
	run_info_get(&ri, quick, load_before);
	if (json) {
		print_json(&res, &ri);
		json_goals(&res);
	}
	else
		print_table(&res, &ri);
	int rc = res.check_failed ? EXIT_CHECK_FAILED : res.system_failed ? EXIT_SYSTEM : EXIT_OK;
	results_free(&res);
	return rc;
}

#ifdef EXECMEM_HAVE_MODLOAD
static void report_summary(const char *workload, const char *allocator, const char *metric,
			   const char *unit, const struct modload_result *m)
{
	printf("R\t%s\t%s\t%s\t%s\t%.6f\t%.6f\t%.6f\n", workload, allocator, metric, unit,
	       m->median_ms, m->min_ms, m->max_ms);
}

static int run_modload(int repeats, bool quick)
{
	char why[256] = "";
	int err = bench_modload(repeats, quick, report_summary, why, sizeof(why));

	if (err) {
		printf("U\t%s\n", why[0] ? why : strerror(-err));
		return BENCH_CHILD_UNAVAILABLE;
	}
	return EXIT_OK;
}
#endif

#ifdef EXECMEM_HAVE_LLVM_PAIR
static void report_figure(const char *peer, const char *metric, const char *unit,
			  const struct llvm_figure *f)
{
	printf("R\tL1\t%s\t%s\t%s\t%.6f\t%.6f\t%.6f\n", peer, metric, unit, f->median, f->min, f->max);
}

/* At most 3 repetitions: compiling dominates, and the bench runs in tests. */
static int run_llvm_pair(int repeats, bool quick)
{
	struct llvm_peer_result peers[LLVM_PEERS];
	int functions = quick ? 100 : 1000;
	char why[256] = "", jit_metric[32], pss_metric[32];
	int err = bench_llvm(functions, repeats < 3 ? repeats : 3, peers, why, sizeof(why));

	if (err) {
		printf("U\t%s\n", why[0] ? why : strerror(-err));
		return EXIT_SYSTEM;
	}
	snprintf(jit_metric, sizeof(jit_metric), "jit_ms_%d", functions);
	snprintf(pss_metric, sizeof(pss_metric), "code_pss_kib_%d", functions);
	for (int p = 0; p < LLVM_PEERS; p++) {
		printf("P\t%s\t%d\t%zu\t%s\n", peers[p].name, peers[p].wx_mappings,
		       peers[p].wrong_results, peers[p].config);
		report_figure(peers[p].name, jit_metric, "ms", &peers[p].jit_ms);
		report_figure(peers[p].name, pss_metric, "KiB", &peers[p].code_kib);
	}
	return EXIT_OK;
}
#endif

/* argv: __bench-child ALLOCATOR WORKLOAD REPEATS QUICK */
int cmd_bench_child(int argc, char **argv)
{
	uint64_t repeats;

	if (argc != 5 || !parse_count("repeats", argv[3], 1, 1000, &repeats)) {
		fprintf(stderr, "execmem: __bench-child is started by execmem bench\n");
		return EXIT_USAGE;
	}
	bool quick = !strcmp(argv[4], "1");
#ifdef EXECMEM_HAVE_MODLOAD
	if (!strcmp(argv[1], MODLOAD_CHILD))
		return run_modload((int)repeats, quick);
#endif
#ifdef EXECMEM_HAVE_LLVM_PAIR
	if (!strcmp(argv[1], LLVM_CHILD))
		return run_llvm_pair((int)repeats, quick);
#endif
	if (!strcmp(argv[1], PATCH_CHILD))
		return bench_patch((int)repeats, quick);
	const struct bench_allocator *a = bench_allocator_find(argv[1]);
	if (!a) {
		fprintf(stderr, "execmem bench: unknown allocator %s\n", argv[1]);
		return EXIT_USAGE;
	}
	return bench_run_workload(a, argv[2], (int)repeats, quick);
}
