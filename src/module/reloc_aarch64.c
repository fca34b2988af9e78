/*
 * reloc_aarch64.c - aarch64 relocation types, from "ELF for the Arm 64-bit
 * Architecture (AArch64)", section "Relocation operations", as howtos for
 * reloc.c.  Pure data: it builds on every host.
 */
#include "reloc_howto.h"

#define A64(type_, value_, field_, shift_, flags_) \
	[R_AARCH64_##type_] = { "R_AARCH64_" #type_, value_, field_, shift_, flags_ }

#define AARCH64_HOWTOS (R_AARCH64_LD64_GOT_LO12_NC + 1)

static const struct mod_howto aarch64_howtos[AARCH64_HOWTOS] = {
	A64(NONE,                VAL_NONE,       FIELD_NONE,      0,  0),
	A64(ABS64,               VAL_ABS,        FIELD_U64,       0,  0),
	A64(ABS32,               VAL_ABS,        FIELD_X32,       0,  HOWTO_CHECK),
	A64(ABS16,               VAL_ABS,        FIELD_X16,       0,  HOWTO_CHECK),
	A64(PREL64,              VAL_PCREL,      FIELD_U64,       0,  0),
	A64(PREL32,              VAL_PCREL,      FIELD_S32,       0,  HOWTO_CHECK),
	A64(PREL16,              VAL_PCREL,      FIELD_S16,       0,  HOWTO_CHECK),
	A64(MOVW_UABS_G0,        VAL_ABS,        FIELD_A64_MOVW,  0,  HOWTO_CHECK),
	A64(MOVW_UABS_G0_NC,     VAL_ABS,        FIELD_A64_MOVW,  0,  0),
	A64(MOVW_UABS_G1,        VAL_ABS,        FIELD_A64_MOVW,  16, HOWTO_CHECK),
	A64(MOVW_UABS_G1_NC,     VAL_ABS,        FIELD_A64_MOVW,  16, 0),
	A64(MOVW_UABS_G2,        VAL_ABS,        FIELD_A64_MOVW,  32, HOWTO_CHECK),
	A64(MOVW_UABS_G2_NC,     VAL_ABS,        FIELD_A64_MOVW,  32, 0),
	A64(MOVW_UABS_G3,        VAL_ABS,        FIELD_A64_MOVW,  48, 0),
	A64(ADR_PREL_LO21,       VAL_PCREL,      FIELD_A64_ADR,   0,  HOWTO_CHECK),
	A64(ADR_PREL_PG_HI21,    VAL_PAGE_PCREL, FIELD_A64_ADR,   12, HOWTO_CHECK),
	A64(ADR_PREL_PG_HI21_NC, VAL_PAGE_PCREL, FIELD_A64_ADR,   12, 0),
	A64(ADD_ABS_LO12_NC,     VAL_ABS,        FIELD_A64_IMM12, 0,  0),
	A64(LDST8_ABS_LO12_NC,   VAL_ABS,        FIELD_A64_IMM12, 0,  0),
	A64(LDST16_ABS_LO12_NC,  VAL_ABS,        FIELD_A64_IMM12, 1,  0),
	A64(LDST32_ABS_LO12_NC,  VAL_ABS,        FIELD_A64_IMM12, 2,  0),
	A64(LDST64_ABS_LO12_NC,  VAL_ABS,        FIELD_A64_IMM12, 3,  0),
	A64(LDST128_ABS_LO12_NC, VAL_ABS,        FIELD_A64_IMM12, 4,  0),
	A64(TSTBR14,             VAL_PCREL,      FIELD_A64_B14,   0,  HOWTO_CHECK | HOWTO_BRANCH),
	A64(CONDBR19,            VAL_PCREL,      FIELD_A64_B19,   0,  HOWTO_CHECK | HOWTO_BRANCH),
	A64(JUMP26,              VAL_PCREL,      FIELD_A64_B26,   0,  HOWTO_CHECK | HOWTO_BRANCH),
	A64(CALL26,              VAL_PCREL,      FIELD_A64_B26,   0,  HOWTO_CHECK | HOWTO_BRANCH),
	A64(ADR_GOT_PAGE,        VAL_GOT_PAGE,   FIELD_A64_ADR,   12, HOWTO_CHECK | HOWTO_GOT),
	A64(LD64_GOT_LO12_NC,    VAL_GOT_ABS,    FIELD_A64_IMM12, 3,  HOWTO_GOT),
};

static const char *aarch64_unsupported(uint32_t type, const char **why)
{
	/* 512..573 are the TLS relocations; 1024.. are dynamic ones. */
	if (type >= R_AARCH64_TLSGD_ADR_PREL21 && type <= R_AARCH64_TLSLE_LDST128_TPREL_LO12_NC) {
		*why = "thread-local storage";
		return "an aarch64 TLS relocation";
	}
	if (type == R_AARCH64_IRELATIVE) {
		*why = "IFUNC";
		return "R_AARCH64_IRELATIVE";
	}
	if (type >= R_AARCH64_COPY && type <= R_AARCH64_TLSDESC) {
		*why = "dynamic relocation in a relocatable object";
		return "an aarch64 dynamic relocation";
	}
	return NULL;
}

/* ldr x16, 8; br x16; .quad target */
static void aarch64_write_plt(uint8_t *stub, uint64_t stub_address, uint64_t target)
{
	static const uint32_t insns[2] = { 0x58000050u, 0xd61f0200u };

	(void)stub_address;
	for (int w = 0; w < 2; w++)
		for (int i = 0; i < 4; i++)
			stub[4 * w + i] = (uint8_t)(insns[w] >> (8 * i));
	for (int i = 0; i < 8; i++)
		stub[8 + i] = (uint8_t)(target >> (8 * i));
}

const struct mod_arch mod_arch_aarch64 = {
	.machine = EM_AARCH64,
	.name = "aarch64",
	.howtos = aarch64_howtos,
	.nhowtos = AARCH64_HOWTOS,
	.unsupported_name = aarch64_unsupported,
	.trap = { 0x00, 0x00, 0x20, 0xd4 },   /* brk #0 */
	.trap_size = 4,
	.plt_size = 16,
	.write_plt = aarch64_write_plt,
};
