/*
 * reloc_x86_64.c - x86-64 relocation types, from the System V AMD64 psABI
 * (section "Relocation Types"), as howtos for reloc.c.
 */
#include <string.h>
#include "reloc_howto.h"

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

/*
 * Operands of a symbol out of reach, in instructions with REX.W whose
 * displacement ends them:
 *   lea sym(%rip), %reg (8d, modrm mod 00 r/m 101) becomes
 *   mov sym@GOT(%rip), %reg (8b), the same length: the reverse of the
 *   GOTPCRELX relaxation linkers make;
 *   mov sym(%rip), %reg and mov sym, %reg (8b, modrm r/m 100 with SIB 25:
 *   a 32-bit absolute address, from clang -fno-pic), pointer-sized loads,
 *   become a jump to a stub that loads from the full address and jumps
 *   back after the instruction.
 */
static int is_rex_w(uint8_t byte)
{
	return (byte & 0xf8) == 0x48;
}

/* Where the pointer load whose displacement is at code[offset] starts, or NULL. */
static const uint8_t *pointer_load(const uint8_t *code, uint64_t offset, uint32_t type,
				   int64_t addend)
{
	if (type == R_X86_64_PC32 && addend == -4 && offset >= 3 && is_rex_w(code[offset - 3]) &&
	    code[offset - 2] == 0x8b && (code[offset - 1] & 0xc7) == 0x05)
		return code + offset - 3;
	/* REX.X clear: index 100 is then "no index". */
	if (type == R_X86_64_32S && offset >= 4 && is_rex_w(code[offset - 4]) &&
	    !(code[offset - 4] & 2) && code[offset - 3] == 0x8b &&
	    (code[offset - 2] & 0xc7) == 0x04 && code[offset - 1] == 0x25)
		return code + offset - 4;
	return NULL;
}

static int x86_64_indirect_form(const uint8_t *code, uint64_t offset, uint32_t type,
				int64_t addend)
{
	if (pointer_load(code, offset, type, addend))
		return INDIRECT_STUB;
	if (type == R_X86_64_PC32 && addend == -4 && offset >= 3 && is_rex_w(code[offset - 3]) &&
	    code[offset - 2] == 0x8d && (code[offset - 1] & 0xc7) == 0x05)
		return INDIRECT_GOT;
	return INDIRECT_NONE;
}

static void x86_64_use_got_form(uint8_t *code, uint64_t offset)
{
	code[offset - 2] = 0x8b;
}

static uint8_t *put_rel32_jump(uint8_t *at, uint64_t at_address, uint64_t target)
{
	uint32_t rel = (uint32_t)(target - (at_address + 5));
	at[0] = 0xe9;
	for (int i = 0; i < 4; i++)
		at[1 + i] = (uint8_t)(rel >> (8 * i));
	return at + 5;
}

/* movabs $address, %reg; mov (%reg), %reg; jmp back. */
static void x86_64_use_load_stub(uint8_t *code, uint64_t offset, uint64_t place, uint32_t type,
				 uint64_t target, uint8_t *stub, uint64_t stub_address)
{
	uint8_t *insn = (uint8_t *)pointer_load(code, offset, type, -4);
	unsigned reg = ((insn[0] & 4) ? 8 : 0) | ((insn[2] >> 3) & 7), low = reg & 7;
	uint64_t address = type == R_X86_64_PC32 ? target + 4 : target;
	uint8_t *p = stub;

	*p++ = (uint8_t)(0x48 | (reg >> 3));
	*p++ = (uint8_t)(0xb8 + low);
	for (int i = 0; i < 8; i++)
		*p++ = (uint8_t)(address >> (8 * i));
	*p++ = (uint8_t)(0x48 | (reg >> 3) << 2 | (reg >> 3));
	*p++ = 0x8b;
	if (low == 5) {                 /* r/m 101 with mod 00 would be RIP-relative */
		*p++ = (uint8_t)(0x40 | low << 3 | low);
		*p++ = 0;
	} else {
		*p++ = (uint8_t)(low << 3 | low);
		if (low == 4)           /* r/m 100 takes a SIB byte */
			*p++ = 0x24;
	}
	put_rel32_jump(p, stub_address + (uint64_t)(p - stub), place + 4);
	uint8_t *after = put_rel32_jump(insn, place - (uint64_t)(code + offset - insn), stub_address);
	static const uint8_t nops[2][3] = { { 0x66, 0x90 }, { 0x0f, 0x1f, 0x00 } };
	size_t pad = (size_t)(code + offset + 4 - after);   /* 2 or 3 bytes */
	memcpy(after, nops[pad - 2], pad);
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
	.indirect_form = x86_64_indirect_form,
	.got_form_type = R_X86_64_REX_GOTPCRELX,
	.use_got_form = x86_64_use_got_form,
	.load_stub_size = 32,
	.use_load_stub = x86_64_use_load_stub,
};
