/*
 * reloc_howto.h - how a relocation type is computed and written: the
 * tables of the per-architecture files, read by the relocation engine.
 */
#ifndef EXECMEM_MODULE_RELOC_HOWTO_H
#define EXECMEM_MODULE_RELOC_HOWTO_H

#include "common.h"

/* How the value of a relocation is computed (S symbol, A addend, P place). */
enum mod_value {
	VAL_NONE,        /* nothing to do */
	VAL_ABS,         /* S + A */
	VAL_PCREL,       /* S + A - P */
	VAL_GOT_PCREL,   /* G(S) + A - P */
	VAL_GOTOFF,      /* S + A - GOT */
	VAL_GOTPC,       /* GOT + A - P */
	VAL_PAGE_PCREL,  /* Page(S + A) - Page(P) */
	VAL_GOT_PAGE,    /* Page(G(S)) - Page(P) */
	VAL_GOT_ABS,     /* G(S) */
};

/* How the value is put into the place (and checked). */
enum mod_field {
	FIELD_NONE,
	FIELD_U64,        /* 64-bit word */
	FIELD_S32,        /* 32-bit word, value must fit signed */
	FIELD_U32,        /* 32-bit word, value must fit unsigned */
	FIELD_X32,        /* 32-bit word, signed or unsigned */
	FIELD_S16, FIELD_X16, FIELD_S8, FIELD_X8,
	FIELD_A64_B26,    /* B/BL imm26, value >> 2, +-128 MiB */
	FIELD_A64_B19,    /* B.cond/CBZ/LDR literal imm19 at bit 5, +-1 MiB */
	FIELD_A64_B14,    /* TBZ imm14 at bit 5, +-32 KiB */
	FIELD_A64_ADR,    /* ADR/ADRP imm21 (immlo:immhi), value >> shift */
	FIELD_A64_IMM12,  /* ADD/LDR/STR imm12 at bit 10: (value & 0xfff) >> shift */
	FIELD_A64_MOVW,   /* MOVZ/MOVK imm16 at bit 5: value >> shift */
};

/* What mod_arch.indirect_form() finds. */
enum mod_indirect { INDIRECT_NONE, INDIRECT_GOT, INDIRECT_STUB };

/* Flags of a relocation type. */
#define HOWTO_BRANCH   0x01  /* a branch: may go through a PLT stub */
#define HOWTO_GOT      0x02  /* needs a GOT entry for its symbol */
#define HOWTO_CHECK    0x04  /* the field overflows: check it */
#define HOWTO_LOW32    0x08  /* a 32-bit absolute address: module goes to the low 2 GiB */
#define HOWTO_USES_GOT 0x10  /* refers to the GOT base (_GLOBAL_OFFSET_TABLE_) */

struct mod_howto {
	const char *name;     /* NULL: unsupported */
	uint8_t value;        /* enum mod_value */
	uint8_t field;        /* enum mod_field */
	uint8_t shift;
	uint8_t flags;        /* HOWTO_* */
};

struct mod_arch {
	uint16_t machine;
	const char *name;
	const struct mod_howto *howtos;    /* indexed by relocation type */
	uint32_t nhowtos;
	/* Why a relocation type without a howto is unsupported, or NULL. */
	const char *(*unsupported_name)(uint32_t type, const char **why);
	uint8_t trap[4];                   /* fill pattern for gaps in code */
	uint8_t trap_size;
	uint32_t plt_size;
	void (*write_plt)(uint8_t *stub, uint64_t stub_address, uint64_t target);
	/*
	 * A relocation of type patches the instruction at code[offset] with the
	 * distance to its symbol, which may lie out of reach: can the
	 * instruction get there another way?  INDIRECT_GOT: it only takes the
	 * address, and a form as long loads it from a GOT entry (relocated as
	 * got_form_type); INDIRECT_STUB: it loads a pointer-sized value, and
	 * may jump to a stub that loads it from the full address and jumps
	 * back.  NULL when the architecture has neither.
	 */
	int (*indirect_form)(const uint8_t *code, uint64_t offset, uint32_t type, int64_t addend);
	uint32_t got_form_type;
	void (*use_got_form)(uint8_t *code, uint64_t offset);
	uint32_t load_stub_size;
	/* Write at stub (its address stub_address) a stub loading the value
	 * that the instruction whose field is at code[offset] (address place)
	 * loads, target being S + A of its relocation (of type), and make the
	 * instruction jump to it. */
	void (*use_load_stub)(uint8_t *code, uint64_t offset, uint64_t place, uint32_t type,
			      uint64_t target, uint8_t *stub, uint64_t stub_address);
};

MOD_HIDDEN extern const struct mod_arch mod_arch_x86_64;
MOD_HIDDEN extern const struct mod_arch mod_arch_aarch64;

/* The relocation type's howto, or NULL when unsupported. */
static inline const struct mod_howto *mod_howto_for(const struct mod_arch *arch, uint32_t type)
{
	if (type >= arch->nhowtos || !arch->howtos[type].name)
		return NULL;
	return &arch->howtos[type];
}

/* Everything the value computation needs for one relocation. */
struct mod_reloc_site {
	uint64_t S, A, P;     /* symbol, addend, place (final address) */
	uint64_t G;           /* address of the symbol's GOT entry (when needed) */
	uint64_t GOT;         /* GOT base */
	uint8_t *loc;         /* where the field is, in the private image */
	uint64_t room;        /* bytes available at loc */
};

#endif
