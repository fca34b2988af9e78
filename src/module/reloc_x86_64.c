/*
 * reloc_x86_64.c - x86-64 relocation types, from the System V AMD64 psABI
 * (section "Relocation Types"), as howtos for reloc.c.
 */
#include "module_internal.h"

#define H(type_, value_, field_, flags_) \
	[R_X86_64_##type_] = { "R_X86_64_" #type_, value_, field_, 0, flags_ }

static const struct mod_howto x86_64_howtos[R_X86_64_NUM] = {
	H(NONE,          VAL_NONE,      FIELD_NONE, 0),
	H(64,            VAL_ABS,       FIELD_U64,  0),
	H(PC32,          VAL_PCREL,     FIELD_S32,  HOWTO_CHECK),
	H(PLT32,         VAL_PCREL,     FIELD_S32,  HOWTO_CHECK | HOWTO_BRANCH),
	H(GOTPCREL,      VAL_GOT_PCREL, FIELD_S32,  HOWTO_CHECK | HOWTO_GOT),
	H(32,            VAL_ABS,       FIELD_U32,  HOWTO_CHECK | HOWTO_LOW32),
	H(32S,           VAL_ABS,       FIELD_S32,  HOWTO_CHECK | HOWTO_LOW32),
	H(16,            VAL_ABS,       FIELD_X16,  HOWTO_CHECK | HOWTO_LOW32),
	H(PC16,          VAL_PCREL,     FIELD_S16,  HOWTO_CHECK),
	H(8,             VAL_ABS,       FIELD_X8,   HOWTO_CHECK | HOWTO_LOW32),
	H(PC8,           VAL_PCREL,     FIELD_S8,   HOWTO_CHECK),
	H(PC64,          VAL_PCREL,     FIELD_U64,  0),
	H(GOTOFF64,      VAL_GOTOFF,    FIELD_U64,  HOWTO_USES_GOT),
	H(GOTPC32,       VAL_GOTPC,     FIELD_S32,  HOWTO_CHECK | HOWTO_USES_GOT),
	H(GOTPCREL64,    VAL_GOT_PCREL, FIELD_U64,  HOWTO_GOT),
	H(GOTPC64,       VAL_GOTPC,     FIELD_U64,  HOWTO_USES_GOT),
	H(GOTPCRELX,     VAL_GOT_PCREL, FIELD_S32,  HOWTO_CHECK | HOWTO_GOT),
	H(REX_GOTPCRELX, VAL_GOT_PCREL, FIELD_S32,  HOWTO_CHECK | HOWTO_GOT),
};

#define NAMED(type_, why_) case R_X86_64_##type_: *why = why_; return "R_X86_64_" #type_

static const char *x86_64_unsupported(uint32_t type, const char **why)
{
	switch (type) {
	NAMED(DTPMOD64, "thread-local storage");
	NAMED(DTPOFF64, "thread-local storage");
	NAMED(TPOFF64, "thread-local storage");
	NAMED(TLSGD, "thread-local storage");
	NAMED(TLSLD, "thread-local storage");
	NAMED(DTPOFF32, "thread-local storage");
	NAMED(GOTTPOFF, "thread-local storage");
	NAMED(TPOFF32, "thread-local storage");
	NAMED(GOTPC32_TLSDESC, "thread-local storage");
	NAMED(TLSDESC_CALL, "thread-local storage");
	NAMED(TLSDESC, "thread-local storage");
	NAMED(IRELATIVE, "IFUNC");
	NAMED(GOT32, "not in the supported set");
	NAMED(GOT64, "large-model GOT offsets are not supported");
	NAMED(GOTPLT64, "large-model GOT offsets are not supported");
	NAMED(PLTOFF64, "large-model PLT offsets are not supported");
	NAMED(SIZE32, "symbol size relocations are not supported");
	NAMED(SIZE64, "symbol size relocations are not supported");
	NAMED(COPY, "dynamic relocation in a relocatable object");
	NAMED(GLOB_DAT, "dynamic relocation in a relocatable object");
	NAMED(JUMP_SLOT, "dynamic relocation in a relocatable object");
	NAMED(RELATIVE, "dynamic relocation in a relocatable object");
	default: return NULL;
	}
}

/* jmp *0(%rip); .quad target; int3 int3 */
static void x86_64_write_plt(uint8_t *stub, uint64_t stub_address, uint64_t target)
{
	static const uint8_t jmp_indirect[6] = { 0xff, 0x25, 0, 0, 0, 0 };

	(void)stub_address;
	for (int i = 0; i < 6; i++)
		stub[i] = jmp_indirect[i];
	for (int i = 0; i < 8; i++)
		stub[6 + i] = (uint8_t)(target >> (8 * i));
	stub[14] = 0xcc;
	stub[15] = 0xcc;
}

const struct mod_arch mod_arch_x86_64 = {
	.machine = EM_X86_64,
	.name = "x86-64",
	.howtos = x86_64_howtos,
	.nhowtos = R_X86_64_NUM,
	.unsupported_name = x86_64_unsupported,
	.trap = { 0xcc },
	.trap_size = 1,
	.plt_size = 16,
	.write_plt = x86_64_write_plt,
};
