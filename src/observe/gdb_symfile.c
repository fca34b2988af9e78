/*
 * gdb_symfile.c - the smallest ELF file a debugger takes as the symbols of
 * a batch of named code: a relocatable object with one SHT_NOBITS .text
 * section per range, lying at the code's address, a function symbol at
 * the start of each named one, and optionally an .eh_frame section at the
 * address where its bytes lie in memory (pc-relative encodings in it are
 * relative to that address).  One section per range keeps the sections of
 * all files apart (names never overlap), so no section of one file covers
 * another's code.
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

static const char section_names[] = "\0.text\0.symtab\0.strtab\0.shstrtab\0.eh_frame";
enum { NAME_TEXT = 1, NAME_SYMTAB = 7, NAME_STRTAB = 15, NAME_SHSTRTAB = 23, NAME_EH_FRAME = 33 };

struct layout {
	const struct em_symbol *syms;
	size_t count, nsyms;
	const struct em_eh_frame *eh;
	size_t eh_frame, symtab, strtab, strtab_size, shstrtab, shdrs, total;
	size_t nsections, first_table; /* index of .symtab */
};

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static struct layout lay_out(const struct em_symbol *syms, size_t count,
			     const struct em_eh_frame *eh)
{
	struct layout l = { .syms = syms, .count = count, .eh = eh, .strtab_size = 1 };
	for (size_t i = 0; i < count; i++)
		if (syms[i].name) {
			l.strtab_size += strlen(syms[i].name) + 1;
			l.nsyms++;
		}
	l.first_table = 1 + count + (eh != NULL);
	l.nsections = l.first_table + 3;
	l.eh_frame = sizeof(Elf64_Ehdr);
	l.symtab = align8(l.eh_frame + (eh ? eh->size : 0));
	l.strtab = l.symtab + (l.nsyms + 1) * sizeof(Elf64_Sym);
	l.shstrtab = l.strtab + l.strtab_size;
	l.shdrs = align8(l.shstrtab + sizeof section_names);
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

static void write_sections(uint8_t *file, const struct layout *l)
{
	Elf64_Shdr *sh = (Elf64_Shdr *)(file + l->shdrs);
	for (size_t i = 0; i < l->count; i++)
		sh[1 + i] = (Elf64_Shdr){ .sh_name = NAME_TEXT, .sh_type = SHT_NOBITS,
					  .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
					  .sh_addr = l->syms[i].start, .sh_size = l->syms[i].size,
					  .sh_addralign = 1 };
	if (l->eh) {
		sh[1 + l->count] = (Elf64_Shdr){ .sh_name = NAME_EH_FRAME, .sh_type = SHT_PROGBITS,
						 .sh_flags = SHF_ALLOC, .sh_addr = l->eh->address,
						 .sh_offset = l->eh_frame, .sh_size = l->eh->size,
						 .sh_addralign = 1 };
		memcpy(file + l->eh_frame, (const void *)l->eh->address, l->eh->size);
	}
	size_t symtab = l->first_table;
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
static void write_symbols(uint8_t *file, const struct layout *l)
{
	Elf64_Sym *sym = (Elf64_Sym *)(file + l->symtab) + 1;
	char *strtab = (char *)file + l->strtab;
	size_t at = 1;
	for (size_t i = 0; i < l->count; i++) {
		if (!l->syms[i].name)
			continue;
		size_t len = strlen(l->syms[i].name) + 1;
		memcpy(strtab + at, l->syms[i].name, len);
		*sym++ = (Elf64_Sym){ .st_name = (Elf64_Word)at,
				      .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
				      .st_shndx = (Elf64_Section)(1 + i), .st_size = l->syms[i].size };
		at += len;
	}
}

void *em_symfile_build(const struct em_symbol *syms, size_t count, const struct em_eh_frame *eh,
		       size_t *size)
{
	struct layout l = lay_out(syms, count, eh);
	uint8_t *file = calloc(1, l.total);
	if (!file)
		return NULL;
	write_header(file, &l);
	write_sections(file, &l);
	write_symbols(file, &l);
	*size = l.total;
	return file;
}
