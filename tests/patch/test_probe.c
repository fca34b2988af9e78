/*
 * test_probe.c - execmem_probe() on x86-64: the handler sees the thread's
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

static atomic_long handler_calls;
static struct execmem_regs seen;

/* Clobbers the flags and xmm0..: what any C code may do. */
static void record(void *ctx, struct execmem_regs *regs)
{
	volatile double d = (double)regs->rdi;
	d = d * 1.5 + 2.0;
	seen = *regs;
	handler_calls++;
	if (ctx)
		regs->rax = *(uint64_t *)ctx;
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
	RT_CHECK(seen.rdi == 5 && seen.rip == (uintptr_t)arith, "rdi %lu rip %#lx",
		 (unsigned long)seen.rdi, (unsigned long)seen.rip);
	/* the return address is on top of the caller's stack */
	RT_CHECK(seen.rsp % 16 == 8, "rsp at entry %#lx", (unsigned long)seen.rsp);
	RT_CHECK(execmem_unprobe((void *)arith) == 0, "%s", execmem_last_error());
	calls = handler_calls;
	RT_CHECK(fn(5) == 38 && handler_calls == calls, "unprobed");
}

/* mov eax, 1; (probe) 5 nops; ret: the handler's rax is returned. */
static void test_changed_register(void)
{
	static const uint8_t fn[] = { 0xb8, 1, 0, 0, 0, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };
	uint8_t *code = place(fn, sizeof fn);
	uint64_t value = 99;
	RT_CHECK(execmem_probe(code + 5, record, &value) == 0, "%s", execmem_last_error());
	RT_CHECK(((int (*)(void))(uintptr_t)code)() == 99, "the handler's rax");
	RT_CHECK(seen.rax == 1 && seen.rip == (uintptr_t)(code + 5), "rax %lu at the probe",
		 (unsigned long)seen.rax);
	RT_CHECK(execmem_unprobe(code + 5) == 0, "%s", execmem_last_error());
	RT_CHECK(((int (*)(void))(uintptr_t)code)() == 1, "unprobed");
	execmem_free(code);
}

/* cmp edi, esi; (probe) 5 nops; sete al; movzx eax, al; ret */
static void test_flags(void)
{
	static const uint8_t fn[] = { 0x39, 0xf7, 0x90, 0x90, 0x90, 0x90, 0x90,
				      0x0f, 0x94, 0xc0, 0x0f, 0xb6, 0xc0, 0xc3 };
	uint8_t *code = place(fn, sizeof fn);
	RT_CHECK(execmem_probe(code + 2, record, NULL) == 0, "%s", execmem_last_error());
	int (*eq)(int, int) = (int (*)(int, int))(uintptr_t)code;
	RT_CHECK(eq(3, 3) == 1 && eq(3, 4) == 0, "flags across the handler");
	RT_CHECK(execmem_unprobe(code + 2) == 0, "%s", execmem_last_error());
	execmem_free(code);
}

/* movq xmm0, rdi; (probe) 5 nops; movq rax, xmm0; ret */
static void test_vector_state(void)
{
	static const uint8_t fn[] = { 0x66, 0x48, 0x0f, 0x6e, 0xc7, 0x90, 0x90, 0x90, 0x90, 0x90,
				      0x66, 0x48, 0x0f, 0x7e, 0xc0, 0xc3 };
	uint8_t *code = place(fn, sizeof fn);
	RT_CHECK(execmem_probe(code + 5, record, NULL) == 0, "%s", execmem_last_error());
	long (*through_xmm)(long) = (long (*)(long))(uintptr_t)code;
	RT_CHECK(through_xmm(0x123456789) == 0x123456789, "xmm0 across the handler");
	RT_CHECK(execmem_unprobe(code + 5) == 0, "%s", execmem_last_error());
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
			rc = execmem_probe((void *)arith, record, NULL);
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
	RT_CHECK(execmem_unprobe((void *)arith) == 0, "%s", execmem_last_error());
	/* ret then padding: too short for the jump */
	static const uint8_t tiny[] = { 0xc3, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc };
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
