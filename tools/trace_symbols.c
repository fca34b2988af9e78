/*
 * trace_symbols.c - function addresses by name: the dynamic linker's
 * symbols first, then the ELF symbol table of the object's file.
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace_symbols.h"

/* A loaded object: the program (wanted NULL) or the library wanted names. */
struct object {
	const char *wanted;
	char path[PATH_MAX];
	uintptr_t bias;
	bool found;
};

static bool names_library(const char *path, const char *wanted)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t n = strlen(wanted);

	return !strcmp(path, wanted) || !strcmp(base, wanted) ||
	       (!strncmp(base, wanted, n) && base[n] == '.');
}

static int match_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct object *o = arg;
	(void)size;

	if (o->wanted ? !*info->dlpi_name || !names_library(info->dlpi_name, o->wanted) : false)
		return 0;
	/* The program comes first, with an empty name: its file is /proc/self/exe. */
	snprintf(o->path, sizeof(o->path), "%s", o->wanted ? info->dlpi_name : "/proc/self/exe");
	o->bias = info->dlpi_addr;
	o->found = true;
	return 1;
}

static bool is_function_type(unsigned type)
{
	return type == STT_FUNC || type == STT_GNU_IFUNC;
}

/* A symbol of an ELF file's symbol tables. */
struct symtab_search {
	const char *name;
	uintptr_t value;
	unsigned matches; /* distinct addresses with that name */
};

static void search_table(const uint8_t *file, size_t size, const Elf64_Shdr *sections,
			 unsigned count, const Elf64_Shdr *table, struct symtab_search *s)
{
	if (table->sh_link >= count || table->sh_entsize != sizeof(Elf64_Sym) ||
	    table->sh_offset > size || table->sh_size > size - table->sh_offset)
		return;
	const Elf64_Shdr *strtab = &sections[table->sh_link];
	if (strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset)
		return;
	const Elf64_Sym *syms = (const Elf64_Sym *)(file + table->sh_offset);
	const char *strings = (const char *)(file + strtab->sh_offset);
	size_t name_len = strlen(s->name);

	for (size_t i = 0; i < table->sh_size / sizeof(Elf64_Sym); i++) {
		const Elf64_Sym *sym = &syms[i];
		if (ELF64_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_shndx == SHN_UNDEF ||
		    !sym->st_value || sym->st_name >= strtab->sh_size ||
		    strtab->sh_size - sym->st_name <= name_len ||
		    memcmp(strings + sym->st_name, s->name, name_len + 1))
			continue;
		if (!s->matches || s->value != sym->st_value)
			s->matches++;
		s->value = sym->st_value;
	}
}

/* Search the .symtab sections of the file at path; false if it is not a readable ELF64 file. */
static bool search_file(const char *path, struct symtab_search *s)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	bool ok = false;

	if (fd < 0)
		return false;
	if (fstat(fd, &st) || (size_t)st.st_size < sizeof(Elf64_Ehdr)) {
		close(fd);
		return false;
	}
	size_t size = (size_t)st.st_size;
	const uint8_t *file = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file == MAP_FAILED)
		return false;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
	if (!memcmp(eh->e_ident, ELFMAG, SELFMAG) && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
	    eh->e_shentsize == sizeof(Elf64_Shdr) && eh->e_shoff <= size &&
	    eh->e_shnum <= (size - eh->e_shoff) / sizeof(Elf64_Shdr)) {
		const Elf64_Shdr *sections = (const Elf64_Shdr *)(file + eh->e_shoff);
		for (unsigned i = 0; i < eh->e_shnum; i++)
			if (sections[i].sh_type == SHT_SYMTAB)
				search_table(file, size, sections, eh->e_shnum, &sections[i], s);
		ok = true;
	}
	munmap((void *)file, size);
	return ok;
}

/* dlsym()'s answer when it is a function of object o (any object when o is NULL). */
static void *dynamic_function(void *handle, const char *name, const struct object *o,
			      bool *is_data)
{
	void *addr = dlsym(handle, name);
	Dl_info info;
	const Elf64_Sym *sym = NULL;

	if (!addr || !dladdr1(addr, &info, (void **)&sym, RTLD_DL_SYMENT))
		return addr;
	if (o && (!info.dli_fname || strcmp(info.dli_fname, o->path)))
		return NULL; /* found in one of the library's dependencies */
	if (sym && !is_function_type(ELF64_ST_TYPE(sym->st_info))) {
		*is_data = true;
		return NULL;
	}
	return addr;
}

/* The function name of object o by its symbol table; NULL with why said. */
static void *local_function(const char *name, const struct object *o, const char *where,
			    char *why, size_t size)
{
	struct symtab_search s = { .name = name };

	search_file(o->path, &s);
	if (s.matches == 1)
		return (void *)(o->bias + s.value);
	if (s.matches > 1)
		snprintf(why, size, "%u local functions of %s have this name", s.matches, where);
	else
		snprintf(why, size, "not found in %s", where);
	return NULL;
}

void *trace_resolve(const char *spec, char *why, size_t size)
{
	char name[256];
	const char *at = strchr(spec, '@');
	size_t name_len = at ? (size_t)(at - spec) : strlen(spec);
	struct object o = { .wanted = at ? at + 1 : NULL };
	bool is_data = false;
	void *addr;

	if (!name_len || name_len >= sizeof(name) || (at && !at[1])) {
		snprintf(why, size, "not a function name (FUNC or FUNC@LIB)");
		return NULL;
	}
	memcpy(name, spec, name_len);
	name[name_len] = '\0';
	dl_iterate_phdr(match_object, &o);
	if (!o.found) {
		snprintf(why, size, "no loaded library is named %s", o.wanted);
		return NULL;
	}
	if (o.wanted) {
		void *handle = dlopen(o.path, RTLD_LAZY | RTLD_NOLOAD);
		addr = handle ? dynamic_function(handle, name, &o, &is_data) : NULL;
		if (handle)
			dlclose(handle);
	} else {
		addr = dynamic_function(RTLD_DEFAULT, name, NULL, &is_data);
	}
	if (addr)
		return addr;
	if (is_data) {
		snprintf(why, size, "is not a function");
		return NULL;
	}
	return local_function(name, &o, o.wanted ? o.path : "the program or its libraries", why,
			      size);
}
