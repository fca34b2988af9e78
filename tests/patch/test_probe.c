/*
 * test_probe.c - execmem_probe(): the handler sees the thread's
 * registers at the probed instruction, its changes to them are what the
 * code continues with, the flags and the vector registers the code relies
 * on survive a handler that clobbers them, probes come and go while threads
 * run the probed code, and the refusals say why.
 */
#include "execmem/patch.h"
#include "hook_subjects.h"
#include "rtest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#define ARG0(r) ((r)->rdi)
#define RET0(r) ((r)->rax)
#define PC(r) ((r)->rip)
#define SP(r) ((r)->rsp)
/* the return address is on top of the caller's stack at a function's entry */
#define ENTRY_SP_MOD16 8
#else
#define ARG0(r) ((r)->x[0])
#define RET0(r) ((r)->x[0])
#define PC(r) ((r)->pc)
#define SP(r) ((r)->sp)
#define ENTRY_SP_MOD16 0
#define A64(w) (uint8_t)(w), (uint8_t)((w) >> 8), (uint8_t)((w) >> 16), (uint8_t)((w) >> 24)
#define A64_NOP A64(0xd503201fu)
#define A64_RET A64(0xd65f03c0u)
#endif

static atomic_long handler_calls;
static struct execmem_regs seen;

/* Clobbers the flags and xmm0..: what any C code may do. */
static void record(void *ctx, struct execmem_regs *regs)
{
	volatile double d = (double)ARG0(regs);
	d = d * 1.5 + 2.0;
	seen = *regs;
	handler_calls++;
	if (ctx)
		RET0(regs) = *(uint64_t *)ctx;
}

static long (*arith)(long); /* gcc -O2: 7a + 3 */

static void *place(const uint8_t *bytes, size_t len)
{
	void *code = execmem_alloc(EXECMEM_CODE, 64);
	RT_CHECK(code && execmem_write(code, bytes, len) == 0, "%s", execmem_last_error());
	return code;
}

static void test_entry(void)
{
	RT_CHECK(execmem_probe((void *)arith, record, NULL) == 0, "%s", execmem_last_error());
	long (*volatile fn)(long) = arith;
	long calls = handler_calls;
	RT_CHECK(fn(5) == 38, "probed arith(5) = %ld", fn(5));
	RT_CHECK(handler_calls == calls + 1, "handler calls %ld", handler_calls - calls);
	RT_CHECK(ARG0(&seen) == 5 && PC(&seen) == (uintptr_t)arith, "first argument %lu pc %#lx",
		 (unsigned long)ARG0(&seen), (unsigned long)PC(&seen));
	RT_CHECK(SP(&seen) % 16 == ENTRY_SP_MOD16, "sp at entry %#lx", (unsigned long)SP(&seen));
	RT_CHECK(execmem_unprobe((void *)arith) == 0, "%s", execmem_last_error());
	calls = handler_calls;
	RT_CHECK(fn(5) == 38 && handler_calls == calls, "unprobed");
}

/* return 1, the probe before the return: the handler's value is returned */
#if defined(__x86_64__)
static const uint8_t return_one[] = { 0xb8, 1, 0, 0, 0, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };
#define RETURN_ONE_PROBE 5
#else
static const uint8_t return_one[] = { A64(0xd2800020u), A64_NOP, A64_RET };
#define RETURN_ONE_PROBE 4
#endif

static void test_changed_register(void)
{
	uint8_t *code = place(return_one, sizeof return_one);
	uint8_t *at = code + RETURN_ONE_PROBE;
	uint64_t value = 99;
	RT_CHECK(execmem_probe(at, record, &value) == 0, "%s", execmem_last_error());
	RT_CHECK(((long (*)(void))(uintptr_t)code)() == 99, "the handler's return register");
	RT_CHECK(RET0(&seen) == 1 && PC(&seen) == (uintptr_t)at, "%lu at the probe",
		 (unsigned long)RET0(&seen));
	RT_CHECK(execmem_unprobe(at) == 0, "%s", execmem_last_error());
	RT_CHECK(((long (*)(void))(uintptr_t)code)() == 1, "unprobed");
	execmem_free(code);
}

/* compare the arguments, (probe), return whether they were equal */
#if defined(__x86_64__)
/* cmp rdi, rsi; 5 nops; sete al; movzx eax, al; ret */
static const uint8_t equal[] = { 0x48, 0x39, 0xf7, 0x90, 0x90, 0x90, 0x90, 0x90,
				 0x0f, 0x94, 0xc0, 0x0f, 0xb6, 0xc0, 0xc3 };
#define EQUAL_PROBE 3
#else
/* cmp x0, x1; nop; cset x0, eq; ret */
static const uint8_t equal[] = { A64(0xeb01001fu), A64_NOP, A64(0x9a9f17e0u), A64_RET };
#define EQUAL_PROBE 4
#endif

static void test_flags(void)
{
	uint8_t *code = place(equal, sizeof equal);
	RT_CHECK(execmem_probe(code + EQUAL_PROBE, record, NULL) == 0, "%s", execmem_last_error());
	long (*eq)(long, long) = (long (*)(long, long))(uintptr_t)code;
	RT_CHECK(eq(3, 3) == 1 && eq(3, 4) == 0, "flags across the handler");
	RT_CHECK(execmem_unprobe(code + EQUAL_PROBE) == 0, "%s", execmem_last_error());
	execmem_free(code);
}

/* the argument kept in a vector register across the probe, returned */
#if defined(__x86_64__)
/* movq xmm0, rdi; 5 nops; movq rax, xmm0; ret */
static const uint8_t through_vector[] = { 0x66, 0x48, 0x0f, 0x6e, 0xc7, 0x90, 0x90, 0x90, 0x90,
					  0x90, 0x66, 0x48, 0x0f, 0x7e, 0xc0, 0xc3 };
#define VECTOR_PROBE 5
#else
/* fmov d0, x0; nop; fmov x0, d0; ret */
static const uint8_t through_vector[] = { A64(0x9e670000u), A64_NOP, A64(0x9e660000u), A64_RET };
#define VECTOR_PROBE 4
#endif

static void test_vector_state(void)
{
	uint8_t *code = place(through_vector, sizeof through_vector);
	RT_CHECK(execmem_probe(code + VECTOR_PROBE, record, NULL) == 0, "%s", execmem_last_error());
	long (*fn)(long) = (long (*)(long))(uintptr_t)code;
	RT_CHECK(fn(0x123456789) == 0x123456789, "the vector register across the handler");
	RT_CHECK(execmem_unprobe(code + VECTOR_PROBE) == 0, "%s", execmem_last_error());
	execmem_free(code);
}

static atomic_bool stop;
static atomic_ulong wrong;

static void *caller(void *arg)
{
	(void)arg;
	long (*volatile fn)(long) = arith;
	for (long i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++)
		if (fn(i & 255) != 7 * (i & 255) + 3)
			wrong++;
	return NULL;
}

/* -EBUSY (a thread stayed inside the bytes) and -ETIMEDOUT (a thread did
 * not answer the census in time, which a loaded machine can make happen):
 * nothing changed, the operation is tried again. */
static bool unchanged(int rc)
{
	return rc == -EBUSY || rc == -ETIMEDOUT;
}

/* The handler of many threads at once: it shares nothing but a count. */
static void count(void *ctx, struct execmem_regs *regs)
{
	(void)ctx;
	(void)regs;
	handler_calls++;
}

/* Probes come and go while 4 threads run the probed function. */
static void test_threads(void)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, caller, NULL);
	unsigned n = rt_under_qemu_user() ? 20 : rt_under_tsan() || rt_under_asan() ? 100 : 300;
	unsigned failed = 0;
	for (unsigned i = 0; i < n && failed < 5; i++) {
		int rc, tries = 0;
		do
			rc = execmem_probe((void *)arith, count, NULL);
		while (unchanged(rc) && ++tries < 100);
		while (rc == 0 && unchanged(rc = execmem_unprobe((void *)arith)) && ++tries < 200)
			;
		if (rc) {
			failed++;
			fprintf(stderr, "cycle %u: %d %s\n", i, rc, execmem_last_error());
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("%u probe+unprobe cycles under 4 calling threads, %ld handler calls\n", n,
	       (long)handler_calls);
	RT_CHECK(failed == 0 && wrong == 0, "%u failed cycles, %lu wrong results", failed,
		 (unsigned long)wrong);
}

static void hooked_replacement(void)
{
}

static void test_refusals(void)
{
	RT_CHECK(execmem_probe(NULL, record, NULL) == -EINVAL, "NULL address");
	RT_CHECK(execmem_probe((void *)arith, NULL, NULL) == -EINVAL, "NULL handler");
	RT_CHECK(execmem_unprobe((void *)arith) == -ENOENT, "unprobe without a probe");
	RT_CHECK(execmem_probe((void *)arith, record, NULL) == 0, "%s", execmem_last_error());
	RT_CHECK(execmem_probe((void *)arith, record, NULL) == -EEXIST, "probed twice");
	printf("refused: %s\n", execmem_last_error());
	void *orig;
	RT_CHECK(execmem_hook((void *)arith, (void *)hooked_replacement, &orig) == -EEXIST,
		 "hooked where a probe is");
	RT_CHECK(execmem_unhook((void *)arith) == -ENOENT, "a probe removed as a hook");
	printf("refused: %s\n", execmem_last_error());
	RT_CHECK(execmem_unprobe((void *)arith) == 0, "%s", execmem_last_error());
	/* a trap: padding, or a breakpoint */
#if defined(__x86_64__)
	static const uint8_t tiny[] = { 0xcc, 0xc3, 0xcc, 0xcc, 0xcc, 0xcc };
#else
	static const uint8_t tiny[] = { A64(0xd4200000u), A64_RET };
#endif
	uint8_t *code = place(tiny, sizeof tiny);
	RT_CHECK(execmem_probe(code, record, NULL) == -ENOEXEC, "probed a ret");
	RT_CHECK(strstr(execmem_last_error(), "too short") != NULL, "%s", execmem_last_error());
	printf("refused: %s\n", execmem_last_error());
	execmem_free(code);
}

int main(void)
{
	for (const struct hook_subject *s = hook_subjects_gcc_O2; s->name; s++)
		if (!strcmp(s->name, "arith"))
			arith = s->fn;
	test_entry();
	test_changed_register();
	test_flags();
	test_vector_state();
	test_refusals();
	test_threads();
	return rt_finish("test_probe");
}
