/*
 * poke_int.h - what the files of the live-patching layer share (poke.c,
 * census.c, trap.c, host_text.c and the architecture's poke_<arch>.c).
 */
#ifndef EXECMEM_PATCH_POKE_INT_H
#define EXECMEM_PATCH_POKE_INT_H

#include <signal.h>
#include <stdbool.h>

#include "internal.h"
#include "poke.h"

/* For the reads of code bytes that other threads may be rewriting (the
 * trap handler looking at what is at a site): racy by design, as every
 * instruction fetch of cross-modified code is, and left out of
 * ThreadSanitizer's view. */
#define EM_READS_LIVE_CODE __attribute__((no_sanitize("thread")))

/* What the protocol needs to know of the CPU (poke_<arch>.c). */
struct em_poke_arch {
	size_t max_len;   /* longest site */
	size_t align;     /* sites start at a multiple of this, and are as many long */
	size_t trap_len;  /* the temporary trap that goes over a site's first bytes */
	uint8_t trap[4];
	/* Whether the len bytes at a site may go from old to new in one store
	 * with no trap first, every thread then seeing one or the other. */
	bool (*direct)(const uint8_t *old, const uint8_t *new_bytes, size_t len);
	/* Where a site's trap leaves the program counter, from the site. */
	uintptr_t trap_pc_offset;
	/* The si_code of SIGTRAP that trap raises. */
	int trap_si_code;
	/* Whether the instruction at site is a trap of that kind, whoever's. */
	bool (*is_trap)(uintptr_t site);
	uintptr_t (*context_pc)(const void *ucontext);
	void (*set_context_pc)(void *ucontext, uintptr_t pc);
	/* A context-synchronising (serialising) instruction. */
	void (*serialise)(void);
};
extern const struct em_poke_arch em_poke_arch;

/* One write of the protocol: len bytes at addr become bytes. */
struct em_piece {
	uintptr_t addr;
	const uint8_t *bytes;
	size_t len;
};

/* host_text.c: program and library text, changed by page replacement. */
/* 0 when [addr, addr + len) lies in read + execute mappings none of which
 * is writable or shared, -EFAULT otherwise (or the error of looking). */
int em_host_text_check(uintptr_t addr, size_t len);
/* Writes the n pieces (sorted by address, all in host text), replacing
 * each page they touch once with a fresh read + execute copy of it that
 * holds them.  On failure, the pages before the one that failed are
 * replaced, the others untouched. */
int em_host_text_write(const struct em_piece *pieces, size_t n);

/* trap.c: the temporary traps of a batch. */
/* A listed site, and where a thread that meets its trap continues (0: it
 * waits until em_traps_end(), then executes the site again). */
struct em_trap_site {
	uintptr_t site, detour;
};
/* Installs the trap handler (once) and lists the n sites (sorted), whose
 * traps are about to go in. */
int em_traps_begin(const struct em_trap_site *sites, size_t n);
void em_traps_end(void);
/* Whether thread tid waits in the trap handler now. */
bool em_trap_parked(pid_t tid);

/* census.c: the census signal also serves as the fallback of
 * em_os_sync_core(), for its handler serialises each thread it interrupts. */
int em_census_sync(void);
/* fork() waits for the census under way from the first call on. */
void em_census_watch_forks(void);

/* Hands a signal execmem does not recognise to the action installed before
 * its own handler.  A trap (synchronous) with the default action restores
 * it, so that the instruction is retried and the process ends as it would
 * have; an asynchronous one is raised again for the same effect. */
void em_chain_signal(const struct sigaction *previous, int sig, siginfo_t *si, void *ucontext,
		     bool synchronous);

#endif
