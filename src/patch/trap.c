/*
 * trap.c - the temporary traps of live patching.  While a batch is under
 * way its sites are listed here, and a thread that executes the trap on a
 * site's first bytes lands in this SIGTRAP handler.  For a site with a
 * detour (code doing what the old bytes did: a hook's displaced
 * instructions) it continues there at once, so the thread making the batch
 * may itself run through the site.  Otherwise it waits until the batch is
 * done, then goes back to the site's start and executes whatever is there
 * by then (the new bytes, or the old ones if the batch gave up).
 * A trap of a batch that has ended is one whose bytes are gone: executed
 * again too.  Every other trap (the program's own, a debugger's) goes to
 * the handler installed before.
 *
 * The list is read by the handler under a sequence count: odd while a
 * batch is listed; the writer changes the list only while it is even.
 * Every access to it is sequentially consistent (a few per trap).
 * Lists are never freed (a handler may still be reading one), only kept
 * for reuse and, when a larger one is needed, kept on a list of their own.
 */
#include "poke_int.h"

#include <stdlib.h>

static struct sigaction previous;
static struct em_lock install_lock;
static atomic_bool installed;

static atomic_uint batch_seq;

/* A list, and the lists it replaced (kept, never freed); changed under
 * the caller's lock (em_poke_batch()). */
struct site_list {
	struct site_list *older;
	size_t cap;
	atomic_size_t count;
	struct em_trap_site sites[];
};
static struct site_list *store;
static struct site_list *_Atomic listed;

/* Whether site is listed, and its detour (0 for none) in *detour. */
static bool is_listed(uintptr_t site, uintptr_t *detour)
{
	const struct site_list *list = atomic_load(&listed);
	if (!list)
		return false;
	size_t lo = 0, hi = atomic_load(&list->count);
	if (hi > list->cap)
		hi = list->cap;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uintptr_t at = __atomic_load_n(&list->sites[mid].site, __ATOMIC_SEQ_CST);
		if (at == site) {
			*detour = __atomic_load_n(&list->sites[mid].detour, __ATOMIC_SEQ_CST);
			return true;
		}
		if (at < site)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Where a thread that met the trap at site resumes: its listed detour;
 * the site itself once a listed site without one is done, or when the
 * trap is of a batch that has ended (the kind of trap the protocol puts
 * in, and no trap is there any more); 0 for any other trap (the program's
 * own BRK or INT3 that are still there, a single step, INT1). */
static uintptr_t resume_at(uintptr_t site, const siginfo_t *si)
{
	for (;;) {
		unsigned seq = atomic_load(&batch_seq);
		uintptr_t detour = 0;
		bool in_batch = (seq & 1) && is_listed(site, &detour);
		bool gone = !in_batch && si->si_code == em_poke_arch.trap_si_code &&
			    !em_poke_arch.is_trap(site);
		if (atomic_load(&batch_seq) != seq)
			continue; /* the list changed while it was read */
		if (detour)
			return detour;
		if (in_batch)
			while (atomic_load(&batch_seq) == seq)
				sched_yield();
		return in_batch || gone ? site : 0;
	}
}

/*
 * The threads waiting here, by id, for the census: they resume at a
 * site's start, and they may not answer its signal while they wait (a
 * ThreadSanitizer build holds it back until they return).  A thread that
 * finds no free slot is asked as any other.
 */
enum { PARKED_SLOTS = 64 };
static atomic_int parked[PARKED_SLOTS];

bool em_trap_parked(pid_t tid)
{
	for (int i = 0; i < PARKED_SLOTS; i++)
		if (atomic_load(&parked[i]) == tid)
			return true;
	return false;
}

static atomic_int *park(void)
{
	int tid = (int)em_os_thread_id();
	for (int i = 0; i < PARKED_SLOTS; i++) {
		int free_slot = 0;
		if (atomic_compare_exchange_strong(&parked[i], &free_slot, tid))
			return &parked[i];
	}
	return NULL;
}

static void on_trap(int sig, siginfo_t *si, void *ucontext)
{
	int saved_errno = errno;
	uintptr_t site = em_poke_arch.context_pc(ucontext) - em_poke_arch.trap_pc_offset;
	atomic_int *slot = park();
	uintptr_t resume = resume_at(site, si);
	if (slot)
		atomic_store(slot, 0);
	if (resume) {
		em_poke_arch.serialise();
		em_poke_arch.set_context_pc(ucontext, resume);
	} else {
		em_chain_signal(&previous, sig, si, ucontext, true);
	}
	errno = saved_errno;
}

static int install(void)
{
	if (atomic_load_explicit(&installed, memory_order_acquire))
		return 0;
	em_lock(&install_lock);
	int rc = installed ? 0 : em_os_install_handler(SIGTRAP, on_trap, &previous);
	if (!rc)
		atomic_store_explicit(&installed, true, memory_order_release);
	em_unlock(&install_lock);
	return rc;
}

static int reserve(size_t n)
{
	if (store && store->cap >= n)
		return 0;
	size_t cap = store ? store->cap : 64;
	while (cap < n)
		cap *= 2;
	struct site_list *grown = malloc(sizeof *grown + cap * sizeof grown->sites[0]);
	if (!grown)
		return -ENOMEM;
	grown->older = store;
	grown->cap = cap;
	atomic_init(&grown->count, 0);
	store = grown;
	return 0;
}

int em_traps_begin(const struct em_trap_site *sites, size_t n)
{
	int rc = install();
	if (!rc)
		rc = reserve(n);
	if (rc)
		return rc;
	/* A handler of the last batch may still read the list: all these
	 * accesses are sequentially consistent, so one that reads a store
	 * made here then rereads a changed count and tries again. */
	for (size_t i = 0; i < n; i++) {
		__atomic_store_n(&store->sites[i].site, sites[i].site, __ATOMIC_SEQ_CST);
		__atomic_store_n(&store->sites[i].detour, sites[i].detour, __ATOMIC_SEQ_CST);
	}
	atomic_store(&store->count, n);
	atomic_store(&listed, store);
	atomic_fetch_add(&batch_seq, 1);
	return 0;
}

void em_traps_end(void)
{
	atomic_fetch_add(&batch_seq, 1);
}

void em_chain_signal(const struct sigaction *prev, int sig, siginfo_t *si, void *ucontext,
		     bool synchronous)
{
	if (prev->sa_flags & SA_SIGINFO) {
		prev->sa_sigaction(sig, si, ucontext);
	} else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
		prev->sa_handler(sig);
	} else if (prev->sa_handler == SIG_DFL) {
		signal(sig, SIG_DFL);
		if (!synchronous)
			raise(sig);
	}
}
