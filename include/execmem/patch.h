/*
 * execmem/patch.h - change machine code while other threads run it.
 *
 * OVERVIEW
 *   execmem_patch() replaces instructions of live execmem code (an
 *   allocation of type EXECMEM_CODE or EXECMEM_CODE_NEAR) while other
 *   threads may be executing them.  Every thread executes either the old or
 *   the new bytes of a site, each time from the site's start, never a mix,
 *   and no page is ever writable and executable (see docs/patching.md).
 *
 * HOW
 *   x86-64: the site's first byte becomes INT3, every core synchronises
 *   (membarrier SYNC_CORE), execmem waits until no thread's program counter
 *   lies past that first byte inside the site, writes the rest, synchronises,
 *   writes the first byte, synchronises.  A thread that reaches the site
 *   meanwhile takes the trap, waits in execmem's SIGTRAP handler until the
 *   patch is done and executes the site again.  A site of which only the
 *   first byte changes takes one store.
 *   aarch64: one aligned 32-bit store when the old and the new instruction
 *   both belong to the set the architecture allows to be swapped while
 *   other cores run them (B, BL, NOP, BRK, HVC, SMC, SVC, ISB); otherwise
 *   BRK and the same protocol.
 *
 * WHAT THE PROCESS MUST ALLOW
 *   - SIGTRAP: execmem installs a handler on the first patch and passes the
 *     traps that are not its own to the action installed before.  A handler
 *     the program installs later must do the same; a thread must not block
 *     SIGTRAP while it may run code being patched.
 *   - The census signal, SIGRTMAX - 2: sent to every other thread of the
 *     process (when a site is longer than its first instruction unit, and
 *     where membarrier SYNC_CORE is missing, for each synchronisation).  Its
 *     handler chains signals that are not execmem's to the action installed
 *     before.  It interrupts blocking system calls that signals interrupt
 *     (with SA_RESTART where the call can be restarted).  A thread that
 *     blocks it for longer than two seconds makes such a patch fail with
 *     -ETIMEDOUT, having changed nothing.
 *   - A multi-instruction site must not contain a call whose return address
 *     lies inside the site, and code of a site must not be running in a
 *     context that a signal handler interrupted: execmem sees where a thread
 *     is, not where its stack will return to.
 *
 * THREADS
 *   Every function may be called from any thread; patches are applied one
 *   batch at a time.  Patching the same bytes from two threads at once
 *   gives one of the two results.
 */
#ifndef EXECMEM_PATCH_H
#define EXECMEM_PATCH_H

#include <stddef.h>

#include "execmem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest site, in bytes, on the architecture built for. */
#if defined(__aarch64__)
#define EXECMEM_PATCH_MAX 8
#else
#define EXECMEM_PATCH_MAX 15
#endif

/* One change of a batch: len bytes at addr become bytes. */
struct execmem_patch_site {
	void *addr;
	const void *bytes;
	size_t len;
};

/*
 * execmem_patch - replace the len bytes at addr, inside one live code
 * allocation, with bytes, while other threads may run them.  addr must be
 * the start of an instruction (of the old code and of the new); on x86-64
 * len is 1 to 15; on aarch64 addr is 4-byte aligned and len is 4 or 8.
 * The bytes may be of several instructions: no thread then runs part of
 * the old sequence and part of the new.  Returns once every thread of the
 * process will execute the new bytes.
 * Returns 0, or
 *   -EINVAL     addr or bytes NULL, len 0, over the limit or misaligned,
 *               or the range not inside one live code allocation (data,
 *               freed, crossing the allocation's end, host text: see
 *               execmem_hook() for functions of the program)
 *   -EPERM      the allocation is sealed; -EBUSY: a write window is open
 *               on it (as execmem_write())
 *   -EBUSY      another thread stayed inside the old bytes (past their
 *               first instruction unit) for the whole bounded wait; nothing
 *               changed
 *   -ETIMEDOUT  a thread did not answer the census signal (see above);
 *               nothing changed
 *   -ENOTSUP    the architecture cannot be patched live
 *   -ENOMEM, or another error of the system calls (execmem_write()'s, the
 *               signal's): nothing changed.
 * Thread-safety: thread-safe; may not be called from a signal handler.
 */
EXECMEM_API int execmem_patch(void *addr, const void *bytes, size_t len);

/*
 * execmem_patch_batch - execmem_patch() of n sites at once, with one round
 * of synchronisations for all of them (three, whatever n).  The sites must
 * not overlap.  Either every site changes, or (on error) none does; an
 * error of the system calls while the new first bytes are written, twice
 * in a row, leaves the batch partly applied.  n 0 returns 0.
 * Returns the errors of execmem_patch(), -EINVAL also for sites NULL with
 * n > 0 or overlapping sites.
 * Thread-safety: as execmem_patch().
 */
EXECMEM_API int execmem_patch_batch(const struct execmem_patch_site *sites, size_t n);

#ifdef __cplusplus
}
#endif
#endif
