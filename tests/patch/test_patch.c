/*
 * test_patch.c - live patching: execmem_patch() and execmem_patch_batch()
 * of execmem code, and em_poke_batch() of the program's own text, while
 * threads run the code being changed.  `test_patch PART` runs one part:
 *   stress    one function patched 10,000 times while 8 threads call it
 *   multi     a two-instruction sequence replaced while threads run through it
 *   busy      a thread that stays inside the old sequence: -EBUSY, unchanged
 *   batch     1,000 functions patched in one batch, again and again
 *   host      a function of this program's .text, never W+X
 *   refusals  the bad requests and their errors
 *   faults    failures of the OS calls the protocol makes
 *   mdwe      host text under prctl(PR_SET_MDWE), where nothing may gain exec
 *   fork      children forked while another thread patches
 *   chain     the program's own traps and signals reach its own handlers
 *   direct    a change the CPU takes in one store (no trap, no census)
 * Every caller checks each result is the old or the new one; an auditor
 * thread checks the process never has a writable and executable mapping.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "execmem/patch.h"
#include "os.h"
#include "patch/poke.h"
#include "rtest.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
/* No live patching on this architecture: every entry point says so. */
int main(void)
{
	uint8_t byte = 0;
	void *code = execmem_alloc(EXECMEM_CODE, 64);
	struct em_poke_site site = { code, &byte, 1, NULL };
	RT_CHECK(execmem_patch(code, &byte, 1) == -ENOTSUP, "execmem_patch() is not refused");
	RT_CHECK(em_poke_batch(&site, 1) == -ENOTSUP, "em_poke_batch() is not refused");
	void *original = NULL;
	RT_CHECK(execmem_hook((void *)rt_finish, code, &original) == -ENOTSUP && !original,
		 "execmem_hook() is not refused");
	RT_CHECK(execmem_unhook((void *)rt_finish) == -ENOTSUP, "execmem_unhook() is not refused");
	RT_CHECK(execmem_probe(code, NULL, NULL) == -ENOTSUP, "execmem_probe() is not refused");
	RT_CHECK(execmem_unprobe(code) == -ENOTSUP, "execmem_unprobe() is not refused");
	execmem_free(code);
	return rt_finish("unsupported");
}
#else
enum { CALLERS = 8 };

static enum execmem_mode mode;

/* ------------------------------------------------------- machine code */

/* A function returning a constant: the constant's instruction is the site. */
struct fn_code {
	uint8_t bytes[24];
	size_t len;      /* the whole function */
	size_t site_len; /* the instructions a patch replaces, from the start */
};

#if defined(__x86_64__)
/* mov eax, value; ret */
static struct fn_code ret_code(uint32_t value)
{
	struct fn_code c = { { 0xb8 }, 6, 5 };
	memcpy(c.bytes + 1, &value, 4);
	c.bytes[5] = 0xc3;
	return c;
}

/* mov eax, base; add eax, step (imm8); ret: a mix of two shows as a sum
 * that is neither's. */
static struct fn_code sum_code(uint32_t base, uint8_t step)
{
	struct fn_code c = { { 0xb8 }, 9, 8 };
	memcpy(c.bytes + 1, &base, 4);
	c.bytes[5] = 0x83;
	c.bytes[6] = 0xc0;
	c.bytes[7] = step;
	c.bytes[8] = 0xc3;
	return c;
}

/* nop; jmp . ; ret -- a thread spins at its second instruction for good; and
 * what replaces the first two: xor eax, eax; nop (falls through to the ret). */
static struct fn_code spin_code(void)
{
	return (struct fn_code){ { 0x90, 0xeb, 0xfe, 0xc3 }, 4, 3 };
}
static struct fn_code spin_replacement(void)
{
	return (struct fn_code){ { 0x31, 0xc0, 0x90 }, 3, 3 };
}
/* What lets the spinning thread out: its jmp's first byte becomes a ret
 * (one store, no census needed). */
static struct fn_code spin_release(size_t *offset)
{
	*offset = 1;
	return (struct fn_code){ { 0xc3, 0xfe }, 2, 2 };
}
/* xor eax, eax; then the site: mov eax, 1 or mov ecx, 1 (only the first
 * byte differs: one store); ret.  Returns 1 or 0. */
static struct fn_code direct_code(int which, size_t *offset)
{
	*offset = 2;
	return (struct fn_code){ { 0x31, 0xc0, which ? 0xb9 : 0xb8, 1, 0, 0, 0, 0xc3 }, 8, 5 };
}
/* A trap of the program's own before `mov eax, 7; ret`: an INT3 that
 * stays in place, which leaves the PC after itself.  Not INT1 (icebp):
 * some hypervisors report it with the PC still on it, so that the program
 * would meet it again for ever. */
static struct fn_code foreign_trap_code(void)
{
	return (struct fn_code){ { 0xcc, 0xb8, 7, 0, 0, 0, 0xc3 }, 7, 1 };
}
static void skip_foreign_trap(ucontext_t *uc)
{
	(void)uc; /* the PC is past it already */
}
#define HOST_TARGET_BODY "mov $1, %eax\n ret\n"
/* Page replacements of a patch of its first instruction: trap, tail, first byte. */
#define HOST_STEPS 3
#elif defined(__aarch64__)
static void put32(uint8_t *at, uint32_t insn)
{
	memcpy(at, &insn, 4);
}
/* movz w0, #value; ret */
static struct fn_code ret_code(uint32_t value)
{
	struct fn_code c = { { 0 }, 8, 4 };
	put32(c.bytes, 0x52800000u | (value & 0xffff) << 5);
	put32(c.bytes + 4, 0xd65f03c0u);
	return c;
}
/* movz w0, #base; add w0, w0, #step; ret */
static struct fn_code sum_code(uint32_t base, uint8_t step)
{
	struct fn_code c = { { 0 }, 12, 8 };
	put32(c.bytes, 0x52800000u | (base & 0xffff) << 5);
	put32(c.bytes + 4, 0x11000000u | (uint32_t)step << 10);
	put32(c.bytes + 8, 0xd65f03c0u);
	return c;
}
/* nop; b . ; ret, and movz w0, #0; nop */
static struct fn_code spin_code(void)
{
	struct fn_code c = { { 0 }, 12, 8 };
	put32(c.bytes, 0xd503201fu);
	put32(c.bytes + 4, 0x14000000u);
	put32(c.bytes + 8, 0xd65f03c0u);
	return c;
}
static struct fn_code spin_replacement(void)
{
	struct fn_code c = { { 0 }, 8, 8 };
	put32(c.bytes, 0x52800000u);
	put32(c.bytes + 4, 0xd503201fu);
	return c;
}
/* What lets the spinning thread out: its branch becomes a ret (one word,
 * the trap protocol without a census). */
static struct fn_code spin_release(size_t *offset)
{
	struct fn_code c = { { 0 }, 4, 4 };
	put32(c.bytes, 0xd65f03c0u);
	*offset = 4;
	return c;
}
/* The site: nop, or b +12 (both live-swappable: one store); then
 * movz w0, #1; ret; movz w0, #0; ret.  Returns 1 or 0. */
static struct fn_code direct_code(int which, size_t *offset)
{
	struct fn_code c = { { 0 }, 20, 4 };
	put32(c.bytes, which ? 0x14000003u : 0xd503201fu);
	put32(c.bytes + 4, 0x52800000u | 1u << 5);
	put32(c.bytes + 8, 0xd65f03c0u);
	put32(c.bytes + 12, 0x52800000u);
	put32(c.bytes + 16, 0xd65f03c0u);
	*offset = 0;
	return c;
}
/* A trap of the program's own: brk #0; movz w0, #7; ret. */
static struct fn_code foreign_trap_code(void)
{
	struct fn_code c = { { 0 }, 12, 4 };
	put32(c.bytes, 0xd4200000u);
	put32(c.bytes + 4, 0x52800000u | 7u << 5);
	put32(c.bytes + 8, 0xd65f03c0u);
	return c;
}
static void skip_foreign_trap(ucontext_t *uc)
{
	uc->uc_mcontext.pc += 4;
}
#define HOST_TARGET_BODY "mov w0, #1\n ret\n"
/* Page replacements of a patch of its first instruction: trap, new word. */
#define HOST_STEPS 2
#endif

/* A function of this program's own text, alone in its page so that
 * nothing else runs there, in assembly so that every build makes the
 * same bytes. */
uint32_t host_target(void);
__asm__(".text\n .p2align 12\n .globl host_target\n .type host_target, @function\n"
	"host_target:\n " HOST_TARGET_BODY " .size host_target, .-host_target\n .p2align 12\n");

static uint32_t call(const void *code)
{
	uint32_t (*fn)(void);
	memcpy(&fn, &code, sizeof fn);
	return fn();
}

static void *new_function(const struct fn_code *c)
{
	void *code = execmem_alloc(EXECMEM_CODE, c->len);
	if (code && execmem_write(code, c->bytes, c->len) != 0) {
		execmem_free(code);
		return NULL;
	}
	return code;
}

/* n, or less where each patch costs more (under an emulator, user or
 * system: scripts/ci-qemu-system.sh's machine sets EXECMEM_TEST_QEMU_SYSTEM;
 * in a ThreadSanitizer build, whose callers answer the census only when
 * they next call the C library; in an AddressSanitizer build), to stay
 * within a few seconds. */
static unsigned iterations(unsigned n)
{
	if (rt_under_tsan() || rt_under_qemu_user())
		return n / 40;
	if (getenv("EXECMEM_TEST_QEMU_SYSTEM"))
		return n / 10;
	return rt_under_asan() ? n / 4 : n;
}

/* ------------------------------------------------- callers and auditor */

/* Functions the callers run, each returning one of two values. */
struct target {
	void *code;
	uint32_t value[2];
};

struct load {
	struct target *targets;
	size_t n;
	const void *watched_page; /* whose mapping must stay read + execute */
	atomic_bool stop;
	atomic_ulong calls, wrong, audits, wx;
	atomic_uint last_wrong;
};

static void *caller(void *arg)
{
	struct load *l = arg;
	uint64_t seed = (uintptr_t)&seed, calls = 0, wrong = 0;
	while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
		for (int k = 0; k < 64; k++) {
			struct target *t = &l->targets[l->n > 1 ? rt_random(&seed) % l->n : 0];
			uint32_t got = call(t->code);
			if (got != t->value[0] && got != t->value[1]) {
				wrong++;
				atomic_store(&l->last_wrong, got);
			}
		}
		calls += 64;
		/* ThreadSanitizer delivers an asynchronous signal (the census)
		 * only when the thread calls into the C library. */
		if (rt_under_tsan())
			sched_yield();
	}
	atomic_fetch_add(&l->calls, calls);
	atomic_fetch_add(&l->wrong, wrong);
	return NULL;
}

static bool watched_page_ok(const void *page)
{
	uintptr_t start, end;
	char perms[5];
	return !page || (rt_find_mapping(page, &start, &end, perms) && !strncmp(perms, "r-xp", 4));
}

static void *auditor(void *arg)
{
	struct load *l = arg;
	while (!atomic_load(&l->stop)) {
		if (rt_count_wx_mappings() != 0 || !watched_page_ok(l->watched_page))
			atomic_fetch_add(&l->wx, 1);
		atomic_fetch_add(&l->audits, 1);
		usleep(2000);
	}
	return NULL;
}

struct crowd {
	pthread_t callers[CALLERS], audit;
	struct load *load;
};

static void crowd_start(struct crowd *c, struct load *l)
{
	c->load = l;
	for (int i = 0; i < CALLERS; i++)
		pthread_create(&c->callers[i], NULL, caller, l);
	pthread_create(&c->audit, NULL, auditor, l);
}

static void crowd_stop(struct crowd *c, const char *what)
{
	struct load *l = c->load;
	atomic_store(&l->stop, true);
	for (int i = 0; i < CALLERS; i++)
		pthread_join(c->callers[i], NULL);
	pthread_join(c->audit, NULL);
	RT_CHECK(atomic_load(&l->wrong) == 0, "%s: %lu of %lu calls returned neither value (last %u)",
		 what, atomic_load(&l->wrong), atomic_load(&l->calls), atomic_load(&l->last_wrong));
	RT_CHECK(atomic_load(&l->wx) == 0, "%s: %lu of %lu audits saw a W+X mapping or the page not r-x",
		 what, atomic_load(&l->wx), atomic_load(&l->audits));
	RT_CHECK(atomic_load(&l->calls) > 0, "%s: the callers made no call", what);
	printf("%s: %lu calls, all old or new; %lu audits, no W+X\n", what, atomic_load(&l->calls),
	       atomic_load(&l->audits));
}

/* execmem code can only be run as rewritten where the emulator sees it. */
static bool can_run_patched_execmem_code(void)
{
	return rt_can_run_rewritten_code(mode);
}

/* ------------------------------------------------------------- parts */

static void part_stress(void)
{
	uint32_t values[2] = { 1111, 2222 };
	struct fn_code c = ret_code(values[0]), other = ret_code(values[1]);
	struct target t = { new_function(&c), { values[0], values[1] } };
	RT_CHECK(t.code, "alloc: %s", strerror(errno));
	if (!t.code)
		return;
	struct load l = { .targets = &t, .n = 1 };
	struct crowd crowd;
	crowd_start(&crowd, &l);
	unsigned n = iterations(10000), failed = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct fn_code *next = i % 2 ? &c : &other;
		int rc = execmem_patch(t.code, next->bytes, next->site_len);
		failed += rc != 0;
		if (rc && failed == 1)
			fprintf(stderr, "execmem_patch: %s\n", strerror(-rc));
	}
	crowd_stop(&crowd, "stress");
	RT_CHECK(failed == 0, "%u of %u patches failed", failed, n);
	RT_CHECK(call(t.code) == values[n % 2], "after %u patches it returns %u", n, call(t.code));
	printf("stress: %u patches of one function under %d callers\n", n, CALLERS);
	execmem_free(t.code);
}

/* A change the CPU takes in one store: no trap, no census. */
static void part_direct(void)
{
	size_t offset;
	struct fn_code c[2] = { direct_code(0, &offset), direct_code(1, &offset) };
	struct target t = { new_function(&c[0]), { 1, 0 } };
	RT_CHECK(t.code, "alloc: %s", strerror(errno));
	if (!t.code)
		return;
	uint8_t *site = (uint8_t *)t.code + offset;
	struct load l = { .targets = &t, .n = 1 };
	struct crowd crowd;
	uint64_t before[EXECMEM_OS_CALL_MAX], after[EXECMEM_OS_CALL_MAX];
	em_os_counts(before);
	crowd_start(&crowd, &l);
	unsigned n = iterations(10000), failed = 0;
	for (unsigned i = 1; i <= n; i++)
		failed += execmem_patch(site, c[i % 2].bytes + offset, c[i % 2].site_len) != 0;
	crowd_stop(&crowd, "direct");
	em_os_counts(after);
	RT_CHECK(failed == 0, "%u of %u patches failed", failed, n);
	RT_CHECK(call(t.code) == t.value[n % 2], "after %u patches it returns %u", n, call(t.code));
	RT_CHECK(after[EXECMEM_OS_SIGNAL] == before[EXECMEM_OS_SIGNAL],
		 "%llu census signals for changes that need none",
		 (unsigned long long)(after[EXECMEM_OS_SIGNAL] - before[EXECMEM_OS_SIGNAL]));
	printf("direct: %u one-store patches under %d callers, no census\n", n, CALLERS);
	execmem_free(t.code);
}

static void part_multi(void)
{
	struct fn_code a = sum_code(100, 1), b = sum_code(200, 2);
	struct target t = { new_function(&a), { 101, 202 } };
	RT_CHECK(t.code, "alloc: %s", strerror(errno));
	if (!t.code)
		return;
	struct load l = { .targets = &t, .n = 1 };
	struct crowd crowd;
	crowd_start(&crowd, &l);
	unsigned n = iterations(2000), done = 0, busy = 0, other = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct fn_code *next = done % 2 ? &a : &b;
		int rc = execmem_patch(t.code, next->bytes, next->site_len);
		done += rc == 0;
		busy += rc == -EBUSY;
		other += rc != 0 && rc != -EBUSY;
		/* After -EBUSY nothing changed: still the last value written. */
		if (rc == -EBUSY)
			RT_CHECK(!memcmp(t.code, (done % 2 ? &b : &a)->bytes, a.site_len),
				 "-EBUSY changed the bytes");
	}
	crowd_stop(&crowd, "multi");
	RT_CHECK(other == 0, "%u patches failed with another error than -EBUSY", other);
	RT_CHECK(done > n / 2, "only %u of %u patches went through (%u -EBUSY)", done, n, busy);
	printf("multi: %u two-instruction patches under %d callers (%u gave up with -EBUSY)\n", done,
	       CALLERS, busy);
	execmem_free(t.code);
}

static atomic_int spinner_in;

static void *spinner(void *code)
{
	atomic_store(&spinner_in, 1);
	return (void *)(uintptr_t)call(code);
}

static void part_busy(void)
{
	struct fn_code spin = spin_code(), repl = spin_replacement();
	void *code = new_function(&spin);
	RT_CHECK(code, "alloc: %s", strerror(errno));
	if (!code)
		return;
	pthread_t thread;
	pthread_create(&thread, NULL, spinner, code);
	while (!atomic_load(&spinner_in))
		sched_yield();
	usleep(20000); /* well inside its loop by now */
	int rc = execmem_patch(code, repl.bytes, repl.site_len);
	/* ThreadSanitizer holds the census signal back from a thread that
	 * never calls the C library: it cannot be asked, so it is not known
	 * to be outside either. */
	RT_CHECK(rc == -EBUSY || (rt_under_tsan() && rc == -ETIMEDOUT),
		 "patching the sequence a thread spins in: %d, not -EBUSY", rc);
	RT_CHECK(!memcmp(code, spin.bytes, spin.len), "-EBUSY left the code changed");
	size_t offset;
	struct fn_code release = spin_release(&offset);
	rc = execmem_patch((uint8_t *)code + offset, release.bytes, release.site_len);
	RT_CHECK(rc == 0, "letting the thread out: %s", strerror(-rc));
	pthread_join(thread, NULL);
	rc = execmem_patch(code, repl.bytes, repl.site_len);
	RT_CHECK(rc == 0, "patching it once the thread left: %s", strerror(-rc));
	RT_CHECK(call(code) == 0, "the new sequence returns %u, not 0", call(code));
	printf("busy: a thread inside the old sequence makes the patch give up unchanged\n");
	execmem_free(code);
}

static void part_batch(void)
{
	enum { N = 1000 };
	struct target *t = calloc(N, sizeof *t);
	struct execmem_patch_site *sites = calloc(N, sizeof *sites);
	struct fn_code *code[2] = { calloc(N, sizeof **code), calloc(N, sizeof **code) };
	for (unsigned i = 0; i < N; i++) {
		t[i].value[0] = 3 * i + 1;
		t[i].value[1] = 3 * i + 2;
		code[0][i] = ret_code(t[i].value[0]);
		code[1][i] = ret_code(t[i].value[1]);
		t[i].code = new_function(&code[0][i]);
		RT_CHECK(t[i].code, "alloc %u: %s", i, strerror(errno));
		if (!t[i].code)
			return;
	}
	struct load l = { .targets = t, .n = N };
	struct crowd crowd;
	crowd_start(&crowd, &l);
	unsigned rounds = iterations(100), failed = 0;
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < N; i++)
			sites[i] = (struct execmem_patch_site){ t[i].code, code[(r + 1) % 2][i].bytes,
								code[0][i].site_len };
		failed += execmem_patch_batch(sites, N) != 0;
	}
	crowd_stop(&crowd, "batch");
	RT_CHECK(failed == 0, "%u of %u batches failed", failed, rounds);
	unsigned wrong = 0;
	for (unsigned i = 0; i < N; i++)
		wrong += call(t[i].code) != t[i].value[rounds % 2];
	RT_CHECK(wrong == 0, "%u functions do not return their last value", wrong);
	printf("batch: %u batches of %d sites\n", rounds, N);
	for (unsigned i = 0; i < N; i++)
		execmem_free(t[i].code);
	free(code[0]);
	free(code[1]);
	free(sites);
	free(t);
}

static void part_host(void)
{
	uint32_t values[2] = { 1, 7 };
	struct fn_code c = ret_code(values[0]), other = ret_code(values[1]);
	RT_CHECK(!memcmp((void *)host_target, c.bytes, c.len), "host_target is not what was assembled");
	struct target t = { (void *)host_target, { values[0], values[1] } };
	struct load l = { .targets = &t, .n = 1, .watched_page = (void *)host_target };
	struct crowd crowd;
	crowd_start(&crowd, &l);
	unsigned n = iterations(2000), failed = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct fn_code *next = i % 2 ? &c : &other;
		struct em_poke_site site = { (void *)host_target, next->bytes, next->site_len, NULL };
		int rc = em_poke_batch(&site, 1);
		failed += rc != 0;
		if (rc && failed == 1)
			fprintf(stderr, "em_poke_batch: %s\n", strerror(-rc));
	}
	crowd_stop(&crowd, "host");
	RT_CHECK(failed == 0, "%u of %u patches of host text failed", failed, n);
	RT_CHECK(host_target() == values[n % 2], "host_target returns %u", host_target());
	RT_CHECK(execmem_patch((void *)host_target, c.bytes, c.site_len) == -EINVAL,
		 "execmem_patch() took host text");
	printf("host: %u patches of this program's own text under %d callers\n", n, CALLERS);
}

static void part_refusals(void)
{
	struct fn_code c = ret_code(5);
	void *code = new_function(&c);
	void *data = execmem_alloc(EXECMEM_DATA, 64);
	uint8_t bytes[32] = { 0 };
	memcpy(bytes, c.bytes, c.len);
	size_t usable = execmem_usable_size(code);
	static uint8_t heap_like[64];
	struct {
		const char *what;
		void *addr;
		const void *bytes;
		size_t len;
		int expected;
	} cases[] = {
		{ "NULL address", NULL, bytes, c.site_len, -EINVAL },
		{ "NULL bytes", code, NULL, c.site_len, -EINVAL },
		{ "length 0", code, bytes, 0, -EINVAL },
		{ "length over the limit", code, bytes, EXECMEM_PATCH_MAX + 1, -EINVAL },
		{ "data allocation", data, bytes, c.site_len, -EINVAL },
		{ "not execmem memory", heap_like, bytes, c.site_len, -EINVAL },
		{ "range crossing the allocation's end", (uint8_t *)code + usable - 4, bytes, 8, -EINVAL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = execmem_patch(cases[i].addr, cases[i].bytes, cases[i].len);
		RT_CHECK(rc == cases[i].expected, "%s: %d, expected %d", cases[i].what, rc, cases[i].expected);
	}
	struct execmem_patch_site overlapping[2] = { { code, bytes, 8 },
						     { (uint8_t *)code + 4, bytes, 4 } };
	RT_CHECK(execmem_patch_batch(overlapping, 2) == -EINVAL, "overlapping sites accepted");
	RT_CHECK(execmem_patch_batch(NULL, 1) == -EINVAL, "NULL sites accepted");
	RT_CHECK(execmem_patch_batch(NULL, 0) == 0, "an empty batch failed");
	/* em_poke_batch() takes host text, but only executable, not writable. */
	struct em_poke_site not_exec = { heap_like, bytes, c.site_len, NULL };
	RT_CHECK(em_poke_batch(&not_exec, 1) == -EFAULT, "writable data taken as text");
	void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(unmapped, 4096);
	struct em_poke_site gone = { unmapped, bytes, c.site_len, NULL };
	RT_CHECK(em_poke_batch(&gone, 1) == -EFAULT, "unmapped memory taken as text");
	RT_CHECK(!memcmp(code, c.bytes, c.len), "a refused patch changed the code");
	execmem_free(code);
	struct execmem_patch_site freed = { code, bytes, c.site_len };
	RT_CHECK(execmem_patch_batch(&freed, 1) == -EINVAL, "freed code patched");
	execmem_free(data);
	printf("refusals: each bad request refused with its error, nothing changed\n");
}

/* A thread that only sleeps, for the census to have someone to ask. */
static atomic_bool sleeper_stop;
static void *sleeper(void *arg)
{
	(void)arg;
	while (!atomic_load(&sleeper_stop))
		usleep(1000);
	return NULL;
}

/* The program's own handlers, installed before execmem's. */
static atomic_int own_traps, own_census_signals;

static void own_trap_handler(int sig, siginfo_t *si, void *ucontext)
{
	(void)sig;
	(void)si;
	atomic_fetch_add(&own_traps, 1);
	skip_foreign_trap(ucontext);
}

static void own_rt_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&own_census_signals, 1);
}

/* Traps and census-numbered signals that are not execmem's reach the
 * actions the program installed before, after a patch installed its own. */
static void part_chain(void)
{
	struct sigaction trap = { .sa_sigaction = own_trap_handler, .sa_flags = SA_SIGINFO };
	struct sigaction rt = { .sa_handler = own_rt_handler };
	sigaction(SIGTRAP, &trap, NULL);
	sigaction(SIGRTMAX - 2, &rt, NULL);
	struct fn_code a = sum_code(10, 1), b = sum_code(20, 2), foreign = foreign_trap_code();
	void *code = new_function(&a), *trapping = new_function(&foreign);
	RT_CHECK(code && trapping, "alloc: %s", strerror(errno));
	if (!code || !trapping)
		return;
	pthread_t thread;
	pthread_create(&thread, NULL, sleeper, NULL); /* so that a census is sent */
	RT_CHECK(execmem_patch(code, b.bytes, b.site_len) == 0, "the patch that installs the handlers");
	RT_CHECK(call(trapping) == 7, "the code past the program's own trap did not run");
	RT_CHECK(atomic_load(&own_traps) == 1, "the program's trap reached its handler %d times",
		 atomic_load(&own_traps));
	raise(SIGRTMAX - 2);
	RT_CHECK(atomic_load(&own_census_signals) == 1, "a foreign SIGRTMAX-2 reached its handler %d times",
		 atomic_load(&own_census_signals));
	atomic_store(&sleeper_stop, true);
	pthread_join(thread, NULL);
	execmem_free(trapping);
	execmem_free(code);
	printf("chain: the program's own trap and signal go to its handlers\n");
}

/* The patching thread of part_fork. */
struct patcher {
	void *code;
	atomic_bool stop;
	atomic_uint patches;
};

static void *patch_loop(void *arg)
{
	struct patcher *p = arg;
	struct fn_code c[2] = { sum_code(100, 1), sum_code(200, 2) };
	for (unsigned i = 1; !atomic_load(&p->stop); i++)
		if (execmem_patch(p->code, c[i % 2].bytes, c[i % 2].site_len) == 0)
			atomic_fetch_add(&p->patches, 1);
	return NULL;
}

/* A child forked while another thread patches: it must not inherit a
 * trap that no thread of its own will take out, nor the lock held.
 * Exit status: 0, 1 a wrong result, 2 its own patch failed. */
static int fork_child(void *code)
{
	uint32_t got = call(code);
	if (got != 101 && got != 202)
		return 1;
	struct fn_code c = sum_code(300, 3);
	if (execmem_patch(code, c.bytes, c.site_len) != 0 || call(code) != 303)
		return 2;
	return 0;
}

static void part_fork(void)
{
	/* A patch of host text first, before execmem's first allocation, so
	 * that live patching sets up its fork handling before the core does. */
	struct fn_code h = ret_code(1);
	struct em_poke_site host = { (void *)host_target, h.bytes, h.site_len, NULL };
	RT_CHECK(em_poke_batch(&host, 1) == 0, "the first patch, of host text");
	struct fn_code a = sum_code(100, 1);
	struct patcher p = { .code = new_function(&a) };
	RT_CHECK(p.code, "alloc: %s", strerror(errno));
	if (!p.code)
		return;
	pthread_t thread;
	pthread_create(&thread, NULL, patch_loop, &p);
	unsigned forks = iterations(40), bad = 0;
	for (unsigned i = 0; i < forks; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(fork_child(p.code));
		int status = rt_wait_child(pid, 10);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			if (!bad++)
				fprintf(stderr, "child %u: status %#x (exit 1 wrong result, 2 its patch failed;"
					" killed: hung)\n", i, status);
		}
	}
	atomic_store(&p.stop, true);
	pthread_join(thread, NULL);
	RT_CHECK(bad == 0, "%u of %u children forked while patching went wrong", bad, forks);
	RT_CHECK(atomic_load(&p.patches) > 0, "no patch went through meanwhile");
	printf("fork: %u children forked while %u patches were made, each ran and patched its copy\n",
	       forks, atomic_load(&p.patches));
	execmem_free(p.code);
}

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

/* In a child under prctl(PR_SET_MDWE): no mapping may be W+X or become
 * executable again, and host text is patched all the same.  Exit status:
 * 0, 1 the patch failed, 2 MDWE not in force, 3 the kernel has no MDWE. */
static int mdwe_child(void)
{
	if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0)
		return 3;
	/* A page that lost execute permission does not get it back. */
	void *scratch = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED || mprotect(scratch, 4096, PROT_READ | PROT_WRITE) != 0 ||
	    mprotect(scratch, 4096, PROT_READ | PROT_EXEC) == 0)
		return 2;
	struct fn_code c = ret_code(42);
	struct em_poke_site site = { (void *)host_target, c.bytes, c.site_len, NULL };
	return em_poke_batch(&site, 1) == 0 && host_target() == 42 ? 0 : 1;
}

static void part_mdwe(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(mdwe_child());
	int status = rt_wait_child(pid, 30);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "host text under PR_SET_MDWE: child status %#x (exit 1 patch failed, 2 MDWE not in force,"
		 " 3 no MDWE)", status);
	printf("mdwe: host text patched where no mapping may gain execute permission\n");
}

/* One injected failure of call (the nth from now): the patch fails with
 * the error and nothing changes, or (late failures, retried) succeeds. */
static void inject_one(enum execmem_os_call call, const char *name, uint64_t nth, void *addr,
		       const struct fn_code *from, const struct fn_code *to, bool host)
{
	int fds = rt_count_fds();
	struct em_poke_site site = { addr, to->bytes, to->site_len, NULL };
	em_os_fail_nth(call, nth, ENOMEM, 0);
	int rc = host ? em_poke_batch(&site, 1) : execmem_patch(addr, to->bytes, to->site_len);
	uint64_t injected = em_os_failures();
	em_os_fail_clear();
	RT_CHECK(injected == 1, "%s #%llu: %llu failures injected", name, (unsigned long long)nth,
		 (unsigned long long)injected);
	if (rc) {
		RT_CHECK(rc == -ENOMEM, "%s #%llu: %d, not the injected -ENOMEM", name,
			 (unsigned long long)nth, rc);
		RT_CHECK(!memcmp(addr, from->bytes, from->len), "%s #%llu failed but changed the code",
			 name, (unsigned long long)nth);
	} else {
		RT_CHECK(!memcmp(addr, to->bytes, to->len), "%s #%llu: 0 but the code is not new", name,
			 (unsigned long long)nth);
		/* Put it back for the next injection. */
		site.bytes = from->bytes;
		rc = host ? em_poke_batch(&site, 1) : execmem_patch(addr, from->bytes, from->site_len);
		RT_CHECK(rc == 0, "putting the code back: %s", strerror(-rc));
	}
	RT_CHECK(rt_count_fds() == fds, "%s #%llu: %d descriptors, %d before", name,
		 (unsigned long long)nth, rt_count_fds(), fds);
	RT_CHECK(rt_count_wx_mappings() == 0, "%s #%llu: a W+X mapping", name, (unsigned long long)nth);
}

static void part_faults(void)
{
	pthread_t thread;
	pthread_create(&thread, NULL, sleeper, NULL);
	/* The census: a multi-instruction site needs it. */
	struct fn_code a = sum_code(10, 1), b = sum_code(20, 2);
	void *code = new_function(&a);
	RT_CHECK(code, "alloc: %s", strerror(errno));
	if (!code)
		return;
	inject_one(EXECMEM_OS_SIGNAL, "signal", 1, code, &a, &b, false);
	inject_one(EXECMEM_OS_THREADS, "threads", 1, code, &a, &b, false);
	if (mode == EXECMEM_MODE_MPROTECT)
		for (uint64_t nth = 1; nth <= 6; nth++)
			inject_one(EXECMEM_OS_MPROTECT, "mprotect", nth, code, &a, &b, false);
	/* Host text: memfd, mmap, the seals, at every step of the protocol. */
	struct fn_code h = ret_code(1), h2 = ret_code(9);
	for (uint64_t nth = 1; nth <= HOST_STEPS; nth++) {
		inject_one(EXECMEM_OS_MEMFD, "memfd", nth, (void *)host_target, &h, &h2, true);
		inject_one(EXECMEM_OS_MMAP, "mmap", nth, (void *)host_target, &h, &h2, true);
		inject_one(EXECMEM_OS_FCNTL, "fcntl", nth, (void *)host_target, &h, &h2, true);
		inject_one(EXECMEM_OS_FTRUNCATE, "ftruncate", nth, (void *)host_target, &h, &h2, true);
	}
	/* membarrier missing: the census round synchronises instead. */
	uint64_t counts[EXECMEM_OS_CALL_MAX];
	em_os_counts(counts);
	uint64_t signals = counts[EXECMEM_OS_SIGNAL];
	em_os_fail_nth(EXECMEM_OS_MEMBARRIER, 1, ENOSYS, 1);
	int rc = execmem_patch(code, b.bytes, b.site_len);
	em_os_fail_clear();
	em_os_counts(counts);
	RT_CHECK(rc == 0, "without membarrier: %s", strerror(-rc));
	RT_CHECK(counts[EXECMEM_OS_SIGNAL] - signals >= 4,
		 "without membarrier: %llu signals, expected a census per synchronisation",
		 (unsigned long long)(counts[EXECMEM_OS_SIGNAL] - signals));
	if (can_run_patched_execmem_code())
		RT_CHECK(call(code) == 22, "without membarrier it returns %u", call(code));
	atomic_store(&sleeper_stop, true);
	pthread_join(thread, NULL);
	execmem_free(code);
	printf("faults: each injected failure reported with nothing changed, or absorbed\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
		bool runs_execmem_code;
	} parts[] = {
		{ "stress", part_stress, true },   { "multi", part_multi, true },
		{ "busy", part_busy, true },       { "batch", part_batch, true },
		{ "host", part_host, false },      { "refusals", part_refusals, false },
		{ "faults", part_faults, false },   { "mdwe", part_mdwe, false },
		{ "fork", part_fork, true },       { "chain", part_chain, false },
		{ "direct", part_direct, true },
	};
	mode = rt_mode_under_test();
	for (size_t i = 0; argc == 2 && i < sizeof parts / sizeof parts[0]; i++) {
		if (strcmp(argv[1], parts[i].name))
			continue;
		if (parts[i].runs_execmem_code && !can_run_patched_execmem_code())
			return RT_SKIP;
		parts[i].run();
		return rt_finish(parts[i].name);
	}
	fprintf(stderr, "usage: test_patch stress|multi|busy|batch|host|refusals|faults|mdwe|fork|chain|direct\n");
	return 2;
}
#endif
