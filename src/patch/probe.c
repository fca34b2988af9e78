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
	return em_hook_remove(addr, "execmem_unprobe");
}
