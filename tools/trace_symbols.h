/*
 * trace_symbols.h - finding a function of the running program or of one
 * of its libraries by name, for `execmem trace`.
 */
#ifndef EXECMEM_TOOLS_TRACE_SYMBOLS_H
#define EXECMEM_TOOLS_TRACE_SYMBOLS_H

#include <stddef.h>

/*
 * trace_resolve - the address of the function spec names: "FUNC" is looked
 * up with dlsym(RTLD_DEFAULT), then in the program's own ELF symbol table
 * (/proc/self/exe's .symtab: functions that are not exported, static ones
 * included); "FUNC@LIB" in the loaded object LIB only (its path, its file
 * name, or the file name without its version suffix: "libc" finds
 * libc.so.6), by its dynamic symbols, then by its .symtab when the file
 * has one.  A name dlsym() finds as data, or several local functions of
 * the same name, are refused.
 * Returns the address, or NULL with a sentence in why (at most size bytes)
 * saying what was not found.  Not thread-safe against dlclose() of LIB.
 */
void *trace_resolve(const char *spec, char *why, size_t size);

#endif
