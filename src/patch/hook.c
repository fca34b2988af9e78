/*
 * hook.c - execmem_hook() and execmem_unhook(), and the machinery probes
 * share: a function's first bytes become a jump to a trampoline near it,
 * whose relay jumps on to the replacement (or runs a probe's handler) and
 * whose second half runs the displaced instructions, relocated, then jumps
 * back into the function.  The jump is written with em_poke_batch(), so
 * threads running the function meanwhile run either the old bytes or the
 * jump; a trampoline is freed only once em_threads_outside() has seen no
 * thread inside it.
 */
#include "execmem/patch.h"

#include "internal.h"
#include "patch/hook_internal.h"
#include "patch/poke.h"
#include "patch/reloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#if defined(__x86_64__)
/* rel32 must reach the trampoline from the target; the relocated RIP-relative
 * operands, which reach the target's neighbourhood, mostly reach it too. */
#define TRAMP_REACH ((size_t)512 << 20)
#define ENTRY_MAX 15 /* the longest site em_poke_batch() writes */
#elif defined(__aarch64__)
/* B: +-128 MiB.  Beyond it the entry is ADRP+BR x16 to a page-aligned relay. */
#define TRAMP_REACH ((size_t)120 << 20)
#define FAR_REACH (((size_t)4 << 30) - 2 * TRAMP_PAGE)
#define ENTRY_MAX 8
#endif
#define TRAMP_PAGE 4096
/* Retired trampolines are freed together, one census for all of them,
 * once there are this many (and at exit): a census interrupts every
 * thread. */
#define RETIRED_BATCH 16
#define BODY_ALIGN 16
#define TRAMP_MAX (EM_RELAY_MAX + BODY_ALIGN + EM_RELOC_MAX_OUT)

struct trampoline {
	void *alloc;           /* the execmem allocation */
	size_t size;           /* its bytes */
	uint8_t *relay;        /* the entry jump's destination */
	atomic_long inflight;  /* threads inside the relay's call (probes) */
	bool counts;           /* inflight is kept */
	struct trampoline *next; /* retired list */
};

struct hook {
	uintptr_t target;
	struct trampoline *tramp;
	uint8_t saved[EM_RELOC_MAX_JUMP]; /* the bytes the entry jump replaced */
	size_t patched;
	void *displaced; /* the trampoline's copy of them, relocated: *original */
	bool is_probe;
	struct hook *next;
};

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hook *hooks;          /* installed, under hook_lock */
static struct trampoline *retired;  /* unpatched, not yet proven unused */
static size_t nretired;
static pthread_once_t hook_once = PTHREAD_ONCE_INIT;

/* ---- retired trampolines ---- */
static struct em_pc_range tramp_range(const struct trampoline *t)
{
	return (struct em_pc_range){ (uintptr_t)t->alloc, (uintptr_t)t->alloc + t->size };
}

/* Whether no thread is inside any of the retired trampolines, nor (probes)
 * inside a call their relays made.  A thread goes through a probe relay's
 * entry, its call (counted), its exit, and out, never back: no call in
 * progress, then no PC inside, then still no call (none was in an entry),
 * then no PC inside (none is in an exit) leaves every thread out. */
static bool nobody_inside(const struct em_pc_range *ranges, size_t n)
{
	bool counted = false;
	for (const struct trampoline *t = retired; t; t = t->next)
		counted |= t->counts;
	for (int round = 0; round < (counted ? 2 : 1); round++) {
		for (const struct trampoline *t = retired; t; t = t->next)
			if (t->counts && atomic_load(&t->inflight) != 0)
				return false;
		if (em_threads_outside(ranges, n) != 0)
			return false;
	}
	return true;
}

static void free_retired(void)
{
	if (nretired == 0)
		return;
	struct em_pc_range *ranges = malloc(nretired * sizeof *ranges);
	if (!ranges)
		return;
	size_t n = 0;
	for (const struct trampoline *t = retired; t; t = t->next)
		ranges[n++] = tramp_range(t);
	bool clear = nobody_inside(ranges, n);
	free(ranges);
	if (!clear)
		return;
	while (retired) {
		struct trampoline *dead = retired;
		retired = dead->next;
		execmem_free(dead->alloc);
		free(dead);
	}
	nretired = 0;
}

/* A fork while another thread holds the lock copies it held by a thread
 * the child does not have: the child starts with it free.  Taking it in a
 * prepare handler instead would order it against the locks that other fork
 * handlers take (live patching's, the observers'), which hook operations
 * take inside it.  The table is consistent at every instant (a hook is
 * linked in or out with one store), and no batch is under way (the live
 * patching layer's own fork handlers wait for it); a hook whose entry jump
 * was written but not yet linked in when the fork came stays in the child
 * for good. */
static void child_after_fork(void)
{
	hook_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}

static void free_retired_at_exit(void)
{
	pthread_mutex_lock(&hook_lock);
	free_retired();
	pthread_mutex_unlock(&hook_lock);
}

static void hook_init(void)
{
	pthread_atfork(NULL, NULL, child_after_fork);
	atexit(free_retired_at_exit);
}

static void lock_hooks(void)
{
	pthread_once(&hook_once, hook_init);
	pthread_mutex_lock(&hook_lock);
}

static struct hook **find_hook(uintptr_t target)
{
	struct hook **h = &hooks;
	while (*h && (*h)->target != target)
		h = &(*h)->next;
	return h;
}

/* A hook whose patched bytes overlap [addr, addr + len), or NULL. */
static struct hook *overlapping(uintptr_t addr, size_t len)
{
	for (struct hook *h = hooks; h; h = h->next)
		if (addr < h->target + h->patched && h->target < addr + len)
			return h;
	return NULL;
}

/* ---- building a trampoline ---- */
static int alloc_trampoline(uintptr_t target, const char *op, struct trampoline **out)
{
	struct trampoline *t = calloc(1, sizeof *t);
	if (!t)
		return -ENOMEM;
	t->size = TRAMP_MAX;
	t->alloc = execmem_alloc_near(EXECMEM_CODE, t->size, (void *)target, TRAMP_REACH);
#if defined(__x86_64__)
	if (!t->alloc) /* anywhere: the entry jump becomes jmp [rip] (14 bytes) */
		t->alloc = execmem_alloc(EXECMEM_CODE, t->size);
#elif defined(__aarch64__)
	if (!t->alloc) { /* ADRP reach, the relay at a page boundary */
		t->size = TRAMP_PAGE + TRAMP_MAX;
		t->alloc = execmem_alloc_near(EXECMEM_CODE, t->size, (void *)target, FAR_REACH);
	}
#endif
	if (!t->alloc) {
		int rc = errno == ENOMEM ? -ERANGE : -errno;
		em_set_error("%s: no trampoline memory within reach of %#lx", op,
			     (unsigned long)target);
		free(t);
		return rc;
	}
	uintptr_t relay = (uintptr_t)t->alloc;
	if (t->size > TRAMP_MAX)
		relay = (relay + TRAMP_PAGE - 1) & ~(uintptr_t)(TRAMP_PAGE - 1);
	t->relay = (uint8_t *)relay;
	*out = t;
	return 0;
}

static void fill_traps(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = em_arch.trap[i % em_arch.trap_len];
}

/* Fills the trampoline: relay, then the relocated window.  Says through
 * *entry_len how long the target's entry jump is. */
static int build_trampoline(uintptr_t target, const struct em_relay *relay, struct trampoline *t,
			    size_t *entry_len, void **original)
{
	uint8_t code[TRAMP_MAX];
	uintptr_t at = (uintptr_t)t->relay;
	size_t relay_len = relay->emit(relay, at, &t->inflight, code);
	/* a hook's relay jumps away: the body starts aligned; a probe's runs on */
	size_t body_at = relay->is_probe ? relay_len
					 : (relay_len + BODY_ALIGN - 1) & ~(size_t)(BODY_ALIGN - 1);
	fill_traps(code + relay_len, body_at - relay_len);
	*entry_len = em_reloc_jump_len(target, at);
	if (*entry_len > ENTRY_MAX) {
		em_set_error("%s: no trampoline within jump reach of %#lx", relay->op,
			     (unsigned long)target);
		return -ERANGE;
	}
	/* The decoder reads only the instructions it decodes, which stop at the
	 * first that ends the function: never past the function's bytes. */
	struct em_reloc_result res;
	int rc = em_reloc_window((const uint8_t *)target, EM_RELOC_MAX_WINDOW, target, *entry_len,
				 at + body_at, code + body_at, sizeof code - body_at, &res);
	if (rc)
		return rc;
	rc = execmem_write(t->relay, code, body_at + res.len);
	if (rc) {
		em_set_error("%s: the trampoline could not be written: %s", relay->op,
			     execmem_last_error());
		return rc;
	}
	*original = t->relay + body_at;
	return 0;
}

/* The vDSO's pages are the kernel's: it refuses to have them replaced. */
static bool in_vdso(uintptr_t addr)
{
	uintptr_t start, end;
	int prot;
	bool shared;
	return em_os_mapping_at(addr, &start, &end, &prot, &shared) == 0 &&
	       start == (uintptr_t)getauxval(AT_SYSINFO_EHDR);
}

static void explain_poke_failure(uintptr_t target, int rc, const char *op)
{
	if (in_vdso(target))
		em_set_error("%s: %#lx lies in the vDSO, whose pages the kernel does not let be "
			     "replaced", op, (unsigned long)target);
	else if (rc == -EFAULT)
		em_set_error("%s: %#lx is not in private read+execute memory", op,
			     (unsigned long)target);
	else
		em_set_error("%s: the entry jump at %#lx could not be written: %s", op,
			     (unsigned long)target, strerror(-rc));
}

static int patch_entry(struct hook *h, void **original, void *orig, const char *op)
{
	uint8_t jump[EM_RELOC_MAX_JUMP];
	memcpy(h->saved, (const void *)h->target, h->patched);
	em_reloc_jump(h->target, (uintptr_t)h->tramp->relay, jump);
	/* callable before the first call can reach the replacement */
	void *previous = *original;
	*original = orig;
	h->displaced = orig;
	/* a thread that meets the trap meanwhile, maybe this one in the
	 * batch's own calls, runs the displaced instructions instead */
	struct em_poke_site site = { (void *)h->target, jump, h->patched, orig };
	int rc = em_poke_batch(&site, 1);
	if (rc) {
		*original = previous;
		explain_poke_failure(h->target, rc, op);
	}
	return rc;
}

static int install(uintptr_t target, const struct em_relay *relay, void **original)
{
	struct hook *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->target = target;
	h->is_probe = relay->is_probe;
	int rc = alloc_trampoline(target, relay->op, &h->tramp);
	void *orig = NULL;
	if (rc == 0) {
		h->tramp->counts = relay->is_probe;
		rc = build_trampoline(target, relay, h->tramp, &h->patched, &orig);
	}
	struct hook *other = rc == 0 ? overlapping(target, h->patched) : NULL;
	if (other) {
		em_set_error("%s: the %zu bytes at %#lx overlap those patched at %#lx", relay->op,
			     h->patched, (unsigned long)target, (unsigned long)other->target);
		rc = -EEXIST;
	}
	if (rc == 0)
		rc = patch_entry(h, original, orig, relay->op);
	if (rc) {
		/* nothing jumps to it: the entry jump was never written */
		if (h->tramp) {
			execmem_free(h->tramp->alloc);
			free(h->tramp);
		}
		free(h);
		return rc;
	}
	h->next = hooks;
	/* one store, after h is complete: a fork sees h linked in or not */
	__atomic_store_n(&hooks, h, __ATOMIC_RELEASE);
	return 0;
}

int em_hook_install(void *target, const struct em_relay *relay, void **original)
{
	lock_hooks();
	int rc;
	struct hook *other = overlapping((uintptr_t)target, 1);
	if (other) {
		em_set_error(other->target == (uintptr_t)target
				     ? "%s: %p is already hooked or probed"
				     : "%s: %p lies inside the bytes patched at %#lx",
			     relay->op, target, (unsigned long)other->target);
		rc = -EEXIST;
	} else {
		rc = install((uintptr_t)target, relay, original);
	}
	pthread_mutex_unlock(&hook_lock);
	return rc;
}

int em_hook_remove(void *target, bool is_probe, const char *op)
{
	if (!target) {
		em_set_error("%s: NULL target", op);
		return -EINVAL;
	}
	lock_hooks();
	struct hook **link = find_hook((uintptr_t)target);
	struct hook *h = *link;
	int rc;
	if (!h || h->is_probe != is_probe) {
		em_set_error("%s: %p is not %s", op, target, is_probe ? "probed" : "hooked");
		rc = -ENOENT;
		h = NULL;
	} else {
		struct em_poke_site site = { target, h->saved, h->patched, h->displaced };
		rc = em_poke_batch(&site, 1);
		if (rc)
			explain_poke_failure(h->target, rc, op);
	}
	if (h && rc == 0) {
		*link = h->next;
		h->tramp->next = retired;
		retired = h->tramp;
		free(h);
		if (++nretired >= RETIRED_BATCH)
			free_retired();
	}
	pthread_mutex_unlock(&hook_lock);
	return rc;
}

/* ---- hooks ---- */
static size_t emit_hook_relay(const struct em_relay *relay, uintptr_t at, atomic_long *inflight,
			      uint8_t *out)
{
	(void)inflight;
	return em_reloc_jump(at, (uintptr_t)relay->arg, out);
}

int execmem_hook(void *target, void *replacement, void **original)
{
	if (!target || !replacement || !original) {
		em_set_error("execmem_hook: NULL %s", !target ? "target"
						      : !replacement ? "replacement" : "original");
		return -EINVAL;
	}
	struct em_relay relay = { emit_hook_relay, replacement, false, "execmem_hook" };
	return em_hook_install(target, &relay, original);
}

int execmem_unhook(void *target)
{
	return em_hook_remove(target, false, "execmem_unhook");
}
