/*
 * elf_object.c - parse and validate one ELF64 relocatable object.
 *
 * Everything read from the image is checked before use: offsets and sizes
 * against the image, indices against their tables, strings for a
 * terminating NUL inside their table.  Headers are copied out with memcpy
 * because archive members need not be aligned.  After mod_object_parse()
 * succeeds, later stages may trust: section data lies inside the image,
 * symbol section indices are valid, and every name is a C string.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "elf_object.h"
#include "reloc.h"
#include "symtab.h"

static int bad(const char *obj, const char *what)
{
	return mod_error(ENOEXEC, "%s: malformed ELF object: %s", obj, what);
}

static int check_header(const Elf64_Ehdr *eh, size_t size, const char *name)
{
	if (size >= 4 && memcmp(eh->e_ident, "BC\xc0\xde", 4) == 0)
		return mod_error(ENOTSUP, "%s: LLVM bitcode (built with -flto), not machine code", name);
	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
		return mod_error(ENOEXEC, "%s: not an ELF file", name);
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return mod_error(ENOEXEC, "%s: only 64-bit ELF objects are supported", name);
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return mod_error(ENOEXEC, "%s: only little-endian ELF objects are supported", name);
	if (eh->e_ident[EI_VERSION] != EV_CURRENT)
		return bad(name, "unknown ELF version");
	if (eh->e_type != ET_REL)
		return mod_error(ENOEXEC, "%s: not a relocatable object (ELF type %u); "
				 "build it with -c", name, (unsigned)eh->e_type);
	if (!mod_arch_for(eh->e_machine))
		return mod_error(ENOEXEC, "%s: unsupported machine %u (x86-64 and aarch64 are)",
				 name, (unsigned)eh->e_machine);
	if (eh->e_shentsize != sizeof(Elf64_Shdr))
		return bad(name, "section header size is not sizeof(Elf64_Shdr)");
	if (eh->e_shoff == 0)
		return bad(name, "no section header table");
	return 0;
}

static void read_shdr(const uint8_t *image, uint64_t shoff, uint32_t index, Elf64_Shdr *out)
{
	memcpy(out, image + shoff + (uint64_t)index * sizeof(*out), sizeof(*out));
}

/* The section count and string table index, with their extended forms. */
static int section_counts(const Elf64_Ehdr *eh, const uint8_t *image, size_t size,
			  const char *name, uint32_t *count, uint32_t *strndx)
{
	Elf64_Shdr first;

	if (!mod_range_ok(eh->e_shoff, sizeof(first), size))
		return bad(name, "section header table outside the file");
	read_shdr(image, eh->e_shoff, 0, &first);
	uint64_t n = eh->e_shnum ? eh->e_shnum : first.sh_size;
	uint64_t s = eh->e_shstrndx == SHN_XINDEX ? first.sh_link : eh->e_shstrndx;
	if (n == 0 || n > MOD_MAX_SECTIONS)
		return bad(name, "section count out of range");
	if (!mod_range_ok(eh->e_shoff, n * sizeof(Elf64_Shdr), size))
		return bad(name, "section header table outside the file");
	if (s == SHN_UNDEF || s >= n)
		return bad(name, "section name string table index out of range");
	*count = (uint32_t)n;
	*strndx = (uint32_t)s;
	return 0;
}

/* A string table must lie in the file and end with NUL, so any index below
 * its size names a terminated string. */
static int check_strtab(const struct mod_section *sec, const char *name)
{
	if (sec->type != SHT_STRTAB || sec->size == 0 || !sec->data)
		return bad(name, "string table is not a non-empty SHT_STRTAB");
	if (sec->data[sec->size - 1] != '\0')
		return bad(name, "string table does not end with NUL");
	return 0;
}

static int is_power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

static int load_section(struct mod_object *obj, uint32_t index, const Elf64_Shdr *sh)
{
	struct mod_section *sec = &obj->sections[index];

	/* Every field: the array is not zeroed (it is large and written once). */
	*sec = (struct mod_section){
		.type = sh->sh_type,
		.flags = sh->sh_flags,
		.size = sh->sh_size,
		.align = sh->sh_addralign ? sh->sh_addralign : 1,
		.entsize = sh->sh_entsize,
		.offset = sh->sh_offset,
		.link = sh->sh_link,
		.info = sh->sh_info,
		.region = REGION_NONE,
	};
	if (!is_power_of_two(sec->align))
		return bad(obj->name, "section alignment is not a power of two");
	if (sec->type == SHT_NOBITS || sec->type == SHT_NULL)
		return 0;
	if (!mod_range_ok(sec->offset, sec->size, obj->image_size))
		return bad(obj->name, "section contents outside the file");
	sec->data = obj->image + sec->offset;
	return 0;
}

/* The bytes of one section in the file: [start, end). */
struct file_range {
	uint64_t start, end;
};

/*
 * Sort n ranges by start with an LSD radix sort, a byte per pass, as many
 * passes as the file size needs (3 for a few MiB).  Objects built with
 * -ffunction-sections have thousands of sections, and a comparison sort
 * through qsort() was the largest part of parsing them; this one is linear
 * whatever the input, hostile or not.  Sorts from one of the two buffers
 * into the other per pass; returns the one holding the result.
 */
static struct file_range *sort_ranges(struct file_range *ranges, struct file_range *spare,
				      uint32_t n, uint64_t file_size)
{
	for (unsigned shift = 0; shift < 64 && (file_size >> shift) != 0; shift += 8) {
		uint32_t start_of[257] = { 0 };
		for (uint32_t i = 0; i < n; i++)
			start_of[((ranges[i].start >> shift) & 0xff) + 1]++;
		for (unsigned d = 0; d < 256; d++)
			start_of[d + 1] += start_of[d];
		for (uint32_t i = 0; i < n; i++)
			spare[start_of[(ranges[i].start >> shift) & 0xff]++] = ranges[i];
		struct file_range *sorted = spare;
		spare = ranges;
		ranges = sorted;
	}
	return ranges;
}

/* Below this many ranges an insertion sort beats the radix sort, whose
 * counting passes over 256 digits cost more than a small object's whole
 * parse; its quadratic worst case stays bounded by the square of this. */
#define FEW_RANGES 64

static void insertion_sort_ranges(struct file_range *ranges, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++) {
		struct file_range r = ranges[i];
		uint32_t at = i;
		for (; at && ranges[at - 1].start > r.start; at--)
			ranges[at] = ranges[at - 1];
		ranges[at] = r;
	}
}

/* Two sections whose contents overlap in the file are malformed (and would
 * let one section's relocation rewrite another's bytes).  In start order,
 * any overlap shows between neighbours. */
static int check_overlaps(struct mod_object *obj)
{
	struct file_range *ranges = malloc(2 * (size_t)obj->nsections * sizeof(*ranges));
	uint32_t n = 0;
	int err = 0;

	if (!ranges)
		return mod_error(ENOMEM, "%s: out of memory", obj->name);
	for (uint32_t i = 1; i < obj->nsections; i++) {
		const struct mod_section *sec = &obj->sections[i];
		if (sec->data && sec->size)      /* inside the file: no overflow */
			ranges[n++] = (struct file_range){ sec->offset, sec->offset + sec->size };
	}
	const struct file_range *order = ranges;
	if (n <= FEW_RANGES)
		insertion_sort_ranges(ranges, n);
	else
		order = sort_ranges(ranges, ranges + obj->nsections, n, obj->image_size);
	for (uint32_t i = 1; i < n && !err; i++)
		if (order[i - 1].end > order[i].start)
			err = bad(obj->name, "sections overlap in the file");
	free(ranges);
	return err;
}

static int name_sections(struct mod_object *obj, uint32_t strndx, uint64_t shoff)
{
	const struct mod_section *names = &obj->sections[strndx];
	int err = check_strtab(names, obj->name);

	if (err)
		return err;
	for (uint32_t i = 0; i < obj->nsections; i++) {
		Elf64_Shdr sh;
		read_shdr(obj->image, shoff, i, &sh);
		if (sh.sh_name >= names->size)
			return bad(obj->name, "section name index out of range");
		obj->sections[i].name = (const char *)names->data + sh.sh_name;
		obj->sections[i].eh_frame = strcmp(obj->sections[i].name, ".eh_frame") == 0;
	}
	return 0;
}

/* The SHT_SYMTAB_SHNDX section that extends the symbol table, or NULL. */
static const struct mod_section *find_shndx_table(const struct mod_object *obj)
{
	for (uint32_t i = 1; i < obj->nsections; i++)
		if (obj->sections[i].type == SHT_SYMTAB_SHNDX &&
		    obj->sections[i].link == obj->symtab_index)
			return &obj->sections[i];
	return NULL;
}

static int load_symbol(struct mod_object *obj, uint32_t index, const Elf64_Sym *raw,
		       const struct mod_section *strtab, const struct mod_section *xindex)
{
	struct mod_symbol *sym = &obj->symbols[index];

	if (raw->st_name >= strtab->size)
		return bad(obj->name, "symbol name index out of range");
	sym->name = (const char *)strtab->data + raw->st_name;
	sym->value = raw->st_value;
	sym->size = raw->st_size;
	sym->bind = ELF64_ST_BIND(raw->st_info);
	sym->type = ELF64_ST_TYPE(raw->st_info);
	sym->visibility = ELF64_ST_VISIBILITY(raw->st_other);
	/* Hashed once here: selection and the symbol merge both look it up. */
	sym->hash = sym->bind != STB_LOCAL ? mod_hash_name(sym->name) : 0;
	sym->shndx = raw->st_shndx;
	if (sym->shndx == SHN_XINDEX) {
		uint32_t ext;
		if (!xindex || !mod_range_ok((uint64_t)index * 4, 4, xindex->size))
			return bad(obj->name, "extended symbol section index missing");
		memcpy(&ext, xindex->data + (uint64_t)index * 4, 4);
		sym->shndx = ext;
		if (ext == SHN_UNDEF || ext >= obj->nsections)
			return bad(obj->name, "extended symbol section index out of range");
		return 0;
	}
	if (sym->shndx == SHN_UNDEF || sym->shndx == SHN_ABS || sym->shndx == SHN_COMMON)
		return 0;
	if (sym->shndx >= SHN_LORESERVE)
		return mod_error(ENOTSUP, "%s: symbol '%s' has unsupported special section index 0x%x",
				 obj->name, sym->name, (unsigned)sym->shndx);
	if (sym->shndx >= obj->nsections)
		return bad(obj->name, "symbol section index out of range");
	return 0;
}

static int load_symbols(struct mod_object *obj, struct mod_pool *pool)
{
	uint32_t found = 0;

	for (uint32_t i = 1; i < obj->nsections; i++) {
		if (obj->sections[i].type == SHT_SYMTAB) {
			obj->symtab_index = i;
			found++;
		}
	}
	if (found == 0)
		return 0;
	if (found > 1)
		return bad(obj->name, "more than one symbol table");

	const struct mod_section *symtab = &obj->sections[obj->symtab_index];
	if (symtab->entsize != sizeof(Elf64_Sym) || symtab->size % sizeof(Elf64_Sym))
		return bad(obj->name, "symbol table entry size is not sizeof(Elf64_Sym)");
	if (symtab->link == 0 || symtab->link >= obj->nsections)
		return bad(obj->name, "symbol string table index out of range");
	const struct mod_section *strtab = &obj->sections[symtab->link];
	int err = check_strtab(strtab, obj->name);
	if (err)
		return err;
	uint64_t count = symtab->size / sizeof(Elf64_Sym);
	if (count > MOD_MAX_SYMBOLS)
		return bad(obj->name, "too many symbols");
	obj->nsymbols = (uint32_t)count;
	/* Not zeroed: load_symbol() sets every field of every symbol. */
	obj->symbols = mod_pool_alloc(pool, count * sizeof(*obj->symbols));
	if (!obj->symbols)
		return mod_error(ENOMEM, "%s: out of memory for %llu symbols", obj->name,
				 (unsigned long long)count);
	const struct mod_section *xindex = find_shndx_table(obj);
	for (uint32_t i = 0; i < obj->nsymbols; i++) {
		Elf64_Sym raw;
		memcpy(&raw, symtab->data + (uint64_t)i * sizeof(raw), sizeof(raw));
		err = load_symbol(obj, i, &raw, strtab, xindex);
		if (err)
			return err;
	}
	return 0;
}

/* Relocation sections must point at a real section and at the symbol table. */
static int check_relocation_sections(const struct mod_object *obj)
{
	for (uint32_t i = 1; i < obj->nsections; i++) {
		const struct mod_section *sec = &obj->sections[i];
		if (sec->type != SHT_RELA && sec->type != SHT_REL)
			continue;
		if (sec->info == 0 || sec->info >= obj->nsections || sec->info == i)
			return bad(obj->name, "relocation section targets an invalid section");
		if (obj->symtab_index == 0 || sec->link != obj->symtab_index)
			return bad(obj->name, "relocation section does not use the symbol table");
		uint64_t entsize = sec->type == SHT_RELA ? sizeof(Elf64_Rela) : sizeof(Elf64_Rel);
		if (sec->entsize != entsize || sec->size % entsize)
			return bad(obj->name, "relocation entry size is wrong");
	}
	return 0;
}

int mod_object_parse(struct mod_object *obj, const uint8_t *image, size_t size, const char *name,
		     struct mod_pool *pool)
{
	Elf64_Ehdr eh;
	uint32_t strndx = 0;
	int err;

	memset(obj, 0, sizeof(*obj));
	obj->name = name;
	obj->image = image;
	obj->image_size = size;
	if (size < sizeof(eh))
		return mod_error(ENOEXEC, "%s: too short for an ELF header (%zu bytes)", name, size);
	memcpy(&eh, image, sizeof(eh));
	err = check_header(&eh, size, name);
	if (!err)
		err = section_counts(&eh, image, size, name, &obj->nsections, &strndx);
	if (err)
		return err;
	obj->machine = eh.e_machine;
	obj->sections = mod_pool_alloc(pool, obj->nsections * sizeof(*obj->sections)); /* load_section() */
	if (!obj->sections)
		return mod_error(ENOMEM, "%s: out of memory", name);
	for (uint32_t i = 0; i < obj->nsections && !err; i++) {
		Elf64_Shdr sh;
		read_shdr(image, eh.e_shoff, i, &sh);
		err = load_section(obj, i, &sh);
	}
	if (!err)
		err = name_sections(obj, strndx, eh.e_shoff);
	if (!err)
		err = check_overlaps(obj);
	if (!err)
		err = load_symbols(obj, pool);
	if (!err)
		err = check_relocation_sections(obj);
	return err;
}
