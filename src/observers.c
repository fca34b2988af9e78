/*
 * observers.c - debuggers and valgrind watching the process, looked for
 * once when an arena is made.  A debugger puts a software breakpoint in
 * place by writing a trap into the page of the code through ptrace; in dual
 * mode that page is the read-only view of a sealed, shared memfd, so the
 * write is refused and the breakpoint never fires.  mprotect mode keeps
 * code in private memory, where such writes work.  valgrind is served best
 * by the same single private mapping, which it watches by itself.  An
 * "auto" arena takes mprotect mode for either; a forced dual arena says,
 * once in the process, what the debugger will not be able to do.
 */
#include "internal.h"

#include <stdio.h>

#ifdef EXECMEM_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

static bool under_valgrind(void)
{
#ifdef EXECMEM_HAVE_VALGRIND_H
	return RUNNING_ON_VALGRIND != 0;
#else
	return false;
#endif
}

/* An int, not a bool: riscv64 has no one-byte atomic exchange without libatomic. */
static atomic_int told_dual_debugger;

static void tell_dual_debugger(int tracer)
{
	if (atomic_exchange(&told_dual_debugger, 1))
		return;
	fprintf(stderr,
		"execmem: debugger attached (TracerPid %d) to forced dual mode: its software "
		"breakpoints in JIT code never fire; run with EXECMEM_MODE=mprotect, or use "
		"hardware breakpoints (gdb: hbreak)\n", tracer);
}

void em_arena_observe(struct em_arena *a)
{
	if (a->params.mode == EXECMEM_MODE_MPROTECT)
		return; /* nothing to change, nothing to tell: no need to read /proc */
	enum execmem_mode_reason reason = EXECMEM_REASON_DEFAULT;
	int tracer = 0;
	if (under_valgrind())
		reason = EXECMEM_REASON_VALGRIND;
	else if ((tracer = em_os_tracer_pid()) > 0)
		reason = EXECMEM_REASON_DEBUGGER;
	if (reason == EXECMEM_REASON_DEFAULT)
		return;
	if (a->mode_forced) {
		if (reason == EXECMEM_REASON_DEBUGGER)
			tell_dual_debugger(tracer);
		return;
	}
	atomic_store(&a->mode, EXECMEM_MODE_MPROTECT);
	atomic_store(&a->mode_reason, reason);
}

const char *execmem_mode_reason_name(enum execmem_mode_reason reason)
{
	switch (reason) {
	case EXECMEM_REASON_ASKED:
		return "asked";
	case EXECMEM_REASON_DEFAULT:
		return "default";
	case EXECMEM_REASON_REFUSED:
		return "refused";
	case EXECMEM_REASON_DEBUGGER:
		return "debugger";
	case EXECMEM_REASON_VALGRIND:
		return "valgrind";
	}
	return "unknown";
}
