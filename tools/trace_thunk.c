/*
 * trace_thunk.c - the machine code of the entry/exit thunks (see
 * trace_thunk.h), written into execmem code memory.
 *
 * The thunk reads the clock with one instruction (rdtsc, or mrs of the
 * virtual counter) instead of calling clock_gettime(): that keeps every
 * register but two scratch ones untouched without saving anything, and
 * costs less per call (docs/patching.md, "Tracing", has the figures).
 * It calls the function instead of jumping to it, so that it runs again
 * when the function returns; the price is a new frame, which is why the
 * caller's stack arguments are copied into it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "execmem.h"
#include "execmem/unwind.h"
#include "trace_thunk.h"

_Static_assert(offsetof(struct trace_counters, original) == 0, "the thunks load the slot at 0");
_Static_assert(offsetof(struct trace_counters, calls) == 8, "the thunks add to calls at 8");
_Static_assert(offsetof(struct trace_counters, ticks) == 16, "the thunks add to ticks at 16");
_Static_assert(TRACE_STACK_ARG_BYTES % 16 == 0, "the copy keeps the stack 16-byte aligned");

#if defined(__x86_64__) || defined(__aarch64__)

enum { THUNK_MAX = 512, CFI_MAX = 64 };

/* The machine code, and the call frame instructions that describe it. */
struct code {
	uint8_t bytes[THUNK_MAX];
	size_t len;
	uint8_t cfi[CFI_MAX];
	size_t cfi_len, cfi_at; /* cfi_at: the code offset the instructions so far reach */
};

static void cfi_put(struct code *c, const uint8_t *ops, size_t n)
{
	memcpy(c->cfi + c->cfi_len, ops, n);
	c->cfi_len += n;
}

/* From here on in the code, the frame is as ops (DWARF call frame instructions) say. */
static void cfi_rule(struct code *c, unsigned code_align, const uint8_t *ops, size_t n)
{
	size_t delta = (c->len - c->cfi_at) / code_align;
	if (delta < 0x40) {
		cfi_put(c, (const uint8_t[]){ (uint8_t)(0x40 | delta) }, 1); /* DW_CFA_advance_loc */
	} else {
		uint16_t d16 = (uint16_t)delta;
		cfi_put(c, (const uint8_t[]){ 0x03 }, 1); /* DW_CFA_advance_loc2 */
		cfi_put(c, (const uint8_t *)&d16, 2);
	}
	cfi_put(c, ops, n);
	c->cfi_at = c->len;
}
#define CFI(c, ...) \
	cfi_rule(c, CODE_ALIGN, (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))

static void put(struct code *c, const void *bytes, size_t len)
{
	memcpy(c->bytes + c->len, bytes, len);
	c->len += len;
}

static void put_u32(struct code *c, uint32_t v)
{
	put(c, &v, sizeof(v));
}

static void put_u64(struct code *c, uint64_t v)
{
	put(c, &v, sizeof(v));
}

#endif

#if defined(__x86_64__)

#define THUNK_REACH ((size_t)INT32_MAX - THUNK_MAX) /* a rel32 jump from near reaches every byte */

/* DWARF: code alignment, data alignment, return address column, the CFA at entry (rsp + 8). */
enum { CODE_ALIGN = 1, DATA_ALIGN = -8, RA_COLUMN = 16 };
static const uint8_t cfi_at_entry[] = { 0x0c, 0x07, 0x08, 0x90, 0x01 }; /* def_cfa rsp+8; rip at cfa-8 */

/* rdx:rax = TSC, then rax = the 64-bit count. */
static void x86_read_tsc(struct code *c)
{
	static const uint8_t rdtsc_combined[] = {
		0x0f, 0x31,             /* rdtsc */
		0x48, 0xc1, 0xe2, 0x20, /* shl rdx, 32 */
		0x48, 0x09, 0xd0,       /* or rax, rdx */
	};
	put(c, rdtsc_combined, sizeof(rdtsc_combined));
}

/* mov r11, imm64 */
static void x86_load_r11(struct code *c, const void *address)
{
	put(c, (const uint8_t[]){ 0x49, 0xbb }, 2);
	put_u64(c, (uint64_t)(uintptr_t)address);
}

/*
 * Frame (rbp = the caller's rsp - 16): [rbp-8] entry ticks, [rbp-16] and
 * [rbp-24] rax and rdx kept across rdtsc, below them the copied stack
 * arguments, the callee's [rsp+8] onwards as they were the thunk's.
 * Only rax, rdx (restored), r11 and the flags are changed on the way in,
 * r11 and the flags on the way out: none of them carries an argument or a
 * result.
 */
static void generate(struct code *c, struct trace_counters *counters)
{
	enum { FRAME = TRACE_STACK_ARG_BYTES + 32 };
	static const uint8_t push_frame[] = {
		0xf3, 0x0f, 0x1e, 0xfa, /* endbr64 */
		0x55,                   /* push rbp */
	};
	static const uint8_t prologue[] = {
		0x48, 0x81, 0xec, FRAME & 0xff, FRAME >> 8, 0, 0, /* sub rsp, FRAME */
		0x48, 0x89, 0x45, 0xf0,                   /* mov [rbp-16], rax */
		0x48, 0x89, 0x55, 0xe8,                   /* mov [rbp-24], rdx */
	};
	static const uint8_t keep_entry_time[] = {
		0x48, 0x89, 0x45, 0xf8, /* mov [rbp-8], rax */
		0x48, 0x8b, 0x45, 0xf0, /* mov rax, [rbp-16] */
		0x48, 0x8b, 0x55, 0xe8, /* mov rdx, [rbp-24] */
	};
	static const uint8_t keep_results[] = {
		0x48, 0x89, 0x45, 0xf0, /* mov [rbp-16], rax */
		0x48, 0x89, 0x55, 0xe8, /* mov [rbp-24], rdx */
	};
	static const uint8_t count_and_return[] = {
		0x48, 0x2b, 0x45, 0xf8,       /* sub rax, [rbp-8] */
		0xf0, 0x49, 0x01, 0x43, 0x10, /* lock add [r11+16], rax */
		0xf0, 0x49, 0x83, 0x43, 0x08, 0x01, /* lock add qword [r11+8], 1 */
		0x48, 0x8b, 0x45, 0xf0,       /* mov rax, [rbp-16] */
		0x48, 0x8b, 0x55, 0xe8,       /* mov rdx, [rbp-24] */
		0xc9,                         /* leave */
	};

	put(c, push_frame, sizeof(push_frame));
	CFI(c, 0x0e, 0x10, 0x86, 0x02);                     /* cfa = rsp+16; rbp at cfa-16 */
	put(c, (const uint8_t[]){ 0x48, 0x89, 0xe5 }, 3);    /* mov rbp, rsp */
	CFI(c, 0x0d, 0x06);                                 /* cfa = rbp+16 */
	put(c, prologue, sizeof(prologue));
	x86_read_tsc(c);
	put(c, keep_entry_time, sizeof(keep_entry_time));
	for (uint32_t off = 0; off < TRACE_STACK_ARG_BYTES; off += 8) {
		put(c, (const uint8_t[]){ 0x4c, 0x8b, 0x9d }, 3); /* mov r11, [rbp+16+off] */
		put_u32(c, 16 + off);
		put(c, (const uint8_t[]){ 0x4c, 0x89, 0x5c, 0x24, (uint8_t)off }, 5); /* mov [rsp+off], r11 */
	}
	x86_load_r11(c, &counters->original);
	put(c, (const uint8_t[]){ 0x41, 0xff, 0x13 }, 3); /* call [r11] */
	put(c, keep_results, sizeof(keep_results));
	x86_read_tsc(c);
	x86_load_r11(c, counters);
	put(c, count_and_return, sizeof(count_and_return));
	CFI(c, 0x0c, 0x07, 0x08, 0xc6);                     /* cfa = rsp+8; rbp restored */
	put(c, (const uint8_t[]){ 0xc3 }, 1);                /* ret */
}

uint64_t trace_ticks(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

#elif defined(__aarch64__)

#define THUNK_REACH ((size_t)128 << 20) /* a B from near reaches every byte */

enum { X9 = 9, X10, X11, X12, X13, X14, X16 = 16, FP = 29, LR = 30, SP = 31 };

/* DWARF: code alignment, data alignment, return address column, the CFA at entry (sp). */
enum { CODE_ALIGN = 4, DATA_ALIGN = -8, RA_COLUMN = 30 };
static const uint8_t cfi_at_entry[] = { 0x0c, 0x1f, 0x00 }; /* def_cfa sp+0 */

static uint32_t a64_add_imm(unsigned rd, unsigned rn, unsigned imm)
{
	return 0x91000000u | imm << 10 | rn << 5 | rd;
}

static uint32_t a64_pair(bool load, unsigned rt, unsigned rt2, unsigned rn, int offset)
{
	return (load ? 0xa9400000u : 0xa9000000u) | ((unsigned)(offset / 8) & 0x7f) << 15 |
	       rt2 << 10 | rn << 5 | rt;
}

/* ldr xt, [pc + offset] */
static uint32_t a64_ldr_literal(unsigned rt, int offset)
{
	return 0x58000000u | ((unsigned)(offset / 4) & 0x7ffff) << 5 | rt;
}

/* *(x11 + offset) += addend register (or 1 when addend is 0), as a load/store-exclusive loop. */
static void a64_atomic_add(struct code *c, unsigned offset, unsigned addend)
{
	put_u32(c, a64_add_imm(X13, X11, offset));
	put_u32(c, 0xc85f7c00u | X13 << 5 | X12);                      /* ldxr x12, [x13] */
	put_u32(c, addend ? 0x8b000000u | addend << 16 | X12 << 5 | X12 /* add x12, x12, addend */
			  : a64_add_imm(X12, X12, 1));
	put_u32(c, 0xc8007c00u | X14 << 16 | X13 << 5 | X12);          /* stxr w14, x12, [x13] */
	put_u32(c, 0x35000000u | (0x7ffffu & (uint32_t)-3) << 5 | X14); /* cbnz w14, ldxr */
}

/*
 * Frame: x29/x30 at the top, the entry ticks at [x29-8], the copied stack
 * arguments at sp.  Only x9-x14 and x16 are used: scratch registers that
 * carry neither an argument (x0-x8, v0-v7) nor a result.  The counters'
 * address is a literal after the code.
 */
static void generate(struct code *c, struct trace_counters *counters)
{
	enum { FRAME = TRACE_STACK_ARG_BYTES + 32 };
	const uint32_t mrs_x9_cntvct = 0xd53be040u | X9;
	size_t literal_at[2];

	put_u32(c, 0xd503245fu);                             /* bti c */
	put_u32(c, 0xd1000000u | FRAME << 10 | SP << 5 | SP); /* sub sp, sp, FRAME */
	CFI(c, 0x0e, (FRAME & 0x7f) | 0x80, FRAME >> 7);              /* cfa = sp+FRAME */
	put_u32(c, a64_pair(false, FP, LR, SP, FRAME - 16));
	CFI(c, 0x80 | FP, 2, 0x80 | LR, 1);                  /* x29 at cfa-16, x30 at cfa-8 */
	put_u32(c, a64_add_imm(FP, SP, FRAME - 16));
	CFI(c, 0x0c, FP, 16);                                /* cfa = x29+16 */
	put_u32(c, mrs_x9_cntvct);
	put_u32(c, 0xf8000000u | 0x1f8u << 12 | FP << 5 | X9); /* stur x9, [x29, -8] */
	for (int off = 0; off < TRACE_STACK_ARG_BYTES; off += 16) {
		put_u32(c, a64_pair(true, X9, X10, FP, 16 + off));
		put_u32(c, a64_pair(false, X9, X10, SP, off));
	}
	literal_at[0] = c->len;
	put_u32(c, 0);                                       /* ldr x11, =counters */
	put_u32(c, 0xf9400000u | X11 << 5 | X16);            /* ldr x16, [x11] */
	put_u32(c, 0xd63f0000u | X16 << 5);                  /* blr x16 */
	put_u32(c, mrs_x9_cntvct);
	put_u32(c, 0xf8400000u | 0x1f8u << 12 | FP << 5 | X10); /* ldur x10, [x29, -8] */
	put_u32(c, 0xcb000000u | X10 << 16 | X9 << 5 | X9);     /* sub x9, x9, x10 */
	literal_at[1] = c->len;
	put_u32(c, 0);                                       /* ldr x11, =counters */
	a64_atomic_add(c, offsetof(struct trace_counters, ticks), X9);
	a64_atomic_add(c, offsetof(struct trace_counters, calls), 0);
	put_u32(c, a64_pair(true, FP, LR, SP, FRAME - 16));
	CFI(c, 0x0c, SP, (FRAME & 0x7f) | 0x80, FRAME >> 7, 0xc0 | FP, 0xc0 | LR); /* cfa = sp+FRAME; restored */
	put_u32(c, a64_add_imm(SP, SP, FRAME));
	CFI(c, 0x0e, 0);                                     /* cfa = sp */
	put_u32(c, 0xd65f03c0u);                             /* ret */
	if (c->len % 8)
		put_u32(c, 0xd503201fu);                     /* nop: the literal is 8-aligned */
	for (size_t i = 0; i < 2; i++) {
		uint32_t ldr = a64_ldr_literal(X11, (int)(c->len - literal_at[i]));
		memcpy(c->bytes + literal_at[i], &ldr, sizeof(ldr));
	}
	put_u64(c, (uint64_t)(uintptr_t)counters);
}

uint64_t trace_ticks(void)
{
	uint64_t v;
	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v));
	return v;
}

#endif

#if defined(__x86_64__) || defined(__aarch64__)

/*
 * The .eh_frame table of a thunk, written after its code: one CIE, one FDE
 * for [start, start + code_len), the terminator.  Registered, it lets C++
 * exceptions, backtrace() and pthread_cancel() cross a thunk.
 */
struct eh_frame {
	uint8_t bytes[160];
	size_t len;
};

static void eh_put(struct eh_frame *eh, const void *bytes, size_t len)
{
	memcpy(eh->bytes + eh->len, bytes, len);
	eh->len += len;
}

/* Pad the entry that starts at start with DW_CFA_nop to a multiple of 8, then set its length. */
static void eh_close_entry(struct eh_frame *eh, size_t start)
{
	while ((eh->len - start) % 8)
		eh_put(eh, (const uint8_t[]){ 0 }, 1);
	uint32_t length = (uint32_t)(eh->len - start - 4);
	memcpy(eh->bytes + start, &length, 4);
}

static void eh_frame_build(struct eh_frame *eh, const struct code *c, uintptr_t start)
{
	static const uint8_t cie_head[] = {
		0, 0, 0, 0,           /* length, set by eh_close_entry */
		0, 0, 0, 0,           /* CIE id */
		1,                    /* version */
		'z', 'R', 0,          /* augmentation: data length, FDE pointer encoding */
		CODE_ALIGN,           /* uleb128 */
		DATA_ALIGN & 0x7f,    /* sleb128 */
		RA_COLUMN,            /* uleb128 */
		1,                    /* augmentation data length */
		0x00,                 /* DW_EH_PE_absptr */
	};
	uint64_t range = c->len, location = start;

	eh->len = 0;
	eh_put(eh, cie_head, sizeof(cie_head));
	eh_put(eh, cfi_at_entry, sizeof(cfi_at_entry));
	eh_close_entry(eh, 0);
	size_t fde = eh->len;
	uint32_t cie_pointer = (uint32_t)(fde + 4);
	eh_put(eh, (const uint8_t[]){ 0, 0, 0, 0 }, 4);
	eh_put(eh, &cie_pointer, 4);
	eh_put(eh, &location, 8);
	eh_put(eh, &range, 8);
	eh_put(eh, (const uint8_t[]){ 0 }, 1); /* augmentation data length */
	eh_put(eh, c->cfi, c->cfi_len);
	eh_close_entry(eh, fde);
	eh_put(eh, (const uint8_t[]){ 0, 0, 0, 0 }, 4);
}

/* Where the table starts in a thunk: after the code, 8-aligned. */
static size_t eh_frame_offset(const struct code *c)
{
	return (c->len + 7) & ~(size_t)7;
}

void *trace_thunk_create(struct trace_counters *counters, const void *near)
{
	struct code c = { .len = 0 };
	struct eh_frame eh;
	uint8_t image[THUNK_MAX + sizeof(eh.bytes)] = { 0 };
	void *thunk = NULL;

	generate(&c, counters);
	size_t size = eh_frame_offset(&c) + sizeof(eh.bytes);
	if (near)
		thunk = execmem_alloc_near(EXECMEM_CODE, size, near, THUNK_REACH);
	if (!thunk && (!near || errno == ENOMEM))
		thunk = execmem_alloc(EXECMEM_CODE, size);
	if (!thunk)
		return NULL;
	eh_frame_build(&eh, &c, (uintptr_t)thunk);
	memcpy(image, c.bytes, c.len);
	memcpy(image + eh_frame_offset(&c), eh.bytes, eh.len);
	int rc = execmem_write(thunk, image, eh_frame_offset(&c) + eh.len);
	if (!rc) {
		/* A C program without libgcc_s has no unwinder to tell: nothing is lost. */
		rc = execmem_unwind_register((uint8_t *)thunk + eh_frame_offset(&c), eh.len);
		rc = rc == -ENOTSUP ? 0 : rc;
	}
	if (rc) {
		execmem_free(thunk);
		errno = -rc;
		return NULL;
	}
	return thunk;
}

int trace_thunk_destroy(void *thunk)
{
	static struct trace_counters any; /* every thunk has the same length */
	struct code c = { .len = 0 };

	generate(&c, &any);
	int rc = execmem_unwind_unregister((uint8_t *)thunk + eh_frame_offset(&c));
	if (rc && rc != -ENOENT)
		return rc;
	return execmem_free(thunk);
}

#else

void *trace_thunk_create(struct trace_counters *counters, const void *near)
{
	(void)counters;
	(void)near;
	errno = ENOTSUP;
	return NULL;
}

uint64_t trace_ticks(void)
{
	return 0;
}

int trace_thunk_destroy(void *thunk)
{
	return execmem_free(thunk);
}

#endif

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void trace_clock_start(struct trace_clock *clock)
{
	clock->ns = monotonic_ns();
	clock->ticks = trace_ticks();
}

double trace_clock_ns_per_tick(const struct trace_clock *since)
{
#if defined(__aarch64__)
	uint64_t hz;
	(void)since;
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
	return hz ? 1e9 / (double)hz : 0;
#else
	enum { CALIBRATION_NS = 2000000 };
	uint64_t ns;
	while ((ns = monotonic_ns()) - since->ns < CALIBRATION_NS)
		;
	uint64_t ticks = trace_ticks();
	return ticks > since->ticks ? (double)(ns - since->ns) / (double)(ticks - since->ticks) : 0;
#endif
}
