/*
 * test_faults.c - systematic fault injection.  For each kind of OS call
 * (memfd, ftruncate, fcntl, mmap, munmap, mprotect, madvise, membarrier,
 * icache flush, other), a clean run of the workload counts the calls it
 * makes; then, for every k up to that count, a fresh child process runs the
 * workload with the k-th call of that kind failing.  Each child checks that
 * the failure reached the caller as an error (or was absorbed with every
 * result still right), that no result is ever wrong, that no W+X mapping
 * appears, that its arena gives back every mapping and descriptor, and that
 * the allocator works again once the fault is gone; in sanitizer builds
 * LeakSanitizer checks the child's heap at exit.  A child per run means the
 * first use of the default arena and the process-wide set-up are injected
 * too.  Last, a refused memfd or shared mapping (EPERM/EACCES, as under
 * SELinux) must switch the "auto" mode to mprotect, and say so in the stats.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os.h"
#include "rtest.h"

static enum execmem_mode mode;

static const char *const call_names[EXECMEM_OS_CALL_MAX] = {
	"memfd", "ftruncate", "fcntl", "mmap", "munmap", "mprotect",
	"madvise", "membarrier", "flush_icache", "other", "signal", "threads",
};

enum { MAX_LIVE = 16 };

/* What one run of the workload saw. */
struct outcome {
	unsigned errors;   /* calls that reported an error */
	unsigned wrong;    /* results that were wrong: never acceptable */
	unsigned leaks;    /* mappings or descriptors the arena kept after destroy */
	struct {
		void *code;
		uint32_t value;
	} live[MAX_LIVE];  /* programs written and checked, still expected to run */
};

static void note_wrong(struct outcome *out, const char *what)
{
	out->wrong++;
	fprintf(stderr, "  wrong result: %s\n", what);
}

static void forget_program(struct outcome *out, void *code)
{
	for (int i = 0; i < MAX_LIVE; i++)
		if (out->live[i].code == code)
			out->live[i].code = NULL;
}

static void remember_program(struct outcome *out, void *code, uint32_t value)
{
	forget_program(out, code);
	for (int i = 0; i < MAX_LIVE; i++) {
		if (!out->live[i].code) {
			out->live[i].code = code;
			out->live[i].value = value;
			return;
		}
	}
}

/* A failure must not break code that was fine: every program still runs. */
static void check_live_programs(struct outcome *out)
{
	for (int i = 0; i < MAX_LIVE; i++)
		if (out->live[i].code && !rt_program_returns(mode, out->live[i].code, out->live[i].value))
			note_wrong(out, "a failure broke a program written before it");
}

static void note_error(struct outcome *out, int err, const char *what)
{
	out->errors++;
	/* Allocation reports ENOMEM; the rest pass the OS error on (here ENOMEM). */
	if (err != ENOMEM) {
		out->wrong++;
		fprintf(stderr, "  %s failed with errno %d, not the injected ENOMEM\n", what, err);
	}
	check_live_programs(out);
}

/* Returns whether rc (0 or -errno) succeeded, noting an error otherwise. */
static bool call_ok(struct outcome *out, int rc, const char *what)
{
	if (rc != 0)
		note_error(out, -rc, what);
	return rc == 0;
}

static void *alloc_ok(struct outcome *out, struct execmem_arena *arena, enum execmem_type type, size_t size)
{
	void *p = arena ? execmem_arena_alloc(arena, type, size) : execmem_alloc(type, size);
	if (!p)
		note_error(out, errno, "alloc");
	return p;
}

/* Writes "return value" into code and checks it runs (or reads) right;
 * returns whether it does. */
static bool program(struct outcome *out, void *code, uint32_t value)
{
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value);
	if (!code)
		return false;
	forget_program(out, code); /* a failed rewrite may leave it half written */
	if (!call_ok(out, execmem_write(code, bytes, len), "write"))
		return false;
	if (!rt_program_returns(mode, code, value)) {
		note_wrong(out, "program returned another value");
		return false;
	}
	remember_program(out, code, value);
	return true;
}

/* Same through a write window. */
static void program_in_window(struct outcome *out, void *code, uint32_t value)
{
	uint8_t *window = code ? execmem_write_begin(code) : NULL;
	if (!code)
		return;
	forget_program(out, code);
	if (!window) {
		note_error(out, errno, "write_begin");
		return;
	}
	size_t len = rt_emit_return(window, value);
	(void)len;
	if (!call_ok(out, execmem_write_end(code), "write_end"))
		return;
	if (rt_program_returns(mode, code, value))
		remember_program(out, code, value);
	else
		note_wrong(out, "program written in a window returned another value");
}

/* A free that cannot refill the memory (mprotect mode) may report the OS
 * error; the allocation must then still be live, and a second free work. */
static void free_ok(struct outcome *out, void *p)
{
	forget_program(out, p);
	int rc = p ? execmem_free(p) : 0;
	if (rc == 0)
		return;
	if (rc == -EINVAL) {
		note_wrong(out, "free of a live allocation said EINVAL");
		return;
	}
	note_error(out, -rc, "free");
	if (execmem_free(p) != 0)
		note_wrong(out, "free after a failed free");
}

/* First use of the default arena: the process-wide set-up happens here. */
static void default_arena_work(struct outcome *out)
{
	void *code = alloc_ok(out, NULL, EXECMEM_CODE, 100);
	program(out, code, 11);
	free_ok(out, code);
}

/* Data that is written, sealed and read back. */
static void sealed_data_work(struct outcome *out, struct execmem_arena *arena)
{
	uint8_t *data = alloc_ok(out, arena, EXECMEM_RO_AFTER_INIT, 100);
	if (!data)
		return;
	data[0] = 0x42; /* plainly writable before the seal */
	if (call_ok(out, execmem_seal(data), "seal") && data[0] != 0x42)
		note_wrong(out, "sealed data changed");
	free_ok(out, data);
}

static void rodata_work(struct outcome *out, struct execmem_arena *arena)
{
	static const uint8_t table[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t *rodata = alloc_ok(out, arena, EXECMEM_RODATA, 200);
	if (rodata && call_ok(out, execmem_write(rodata + 8, table, sizeof(table)), "write rodata") &&
	    memcmp(rodata + 8, table, sizeof(table)) != 0)
		note_wrong(out, "rodata bytes");
	free_ok(out, rodata);
}

/* Everything an arena does in its life, from create to destroy. */
static void arena_life(struct outcome *out, struct execmem_arena *arena)
{
	static const size_t sizes[] = { 64, 200, 4096, 3 * 4096, EXECMEM_CHUNK_SIZE + 4096 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	void *code[N];
	for (int i = 0; i < N; i++) {
		code[i] = alloc_ok(out, arena, i == 1 ? EXECMEM_CODE_NEAR : EXECMEM_CODE, sizes[i]);
		program(out, code[i], 100 + (uint32_t)i);
	}
	program_in_window(out, code[2], 7);
	program(out, code[0], 8); /* rewrite code that ran */
	forget_program(out, code[3]);
	if (code[3] && call_ok(out, execmem_invalidate(code[3], 64), "invalidate") &&
	    !rt_is_trap_filled(code[3], 64))
		note_wrong(out, "invalidated code does not trap");
	int rc = execmem_sync_cores();
	if (rc != 0 && rc != -ENOSYS && rc != -EPERM)
		note_error(out, -rc, "sync_cores");
	sealed_data_work(out, arena);
	rodata_work(out, arena);
	check_live_programs(out);
	for (int i = 0; i < N; i++)
		free_ok(out, code[i]);
	struct execmem_stats stats;
	if (execmem_arena_stats(arena, &stats) != 0 || stats.live_allocations != 0)
		note_wrong(out, "stats after freeing everything");
}

/* Mapped bytes and open descriptors of the process. */
struct footprint {
	size_t mappings, bytes;
	int fds;
};

/*
 * What an arena's life may add to the process for good: the first one also
 * grows execmem's address map and the C library's heap.  The clean run
 * measures it; an injected run that adds more has leaked.
 */
static struct footprint allowed_growth = { SIZE_MAX, SIZE_MAX, 1 << 30 };
static struct footprint measured_growth;

/* What a child sends back: its verdict bits, or the clean run's counts. */
struct report {
	int status;             /* exit status, -1 for a crash */
	uint64_t calls;         /* calls of the kind asked about */
	struct footprint growth;
};

static struct footprint footprint(void)
{
	struct footprint f;
	rt_mapping_totals(&f.mappings, &f.bytes);
	f.fds = rt_count_fds();
	return f;
}

static void arena_work(struct outcome *out)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = mode;
	struct footprint before = footprint();
	struct execmem_arena *arena = execmem_arena_create(&params);
	if (!arena) {
		note_error(out, errno, "arena_create");
	} else {
		arena_life(out, arena);
		if (execmem_arena_destroy(arena) != 0)
			note_wrong(out, "arena_destroy failed");
	}
	struct footprint after = footprint();
	measured_growth.bytes = after.bytes > before.bytes ? after.bytes - before.bytes : 0;
	measured_growth.fds = after.fds > before.fds ? after.fds - before.fds : 0;
	if (measured_growth.bytes > allowed_growth.bytes || measured_growth.fds > allowed_growth.fds) {
		out->leaks++;
		fprintf(stderr, "  arena left %zu bytes mapped and %d descriptors open (%zu and %d expected)\n",
			measured_growth.bytes, measured_growth.fds, allowed_growth.bytes, allowed_growth.fds);
	}
}

static struct outcome workload(void)
{
	struct outcome out = { .errors = 0 };
	default_arena_work(&out);
	arena_work(&out);
	return out;
}

/* ---- one child per run ---- */

/* Child's verdict bits, its exit status. */
enum { CHILD_WRONG = 1, CHILD_LEAK = 2, CHILD_WX = 4, CHILD_UNUSABLE = 8, CHILD_REPORTED = 16,
       CHILD_INJECTED = 32 };

/* Runs the workload with the nth call of `call` failing, then once more clean. */
static int injected_child(enum execmem_os_call call, uint64_t nth, int err, struct report *report)
{
	(void)report;
	em_os_fail_nth(call, nth, err, 0);
	struct outcome out = workload();
	uint64_t injected = em_os_failures();
	em_os_fail_clear();
	int verdict = (out.wrong ? CHILD_WRONG : 0) | (out.leaks ? CHILD_LEAK : 0) |
		      (rt_count_wx_mappings() ? CHILD_WX : 0) | (out.errors ? CHILD_REPORTED : 0) |
		      (injected ? CHILD_INJECTED : 0);
	struct outcome again = workload();
	if (again.errors || again.wrong || again.leaks)
		verdict |= CHILD_UNUSABLE;
	return verdict;
}

/* Forks a child running fn(call, nth, err, &report); returns the report. */
static struct report in_child(int (*fn)(enum execmem_os_call, uint64_t, int, struct report *),
			      enum execmem_os_call call, uint64_t nth, int err)
{
	struct report report = { .status = -1 };
	int fds[2];
	if (pipe(fds) != 0)
		return report;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		report.status = fn(call, nth, err, &report);
		if (write(fds[1], &report, sizeof(report)) != (ssize_t)sizeof(report))
			report.status = 254;
		exit(report.status); /* exit(), not _exit(): LeakSanitizer runs at exit */
	}
	close(fds[1]);
	/* The report fits in the pipe: the child never blocks writing it. */
	int status = pid > 0 ? rt_wait_child(pid, 30) : -1;
	bool got = status != -1 && read(fds[0], &report, sizeof(report)) == (ssize_t)sizeof(report);
	close(fds[0]);
	if (!got || !WIFEXITED(status))
		report.status = -1;
	else
		report.status = WEXITSTATUS(status);
	return report;
}

/* Counts, in a child, the calls of `call` one clean workload makes, and
 * what an arena's life leaves behind when nothing fails. */
static int counting_child(enum execmem_os_call call, uint64_t unused, int unused_err, struct report *report)
{
	(void)unused;
	(void)unused_err;
	uint64_t before[EXECMEM_OS_CALL_MAX], after[EXECMEM_OS_CALL_MAX];
	em_os_counts(before);
	struct outcome out = workload();
	em_os_counts(after);
	report->calls = after[call] - before[call];
	report->growth = measured_growth;
	return out.errors || out.wrong || out.leaks ? 1 : 0;
}

struct tally {
	unsigned runs, reported, absorbed, bad, not_injectable;
};

static void inject_every_call_of(enum execmem_os_call call, struct tally *total)
{
	struct report clean = in_child(counting_child, call, 0, 0);
	RT_CHECK(clean.status == 0, "clean workload failed (status %d)", clean.status);
	int calls = clean.status == 0 ? (int)clean.calls : 0;
	allowed_growth = clean.growth;
	struct tally tally = { 0, 0, 0, 0, 0 };
	for (int k = 1; k <= calls; k++) {
		int verdict = in_child(injected_child, call, (uint64_t)k, ENOMEM).status;
		bool bad = verdict < 0 || (verdict & (CHILD_WRONG | CHILD_LEAK | CHILD_WX | CHILD_UNUSABLE));
		RT_CHECK(!bad, "%s call %d failing: verdict %#x (crash/hang -1, wrong 1, leak 2, W+X 4, unusable 8;"
			 " 23 is LeakSanitizer's exit status);"
			 " rerun alone with: reliability_faults %s %d", call_names[call], k, verdict,
			 call_names[call], k);
		tally.runs++;
		if (bad)
			tally.bad++;
		else if (!(verdict & CHILD_INJECTED))
			tally.not_injectable++; /* counted but cannot fail, like close() */
		else if (verdict & CHILD_REPORTED)
			tally.reported++;
		else
			tally.absorbed++;
	}
	printf("  %-12s %3d calls: %3u reported to the caller, %3u absorbed with correct results,"
	       " %u cannot fail, %u bad\n", call_names[call], calls, tally.reported, tally.absorbed,
	       tally.not_injectable, tally.bad);
	total->runs += tally.runs;
	total->reported += tally.reported;
	total->absorbed += tally.absorbed;
	total->bad += tally.bad;
	total->not_injectable += tally.not_injectable;
}

/* ---- automatic fallback ---- */

/* An "auto" arena whose first code allocation runs in mprotect mode and says so. */
static int auto_arena_ends_in_mprotect_mode(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = EXECMEM_MODE_AUTO;
	struct execmem_arena *arena = execmem_arena_create(&params);
	void *code = arena ? rt_new_program(arena, 64, 6) : NULL;
	struct execmem_stats stats;
	if (!code || !rt_program_returns(EXECMEM_MODE_MPROTECT, code, 6))
		return 2;
	if (execmem_arena_stats(arena, &stats) != 0 || stats.mode != EXECMEM_MODE_MPROTECT)
		return 3;
	return execmem_arena_destroy(arena) == 0 ? 0 : 4;
}

/* With every memfd refused, "auto" must run in mprotect mode and say so. */
static int refused_memfd_child(enum execmem_os_call call, uint64_t unused, int err, struct report *report)
{
	(void)unused;
	(void)report;
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = EXECMEM_MODE_AUTO;
	unsetenv("EXECMEM_MODE"); /* the environment must not force a mode here */
	em_os_fail_nth(call, 1, err, 1);
	if (execmem_configure(&params) != 0)
		return 1;
	void *code = rt_new_program(NULL, 64, 5);
	struct execmem_stats stats;
	if (!code || !rt_program_returns(EXECMEM_MODE_MPROTECT, code, 5) || execmem_stats(&stats) != 0)
		return 2;
	if (stats.mode != EXECMEM_MODE_MPROTECT)
		return 3;
	int status = auto_arena_ends_in_mprotect_mode();
	return status ? status : execmem_free(code) == 0 ? 0 : 5;
}

/* Counts the mmap calls of an "auto" arena's first code chunk; one of
 * them maps the memfd executable. */
static int first_chunk_mmaps_child(enum execmem_os_call call, uint64_t unused, int err, struct report *report)
{
	(void)unused;
	(void)err;
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = EXECMEM_MODE_AUTO;
	struct execmem_arena *arena = execmem_arena_create(&params);
	uint64_t before[EXECMEM_OS_CALL_MAX], after[EXECMEM_OS_CALL_MAX];
	em_os_counts(before);
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, 64) : NULL;
	em_os_counts(after);
	report->calls = after[call] - before[call];
	return code && execmem_arena_destroy(arena) == 0 ? 0 : 1;
}

/* Outcomes of refusing one mmap of an "auto" arena's first chunk. */
enum { REFUSAL_FELL_BACK = 10, REFUSAL_STAYED_DUAL = 11, REFUSAL_REPORTED = 12 };

static int refused_mmap_child(enum execmem_os_call call, uint64_t nth, int err, struct report *report)
{
	(void)report;
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = EXECMEM_MODE_AUTO;
	struct execmem_arena *arena = execmem_arena_create(&params);
	em_os_fail_nth(call, nth, err, 0);
	void *code = arena ? rt_new_program(arena, 64, 9) : NULL;
	em_os_fail_clear();
	struct execmem_stats stats;
	if (!code)
		return errno == ENOMEM || errno == err ? REFUSAL_REPORTED : 1;
	if (execmem_arena_stats(arena, &stats) != 0 || !rt_program_returns(stats.mode, code, 9))
		return 2;
	if (execmem_arena_destroy(arena) != 0)
		return 3;
	return stats.mode == EXECMEM_MODE_MPROTECT ? REFUSAL_FELL_BACK : REFUSAL_STAYED_DUAL;
}

/* Each mmap of a first chunk refused in turn: the refusal of the
 * executable shared mapping must be among those that fall back. */
static void test_refused_exec_mapping(int err)
{
	struct report mmaps = in_child(first_chunk_mmaps_child, EXECMEM_OS_MMAP, 0, 0);
	RT_CHECK(mmaps.status == 0 && mmaps.calls > 0, "counting mmaps of a first chunk: status %d", mmaps.status);
	unsigned fell_back = 0;
	for (uint64_t k = 1; k <= mmaps.calls && mmaps.status == 0; k++) {
		int status = in_child(refused_mmap_child, EXECMEM_OS_MMAP, k, err).status;
		RT_CHECK(status >= REFUSAL_FELL_BACK, "mmap %d of a first chunk refused (%s): child status %d",
			 (int)k, strerror(err), status);
		fell_back += status == REFUSAL_FELL_BACK;
	}
	RT_CHECK(fell_back > 0, "no refused mmap (%s) made auto mode fall back to mprotect", strerror(err));
}

static void test_refusals_fall_back(void)
{
	static const int refusals[] = { EPERM, EACCES };
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		int status = in_child(refused_memfd_child, EXECMEM_OS_MEMFD, 0, refusals[i]).status;
		RT_CHECK(status == 0, "auto mode with memfd refused (%s): child status %d (2 no code, 3 stats say dual)",
			 strerror(refusals[i]), status);
		test_refused_exec_mapping(refusals[i]);
	}
	printf("auto mode falls back to mprotect when memfd or the executable shared mapping is refused"
	       " (EPERM, EACCES)\n");
}

/* `reliability_faults KIND K`: one injection, in this process, verbosely. */
static int run_one(const char *kind, const char *nth)
{
	for (int call = 0; call < EXECMEM_OS_CALL_MAX; call++) {
		if (strcmp(call_names[call], kind) != 0)
			continue;
		allowed_growth = in_child(counting_child, (enum execmem_os_call)call, 0, 0).growth;
		int verdict = injected_child((enum execmem_os_call)call, strtoull(nth, NULL, 0), ENOMEM, NULL);
		printf("verdict %#x (wrong 1, leak 2, W+X 4, unusable 8, reported 16, injected 32)\n", verdict);
		return verdict & (CHILD_WRONG | CHILD_LEAK | CHILD_WX | CHILD_UNUSABLE);
	}
	fprintf(stderr, "unknown call kind %s\n", kind);
	return 2;
}

int main(int argc, char **argv)
{
	/* A fixed threshold: glibc raises a dynamic one when a large block is
	 * freed, and the heap then grows for blocks it used to map, which the
	 * footprint comparison would count as an arena's leak. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mode = rt_mode_under_test();
	if (argc == 3)
		return run_one(argv[1], argv[2]);
	printf("fault injection, %s mode: every call of each kind fails in turn\n", execmem_mode_name(mode));
	struct tally total = { 0, 0, 0, 0, 0 };
	for (int call = 0; call < EXECMEM_OS_CALL_MAX; call++)
		inject_every_call_of((enum execmem_os_call)call, &total);
	printf("fault injection: %u runs: %u reported, %u absorbed, %u on calls that cannot fail, %u bad\n",
	       total.runs, total.reported, total.absorbed, total.not_injectable, total.bad);
	test_refusals_fall_back();
	return rt_finish("faults");
}
