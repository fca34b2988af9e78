/*
 * toggle_guard.c - in mprotect mode a page is briefly RW (not executable)
 * while it is written, and other threads may be running code on it.  Their
 * faults land here: the handler waits until the page is executable again
 * and returns, so the instruction is retried.  The writer itself blocks
 * its signals while its pages are not executable (em_chunk_put()), so the
 * faults waited for here are other threads', and the wait is as short as
 * one copy.  Faults that are not ours go to the handler that was installed
 * before.
 */
#include "internal.h"

#include <signal.h>
#include <string.h>

static struct sigaction previous;

_Thread_local void *volatile em_guard_parked_context;
static struct em_lock install_lock;
static bool installed;

/* The last fault this thread let through as "transient", to spot real ones. */
static _Thread_local uintptr_t last_addr;
static _Thread_local unsigned last_gen;
static _Thread_local unsigned settled_retries;
enum { SETTLED_RETRIES = 16 };

static bool page_in_flux(struct em_chunk *c, uintptr_t addr)
{
	size_t page = (size_t)em_os_page_size();
	return atomic_load(&c->pool->toggle_lock.held) ||
	       atomic_load(&c->rw_refs[(addr - c->base) / page]) != 0;
}

/*
 * A page whose return to its protection failed stays writable and not
 * executable: give it its protection back, unless a writer holds it.
 */
static void repair(struct em_chunk *c, uintptr_t addr)
{
	struct em_lock *lock = &c->pool->toggle_lock;
	uintptr_t page = (uintptr_t)em_os_page_size();
	if (atomic_exchange_explicit(&lock->held, 1, memory_order_acquire))
		return; /* a toggle is under way: the retry will see how it ended */
	if (!atomic_load(&c->rw_refs[(addr - c->base) / page]))
		em_os_protect((void *)(addr & ~(page - 1)), page, (int)c->pool->prot);
	em_unlock(lock);
}

static bool ours_and_transient(siginfo_t *si, void *context)
{
	uintptr_t addr = (uintptr_t)si->si_addr;
	struct em_chunk *c = em_addrmap_get(si->si_addr);
	if (si->si_code != SEGV_ACCERR || !c || c->kind != EM_CHUNK_TOGGLED || !c->rw_refs ||
	    addr < c->base || addr >= c->base + c->size)
		return false;
	if (page_in_flux(c, addr)) {
		em_guard_parked_context = context;
		while (page_in_flux(c, addr))
			sched_yield();
		em_guard_parked_context = NULL;
		return true;
	}
	/* Settled: the page may have been restored between the fault and now,
	 * or its restore may have failed; retry, and call a fault real once it
	 * comes back SETTLED_RETRIES times with nothing changed.  The
	 * generation is read now, once the page is seen settled: read before,
	 * it would miss a write that ended in between.  More than one retry,
	 * because a thread may be descheduled between the check and the retry
	 * for as long as it takes another write to begin and end. */
	unsigned gen = atomic_load(&c->toggle_gen);
	if (last_addr == addr && last_gen == gen) {
		if (++settled_retries >= SETTLED_RETRIES)
			return false;
		sched_yield();
	} else {
		settled_retries = 0;
	}
	repair(c, addr);
	last_addr = addr;
	last_gen = gen;
	return true;
}

static void guard(int sig, siginfo_t *si, void *context)
{
	if (ours_and_transient(si, context))
		return;
	if (previous.sa_flags & SA_SIGINFO) {
		previous.sa_sigaction(sig, si, context);
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
	} else {
		/* Restore the default action; returning re-executes and dies. */
		signal(sig, SIG_DFL);
	}
}

/* Fork holds the install lock, so that a child never inherits it held by a
 * thread that does not exist there. */
void em_toggle_guard_lock(void)
{
	em_lock(&install_lock);
}

void em_toggle_guard_unlock(void)
{
	em_unlock(&install_lock);
}

int em_toggle_guard_install(void)
{
	if (__atomic_load_n(&installed, __ATOMIC_ACQUIRE))
		return 0;
	em_lock(&install_lock);
	int rc = installed ? 0 : em_os_install_fault_handler(guard, &previous);
	if (!rc)
		__atomic_store_n(&installed, true, __ATOMIC_RELEASE);
	em_unlock(&install_lock);
	return rc;
}
