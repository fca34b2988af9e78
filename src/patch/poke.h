/*
 * poke.h - changing live instructions: the layer under execmem_patch(), the
 * hooks and the probes.  Internal to the library.
 */
#ifndef EXECMEM_PATCH_POKE_H
#define EXECMEM_PATCH_POKE_H

#include <stddef.h>
#include <stdint.h>

/* One live change: len bytes at addr become bytes (len 1..15 on x86-64, 4 or 8 on aarch64;
 * the range starts at an instruction boundary and lies in one page or two adjacent ones).
 * detour, when not NULL, is code that does what the old bytes at addr did and then goes on
 * past the site (a hook's displaced instructions): a thread that meets the site's temporary
 * trap continues there at once instead of waiting for the batch, so a site may lie in code
 * that the batch's own work runs (a hook of malloc or of a system call's wrapper). */
struct em_poke_site { void *addr; const void *bytes; size_t len; const void *detour; };

/* Changes every site so that each thread executes either the old or the new bytes of a site,
 * never a mix: x86-64: INT3 on each first byte, sync, wait until no other thread's PC is inside
 * (addr, addr+len) of any site, write the tails, sync, write the first bytes, sync; aarch64: a
 * single aligned word store when old and new are both in the set the architecture allows to be
 * swapped live (B, BL, NOP, BRK, ...), otherwise BRK first and the same protocol.  Sites may lie
 * in execmem code (written through execmem's own write path) or in host text (a private file
 * mapping of the program or a library, or anonymous RX memory), which is never made writable:
 * each changed page is replaced, with mmap(MAP_FIXED), by a fresh read+execute memfd page that
 * already holds the new bytes (atomic for every thread, works under prctl(PR_SET_MDWE)).
 * One round of synchronisations for the whole batch.  Thread-safe (one lock).
 * Returns 0, or -EINVAL (bad site), -EFAULT (address not mapped executable), -EBUSY (a thread
 * stayed inside a site; nothing changed), -ENOTSUP (architecture), or the OS error. */
int em_poke_batch(const struct em_poke_site *sites, size_t n);

/* 0 when no thread of the process other than the caller has its program counter inside any of
 * the n ranges [start, end) right now, -EBUSY when one has, -errno when it cannot be known (a
 * thread blocks the census signal and does not answer in time: -ETIMEDOUT).  Each thread is
 * interrupted by a signal whose handler reports the PC of the interrupted context. */
struct em_pc_range { uintptr_t start, end; };
int em_threads_outside(const struct em_pc_range *ranges, size_t n);

#endif
