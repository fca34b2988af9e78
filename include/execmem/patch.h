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
 *     (with SA_RESTART where the call can be restarted: sleeps and waits
 *     with a timeout return EINTR).  A thread that blocks it while it
 *     sleeps in the kernel is seen where it will resume; one that blocks
 *     it and runs for two seconds makes such a patch fail with -ETIMEDOUT,
 *     having changed nothing.
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
#include <stdint.h>

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

/* ==== Hooks ==== */

/*
 * execmem_hook - make every call of the function at target run replacement
 * instead, and set *original to a function that runs target's own code.
 *
 *   The first instructions of target (as many whole instructions as the
 *   entry jump needs: 5 bytes on x86-64, 4 on aarch64) are replaced by a
 *   jump to a trampoline placed within branch reach of target (rel32 on
 *   x86-64, B's +-128 MiB on aarch64).  The trampoline relays to replacement
 *   and holds the displaced instructions, relocated, followed by a jump back
 *   into target; *original points to them.  When no memory within reach is
 *   free the entry jump is the absolute form (jmp [rip] on x86-64, 14
 *   bytes; ADRP+BR x16 within 4 GiB on aarch64, 8 bytes), which displaces
 *   more instructions.  The jump is written with the live patching protocol
 *   of execmem_patch(): other threads running target meanwhile run either
 *   its old first instructions or the jump, and target's pages are never
 *   writable and executable (host text is replaced page by page, execmem
 *   code is written through execmem).
 *
 *   target may be a function of the program, of any loaded library, of a
 *   module loaded with execmem_module_load(), or execmem code.  Relocated
 *   are: x86-64 RIP-relative operands, jmp/Jcc short and near (widened,
 *   or an inverted Jcc over an absolute jump when far), call rel32 and
 *   call [rip+d] (run as a push of the original return address and a jump,
 *   so that the callee returns into target, never into the trampoline);
 *   aarch64 ADR/ADRP, LDR literal (W, X, SW, PRFM; SIMD only within
 *   reach), B/BL, B.cond, CBZ/CBNZ, TBZ/TBNZ.  A function that starts
 *   with endbr64 or BTI keeps it first in the trampoline.
 *
 *   Hooking a function twice is refused (-EEXIST): chain by hooking once
 *   with a replacement that calls the next one.  A fork()ed child inherits
 *   the hooks; execmem_unhook() in the child restores the child's copy of
 *   target only, and the parent's hooks stay.
 *
 *   Returns 0, or a negative errno with execmem_last_error() saying why:
 *     -EINVAL   target, replacement or original is NULL;
 *     -EEXIST   target is already hooked, or its first bytes overlap
 *               those of another hook;
 *     -ENOEXEC  target cannot be hooked: it is too short (it returns,
 *               jumps away or is padded with traps before the entry jump's
 *               bytes end), or an instruction of its first bytes is not
 *               decodable or cannot run elsewhere (a call before the end
 *               of the displaced bytes, whose return address would point
 *               into the patched bytes; an indirect call; x86 loop/jrcxz;
 *               a branch back into the displaced bytes);
 *     -ERANGE   no trampoline memory within jump reach of target, or a
 *               PC-relative operand out of reach of the trampoline;
 *     -ENOMEM   no memory;
 *     and the errors of execmem_patch_batch(): -EFAULT (target is not
 *     mapped executable), -EBUSY (a thread stayed inside the bytes being
 *     changed; nothing changed), -ENOTSUP, or an error of the OS.
 *   On failure target is unchanged and *original keeps its value.
 *
 *   Limits: code elsewhere in target that branches into its first bytes
 *   (a loop whose head is the function's first instruction) would run the
 *   jump's bytes; such functions are not detected and must not be hooked.
 *   On aarch64, jumps beyond B's reach inside the trampoline clobber x17.
 *
 *   Thread-safety: thread-safe; hook operations are serialised by one lock.
 *   target may be running on other threads throughout.
 */
EXECMEM_API int execmem_hook(void *target, void *replacement, void **original);

/*
 * execmem_unhook - restore the first bytes of a function hooked with
 * execmem_hook(), with the same live protocol: calls that start after it
 * returns run target's own code.
 *
 *   The trampoline (and so the function *original pointed to) is freed only
 *   once a census of every thread's program counter (each thread is
 *   interrupted by a signal) has found no thread inside it.  Retired
 *   trampolines are freed together, one census for all, once 16 are
 *   waiting (tried again at each later unhook while the census finds one
 *   in use) and at exit.
 *   Calls of target that had already entered the replacement keep running
 *   it; a replacement that may call *original after execmem_unhook() has
 *   returned must itself be kept from doing so (by the caller) until those
 *   calls have returned, since the census sees program counters, not the
 *   copies of *original a replacement holds.
 *
 *   Returns 0, or -EINVAL (target is NULL), -ENOENT (target is not
 *   hooked; a probe is removed with execmem_unprobe()), or an error of
 *   execmem_patch_batch() (the hook stays).
 *
 *   Thread-safety: as execmem_hook().
 */
EXECMEM_API int execmem_unhook(void *target);

/* ==== Probes ==== */

/* The registers of the thread that reached a probe, as the handler sees
 * them.  Changes the handler makes to the general registers and the flags
 * are what the thread continues with; pc/rip and sp/rsp are for reading. */
#if defined(__x86_64__)
struct execmem_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip;    /* the probed address */
	uint64_t rflags;
};
#elif defined(__aarch64__)
struct execmem_regs {
	uint64_t x[31];  /* x0..x30 */
	uint64_t sp;
	uint64_t pc;     /* the probed address */
	uint64_t nzcv;
};
#endif

typedef void (*execmem_probe_handler)(void *ctx, struct execmem_regs *regs);

/*
 * execmem_probe - make every thread that reaches addr call handler(ctx,
 * regs) first, then run the instruction at addr and go on as before.
 *
 *   addr must be an instruction boundary (a function's entry or any
 *   instruction inside one); the instructions there are displaced into a
 *   trampoline exactly as execmem_hook() displaces a function's first
 *   ones, and refused for the same reasons.  The trampoline saves every
 *   general register, the flags and the vector/floating-point state
 *   (x86-64: all of it, with XSAVE; aarch64: q0..q31, FPSR and FPCR, not
 *   the bits of SVE registers beyond the low 128), calls handler on the
 *   thread's stack (below the x86-64 red zone), restores them and runs the
 *   displaced instructions.  handler runs
 *   in the probed thread, possibly in many threads at once; it must not
 *   unwind past its caller (no longjmp out of it).
 *
 *   A probe and a hook cannot share an address (-EEXIST either way).
 *
 *   Returns 0, or -EINVAL (addr or handler is NULL), -ENOTSUP (not on this
 *   architecture: probes exist on x86-64 and aarch64), or an error of
 *   execmem_hook().
 *
 *   Thread-safety: thread-safe; as execmem_hook().
 */
EXECMEM_API int execmem_probe(void *addr, execmem_probe_handler handler, void *ctx);

/*
 * execmem_unprobe - remove the probe at addr.  Its trampoline is freed as
 * execmem_unhook()'s, once no thread is inside it nor inside a call of its
 * handler (the trampoline counts those calls).
 * Returns 0, or -EINVAL (addr NULL), -ENOENT (no probe there; a hook is
 * removed with execmem_unhook()), or an error of execmem_patch_batch().
 * Thread-safety: as execmem_hook().
 */
EXECMEM_API int execmem_unprobe(void *addr);

#ifdef __cplusplus
}
#endif
#endif
