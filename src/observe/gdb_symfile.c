/*
 * gdb_symfile.c - the smallest ELF file a debugger takes as the symbols of
 * a batch of named code: a relocatable object with one SHT_NOBITS .text
 * section per name, lying at the code's address, and a function symbol at
 * its start.  One section per name keeps the sections of all batches apart
 * (names never overlap), so no section of one batch covers another's code.
 */
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"

#if defined(__x86_64__)
#define EM_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define EM_ELF_MACHINE EM_AARCH64
#else
#define EM_ELF_MACHINE EM_RISCV
#endif

static const char section_names[] = "\0.text\0.symtab\0.strtab\0.shstrtab";
enum { NAME_TEXT = 1, NAME_SYMTAB = 7, NAME_STRTAB = 15, NAME_SHSTRTAB = 23 };

struct layout {
	size_t symtab, strtab, strtab_size, shstrtab, shdrs, total;
	size_t nsections;
};

static struct layout lay_out(const struct em_symbol *syms, size_t count)
{
	struct layout l = { .nsections = count + 4 };
	l.strtab_size = 1;
	for (size_t i = 0; i < count; i++)
		l.strtab_size += strlen(syms[i].name) + 1;
	l.symtab = sizeof(Elf64_Ehdr);
	l.strtab = l.symtab + (count + 1) * sizeof(Elf64_Sym);
	l.shstrtab = l.strtab + l.strtab_size;
	l.shdrs = (l.shstrtab + sizeof section_names + 7) & ~(size_t)7;
	l.total = l.shdrs + l.nsections * sizeof(Elf64_Shdr);
	return l;
}

static void write_header(uint8_t *file, const struct layout *l)
{
	Elf64_Ehdr *eh = (Elf64_Ehdr *)file;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_REL;
	eh->e_machine = EM_ELF_MACHINE;
	eh->e_version = EV_CURRENT;
	eh->e_shoff = l->shdrs;
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_shentsize = sizeof(Elf64_Shdr);
	eh->e_shnum = (Elf64_Half)l->nsections;
	eh->e_shstrndx = (Elf64_Half)(l->nsections - 1);
}

static void write_sections(uint8_t *file, const struct layout *l, const struct em_symbol *syms,
			   size_t count)
{
	Elf64_Shdr *sh = (Elf64_Shdr *)(file + l->shdrs);
	for (size_t i = 0; i < count; i++)
		sh[1 + i] = (Elf64_Shdr){ .sh_name = NAME_TEXT, .sh_type = SHT_NOBITS,
					  .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
					  .sh_addr = syms[i].start, .sh_size = syms[i].size,
					  .sh_addralign = 1 };
	size_t symtab = count + 1;
	sh[symtab] = (Elf64_Shdr){ .sh_name = NAME_SYMTAB, .sh_type = SHT_SYMTAB,
				   .sh_offset = l->symtab, .sh_size = l->strtab - l->symtab,
				   .sh_link = (Elf64_Word)symtab + 1, .sh_info = 1,
				   .sh_addralign = 8, .sh_entsize = sizeof(Elf64_Sym) };
	sh[symtab + 1] = (Elf64_Shdr){ .sh_name = NAME_STRTAB, .sh_type = SHT_STRTAB,
				       .sh_offset = l->strtab, .sh_size = l->strtab_size,
				       .sh_addralign = 1 };
	sh[symtab + 2] = (Elf64_Shdr){ .sh_name = NAME_SHSTRTAB, .sh_type = SHT_STRTAB,
				       .sh_offset = l->shstrtab, .sh_size = sizeof section_names,
				       .sh_addralign = 1 };
	memcpy(file + l->shstrtab, section_names, sizeof section_names);
}

/* Symbol values of a relocatable file are offsets in their section. */
static void write_symbols(uint8_t *file, const struct layout *l, const struct em_symbol *syms,
			  size_t count)
{
	Elf64_Sym *sym = (Elf64_Sym *)(file + l->symtab);
	char *strtab = (char *)file + l->strtab;
	size_t at = 1;
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(syms[i].name) + 1;
		memcpy(strtab + at, syms[i].name, len);
		sym[1 + i] = (Elf64_Sym){ .st_name = (Elf64_Word)at,
					  .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
					  .st_shndx = (Elf64_Section)(1 + i), .st_size = syms[i].size };
		at += len;
	}
}

void *em_symfile_build(const struct em_symbol *syms, size_t count, size_t *size)
{
	struct layout l = lay_out(syms, count);
	uint8_t *file = calloc(1, l.total);
	if (!file)
		return NULL;
	write_header(file, &l);
	write_sections(file, &l, syms, count);
	write_symbols(file, &l, syms, count);
	*size = l.total;
	return file;
}
