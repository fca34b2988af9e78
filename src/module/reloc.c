/*
 * reloc.c - one relocation engine for every architecture: the machines, the
 * names of relocation types, and mod_reloc_apply(); the engine's code is in
 * reloc_engine.h, so that the loader's relocation loop can inline it.
 *
 * A relocation type is described by a howto (see common.h): how
 * its value is computed from S, A, P and the GOT, and how the value is put
 * into the place.  The per-architecture files only hold tables of howtos and
 * the PLT stub writer; everything here is plain integer manipulation of
 * little-endian bytes, so it builds and works on any host, which lets tests
 * and the fuzzer relocate aarch64 objects on an x86-64 machine.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "reloc.h"
#include "reloc_engine.h"

const struct mod_arch *mod_arch_for(uint16_t machine)
{
	if (machine == EM_X86_64)
		return &mod_arch_x86_64;
	if (machine == EM_AARCH64)
		return &mod_arch_aarch64;
	return NULL;
}

uint16_t mod_host_machine(void)
{
#if defined(__x86_64__)
	return EM_X86_64;
#elif defined(__aarch64__)
	return EM_AARCH64;
#else
	return EM_NONE;
#endif
}

const char *mod_reloc_name(const struct mod_arch *arch, uint32_t type, char *buf, size_t len,
			   const char **why)
{
	const struct mod_howto *howto = mod_howto_for(arch, type);
	const char *name = NULL;

	*why = NULL;
	if (howto)
		return howto->name;
	if (arch->unsupported_name)
		name = arch->unsupported_name(type, why);
	if (name)
		return name;
	snprintf(buf, len, "%s relocation type %u", arch->name, (unsigned)type);
	return buf;
}

int mod_reloc_apply(const struct mod_howto *howto, struct mod_reloc_site *site,
		    const char **detail)
{
	return reloc_engine_apply(howto, site, detail);
}
