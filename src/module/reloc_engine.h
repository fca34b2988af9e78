/*
 * reloc_engine.h - the relocation engine itself: compute a relocation's
 * value and put it into its place, for every architecture (see reloc.c).
 *
 * It is in a header, as static inline functions, so that the loader's
 * relocation loop (relocate.c) gets it inlined: a module has tens of
 * thousands of relocations, and a call per relocation, with the site
 * spilled to memory for it, cost about a tenth of the instructions spent
 * applying them.  reloc.c wraps it as mod_reloc_apply() for the tests.
 */
#ifndef EXECMEM_MODULE_RELOC_ENGINE_H
#define EXECMEM_MODULE_RELOC_ENGINE_H

#include <errno.h>
#include <string.h>
#include "reloc_howto.h"

/* ---- little-endian access, independent of the host's byte order ---- */

static inline uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(&v, p, bytes);           /* one load on the usual hosts */
#else
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
#endif
	return v;
}

static inline void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(p, &v, bytes);
#else
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
#endif
}

static inline int fits_signed(uint64_t v, unsigned bits)
{
	int64_t s = (int64_t)v;
	int64_t limit = (int64_t)1 << (bits - 1);
	return s >= -limit && s < limit;
}

static inline int fits_unsigned(uint64_t v, unsigned bits)
{
	return bits >= 64 || (v >> bits) == 0;
}

static inline uint64_t page_of(uint64_t address)
{
	return address & ~(uint64_t)0xfff;
}

static inline uint64_t compute_value(const struct mod_howto *howto, const struct mod_reloc_site *s)
{
	switch (howto->value) {
	case VAL_ABS:        return s->S + s->A;
	case VAL_PCREL:      return s->S + s->A - s->P;
	case VAL_GOT_PCREL:  return s->G + s->A - s->P;
	case VAL_GOTOFF:     return s->S + s->A - s->GOT;
	case VAL_GOTPC:      return s->GOT + s->A - s->P;
	case VAL_PAGE_PCREL: return page_of(s->S + s->A) - page_of(s->P);
	case VAL_GOT_PAGE:   return page_of(s->G) - page_of(s->P);
	case VAL_GOT_ABS:    return s->G;
	default:             return 0;
	}
}

/* Bytes of the place each field kind touches. */
static inline unsigned field_bytes(unsigned field)
{
	switch (field) {
	case FIELD_NONE: return 0;
	case FIELD_U64:  return 8;
	case FIELD_S16: case FIELD_X16: return 2;
	case FIELD_S8: case FIELD_X8:   return 1;
	default:         return 4;   /* 32-bit words and aarch64 instructions */
	}
}

/* A plain data word of `bytes` bytes; `sign` 1 signed, 0 unsigned, 2 either. */
static inline int put_word(uint8_t *loc, uint64_t v, unsigned bytes, int sign, int check)
{
	unsigned bits = bytes * 8;
	if (check && bits < 64) {
		int ok = sign == 1 ? fits_signed(v, bits)
		       : sign == 0 ? fits_unsigned(v, bits)
		       : fits_signed(v, bits) || fits_unsigned(v, bits);
		if (!ok)
			return -ERANGE;
	}
	put_le(loc, v, bytes);
	return 0;
}

/* Replace the bits of `mask` in the instruction at loc with `bits`. */
static inline void patch_insn(uint8_t *loc, uint32_t mask, uint32_t bits)
{
	uint32_t insn = (uint32_t)get_le(loc, 4);
	put_le(loc, (insn & ~mask) | (bits & mask), 4);
}

/* aarch64 PC-relative branch immediates: imm of `bits` bits at `lsb`, in words. */
static inline int put_branch(uint8_t *loc, uint64_t v, unsigned bits, unsigned lsb, int check,
		      const char **detail)
{
	if (v & 3) {
		*detail = "branch target not 4-byte aligned";
		return -EINVAL;
	}
	if (check && !fits_signed(v, bits + 2))
		return -ERANGE;
	uint32_t mask = (uint32_t)(((uint64_t)1 << bits) - 1);
	patch_insn(loc, mask << lsb, (uint32_t)((v >> 2) & mask) << lsb);
	return 0;
}

static inline int put_adr(uint8_t *loc, uint64_t v, unsigned shift, int check)
{
	uint64_t imm = (uint64_t)((int64_t)v >> shift);
	if (check && !fits_signed(imm, 21))
		return -ERANGE;
	uint32_t bits = (uint32_t)((imm & 3) << 29) | (uint32_t)(((imm >> 2) & 0x7ffff) << 5);
	patch_insn(loc, (3u << 29) | (0x7ffffu << 5), bits);
	return 0;
}

static inline int put_imm12(uint8_t *loc, uint64_t v, unsigned shift, const char **detail)
{
	uint64_t low = v & 0xfff;
	if (low & (((uint64_t)1 << shift) - 1)) {
		*detail = "address not aligned to the access size";
		return -EINVAL;
	}
	patch_insn(loc, 0xfffu << 10, (uint32_t)(low >> shift) << 10);
	return 0;
}

static inline int put_movw(uint8_t *loc, uint64_t v, unsigned shift, int check)
{
	if (check && shift + 16 < 64 && (v >> (shift + 16)) != 0)
		return -ERANGE;
	patch_insn(loc, 0xffffu << 5, (uint32_t)((v >> shift) & 0xffff) << 5);
	return 0;
}

static inline int put_field(const struct mod_howto *howto, uint8_t *loc, uint64_t v,
		     const char **detail)
{
	int check = (howto->flags & HOWTO_CHECK) != 0;

	switch (howto->field) {
	case FIELD_NONE:      return 0;
	case FIELD_U64:       return put_word(loc, v, 8, 0, 0);
	case FIELD_S32:       return put_word(loc, v, 4, 1, check);
	case FIELD_U32:       return put_word(loc, v, 4, 0, check);
	case FIELD_X32:       return put_word(loc, v, 4, 2, check);
	case FIELD_S16:       return put_word(loc, v, 2, 1, check);
	case FIELD_X16:       return put_word(loc, v, 2, 2, check);
	case FIELD_S8:        return put_word(loc, v, 1, 1, check);
	case FIELD_X8:        return put_word(loc, v, 1, 2, check);
	case FIELD_A64_B26:   return put_branch(loc, v, 26, 0, check, detail);
	case FIELD_A64_B19:   return put_branch(loc, v, 19, 5, check, detail);
	case FIELD_A64_B14:   return put_branch(loc, v, 14, 5, check, detail);
	case FIELD_A64_ADR:   return put_adr(loc, v, howto->shift, check);
	case FIELD_A64_IMM12: return put_imm12(loc, v, howto->shift, detail);
	case FIELD_A64_MOVW:  return put_movw(loc, v, howto->shift, check);
	default:
		*detail = "unknown field kind";
		return -EINVAL;
	}
}

/* mod_reloc_apply(), inlined. */
static inline int reloc_engine_apply(const struct mod_howto *howto,
				     struct mod_reloc_site *site, const char **detail)
{
	unsigned bytes = field_bytes(howto->field);

	*detail = NULL;
	if (bytes > site->room) {
		*detail = "relocation runs past the end of its section";
		return -EINVAL;
	}
	int err = put_field(howto, site->loc, compute_value(howto, site), detail);
	if (err == -ERANGE)
		*detail = "value out of range (target out of reach)";
	return err;
}

#endif
