/*
 * probe.c - execmem_probe(): the trampoline of a hook whose relay, instead
 * of jumping to a replacement, saves every register of the interrupted
 * code, calls handler(ctx, regs), restores them (with the handler's
 * changes) and falls through to the displaced instructions.  The relay
 * counts the threads inside the handler call: its return address points
 * into the trampoline, which therefore stays until none is left
 * (hook.c, nobody_inside()).
 */
#include "execmem/patch.h"

#include "internal.h"
#include "patch/hook_internal.h"

#include <string.h>

struct probe_spec {
	void *addr;
	execmem_probe_handler handler;
	void *ctx;
	uint32_t xsave_size; /* x86-64: bytes of the XSAVE area */
};

#if defined(__x86_64__)
#include <cpuid.h>

struct code {
	uint8_t *p;
	size_t len;
};

static void put(struct code *c, const void *bytes, size_t n)
{
	memcpy(c->p + c->len, bytes, n);
	c->len += n;
}

/* Bytes XSAVE needs for every state component the OS enabled. */
static uint32_t xsave_size(void)
{
	unsigned a, b, cx, d;
	if (!__get_cpuid_count(0xd, 0, &a, &b, &cx, &d))
		return 0;
	return (b + 63) & ~63u;
}

#define PUT(c, s) put(c, s, sizeof(s) - 1)

static void put_imm32(struct code *c, uint32_t v)
{
	put(c, &v, 4);
}

static void put_movabs(struct code *c, const char *opcode, uint64_t v)
{
	put(c, opcode, 2);
	put(c, &v, 8);
}

/* rsp is saved below the red zone, so the regs it points to are laid out
 * as struct execmem_regs: rax lowest. */
#define RSP_SLOT 7
#define FRAME_ABOVE_RSP_SLOT (128 + 8 + 8 + 8 * 8) /* red zone, rflags, rip, r15..r8 */

static size_t emit_probe_relay(const struct em_relay *relay, uintptr_t at, atomic_long *inflight,
			       uint8_t *out)
{
	(void)at;
	const struct probe_spec *probe = relay->arg;
	struct code c = { out, 0 };
	PUT(&c, "\x48\x8d\x64\x24\x80"); /* lea rsp, [rsp - 128]: past the red zone */
	PUT(&c, "\x9c");                 /* pushfq */
	PUT(&c, "\x68");                 /* the probed address, as rip */
	put_imm32(&c, (uint32_t)(uintptr_t)probe->addr);
	PUT(&c, "\xc7\x44\x24\x04");
	put_imm32(&c, (uint32_t)((uintptr_t)probe->addr >> 32));
	PUT(&c, "\x41\x57\x41\x56\x41\x55\x41\x54\x41\x53\x41\x52\x41\x51\x41\x50"); /* r15..r8 */
	PUT(&c, "\x54\x55\x57\x56\x52\x51\x53\x50"); /* rsp rbp rdi rsi rdx rcx rbx rax */
	PUT(&c, "\x48\x81\x44\x24\x38");            /* add qword [rsp + 56], frame: rsp as it was */
	put_imm32(&c, FRAME_ABOVE_RSP_SLOT);
	PUT(&c, "\xfc");                 /* cld, as the ABI wants it for the handler */
	put_movabs(&c, "\x48\xb8", (uintptr_t)inflight);
	PUT(&c, "\xf0\x48\xff\x00");     /* lock inc qword [rax] */
	PUT(&c, "\x48\x89\xe3");         /* mov rbx, rsp: the regs, and the way back */
	PUT(&c, "\x48\x83\xe4\xc0");     /* and rsp, -64 */
	PUT(&c, "\x48\x81\xec");         /* sub rsp, xsave area */
	put_imm32(&c, probe->xsave_size);
	PUT(&c, "\x31\xc0");             /* xor eax, eax: the XSAVE header must be zero */
	for (uint32_t off = 512; off < 576; off += 8) {
		PUT(&c, "\x48\x89\x84\x24"); /* mov [rsp + off], rax */
		put_imm32(&c, off);
	}
	PUT(&c, "\xb8\xff\xff\xff\xff\xba\xff\xff\xff\xff"); /* every component */
	PUT(&c, "\x48\x0f\xae\x24\x24"); /* xsave64 [rsp] */
	put_movabs(&c, "\x48\xbf", (uintptr_t)probe->ctx);
	PUT(&c, "\x48\x89\xde");         /* mov rsi, rbx */
	put_movabs(&c, "\x48\xb8", (uintptr_t)probe->handler);
	PUT(&c, "\xff\xd0");             /* call rax */
	PUT(&c, "\xb8\xff\xff\xff\xff\xba\xff\xff\xff\xff");
	PUT(&c, "\x48\x0f\xae\x2c\x24"); /* xrstor64 [rsp] */
	PUT(&c, "\x48\x89\xdc");         /* mov rsp, rbx */
	put_movabs(&c, "\x48\xb8", (uintptr_t)inflight);
	PUT(&c, "\xf0\x48\xff\x08");     /* lock dec qword [rax] */
	PUT(&c, "\x58\x5b\x59\x5a\x5e\x5f\x5d"); /* rax rbx rcx rdx rsi rdi rbp */
	PUT(&c, "\x48\x8d\x64\x24\x08"); /* past rsp */
	PUT(&c, "\x41\x58\x41\x59\x41\x5a\x41\x5b\x41\x5c\x41\x5d\x41\x5e\x41\x5f"); /* r8..r15 */
	PUT(&c, "\x48\x8d\x64\x24\x08"); /* past rip */
	PUT(&c, "\x9d");                 /* popfq */
	PUT(&c, "\x48\x8d\xa4\x24\x80\x00\x00\x00"); /* lea rsp, [rsp + 128] */
	return c.len;
}

static int probe_supported(struct probe_spec *spec)
{
	spec->xsave_size = xsave_size();
	return spec->xsave_size ? 0 : -ENOTSUP;
}
#elif defined(__aarch64__)
/* The frame: struct execmem_regs (x0..x30, sp, pc, nzcv), q0..q31, fpsr,
 * fpcr.  There is no red zone: the frame starts at the stack pointer. */
enum {
	REGS_SIZE = 34 * 8,
	Q_AT = REGS_SIZE,
	FPSR_AT = Q_AT + 32 * 16,
	FRAME = FPSR_AT + 16,
};

enum literal { LIT_PC, LIT_INFLIGHT, LIT_CTX, LIT_HANDLER, NLIT };

struct words {
	uint32_t *w;
	size_t n;
	size_t lit_loads[8]; /* indices of the LDR (literal) words */
	enum literal lit_of[8];
	size_t nloads;
};

static void w32(struct words *c, uint32_t insn)
{
	c->w[c->n++] = insn;
}

/* ldr xt, literal (its offset filled in once the literals are placed) */
static void load_literal(struct words *c, unsigned rt, enum literal lit)
{
	c->lit_loads[c->nloads] = c->n;
	c->lit_of[c->nloads++] = lit;
	w32(c, 0x58000000 | rt);
}

static uint32_t sp_pair(uint32_t op, unsigned rt, unsigned rt2, unsigned off, unsigned scale)
{
	return op | (off / scale) << 15 | rt2 << 10 | 31 << 5 | rt;
}

static uint32_t sp_single(uint32_t op, unsigned rt, unsigned off)
{
	return op | (off / 8) << 10 | 31 << 5 | rt;
}

/* *x1 += delta (1 or -1), with an exclusive-access loop (ARMv8.0). */
static void count(struct words *c, bool up)
{
	load_literal(c, 1, LIT_INFLIGHT);
	w32(c, 0xc85f7c22);                  /* ldxr x2, [x1] */
	w32(c, up ? 0x91000442 : 0xd1000442); /* add/sub x2, x2, #1 */
	w32(c, 0xc8037c22);                  /* stxr w3, x2, [x1] */
	w32(c, 0x35ffffa3);                  /* cbnz w3, the ldxr */
}

static void save_or_restore(struct words *c, bool save)
{
	uint32_t pair = save ? 0xa9000000 : 0xa9400000;    /* stp / ldp x, [sp, #off] */
	uint32_t qpair = save ? 0xad000000 : 0xad400000;   /* stp / ldp q, [sp, #off] */
	uint32_t single = save ? 0xf9000000 : 0xf9400000;  /* str / ldr x, [sp, #off] */
	if (save) {
		for (unsigned r = 0; r < 30; r += 2)
			w32(c, sp_pair(pair, r, r + 1, r * 8, 8));
		w32(c, sp_single(single, 30, 240));
		w32(c, 0x91000000 | FRAME << 10 | 31 << 5 | 0); /* add x0, sp, #FRAME */
		w32(c, sp_single(single, 0, 248));
		load_literal(c, 0, LIT_PC);
		w32(c, sp_single(single, 0, 256));
		w32(c, 0xd53b4200); /* mrs x0, nzcv */
		w32(c, sp_single(single, 0, 264));
		w32(c, 0xd53b4420); /* mrs x0, fpsr */
		w32(c, 0xd53b4401); /* mrs x1, fpcr */
		w32(c, sp_single(single, 0, FPSR_AT));
		w32(c, sp_single(single, 1, FPSR_AT + 8));
	}
	for (unsigned q = 0; q < 32; q += 2)
		w32(c, sp_pair(qpair, q, q + 1, Q_AT + q * 16, 16));
	if (!save) {
		w32(c, sp_single(single, 0, FPSR_AT));
		w32(c, sp_single(single, 1, FPSR_AT + 8));
		w32(c, 0xd51b4420); /* msr fpsr, x0 */
		w32(c, 0xd51b4401); /* msr fpcr, x1 */
		w32(c, sp_single(single, 0, 264));
		w32(c, 0xd51b4200); /* msr nzcv, x0 */
		for (unsigned r = 0; r < 30; r += 2)
			w32(c, sp_pair(pair, r, r + 1, r * 8, 8));
		w32(c, sp_single(single, 30, 240));
	}
}

static size_t emit_probe_relay(const struct em_relay *relay, uintptr_t at, atomic_long *inflight,
			       uint8_t *out)
{
	const struct probe_spec *probe = relay->arg;
	uint32_t words[EM_RELAY_MAX / 4];
	struct words c = { .w = words };
	w32(&c, 0xd1000000 | FRAME << 10 | 31 << 5 | 31); /* sub sp, sp, #FRAME */
	save_or_restore(&c, true);
	count(&c, true);
	load_literal(&c, 0, LIT_CTX);
	w32(&c, 0x910003e1); /* mov x1, sp */
	load_literal(&c, 16, LIT_HANDLER);
	w32(&c, 0xd63f0200); /* blr x16 */
	count(&c, false);
	save_or_restore(&c, false);
	w32(&c, 0x91000000 | FRAME << 10 | 31 << 5 | 31); /* add sp, sp, #FRAME */
	/* b over the literals (8-byte aligned) to the displaced instructions */
	size_t branch = c.n++;
	if ((at + c.n * 4) % 8)
		w32(&c, 0xd503201f); /* nop */
	size_t lit_at = c.n;
	uint64_t lits[NLIT] = { (uintptr_t)probe->addr, (uintptr_t)inflight,
				(uintptr_t)probe->ctx, (uintptr_t)probe->handler };
	for (int i = 0; i < NLIT; i++) {
		w32(&c, (uint32_t)lits[i]);
		w32(&c, (uint32_t)(lits[i] >> 32));
	}
	words[branch] = 0x14000000 | (uint32_t)(c.n - branch);
	for (size_t i = 0; i < c.nloads; i++) {
		size_t load = c.lit_loads[i], target = lit_at + 2 * c.lit_of[i];
		words[load] |= (uint32_t)(target - load) << 5;
	}
	memcpy(out, words, c.n * 4);
	return c.n * 4;
}

static int probe_supported(struct probe_spec *spec)
{
	(void)spec;
	return 0;
}
#else
static size_t emit_probe_relay(const struct em_relay *relay, uintptr_t at, atomic_long *inflight,
			       uint8_t *out)
{
	(void)relay, (void)at, (void)inflight, (void)out;
	return 0;
}

static int probe_supported(struct probe_spec *spec)
{
	(void)spec;
	return -ENOTSUP;
}
#endif

int execmem_probe(void *addr, execmem_probe_handler handler, void *ctx)
{
	if (!addr || !handler) {
		em_set_error("execmem_probe: NULL %s", !addr ? "address" : "handler");
		return -EINVAL;
	}
	struct probe_spec spec = { addr, handler, ctx, 0 };
	int rc = probe_supported(&spec);
	if (rc) {
		em_set_error("execmem_probe: not supported on %s", em_arch.name);
		return rc;
	}
	struct em_relay relay = { emit_probe_relay, &spec, true, "execmem_probe" };
	void *displaced;
	return em_hook_install(addr, &relay, &displaced);
}

int execmem_unprobe(void *addr)
{
	return em_hook_remove(addr, true, "execmem_unprobe");
}
