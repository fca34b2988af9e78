/*
 * load_libs.h - `execmem load -l NAME -L DIR`: find libraries the way the
 * static linker does, open shared ones, resolve module symbols from them.
 */
#ifndef EXECMEM_TOOLS_LOAD_LIBS_H
#define EXECMEM_TOOLS_LOAD_LIBS_H

#include <stddef.h>

struct load_libs {
	const char **dirs;      /* -L directories, in command line order */
	size_t ndirs;
	void **handles;         /* dlopen()ed shared libraries, in order */
	size_t nhandles;
};

/*
 * Find -l name (":FILE" for an exact file name): in each -L directory, then
 * in the default directories, the first of libNAME.so and libNAME.a, or
 * else the highest libNAME.so.N (a run-time library without its
 * development link).  A shared library is opened with dlopen(RTLD_NOW |
 * RTLD_LOCAL) and kept in libs; an archive's path is put in *archive (to be
 * freed) for the caller to link.  Returns 0, or -1 after printing what was
 * searched.
 */
int load_libs_add(struct load_libs *libs, const char *name, char **archive);

/* Resolver for execmem_module_options: symbols the process does not have,
 * from the libraries, in order.  context is the struct load_libs. */
void *load_libs_resolve(const char *symbol, void *context);

void load_libs_close(struct load_libs *libs);

#endif
