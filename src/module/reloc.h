/*
 * reloc.h - the machines, the names of relocation types, and applying one
 * relocation (reloc.c).
 */
#ifndef EXECMEM_MODULE_RELOC_H
#define EXECMEM_MODULE_RELOC_H

#include "reloc_howto.h"

MOD_HIDDEN const struct mod_arch *mod_arch_for(uint16_t machine);
MOD_HIDDEN uint16_t mod_host_machine(void);

/* Describe relocation type in messages: "R_X86_64_PC32" or "type 123". */
MOD_HIDDEN const char *mod_reloc_name(const struct mod_arch *arch, uint32_t type,
				      char *buf, size_t len, const char **why);

/*
 * Apply one relocation.  Returns 0, -ERANGE (value does not fit; the place is
 * unchanged, so the caller may retry with a PLT stub as S), -EINVAL (place
 * too small or misaligned value); *detail gets a short reason.
 */
MOD_HIDDEN int mod_reloc_apply(const struct mod_howto *howto, struct mod_reloc_site *site,
			       const char **detail);

#endif
