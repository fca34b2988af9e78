/*
 * reach.h - where a module may lie: the window of addresses from which every
 * PC-relative reference it makes to an import reaches its target.
 *
 * A reference that is neither a branch (which may go through a PLT stub)
 * nor a GOT load (which reaches any address) holds the distance to its
 * target in a field of a few bits: x86-64 PC32 to a variable of libc,
 * aarch64 ADRP to a data symbol.  Each such reference narrows the window;
 * the loader places every block of the module inside what is left.
 */
#ifndef EXECMEM_MODULE_REACH_H
#define EXECMEM_MODULE_REACH_H

#include "reloc_howto.h"

/* Addresses [lo, hi] (both included) where every byte of the module must
 * lie, with the entries (index + 1; 0 for the initial bound) that set each
 * end, for the message when nothing fits. */
struct mod_window {
	uint64_t lo, hi;
	uint32_t lo_by, hi_by;
};

/*
 * How far from its place the target of a relocation of this type may lie
 * when it cannot go through a PLT stub or a GOT entry, or 0 when the type
 * puts no such limit (64-bit fields, absolute values, branches, GOT loads).
 */
MOD_HIDDEN uint64_t mod_howto_reach(const struct mod_howto *howto);

/* The window [lo, hi], bounded by nothing else yet. */
MOD_HIDDEN void mod_window_init(struct mod_window *w, uint64_t lo, uint64_t hi);

/* Narrow w to the addresses within reach bytes of target (saturating at
 * both ends of the address space); by names who asks, for messages. */
MOD_HIDDEN void mod_window_narrow(struct mod_window *w, uint64_t target, uint64_t reach,
				  uint32_t by);

/* 1 when size bytes fit inside w. */
MOD_HIDDEN int mod_window_holds(const struct mod_window *w, uint64_t size);

#endif
