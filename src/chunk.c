/*
 * chunk.c - one chunk of memory (2 MiB for small allocations, more for a
 * large one): mapping its views, huge pages, trap fill, and putting bytes
 * into it without ever making a page writable and executable at once.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef EXECMEM_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_DISCARD_TRANSLATIONS(addr, len) ((void)(addr), (void)(len))
#endif

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

void em_fill(struct em_pool *pool, void *dst, size_t len)
{
	if (!pool->code) {
		memset(dst, 0, len);
		return;
	}
	unsigned n = em_arch.trap_len;
	if (n == 1) {
		memset(dst, em_arch.trap[0], len);
		return;
	}
	/* Keep instructions at their natural alignment: the byte at address a
	 * is byte a % n of the trap instruction. */
	uint8_t *p = dst;
	uintptr_t phase = (uintptr_t)p % n;
	for (size_t i = 0; i < len; i++)
		p[i] = em_arch.trap[(phase + i) % n];
}

/*
 * Traps repeated, for filling a memfd before it is mapped.  Its phase is
 * that of an address aligned as a chunk, as file offset 0 is.  One page:
 * the first chunk of a process touches it whole (every page of it a fault),
 * and the kernel repeats it (em_os_fill_file()).
 */
static uint8_t trap_pattern[4096] __attribute__((aligned(64)));
static pthread_once_t trap_pattern_once = PTHREAD_ONCE_INIT;

static void make_trap_pattern(void)
{
	struct em_pool code = { .code = true };
	em_fill(&code, trap_pattern, sizeof trap_pattern);
}

/* The kernel writes [from, len) of a new memfd with the pool's fill. */
static int prefill(const struct em_pool *pool, const struct em_fd *fd, size_t from, size_t len)
{
	if (!pool->code)
		return em_os_fill_file(fd, NULL, 0, from, len);
	pthread_once(&trap_pattern_once, make_trap_pattern);
	return em_os_fill_file(fd, trap_pattern, sizeof trap_pattern, from, len);
}

static bool huge_size(size_t len)
{
	return len % EM_CHUNK == 0;
}

/* Ask for huge pages before the first touch: a private mapping then faults
 * in whole 2 MiB pages where the kernel has them. */
static void want_huge(void *addr, size_t len)
{
	if (huge_size(len))
		em_os_advise(addr, len, MADV_HUGEPAGE);
}

/* Huge pages for memory that exists; returns whether the kernel confirmed them. */
static bool collapse(void *addr, size_t len)
{
	return huge_size(len) && em_os_advise(addr, len, MADV_COLLAPSE) == 0;
}

static bool make_huge(void *addr, size_t len)
{
	want_huge(addr, len);
	return collapse(addr, len);
}

static int map_fixed(void *addr, size_t len, int prot, int flags, const struct em_fd *fd)
{
	void *out;
	return em_os_map(&out, addr, len, prot, flags | MAP_FIXED, fd);
}

/* Its memory is this process's alone from now on, until the next fork. */
static void own_memory(struct em_chunk *c)
{
	atomic_store_explicit(&c->own_gen, atomic_load(&em_fork_generation), memory_order_relaxed);
	c->alias_reserved = false;
	c->alias_forked = false;
}

/*
 * Every chunk with an RW alias is on this list, from before its memfd
 * exists until its alias is gone, and the lock is held across that whole
 * making or unmaking: fork takes it, so a child never inherits an alias
 * (or a memfd) that fork did not see.
 */
static struct em_lock aliases_lock;
static struct em_chunk *aliases;

static void track_alias(struct em_chunk *c)
{
	c->alias_prev = NULL;
	c->alias_next = aliases;
	if (aliases)
		aliases->alias_prev = c;
	aliases = c;
}

static void untrack_alias(struct em_chunk *c)
{
	if (c->alias_prev)
		c->alias_prev->alias_next = c->alias_next;
	else
		aliases = c->alias_next;
	if (c->alias_next)
		c->alias_next->alias_prev = c->alias_prev;
	c->alias_next = c->alias_prev = NULL;
}

/* What /proc/PID/maps calls a chunk of the type: its memfd's name or its
 * anonymous mapping's. */
static const char *em_type_mapping_name(enum execmem_type type)
{
	static const char *const names[EXECMEM_TYPE_MAX] = {
		[EXECMEM_CODE] = "execmem:code",
		[EXECMEM_CODE_NEAR] = "execmem:code_near",
		[EXECMEM_DATA] = "execmem:data",
		[EXECMEM_RODATA] = "execmem:rodata",
		[EXECMEM_RO_AFTER_INIT] = "execmem:ro_after_init",
	};
	return names[type];
}

/* A sealed memfd of the chunk's size. */
static int new_memfd(const struct em_chunk *c, struct em_fd *fd)
{
	int rc = em_os_memfd(em_type_mapping_name(c->pool->type), fd);
	if (rc)
		return rc;
	rc = em_os_ftruncate(fd, c->size);
	if (!rc)
		rc = em_os_seal_size(fd);
	if (rc)
		em_os_close(fd);
	return rc;
}

/*
 * An RW alias of the memfd at addr.  A forked child never inherits it
 * (MADV_DONTFORK): no alias of a memfd shared with another process exists
 * anywhere, so that process's code can change only through its own writes.
 */
static int map_alias(void *addr, size_t len, const struct em_fd *fd)
{
	int rc = map_fixed(addr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	return rc ? rc : em_os_advise(addr, len, MADV_DONTFORK);
}

/*
 * The view of a memfd whose alias is mapped: sealed first, so that no one
 * can make the view writable (mprotect() of it to W+X fails with EACCES).
 */
static int map_view(struct em_chunk *c, const struct em_fd *fd)
{
	int rc = em_os_seal_writes(fd);
	return rc ? rc : map_fixed((void *)c->base, c->size, (int)c->pool->prot, MAP_SHARED, fd);
}

/*
 * Fill a new memfd mapped at alias, as cheaply as the kernel allows.
 * Shared memory collapses only once some of its pages exist: one page
 * written through the descriptor lets the alias become one huge page at
 * once (the kernel zeroes the rest), which is then filled through the
 * alias without a page fault.  Without a huge page the kernel writes the
 * other pages, again without faults.  Whatever the kernel refuses to write
 * is filled through the alias.  Returns whether the alias is huge.
 */
static bool fill_aliased(struct em_chunk *c, const struct em_fd *fd, uint8_t *alias)
{
	size_t seed = huge_size(c->size) ? (size_t)em_os_page_size() : c->size;
	bool seeded = prefill(c->pool, fd, 0, seed) == 0;
	if (seeded && make_huge(alias, c->size)) {
		if (c->pool->code)
			em_fill(c->pool, alias + seed, c->size - seed);
		return true;
	}
	size_t from = seeded ? seed : 0;
	if (from < c->size && prefill(c->pool, fd, from, c->size))
		em_fill(c->pool, alias + from, c->size - from);
	/* A collapse refused with a page present is refused with all of them. */
	return !seeded && make_huge(alias, c->size);
}

/*
 * Give the aliased chunk a fresh memfd: an RW alias at a random address,
 * filled, then the executable view at c->base.  The view is mapped only
 * once its bytes are final.  Once the alias collapsed, the memfd holds one
 * huge page, which the view (2 MiB-aligned) maps whole at its first fault:
 * collapsing the view too would only make the kernel drain the page lists
 * of every CPU (lru_add_drain_all()), waiting for each, for nothing.
 */
static int map_aliased(struct em_chunk *c)
{
	struct em_fd fd;
	int rc = new_memfd(c, &fd);
	if (rc)
		return rc;
	void *alias = NULL;
	rc = em_place_random(c->size, c->base, &alias);
	if (!rc && (rc = map_alias(alias, c->size, &fd))) {
		em_unreserve(alias, c->size);
		alias = NULL;
	}
	if (!rc) {
		c->huge = fill_aliased(c, &fd, alias);
		rc = map_view(c, &fd);
	}
	em_os_close(&fd);
	if (rc) {
		if (alias)
			em_unreserve(alias, c->size);
		return rc;
	}
	c->alias = alias;
	return 0;
}

/* /proc/PID/maps shows what the memory is, where the kernel can say it. */
static void name_private(const struct em_chunk *c)
{
	em_os_name_mapping((void *)c->base, c->size, em_type_mapping_name(c->pool->type));
}

/* A private mapping at c->base holding the pool's fill. */
static int map_private(struct em_chunk *c)
{
	int rc = map_fixed((void *)c->base, c->size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	if (rc)
		return rc;
	name_private(c);
	want_huge((void *)c->base, c->size);
	if (c->kind == EM_CHUNK_PLAIN)
		return 0;
	em_fill(c->pool, (void *)c->base, c->size);
	c->huge = collapse((void *)c->base, c->size);
	return em_os_protect((void *)c->base, c->size, (int)c->pool->prot);
}

/*
 * Page counters exist for every chunk that may be toggled, aliased ones
 * included: a forked child may have to turn an aliased chunk into a
 * toggled one when it cannot have a memfd, and must not need memory then.
 */
static int alloc_page_counters(struct em_chunk *c)
{
	if (c->kind == EM_CHUNK_PLAIN || c->rw_refs)
		return 0;
	size_t pages = c->size / (size_t)em_os_page_size();
	c->rw_refs = calloc(pages, sizeof *c->rw_refs);
	return c->rw_refs ? 0 : -ENOMEM;
}

static int map_kind(struct em_chunk *c)
{
	if (c->kind != EM_CHUNK_ALIASED)
		return map_private(c);
	em_lock(&aliases_lock);
	int rc = map_aliased(c);
	if (!rc)
		track_alias(c);
	em_unlock(&aliases_lock);
	return rc;
}

int em_chunk_map(struct em_chunk *c, const struct em_window *window, enum em_chunk_kind kind)
{
	void *base;
	int rc = em_place(&c->pool->range, window, c->span, &base);
	if (rc)
		return rc;
	c->base = (uintptr_t)base;
	c->kind = kind;
	own_memory(c);
	c->windows = 0;
	c->alias = NULL;
	c->huge = false;
	rc = alloc_page_counters(c);
	if (!rc)
		rc = map_kind(c);
	if (rc) {
		em_unreserve(base, c->span);
		free(c->rw_refs);
		c->rw_refs = NULL;
		return rc;
	}
	return 0;
}

/*
 * Unmap both views.  Returns an error, with the chunk intact and usable,
 * when its main view cannot be unmapped; an alias that outlives two tries
 * is lost (the kernel keeps refusing to unmap it).
 */
int em_chunk_unmap(struct em_chunk *c)
{
	bool aliased = c->kind == EM_CHUNK_ALIASED;
	if (aliased)
		em_lock(&aliases_lock);
	int rc = em_unreserve((void *)c->base, c->span);
	if (!rc && aliased) {
		if (c->alias) /* a child may have lost its address (see fork_child_chunk()) */
			em_unreserve(c->alias, c->size);
		untrack_alias(c);
		own_memory(c); /* nothing to unshare */
	}
	if (aliased)
		em_unlock(&aliases_lock);
	if (rc)
		return rc;
	c->alias = NULL;
	free(c->rw_refs);
	c->rw_refs = NULL;
	return 0;
}

/* ------------------------------------------------------------ fork */

void em_aliases_lock(void)
{
	em_lock(&aliases_lock);
}

void em_aliases_unlock(void)
{
	em_unlock(&aliases_lock);
}

/*
 * A new memfd with the chunk's bytes, mapped over both views in place: no
 * buffer and no address space beyond what the chunk already has, so it
 * works at the address-space limit.
 */
static int copy_to_new_memfd(struct em_chunk *c)
{
	struct em_fd fd;
	int rc = new_memfd(c, &fd);
	if (rc)
		return rc;
	rc = em_os_write_file(&fd, (void *)c->base, c->size);
	if (!rc)
		rc = map_alias(c->alias, c->size, &fd);
	if (!rc)
		rc = map_view(c, &fd);
	em_os_close(&fd);
	if (!rc && c->huge)
		c->huge = make_huge(c->alias, c->size); /* the view follows (see map_aliased()) */
	return rc;
}

/*
 * Without a descriptor: private memory over the alias takes the bytes of
 * the view, then moves over the view.  The chunk is toggled from now on.
 */
static int copy_to_private(struct em_chunk *c)
{
	int rc = map_fixed(c->alias, c->size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, NULL);
	if (rc)
		return rc;
	memcpy(c->alias, (void *)c->base, c->size);
	rc = em_os_protect(c->alias, c->size, (int)c->pool->prot);
	if (!rc)
		rc = em_os_move(c->alias, (void *)c->base, c->size);
	if (!rc)
		rc = em_toggle_guard_install();
	if (rc)
		return rc;
	name_private(c);
	untrack_alias(c);
	c->alias = NULL;
	c->kind = EM_CHUNK_TOGGLED;
	c->huge = false;
	return 0;
}

/* The chunk runs but is never written again: it has no alias. */
static void forget_alias(struct em_chunk *c)
{
	untrack_alias(c);
	c->alias = NULL;
	c->kind = EM_CHUNK_DETACHED;
}

/*
 * Give one shared chunk memory of its own, with the same contents; when
 * nothing can be had, drop its alias (detach it), so that this process
 * can no longer write memory it shares with the other.  Called with every
 * writer stopped (fork.c).
 */
void em_chunk_privatize(struct em_chunk *c)
{
	bool was_huge = c->huge;
	void *alias;
	if (!c->alias && em_place_random(c->size, c->base, &alias) == 0)
		c->alias = alias;
	if (!c->alias) {
		forget_alias(c);
	} else if (copy_to_new_memfd(c) != 0 && copy_to_private(c) != 0) {
		em_unreserve(c->alias, c->size);
		forget_alias(c);
	}
	if (was_huge && !c->huge)
		atomic_fetch_sub(&c->pool->bytes_huge, c->size);
	own_memory(c);
}

/*
 * In the child, the alias address is free (the alias was not inherited):
 * it is held again, so that privatization can map there later.  Not where
 * a fork handler of the program mapped something meanwhile.
 */
static bool reserve_alias(struct em_chunk *c)
{
	void *out;
	return em_os_map(&out, c->alias, c->size, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, NULL) == 0;
}

/*
 * An inherited alias (a window's, see em_aliases_forking()) or reservation
 * stays.  When a fork handler of the program (or a runtime's thread stack)
 * took the address first, the chunk gets another when it is copied (as
 * does one whose address was lost before an earlier fork).
 */
static void fork_child_chunk(struct em_chunk *c)
{
	if (!c->alias || c->alias_forked || c->alias_reserved)
		return;
	if (reserve_alias(c))
		c->alias_reserved = true;
	else
		c->alias = NULL;
}

/*
 * Before fork: the alias of a chunk with a write window open is inherited,
 * so that the window's pointer stays valid in the child, which copies
 * the chunk at once.  Written before fork, so that no page is copied.
 */
void em_aliases_forking(void)
{
	for (struct em_chunk *c = aliases; c; c = c->alias_next)
		if (c->windows && c->alias && !c->alias_reserved)
			c->alias_forked = em_os_advise(c->alias, c->size, MADV_DOFORK) == 0;
}

/*
 * After fork (em_fork_generation already counts it), with every lock held
 * and no other thread running execmem code: every aliased chunk's memfd
 * is now mapped by both processes, so em_chunk_shared() is true of each.
 * None is copied now (a child that execs copies nothing): each process
 * copies a chunk before it first writes it (em_unshare()).  A chunk with a
 * write window open is copied at once, as the window's pointer may be
 * written at any time.  The parent only reads the descriptors.
 */
void em_aliases_forked(bool in_child)
{
	for (struct em_chunk *c = aliases, *next; c; c = next) {
		next = c->alias_next;
		if (in_child)
			fork_child_chunk(c);
		if (c->windows && em_chunk_shared(c))
			em_chunk_privatize(c);
	}
}

static void page_span(uintptr_t addr, size_t len, uintptr_t *first, uintptr_t *end)
{
	uintptr_t page = (uintptr_t)em_os_page_size();
	*first = addr & ~(page - 1);
	*end = (addr + len + page - 1) & ~(page - 1);
}

/* Make pages of a toggled chunk writable (counted: writes to different
 * allocations of one page may overlap in time). */
static int open_pages(struct em_chunk *c, uintptr_t addr, size_t len)
{
	uintptr_t first, end, page = (uintptr_t)em_os_page_size();
	page_span(addr, len, &first, &end);
	em_lock(&c->pool->toggle_lock);
	int rc = em_os_protect((void *)first, end - first, PROT_READ | PROT_WRITE);
	if (c->huge && (end - first) % EM_CHUNK) {
		/* The kernel splits a huge page to change part of it. */
		c->huge = false;
		atomic_fetch_sub(&c->pool->bytes_huge, c->size);
	}
	if (!rc)
		for (uintptr_t p = first; p < end; p += page)
			atomic_fetch_add(&c->rw_refs[(p - c->base) / page], 1);
	em_unlock(&c->pool->toggle_lock);
	return rc;
}

/* Pages whose last writer left go back to the pool's protection, in runs. */
static int close_pages(struct em_chunk *c, uintptr_t addr, size_t len)
{
	uintptr_t first, end, page = (uintptr_t)em_os_page_size();
	page_span(addr, len, &first, &end);
	int rc = 0;
	uintptr_t run = 0;
	em_lock(&c->pool->toggle_lock);
	for (uintptr_t p = first; p <= end; p += page) {
		bool idle = p < end && atomic_fetch_sub(&c->rw_refs[(p - c->base) / page], 1) == 1;
		if (idle && !run)
			run = p;
		if (!idle && run) {
			/* On failure the run stays writable, never executable; the
			 * fault guard repairs it when code there is next run. */
			int err = em_os_protect((void *)run, p - run, (int)c->pool->prot);
			if (err)
				err = em_os_protect((void *)run, p - run, (int)c->pool->prot);
			rc = rc ? rc : err;
			run = 0;
		}
	}
	atomic_fetch_add(&c->toggle_gen, 1);
	em_unlock(&c->pool->toggle_lock);
	return rc;
}

void *em_chunk_writable(struct em_chunk *c, uintptr_t addr)
{
	return c->alias ? c->alias + (addr - c->base) : (void *)addr;
}

/*
 * Copy len bytes from src to `to`, the writable address of a destination in
 * c, as memmove() does.  A source in the executable view of an aliased
 * chunk is the memory the alias shows at another address: it is read at
 * its alias address, so that memmove() sees the overlap.  The part of a
 * source outside the view cannot overlap the destination and is copied
 * afterwards.  Inlined, as put_bytes() is: every write and every free's
 * refill runs through here, and a call costs them a frame of saved registers.
 */
static inline __attribute__((always_inline)) void move_bytes(struct em_chunk *c, uint8_t *to,
							      const uint8_t *src, size_t len)
{
	uintptr_t from = (uintptr_t)src, view_end = c->base + c->size;
	if (len == sizeof(uint32_t) && (uintptr_t)to % sizeof(uint32_t) == 0) {
		/* One store: live patching swaps single aarch64 instructions
		 * that other cores may be executing, and they must see the
		 * old word or the new one. */
		uint32_t word;
		memcpy(&word, src, sizeof word);
		__atomic_store_n((uint32_t *)(void *)to, word, __ATOMIC_RELAXED);
		return;
	}
	if (!c->alias || from >= view_end || (from < c->base && c->base - from >= len)) {
		memmove(to, src, len);
		return;
	}
	size_t before = from < c->base ? c->base - from : 0;
	size_t inside = len - before;
	if (inside > view_end - (from + before))
		inside = view_end - (from + before);
	memmove(to + before, c->alias + (from + before - c->base), inside);
	memcpy(to, src, before);
	memcpy(to + before + inside, src + before + inside, len - before - inside);
}

static inline __attribute__((always_inline)) void put_bytes(struct em_chunk *c, uintptr_t dst,
							     const void *src, size_t len)
{
	uint8_t *to = em_chunk_writable(c, dst);
	if (src)
		move_bytes(c, to, src, len);
	else
		em_fill(c->pool, to, len);
}

/*
 * The pages of a toggled chunk are not executable while they are written.
 * Signals stay blocked meanwhile: a handler running code there would wait
 * in the fault guard for this very thread to finish.
 */
static int put_toggled(struct em_chunk *c, uintptr_t dst, const void *src, size_t len)
{
	sigset_t saved;
	em_os_block_signals(&saved);
	int rc = open_pages(c, dst, len);
	if (!rc) {
		put_bytes(c, dst, src, len);
		rc = close_pages(c, dst, len);
	}
	em_os_restore_signals(&saved);
	return rc;
}

/* Pages of a toggled chunk that no writer holds get the pool's protection. */
static void reprotect_idle_pages(struct em_chunk *c)
{
	uintptr_t page = (uintptr_t)em_os_page_size(), end = c->base + c->size, run = 0;
	em_lock(&c->pool->toggle_lock);
	for (uintptr_t p = c->base; p <= end; p += page) {
		bool idle = p < end && !atomic_load(&c->rw_refs[(p - c->base) / page]);
		if (idle && !run)
			run = p;
		if (!idle && run) {
			em_os_protect((void *)run, p - run, (int)c->pool->prot);
			run = 0;
		}
	}
	em_unlock(&c->pool->toggle_lock);
}

/*
 * Whether a mapping of the chunk (view or alias) was made writable and
 * executable behind execmem's back; if so, the protections execmem keeps
 * are put back where it knows them (aliases, views, idle toggled pages;
 * private data is left as found).
 */
bool em_chunk_wx_hole(struct em_chunk *c)
{
	uintptr_t ranges[2][2] = { { c->base, c->base + c->size },
				   { (uintptr_t)c->alias, (uintptr_t)c->alias + c->size } };
	if (c->kind == EM_CHUNK_DETACHED || em_os_find_wx(ranges, c->alias ? 2 : 1) <= 0)
		return false;
	if (c->kind == EM_CHUNK_ALIASED) {
		if (c->alias)
			em_os_protect(c->alias, c->size, PROT_READ | PROT_WRITE);
		em_os_protect((void *)c->base, c->size, (int)c->pool->prot);
	} else if (c->kind == EM_CHUNK_TOGGLED) {
		reprotect_idle_pages(c);
	}
	return true;
}

/*
 * An in-place window: the allocation's own pages (it owns them whole) are
 * writable and not executable until the window closes.  Signals are not
 * blocked, as no other code lives on these pages.
 */
int em_chunk_open_in_place(struct em_chunk *c, uintptr_t addr, size_t len, void **writable)
{
	int rc = open_pages(c, addr, len);
	if (!rc)
		*writable = (void *)addr;
	return rc;
}

int em_chunk_close_in_place(struct em_chunk *c, uintptr_t addr, size_t len)
{
	int rc = close_pages(c, addr, len);
	if (!rc && c->pool->code)
		rc = em_publish_code((void *)addr, len);
	return rc;
}

/* Copy src (or the pool's fill when src is NULL) to dst, as memmove() does,
 * and publish it. */
int em_chunk_put(struct em_chunk *c, uintptr_t dst, const void *src, size_t len)
{
	int rc = 0;
	if (c->kind == EM_CHUNK_DETACHED)
		return -EIO;
	if (c->kind == EM_CHUNK_TOGGLED)
		rc = put_toggled(c, dst, src, len);
	else
		put_bytes(c, dst, src, len);
	if (!rc && c->pool->code)
		rc = em_publish_code((void *)dst, len);
	return rc;
}

/* valgrind runs its translation of code until told the bytes changed, and
 * sees no store made through an alias; outside valgrind the request is a
 * few instructions that do nothing. */
int em_publish_code(void *exec, size_t len)
{
	VALGRIND_DISCARD_TRANSLATIONS(exec, len);
	return em_arch.publish(exec, len);
}
