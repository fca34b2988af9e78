/*
 * test_reloc_x86_64.c - each form the x86-64 relocator rewrites, on
 * hand-made code run from execmem, with the trampoline near the code and
 * more than 4 GiB away from it; each refusal with its reason; and libc's
 * own functions (getpid, time and IFUNC-resolved strlen and memcpy).
 */
#include "reloc_test.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *return_address_seen;

__attribute__((noinline)) static int record_caller(void)
{
	return_address_seen = __builtin_return_address(0);
	return 41;
}

__attribute__((noinline)) static int seventy_seven(void)
{
	return 77;
}

/* A code allocation holding bytes, its rel32 fields filled in by the
 * caller through fix_rel32(). */
static uint8_t *place_code(const uint8_t *bytes, size_t len)
{
	uint8_t *code = execmem_alloc_near(EXECMEM_CODE, 64, (void *)record_caller, GiB);
	RT_CHECK(code != NULL, "no code near the test: %s", execmem_last_error());
	if (code)
		RT_CHECK(execmem_write(code, bytes, len) == 0, "%s", execmem_last_error());
	return code;
}

/* The rel32 at bytes[at], of the instruction ending at bytes[at + 4], so
 * that it names dest once the bytes run at code. */
static void fix_rel32(uint8_t *bytes, size_t at, const uint8_t *code, const void *dest)
{
	int32_t rel = (int32_t)((intptr_t)dest - (intptr_t)(code + at + 4));
	memcpy(bytes + at, &rel, 4);
}

/* Relocates need bytes of code into a trampoline near it or > 4 GiB away. */
static struct moved move(const uint8_t *code, size_t need, enum placement where)
{
	return move_window(code, EM_RELOC_MAX_WINDOW, need, where);
}

static int call_int(const struct moved *m, int arg)
{
	return ((int (*)(int))(uintptr_t)m->tramp)(arg);
}

static void drop(struct moved *m)
{
	execmem_free(m->tramp);
}

/* test edi,edi; je +6; mov eax,1; ret; mov eax,2; ret */
static void test_jcc(enum placement where)
{
	static const uint8_t fn[] = { 0x85, 0xff, 0x74, 0x06, 0xb8, 1, 0, 0, 0, 0xc3,
				      0xb8, 2, 0, 0, 0, 0xc3 };
	uint8_t *code = place_code(fn, sizeof fn);
	struct moved m = move(code, 5, where);
	RT_CHECK(m.rc == 0, "jcc: %s", execmem_last_error());
	if (m.rc == 0) {
		RT_CHECK(m.res.displaced == 9, "jcc displaced %zu", m.res.displaced);
		RT_CHECK(call_int(&m, 0) == 2 && call_int(&m, 5) == 1, "jcc results");
		/* far: the inverted condition (jne) over an absolute jump */
		if (where == FAR)
			RT_CHECK(m.out[2] == 0x75 && m.out[3] == 14, "far jcc form %02x %02x",
				 m.out[2], m.out[3]);
		else
			RT_CHECK(m.out[2] == 0x0f && m.out[3] == 0x84, "near jcc form");
	}
	drop(&m);
	execmem_free(code);
}

/* mov eax,[rip+10]; ret; ...; the value 1234 at +16 */
static void test_rip_relative(enum placement where)
{
	uint8_t fn[20] = { 0x8b, 0x05, 10, 0, 0, 0, 0xc3 };
	int32_t value = 1234;
	memcpy(fn + 16, &value, 4);
	uint8_t *code = place_code(fn, sizeof fn);
	struct moved m = move(code, 5, where);
	if (where == NEAR) {
		RT_CHECK(m.rc == 0, "rip: %s", execmem_last_error());
		if (m.rc == 0)
			RT_CHECK(call_int(&m, 0) == 1234, "rip-relative load moved");
	} else {
		RT_CHECK(m.rc == -ERANGE, "far rip-relative: %d", m.rc);
		RT_CHECK(strstr(execmem_last_error(), "out of rel32 reach") != NULL, "%s",
			 execmem_last_error());
	}
	drop(&m);
	execmem_free(code);
}

/* sub rsp,8; call record_caller; add rsp,8; add eax,1; ret: the callee
 * must see the original code as its return address. */
static void test_call(enum placement where)
{
	uint8_t fn[] = { 0x48, 0x83, 0xec, 0x08, 0xe8, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x08,
			 0x83, 0xc0, 0x01, 0xc3 };
	uint8_t *code = place_code(fn, sizeof fn);
	fix_rel32(fn, 5, code, (void *)record_caller);
	execmem_write(code, fn, sizeof fn);
	struct moved m = move(code, 5, where);
	RT_CHECK(m.rc == 0, "call: %s", execmem_last_error());
	if (m.rc == 0) {
		return_address_seen = NULL;
		RT_CHECK(call_int(&m, 0) == 42, "call moved");
		RT_CHECK(return_address_seen == code + 9, "return address %p, expected %p",
			 return_address_seen, (void *)(code + 9));
	}
	drop(&m);
	execmem_free(code);
}

/* jmp rel32 seventy_seven: a function that starts with a jump */
static void test_jmp_first(enum placement where)
{
	uint8_t fn[] = { 0xe9, 0, 0, 0, 0, 0xcc };
	uint8_t *code = place_code(fn, sizeof fn);
	fix_rel32(fn, 1, code, (void *)seventy_seven);
	execmem_write(code, fn, sizeof fn);
	struct moved m = move(code, 5, where);
	RT_CHECK(m.rc == 0, "jmp: %s", execmem_last_error());
	if (m.rc == 0) {
		RT_CHECK(call_int(&m, 0) == 77, "jmp moved");
		RT_CHECK(m.res.len == (where == NEAR ? 5u : 14u), "no jump back after a jump: %zu",
			 m.res.len);
	}
	drop(&m);
	execmem_free(code);
}

/* endbr64; mov eax,42; ret: endbr64 stays the trampoline's first bytes */
static void test_endbr64(void)
{
	static const uint8_t fn[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0xb8, 42, 0, 0, 0, 0xc3 };
	uint8_t *code = place_code(fn, sizeof fn);
	struct moved m = move(code, 5, NEAR);
	RT_CHECK(m.rc == 0, "endbr64: %s", execmem_last_error());
	if (m.rc == 0) {
		RT_CHECK(!memcmp(m.out, fn, 4), "endbr64 first");
		RT_CHECK(call_int(&m, 0) == 42, "endbr64 function moved");
	}
	drop(&m);
	execmem_free(code);
}

struct refusal {
	const char *what;
	uint8_t bytes[16];
	size_t need;
	int rc;
	const char *reason;
};

static const struct refusal refusals[] = {
	{ "ret then padding", { 0x31, 0xc0, 0xc3, 0xcc, 0xcc, 0xcc }, 5, -ENOEXEC, "too short" },
	{ "trap first", { 0xcc, 0x90, 0x90, 0x90, 0x90, 0xc3 }, 5, -ENOEXEC, "is a trap" },
	{ "short jmp over a trap", { 0xeb, 0x01, 0xcc, 0xb8, 5, 0, 0, 0, 0xc3 }, 5, -ENOEXEC,
	  "too short" },
	/* xor eax,eax; inc eax; cmp eax,3; jne -7 (to the inc) */
	{ "loop into the window", { 0x31, 0xc0, 0xff, 0xc0, 0x83, 0xf8, 3, 0x75, 0xf9, 0xc3 }, 8,
	  -ENOEXEC, "branches back" },
	{ "call before the end", { 0xe8, 0, 0, 0, 0, 0x90, 0x90, 0xc3 }, 6, -ENOEXEC,
	  "return into the patched bytes" },
	{ "indirect call", { 0x31, 0xc0, 0x31, 0xc0, 0xff, 0xd0, 0xc3 }, 5, -ENOEXEC,
	  "indirect call" },
	{ "jrcxz", { 0xe3, 0x03, 0x31, 0xc0, 0x90, 0xc3 }, 5, -ENOEXEC, "jrcxz" },
	{ "invalid opcode", { 0x06, 0x90, 0x90, 0x90, 0x90, 0xc3 }, 5, -ENOEXEC,
	  "no valid instruction" },
	{ "entry jump too long", { 0x90 }, EM_RELOC_MAX_WINDOW + 1, -EINVAL, "not supported" },
};

static void test_refusals(void)
{
	for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
		const struct refusal *r = &refusals[i];
		uint8_t code[EM_RELOC_MAX_WINDOW] = { 0 };
		memcpy(code, r->bytes, sizeof r->bytes);
		uint8_t out[EM_RELOC_MAX_OUT];
		struct em_reloc_result res;
		int rc = em_reloc_window(code, sizeof code, 0x400000, r->need, 0x500000, out,
					 sizeof out, &res);
		RT_CHECK(rc == r->rc, "%s: %d, expected %d", r->what, rc, r->rc);
		RT_CHECK(strstr(execmem_last_error(), r->reason) != NULL, "%s: \"%s\"", r->what,
			 execmem_last_error());
		printf("refused %-24s %s\n", r->what, execmem_last_error());
	}
	/* An output buffer too small is said so. */
	static const uint8_t nops[8] = { 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc3 };
	uint8_t out[4];
	struct em_reloc_result res;
	RT_CHECK(em_reloc_window(nops, sizeof nops, 0x400000, 5, 0x500000, out, sizeof out,
				 &res) == -ENOSPC, "small output buffer");
}

/* libc's functions, moved: getpid (a system call), time (the vDSO's,
 * chosen by an IFUNC) and the IFUNC-chosen strlen and memcpy. */
static void *libc_function(const char *name)
{
	void *fn = dlsym(RTLD_DEFAULT, name);
	RT_CHECK(fn != NULL, "dlsym %s: %s", name, dlerror());
	return fn;
}

static struct moved move_libc(const char *name)
{
	const uint8_t *fn = libc_function(name);
	struct moved m = { .rc = -ENOENT };
	if (!fn)
		return m;
	m = move(fn, 5, NEAR);
	RT_CHECK(m.rc == 0, "%s: %s", name, execmem_last_error());
	return m;
}

static void test_libc(void)
{
	struct moved m = move_libc("getpid");
	if (m.rc == 0)
		RT_CHECK(((pid_t (*)(void))(uintptr_t)m.tramp)() == getpid(), "getpid moved");
	drop(&m);
	m = move_libc("time");
	if (m.rc == 0) {
		time_t before = time(NULL);
		time_t moved = ((time_t (*)(time_t *))(uintptr_t)m.tramp)(NULL);
		RT_CHECK(moved >= before && moved <= time(NULL), "time moved: %ld", (long)moved);
	}
	drop(&m);
	m = move_libc("strlen");
	if (m.rc == 0) {
		size_t (*moved)(const char *) = (size_t (*)(const char *))(uintptr_t)m.tramp;
		RT_CHECK(moved("") == 0 && moved("hook") == 4 &&
				 moved("a string longer than one vector register, or two") == 48,
			 "strlen moved");
	}
	drop(&m);
	m = move_libc("memcpy");
	if (m.rc == 0) {
		char src[300], dst[300] = { 0 };
		for (size_t i = 0; i < sizeof src; i++)
			src[i] = (char)i;
		void *(*moved)(void *, const void *, size_t) =
			(void *(*)(void *, const void *, size_t))(uintptr_t)m.tramp;
		for (size_t n = 0; n < sizeof src; n = n * 2 + 1) {
			memset(dst, 0, sizeof dst);
			RT_CHECK(moved(dst, src, n) == dst && !memcmp(dst, src, n) && dst[n] == 0,
				 "memcpy moved, %zu bytes", n);
		}
	}
	drop(&m);
}

int main(void)
{
	for (enum placement where = NEAR; where <= FAR; where++) {
		test_jcc(where);
		test_rip_relative(where);
		test_call(where);
		test_jmp_first(where);
	}
	test_endbr64();
	test_refusals();
	test_libc();
	return rt_finish("test_reloc_x86_64");
}
