/*
 * crt.h - the C runtime pieces that glibc keeps out of the process.
 */
#ifndef EXECMEM_MODULE_CRT_H
#define EXECMEM_MODULE_CRT_H

#include "common.h"

/*
 * The C runtime pieces (crt.c).  mod_crt_object() is the relocatable object
 * of libc_nonshared.a's functions for the host machine, linked into modules
 * that need them; mod_crt_symbol() the loader's own definitions of what it
 * references, or 0.  A module with a __dso_handle is attached before its
 * constructors run, so that its registrations are kept; mod_crt_finalize()
 * runs them (unload), mod_crt_detach() drops them unrun (failed load).
 */
MOD_HIDDEN const uint8_t *mod_crt_object(size_t *size);
MOD_HIDDEN uintptr_t mod_crt_symbol(const char *name);
MOD_HIDDEN void mod_crt_attach(struct execmem_module *module);
MOD_HIDDEN void mod_crt_finalize(struct execmem_module *module);
MOD_HIDDEN void mod_crt_detach(struct execmem_module *module);

#endif
