/*
 * reloc_x86_64.c - moving the first instructions of an x86-64 function into
 * a trampoline.  Zydis finds the instructions and their PC-relative parts;
 * each one is then copied with its displacement recomputed for the new
 * address, or re-encoded when its form cannot reach from there (short
 * branches, Jcc beyond rel32) or must not run from there (calls: the
 * trampoline never appears as a return address).
 */
#include "patch/reloc.h"

#include "internal.h"

#include <Zydis/Zydis.h>
#include <string.h>

/* Where the window's instructions point: checked once its end is known. */
struct ref {
	uintptr_t dest;
	size_t at; /* offset of the instruction that refers to dest */
};

struct emitter {
	uint8_t *out;
	size_t len, cap;
	uintptr_t base; /* the address out[0] will run at */
	bool overflow;
};

static void emit(struct emitter *e, const void *bytes, size_t n)
{
	if (e->len + n > e->cap) {
		e->overflow = true;
		return;
	}
	memcpy(e->out + e->len, bytes, n);
	e->len += n;
}

static void emit_u32(struct emitter *e, uint32_t v)
{
	emit(e, &v, 4);
}

static uintptr_t emitter_pc(const struct emitter *e)
{
	return e->base + e->len;
}

static bool fits_rel32(uintptr_t next_pc, uintptr_t dest)
{
	int64_t delta = (int64_t)(dest - next_pc);
	return delta >= INT32_MIN && delta <= INT32_MAX;
}

size_t em_reloc_jump_len(uintptr_t from, uintptr_t to)
{
	return fits_rel32(from + 5, to) ? 5 : 14;
}

size_t em_reloc_jump(uintptr_t from, uintptr_t to, uint8_t *out)
{
	if (fits_rel32(from + 5, to)) {
		int32_t rel = (int32_t)(to - (from + 5));
		out[0] = 0xe9;
		memcpy(out + 1, &rel, 4);
		return 5;
	}
	/* jmp [rip + 0] followed by the destination: no register is touched. */
	static const uint8_t jmp_rip[6] = { 0xff, 0x25, 0, 0, 0, 0 };
	memcpy(out, jmp_rip, sizeof jmp_rip);
	uint64_t abs = to;
	memcpy(out + 6, &abs, 8);
	return 14;
}

static void emit_jump(struct emitter *e, uintptr_t dest)
{
	uint8_t jump[EM_RELOC_MAX_JUMP];
	emit(e, jump, em_reloc_jump(emitter_pc(e), dest, jump));
}

/* Jcc to dest: near form when it reaches, else the inverted condition
 * jumping over an absolute jump. */
static void emit_jcc(struct emitter *e, unsigned cc, uintptr_t dest)
{
	if (fits_rel32(emitter_pc(e) + 6, dest)) {
		uint8_t op[2] = { 0x0f, (uint8_t)(0x80 | cc) };
		emit(e, op, 2);
		emit_u32(e, (uint32_t)(dest - (emitter_pc(e) + 4)));
		return;
	}
	uint8_t skip[2] = { (uint8_t)(0x70 | (cc ^ 1)), 14 };
	emit(e, skip, 2);
	emit_jump(e, dest);
}

/* The 8-byte return address, pushed without touching a register or the
 * flags: push imm32 (sign-extended), then the upper half over it. */
static void emit_push_u64(struct emitter *e, uint64_t value)
{
	uint8_t push = 0x68;
	emit(e, &push, 1);
	emit_u32(e, (uint32_t)value);
	static const uint8_t mov_hi[4] = { 0xc7, 0x44, 0x24, 0x04 }; /* mov dword [rsp+4] */
	emit(e, mov_hi, sizeof mov_hi);
	emit_u32(e, (uint32_t)(value >> 32));
}

/* One decoded instruction of the window and where it came from. */
struct insn {
	ZydisDecodedInstruction d;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	const uint8_t *bytes;
	uintptr_t pc;
	size_t at; /* offset in the window */
};

static const ZydisDecodedOperand *rip_operand(const struct insn *in)
{
	for (unsigned i = 0; i < in->d.operand_count; i++)
		if (in->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
		    in->ops[i].mem.base == ZYDIS_REGISTER_RIP)
			return &in->ops[i];
	return NULL;
}

static const ZydisDecodedOperand *relative_imm(const struct insn *in)
{
	for (unsigned i = 0; i < in->d.operand_count; i++)
		if (in->ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE && in->ops[i].imm.is_relative)
			return &in->ops[i];
	return NULL;
}

static uintptr_t absolute(const struct insn *in, const ZydisDecodedOperand *op)
{
	ZyanU64 abs = 0;
	ZydisCalcAbsoluteAddress(&in->d, op, in->pc, &abs);
	return (uintptr_t)abs;
}

/* A copy whose disp32 is recomputed so that it still names dest. */
static int emit_rip_relative(struct emitter *e, const struct insn *in, uintptr_t dest)
{
	uintptr_t next = emitter_pc(e) + in->d.length;
	if (in->d.raw.disp.size != 32 || !fits_rel32(next, dest)) {
		em_set_error("execmem_hook: the RIP-relative operand of the instruction at +%zu "
			     "(%#lx) is out of rel32 reach of the trampoline", in->at,
			     (unsigned long)dest);
		return -ERANGE;
	}
	uint8_t copy[ZYDIS_MAX_INSTRUCTION_LENGTH];
	memcpy(copy, in->bytes, in->d.length);
	int32_t disp = (int32_t)(dest - next);
	memcpy(copy + in->d.raw.disp.offset, &disp, 4);
	emit(e, copy, in->d.length);
	return 0;
}

static int refuse(const struct insn *in, const char *why)
{
	em_set_error("execmem_hook: the instruction at +%zu of %#lx %s", in->at,
		     (unsigned long)(in->pc - in->at), why);
	return -ENOEXEC;
}

/* A call runs as push of its original return address and a jump, so the
 * callee returns into the target, never into the trampoline. */
static int emit_call(struct emitter *e, const struct insn *in, bool last)
{
	if (!last)
		return refuse(in, "is a call that would return into the patched bytes");
	const ZydisDecodedOperand *imm = relative_imm(in);
	const ZydisDecodedOperand *mem = rip_operand(in);
	emit_push_u64(e, in->pc + in->d.length);
	if (imm) {
		emit_jump(e, absolute(in, imm));
		return 0;
	}
	if (mem && in->d.length == 6 && in->bytes[0] == 0xff && in->bytes[1] == 0x15) {
		struct insn jmp = *in;
		uint8_t bytes[6];
		memcpy(bytes, in->bytes, 6);
		bytes[1] = 0x25; /* call [rip+d] -> jmp [rip+d] */
		jmp.bytes = bytes;
		return emit_rip_relative(e, &jmp, absolute(in, mem));
	}
	return refuse(in, "is an indirect call, which cannot be displaced");
}

/* Anything without a relative immediate: a copy, its RIP-relative operand
 * (if any) recomputed. */
static int emit_copy(struct emitter *e, const struct insn *in)
{
	const ZydisDecodedOperand *mem = rip_operand(in);
	if (mem)
		return emit_rip_relative(e, in, absolute(in, mem));
	emit(e, in->bytes, in->d.length);
	return 0;
}

static int emit_branch(struct emitter *e, const struct insn *in)
{
	const ZydisDecodedOperand *imm = relative_imm(in);
	if (!imm)
		return emit_copy(e, in); /* jmp reg / jmp [mem] */
	uintptr_t dest = absolute(in, imm);
	switch (in->d.mnemonic) {
	case ZYDIS_MNEMONIC_JMP:
		emit_jump(e, dest);
		return 0;
	case ZYDIS_MNEMONIC_JRCXZ:
	case ZYDIS_MNEMONIC_JECXZ:
	case ZYDIS_MNEMONIC_LOOP:
	case ZYDIS_MNEMONIC_LOOPE:
	case ZYDIS_MNEMONIC_LOOPNE:
		return refuse(in, "is a loop or jrcxz branch, which has no near form");
	default:
		emit_jcc(e, in->d.opcode & 0xf, dest);
		return 0;
	}
}

static int relocate_one(struct emitter *e, const struct insn *in, bool last)
{
	switch (in->d.meta.category) {
	case ZYDIS_CATEGORY_CALL:
		return emit_call(e, in, last);
	case ZYDIS_CATEGORY_COND_BR:
	case ZYDIS_CATEGORY_UNCOND_BR:
		return emit_branch(e, in);
	default:
		break;
	}
	if (relative_imm(in))
		return refuse(in, "has a relative operand that cannot be relocated");
	return emit_copy(e, in);
}

/* Nothing falls through these: bytes after one belong to something else. */
static bool ends_flow(const struct insn *in)
{
	switch (in->d.mnemonic) {
	case ZYDIS_MNEMONIC_RET:
	case ZYDIS_MNEMONIC_JMP:
	case ZYDIS_MNEMONIC_UD2:
	case ZYDIS_MNEMONIC_HLT:
		return true;
	default:
		return false;
	}
}

static int decode(const ZydisDecoder *dec, const uint8_t *code, size_t avail, uintptr_t target,
		  size_t at, struct insn *in)
{
	in->bytes = code + at;
	in->pc = target + at;
	in->at = at;
	if (ZYAN_FAILED(ZydisDecoderDecodeFull(dec, code + at, avail - at, &in->d, in->ops))) {
		em_set_error("execmem_hook: no valid instruction at +%zu of %#lx", at,
			     (unsigned long)target);
		return -ENOEXEC;
	}
	if (in->d.mnemonic == ZYDIS_MNEMONIC_INT3)
		return refuse(in, "is a trap (padding or a breakpoint): the function is too short");
	return 0;
}

/* What the window's instructions refer to, once its end is known: none may
 * lead back into the bytes the entry jump replaces. */
static int check_refs(const struct ref *refs, size_t n, uintptr_t target, size_t displaced)
{
	for (size_t i = 0; i < n; i++)
		if (refs[i].dest >= target && refs[i].dest < target + displaced) {
			em_set_error("execmem_hook: the instruction at +%zu of %#lx branches back "
				     "into (or reads) the %zu bytes the jump replaces",
				     refs[i].at, (unsigned long)target, displaced);
			return -ENOEXEC;
		}
	return 0;
}

static bool record_ref(const struct insn *in, struct ref *ref)
{
	const ZydisDecodedOperand *op = relative_imm(in);
	if (!op)
		op = rip_operand(in);
	if (!op)
		return false;
	ref->dest = absolute(in, op);
	ref->at = in->at;
	return true;
}

int em_reloc_window(const uint8_t *code, size_t avail, uintptr_t target, size_t need,
		    uintptr_t tramp, uint8_t *out, size_t cap, struct em_reloc_result *res)
{
	if (need == 0 || need > EM_RELOC_MAX_WINDOW) {
		em_set_error("execmem_hook: a %zu-byte entry jump is not supported", need);
		return -EINVAL;
	}
	ZydisDecoder dec;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	struct emitter e = { .out = out, .cap = cap, .base = tramp };
	struct ref refs[EM_RELOC_MAX_WINDOW];
	size_t nrefs = 0, at = 0;
	bool flow_ends = false;
	while (at < need) {
		struct insn in;
		if (at >= avail)
			return em_reloc_too_short(target, at, need);
		int rc = decode(&dec, code, avail, target, at, &in);
		if (rc)
			return rc;
		bool last = at + in.d.length >= need;
		if (ends_flow(&in) && !last)
			return em_reloc_too_short(target, at + in.d.length, need);
		rc = relocate_one(&e, &in, last);
		if (rc)
			return rc;
		nrefs += record_ref(&in, &refs[nrefs]);
		flow_ends = ends_flow(&in);
		at += in.d.length;
	}
	int rc = check_refs(refs, nrefs, target, at);
	if (rc)
		return rc;
	if (!flow_ends)
		emit_jump(&e, target + at);
	if (e.overflow) {
		em_set_error("execmem_hook: the relocated instructions need more than %zu bytes", cap);
		return -ENOSPC;
	}
	res->displaced = at;
	res->len = e.len;
	return 0;
}
