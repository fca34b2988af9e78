/*
 * reloc_aarch64.c - moving the first instructions of an aarch64 function
 * into a trampoline.  Fixed-width instructions: the PC-relative ones
 * (ADR/ADRP, LDR literal, B/BL, B.cond, CBZ/CBNZ, TBZ/TBNZ) are re-encoded
 * for the new address, or rewritten into a longer form when their field no
 * longer reaches; everything else is copied.  The longer forms use no
 * register but the destination of the instruction itself, except jumps
 * beyond B's reach, which go through x17 (an intra-procedure-call scratch
 * register, clobbered by any veneer the linker places on a branch).
 */
#include "patch/reloc.h"

#include "internal.h"

#include <string.h>

#define MiB ((int64_t)1 << 20)

struct emitter {
	uint8_t *out;
	size_t len, cap;
	uintptr_t base;
	bool overflow;
};

static void emit32(struct emitter *e, uint32_t insn)
{
	if (e->len + 4 > e->cap) {
		e->overflow = true;
		return;
	}
	memcpy(e->out + e->len, &insn, 4);
	e->len += 4;
}

static void emit64(struct emitter *e, uint64_t v)
{
	emit32(e, (uint32_t)v);
	emit32(e, (uint32_t)(v >> 32));
}

static uintptr_t emitter_pc(const struct emitter *e)
{
	return e->base + e->len;
}

/* Whether a byte offset fits a signed field of bits counted in words. */
static bool fits_words(int64_t delta, unsigned bits)
{
	int64_t limit = (int64_t)1 << (bits + 1); /* bytes: 2^(bits-1) words */
	return (delta & 3) == 0 && delta >= -limit && delta < limit;
}

static int64_t sign_extend(uint64_t v, unsigned bits)
{
	return (int64_t)(v << (64 - bits)) >> (64 - bits);
}

static uint32_t field(uint32_t insn, unsigned lo, unsigned bits)
{
	return (insn >> lo) & ((1u << bits) - 1);
}

static uint32_t with_field(uint32_t insn, unsigned lo, unsigned bits, uint64_t v)
{
	uint32_t mask = ((1u << bits) - 1) << lo;
	return (insn & ~mask) | (((uint32_t)v << lo) & mask);
}

/* ---- encodings ---- */
enum {
	B_OP = 0x14000000,
	BR_X16 = 0xd61f0200,
	BR_X17 = 0xd61f0220,
	LDR_X_LIT = 0x58000000,  /* ldr xt, label */
	ADRP_OP = 0x90000000,
	ADD_IMM_X = 0x91000000,  /* add xd, xn, #imm12 */
	NOP = 0xd503201f,
};

static uint32_t adrp(unsigned rd, int64_t pages)
{
	return ADRP_OP | ((uint32_t)(pages & 3) << 29) | ((uint32_t)((pages >> 2) & 0x7ffff) << 5) | rd;
}

static bool adrp_reaches(uintptr_t from, uintptr_t to)
{
	int64_t pages = (int64_t)(to >> 12) - (int64_t)(from >> 12);
	return pages >= -(1 << 20) && pages < (1 << 20);
}

size_t em_reloc_jump_len(uintptr_t from, uintptr_t to)
{
	if (fits_words((int64_t)(to - from), 26))
		return 4;
	if ((to & 0xfff) == 0 && adrp_reaches(from, to))
		return 8;
	return 16;
}

size_t em_reloc_jump(uintptr_t from, uintptr_t to, uint8_t *out)
{
	struct emitter e = { .out = out, .cap = EM_RELOC_MAX_JUMP, .base = from };
	int64_t delta = (int64_t)(to - from);
	switch (em_reloc_jump_len(from, to)) {
	case 4:
		emit32(&e, B_OP | (uint32_t)((delta >> 2) & 0x3ffffff));
		break;
	case 8:
		emit32(&e, adrp(16, (int64_t)(to >> 12) - (int64_t)(from >> 12)));
		emit32(&e, BR_X16);
		break;
	default:
		emit32(&e, LDR_X_LIT | (2 << 5) | 17); /* ldr x17, [pc + 8] */
		emit32(&e, BR_X17);
		emit64(&e, to);
		break;
	}
	return e.len;
}

static void emit_jump(struct emitter *e, uintptr_t dest)
{
	uint8_t jump[EM_RELOC_MAX_JUMP];
	size_t n = em_reloc_jump(emitter_pc(e), dest, jump);
	for (size_t i = 0; i < n; i += 4) {
		uint32_t insn;
		memcpy(&insn, jump + i, 4);
		emit32(e, insn);
	}
}

/* xt = value, without another register: a literal jumped over. */
static void emit_load_abs(struct emitter *e, unsigned rt, uint64_t value)
{
	emit32(e, LDR_X_LIT | (2 << 5) | rt); /* ldr xt, [pc + 8] */
	emit32(e, B_OP | 3);                  /* b pc + 12 */
	emit64(e, value);
}

/* ---- the PC-relative forms ---- */
struct insn {
	uint32_t word;
	uintptr_t pc;
	size_t at;
};

static int refuse(const struct insn *in, int rc, const char *why)
{
	em_set_error("execmem_hook: the instruction %08x at +%zu of %#lx %s", in->word, in->at,
		     (unsigned long)(in->pc - in->at), why);
	return rc;
}

/* A conditional branch (B.cond, CBZ/CBNZ, TBZ/TBNZ, its offset in a field
 * of bits at lo): re-aimed when the field reaches, else the inverted
 * condition skips a jump. */
static void emit_cond_branch(struct emitter *e, const struct insn *in, unsigned lo, unsigned bits,
			     uint32_t invert_bit, uintptr_t dest)
{
	int64_t delta = (int64_t)(dest - emitter_pc(e));
	if (fits_words(delta, bits)) {
		emit32(e, with_field(in->word, lo, bits, (uint64_t)(delta >> 2)));
		return;
	}
	size_t jump_len = em_reloc_jump_len(emitter_pc(e) + 4, dest);
	emit32(e, with_field(in->word ^ invert_bit, lo, bits, 1 + jump_len / 4));
	emit_jump(e, dest);
}

static uintptr_t branch_dest(const struct insn *in, unsigned lo, unsigned bits)
{
	return in->pc + (uintptr_t)(sign_extend(field(in->word, lo, bits), bits) * 4);
}

/* ADR xd (ADRP: its page) names dest again from the new address. */
static void emit_adr(struct emitter *e, const struct insn *in, bool page, uintptr_t dest)
{
	unsigned rd = field(in->word, 0, 5);
	int64_t delta = (int64_t)(dest - emitter_pc(e));
	if (page && adrp_reaches(emitter_pc(e), dest)) {
		emit32(e, adrp(rd, (int64_t)(dest >> 12) - (int64_t)(emitter_pc(e) >> 12)));
	} else if (!page && delta >= -MiB && delta < MiB) {
		emit32(e, 0x10000000 | ((uint32_t)(delta & 3) << 29) |
				  ((uint32_t)((delta >> 2) & 0x7ffff) << 5) | rd);
	} else if (!page && adrp_reaches(emitter_pc(e), dest)) {
		emit32(e, adrp(rd, (int64_t)(dest >> 12) - (int64_t)(emitter_pc(e) >> 12)));
		emit32(e, ADD_IMM_X | ((uint32_t)(dest & 0xfff) << 10) | (rd << 5) | rd);
	} else {
		emit_load_abs(e, rd, dest);
	}
}

static uintptr_t adr_dest(const struct insn *in, bool page)
{
	int64_t imm = sign_extend((field(in->word, 5, 19) << 2) | field(in->word, 29, 2), 21);
	if (page)
		return (in->pc & ~(uintptr_t)0xfff) + (uintptr_t)(imm << 12);
	return in->pc + (uintptr_t)imm;
}

/* LDR (literal): re-aimed in reach; else the address goes into the
 * destination register, which then loads from it. */
static int emit_ldr_literal(struct emitter *e, const struct insn *in, uintptr_t dest)
{
	int64_t delta = (int64_t)(dest - emitter_pc(e));
	if (fits_words(delta, 19)) {
		emit32(e, with_field(in->word, 5, 19, (uint64_t)(delta >> 2)));
		return 0;
	}
	unsigned opc = field(in->word, 30, 2), rt = field(in->word, 0, 5);
	bool simd = field(in->word, 26, 1);
	if (simd)
		return refuse(in, -ERANGE, "is a SIMD literal load out of reach of the trampoline");
	static const uint32_t load_from_rt[3] = {
		0xb9400000, /* ldr wt, [xt] */
		0xf9400000, /* ldr xt, [xt] */
		0xb9800000, /* ldrsw xt, [xt] */
	};
	if (opc == 3) { /* prfm: a hint, dropped rather than moved */
		emit32(e, NOP);
		return 0;
	}
	emit_load_abs(e, rt, dest);
	emit32(e, load_from_rt[opc] | (rt << 5) | rt);
	return 0;
}

/* BL runs as "x30 = its original return address; jump": the callee
 * returns into the target, never into the trampoline. */
static int emit_bl(struct emitter *e, const struct insn *in, bool last, uintptr_t dest)
{
	if (!last)
		return refuse(in, -ENOEXEC, "is a call that would return into the patched bytes");
	emit_load_abs(e, 30, in->pc + 4);
	emit_jump(e, dest);
	return 0;
}

enum kind { PLAIN, B, BL, BCOND, CBZ, TBZ, ADR, ADRP, LDR_LIT, ENDS_FLOW, CALL_REG, TRAP };

static enum kind classify(uint32_t w)
{
	if ((w & 0xfc000000) == 0x14000000)
		return B;
	if ((w & 0xfc000000) == 0x94000000)
		return BL;
	if ((w & 0xff000010) == 0x54000000)
		return BCOND;
	if ((w & 0x7e000000) == 0x34000000)
		return CBZ;
	if ((w & 0x7e000000) == 0x36000000)
		return TBZ;
	if ((w & 0x9f000000) == 0x10000000)
		return ADR;
	if ((w & 0x9f000000) == 0x90000000)
		return ADRP;
	if ((w & 0x3b000000) == 0x18000000)
		return LDR_LIT;
	/* br, ret, braa/retaa..., eret: nothing falls through */
	if ((w & 0xfffffc1f) == 0xd61f0000 || (w & 0xfffffc1f) == 0xd65f0000 ||
	    (w & 0xfefff800) == 0xd61f0800 || (w & 0xfffffbff) == 0xd65f0bff || w == 0xd69f03e0)
		return ENDS_FLOW;
	if ((w & 0xfffffc1f) == 0xd63f0000 || (w & 0xfefff800) == 0xd63f0800)
		return CALL_REG;
	if ((w & 0xffe0001f) == 0xd4200000 || (w & 0xffff0000) == 0)
		return TRAP; /* brk, udf: padding or a breakpoint */
	return PLAIN;
}

static bool ends_flow(enum kind k, uint32_t w)
{
	/* b, and b.al / b.nv, which are b too */
	return k == ENDS_FLOW || k == B || (k == BCOND && (w & 0xe) == 0xe);
}

/* Where the instruction points, for the check against the window; 0 for
 * none (ADRP names a page, not the bytes it holds). */
static uintptr_t reference(enum kind k, const struct insn *in)
{
	switch (k) {
	case B:
	case BL:
		return branch_dest(in, 0, 26);
	case BCOND:
	case CBZ:
	case LDR_LIT:
		return branch_dest(in, 5, 19);
	case TBZ:
		return branch_dest(in, 5, 14);
	case ADR:
		return adr_dest(in, false);
	default:
		return 0;
	}
}

static int relocate_one(struct emitter *e, enum kind k, const struct insn *in, bool last)
{
	switch (k) {
	case B:
		emit_jump(e, branch_dest(in, 0, 26));
		return 0;
	case BL:
		return emit_bl(e, in, last, branch_dest(in, 0, 26));
	case BCOND:
		if (ends_flow(k, in->word)) {
			emit_jump(e, branch_dest(in, 5, 19));
			return 0;
		}
		emit_cond_branch(e, in, 5, 19, 1, branch_dest(in, 5, 19));
		return 0;
	case CBZ:
		emit_cond_branch(e, in, 5, 19, 1u << 24, branch_dest(in, 5, 19));
		return 0;
	case TBZ:
		emit_cond_branch(e, in, 5, 14, 1u << 24, branch_dest(in, 5, 14));
		return 0;
	case ADR:
	case ADRP:
		emit_adr(e, in, k == ADRP, adr_dest(in, k == ADRP));
		return 0;
	case LDR_LIT:
		return emit_ldr_literal(e, in, branch_dest(in, 5, 19));
	case CALL_REG:
		return refuse(in, -ENOEXEC, "is an indirect call, which cannot be displaced");
	case TRAP:
		return refuse(in, -ENOEXEC, "is a trap (padding or a breakpoint): the function is too short");
	default:
		emit32(e, in->word);
		return 0;
	}
}

int em_reloc_window(const uint8_t *code, size_t avail, uintptr_t target, size_t need,
		    uintptr_t tramp, uint8_t *out, size_t cap, struct em_reloc_result *res)
{
	if (need == 0 || need > EM_RELOC_MAX_WINDOW || (need & 3) || (target & 3) || (tramp & 3)) {
		em_set_error("execmem_hook: a %zu-byte entry jump at %#lx is not supported", need,
			     (unsigned long)target);
		return -EINVAL;
	}
	struct emitter e = { .out = out, .cap = cap, .base = tramp };
	uintptr_t refs[EM_RELOC_MAX_WINDOW / 4];
	size_t ref_at[EM_RELOC_MAX_WINDOW / 4], nrefs = 0, at = 0;
	bool flow_ends = false;
	for (; at < need; at += 4) {
		if (at + 4 > avail)
			return em_reloc_too_short(target, at, need);
		struct insn in = { .pc = target + at, .at = at };
		memcpy(&in.word, code + at, 4);
		enum kind k = classify(in.word);
		bool last = at + 4 >= need;
		if (ends_flow(k, in.word) && !last)
			return em_reloc_too_short(target, at + 4, need);
		int rc = relocate_one(&e, k, &in, last);
		if (rc)
			return rc;
		uintptr_t ref = reference(k, &in);
		if (ref) {
			ref_at[nrefs] = at;
			refs[nrefs++] = ref;
		}
		flow_ends = ends_flow(k, in.word);
	}
	for (size_t i = 0; i < nrefs; i++)
		if (refs[i] >= target && refs[i] < target + at) {
			em_set_error("execmem_hook: the instruction at +%zu of %#lx branches back "
				     "into (or reads) the %zu bytes the jump replaces",
				     ref_at[i], (unsigned long)target, at);
			return -ENOEXEC;
		}
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
