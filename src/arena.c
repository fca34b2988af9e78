/*
 * arena.c - arenas, their pools and per-thread shards: where allocations
 * are carved out of chunks, freed, sealed and looked up.
 *
 * Locking: a shard's lock guards its chunk list, the free-space trackers of
 * those chunks and its counters; a pool's lock guards its retained and large
 * lists and its counters.  Order: shard, then pool, then toggle lock.  The
 * write path takes no lock in dual mode: it validates through atomic reads
 * of the tracker (see freespace.h).
 */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static _Thread_local unsigned thread_shard = UINT_MAX;
static atomic_uint next_thread_shard;

/*
 * The allocation this thread made last, as validated when it was made: a
 * JIT writes what it has just allocated, and a write inside it then needs
 * no lookup in the tracker.  It stays valid while its chunk's epoch is
 * unchanged (no allocation of the chunk freed, sealed or given a window
 * since) and no descriptor was freed (so that the chunk pointer still
 * names the same descriptor: a freed one's address may be reused).
 */
struct newest {
	struct em_chunk *chunk;
	uintptr_t lo, hi;
	unsigned long epoch, descriptors_freed;
};
static _Thread_local struct newest newest;
static atomic_ulong descriptors_freed;

static void remember_newest(struct em_chunk *c, uintptr_t addr, size_t size)
{
	newest = (struct newest){ c, addr, addr + size,
				  atomic_load_explicit(&c->epoch, memory_order_relaxed),
				  atomic_load_explicit(&descriptors_freed, memory_order_relaxed) };
}

static bool newest_unchanged(const struct em_chunk *c)
{
	return c == newest.chunk &&
	       atomic_load_explicit(&c->epoch, memory_order_acquire) == newest.epoch &&
	       atomic_load_explicit(&descriptors_freed, memory_order_acquire) == newest.descriptors_freed;
}

static bool newest_holds(const struct em_chunk *c, uintptr_t addr, size_t len)
{
	return addr - newest.lo < newest.hi - newest.lo && len <= newest.hi - addr &&
	       newest_unchanged(c);
}

/* Whether the allocation starting at addr is this thread's newest, still
 * live with no flag set (setting one opens a new epoch). */
static bool newest_starts_at(const struct em_chunk *c, uintptr_t addr)
{
	return addr == newest.lo && newest_unchanged(c);
}

/* Under the shard lock, after the tracker changed: cached validations of
 * the chunk no longer hold. */
static void new_epoch(struct em_chunk *c)
{
	atomic_store_explicit(&c->epoch, atomic_load_explicit(&c->epoch, memory_order_relaxed) + 1,
			      memory_order_release);
}

/* Threads are spread over shards in the order they first allocate. */
static struct em_shard *my_shard(struct em_pool *pool)
{
	if (thread_shard == UINT_MAX)
		thread_shard = atomic_fetch_add(&next_thread_shard, 1);
	return &pool->shards[thread_shard & pool->arena->shard_mask];
}

unsigned em_type_prot(enum execmem_type type)
{
	switch (type) {
	case EXECMEM_CODE:
	case EXECMEM_CODE_NEAR:
		return EXECMEM_PROT_READ | EXECMEM_PROT_EXEC;
	case EXECMEM_RODATA:
		return EXECMEM_PROT_READ;
	default:
		return EXECMEM_PROT_READ | EXECMEM_PROT_WRITE;
	}
}

bool em_type_is_code(enum execmem_type type)
{
	return type == EXECMEM_CODE || type == EXECMEM_CODE_NEAR;
}

/* ---------------------------------------------------------------- ranges */

static void default_ranges(struct em_arena *a, uintptr_t image_lo, uintptr_t image_hi)
{
	size_t far_code = em_arch.code_fallback_reach ? em_arch.code_fallback_reach : em_arch.code_reach;
	size_t data = em_arch.data_reach < far_code ? em_arch.data_reach : far_code;
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++) {
		struct execmem_range *r = &a->ranges[t];
		memset(r, 0, sizeof *r);
		r->flags = EXECMEM_RANGE_SET;
		r->protection = em_type_prot(t);
		if (t == EXECMEM_CODE) {
			r->flags |= EXECMEM_RANGE_ANYWHERE;
		} else if (t == EXECMEM_CODE_NEAR) {
			em_near_window(image_lo, image_hi, em_arch.code_reach, &r->start, &r->end);
			if (em_arch.code_fallback_reach)
				em_near_window(image_lo, image_hi, em_arch.code_fallback_reach,
					       &r->fallback_start, &r->fallback_end);
		} else {
			em_near_window(image_lo, image_hi, data, &r->start, &r->end);
		}
	}
}

static bool span_ok(uintptr_t start, uintptr_t end, uintptr_t top)
{
	return start < end && end - start >= EM_CHUNK && end <= top;
}

static int check_range(int type, const struct execmem_range *r)
{
	uintptr_t top = em_user_va_top();
	if (r->flags & ~(unsigned)(EXECMEM_RANGE_SET | EXECMEM_RANGE_ANYWHERE)) {
		em_set_error("range %d: unknown flags 0x%x", type, r->flags);
		return -EINVAL;
	}
	if (r->protection && r->protection != em_type_prot(type)) {
		em_set_error("range %d: protection 0x%x does not match the type (0x%x)",
			     type, r->protection, em_type_prot(type));
		return -EINVAL;
	}
	if (r->alignment & (r->alignment - 1) || r->alignment > EM_CHUNK) {
		em_set_error("range %d: alignment %zu is not a power of two up to 2 MiB",
			     type, r->alignment);
		return -EINVAL;
	}
	if (r->flags & EXECMEM_RANGE_ANYWHERE)
		return 0;
	if (!span_ok(r->start, r->end, top)) {
		em_set_error("range %d: [%#lx, %#lx) is empty, smaller than a chunk or beyond the "
			     "user address space", type, (unsigned long)r->start, (unsigned long)r->end);
		return -EINVAL;
	}
	if ((r->fallback_start || r->fallback_end) &&
	    !span_ok(r->fallback_start, r->fallback_end, top)) {
		em_set_error("range %d: fallback [%#lx, %#lx) is empty, smaller than a chunk or "
			     "beyond the user address space", type,
			     (unsigned long)r->fallback_start, (unsigned long)r->fallback_end);
		return -EINVAL;
	}
	return 0;
}

/* Host ranges replace the defaults; unset entries inherit EXECMEM_CODE's. */
static int apply_ranges(struct em_arena *a, const struct execmem_range *given)
{
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++) {
		const struct execmem_range *r = &given[t];
		if (!(r->flags & EXECMEM_RANGE_SET)) {
			if (!(given[EXECMEM_CODE].flags & EXECMEM_RANGE_SET))
				continue;
			r = &given[EXECMEM_CODE];
		}
		int rc = check_range(t, r);
		if (rc)
			return rc;
		a->ranges[t] = *r;
		a->ranges[t].protection = em_type_prot(t);
		a->ranges[t].flags |= EXECMEM_RANGE_SET;
	}
	return 0;
}

void execmem_params_init(struct execmem_params *params)
{
	memset(params, 0, sizeof *params);
	params->granularity = 64;
	params->retained_chunks = 8;
	params->mode = EXECMEM_MODE_AUTO;
}

static int check_params(const struct execmem_params *p)
{
	size_t g = p->granularity;
	if (g < 16 || g > 4096 || (g & (g - 1))) {
		em_set_error("granularity %zu is not a power of two from 16 to 4096", g);
		return -EINVAL;
	}
	if (p->mode != EXECMEM_MODE_AUTO && p->mode != EXECMEM_MODE_DUAL &&
	    p->mode != EXECMEM_MODE_MPROTECT) {
		em_set_error("unknown mode %d", (int)p->mode);
		return -EINVAL;
	}
	if (p->write != EXECMEM_WRITE_DEFAULT && p->write != EXECMEM_WRITE_IN_PLACE) {
		em_set_error("unknown write option %d", (int)p->write);
		return -EINVAL;
	}
	if (p->write == EXECMEM_WRITE_IN_PLACE && p->mode == EXECMEM_MODE_DUAL) {
		em_set_error("in-place writing needs mprotect mode, not dual mode");
		return -EINVAL;
	}
	if (p->image_start > p->image_end || (!p->image_start) != (!p->image_end)) {
		em_set_error("image [%#lx, %#lx) is not a range", (unsigned long)p->image_start,
			     (unsigned long)p->image_end);
		return -EINVAL;
	}
	return 0;
}

/* ----------------------------------------------------------------- pools */

static bool same_pool(const struct em_arena *a, int t, int u)
{
	const struct execmem_range *x = &a->ranges[t], *y = &a->ranges[u];
	return x->start == y->start && x->end == y->end && x->fallback_start == y->fallback_start &&
	       x->fallback_end == y->fallback_end && x->alignment == y->alignment &&
	       x->flags == y->flags && x->protection == y->protection &&
	       em_type_is_code(t) == em_type_is_code(u) &&
	       (t == EXECMEM_RO_AFTER_INIT) == (u == EXECMEM_RO_AFTER_INIT);
}

static void pool_init(struct em_arena *a, struct em_pool *pool, enum execmem_type type)
{
	memset(pool, 0, sizeof *pool);
	pool->arena = a;
	pool->type = type;
	pool->range = a->ranges[type];
	pool->prot = em_type_prot(type);
	pool->code = em_type_is_code(type);
	pool->sealable = type == EXECMEM_RO_AFTER_INIT;
	pool->in_place = a->params.write == EXECMEM_WRITE_IN_PLACE && !(pool->prot & EXECMEM_PROT_WRITE);
	/* Sealing and in-place windows change page protection: such
	 * allocations own their pages. */
	bool own_pages = pool->sealable || pool->in_place;
	pool->granule = own_pages ? (uint32_t)em_os_page_size() : (uint32_t)a->params.granularity;
	size_t align = pool->range.alignment;
	pool->align = align > pool->granule ? (uint32_t)align : pool->granule;
}

static unsigned shard_mask_for_cpus(void)
{
	unsigned cpus = (unsigned)em_os_cpu_count(), n = 1; /* a file read each time */
	while (n < cpus && n < EM_MAX_SHARDS)
		n <<= 1;
	return n - 1;
}

int em_arena_init(struct em_arena *a, const struct execmem_params *params)
{
	memset(a, 0, sizeof *a);
	execmem_params_init(&a->params);
	if (params)
		a->params = *params;
	int rc = check_params(&a->params);
	if (rc)
		return rc;
	uintptr_t lo = a->params.image_start, hi = a->params.image_end;
	if (!hi)
		em_image_bounds(&lo, &hi);
	default_ranges(a, lo, hi);
	if (a->params.ranges && (rc = apply_ranges(a, a->params.ranges)))
		return rc;
	a->params.ranges = NULL; /* the caller's table need not outlive the call */
	if (a->params.write == EXECMEM_WRITE_IN_PLACE)
		a->params.mode = EXECMEM_MODE_MPROTECT;
	a->mode_forced = a->params.mode != EXECMEM_MODE_AUTO;
	a->mode_reason = a->mode_forced ? EXECMEM_REASON_ASKED : EXECMEM_REASON_DEFAULT;
	atomic_store(&a->mode, a->params.mode == EXECMEM_MODE_MPROTECT ? EXECMEM_MODE_MPROTECT
									: EXECMEM_MODE_DUAL);
	a->shard_mask = shard_mask_for_cpus();
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++) {
		a->pool_of[t] = &a->pools[t];
		for (int u = 0; u < t; u++) {
			if (a->pool_of[u] == &a->pools[u] && same_pool(a, t, u)) {
				a->pool_of[t] = &a->pools[u];
				break;
			}
		}
		if (a->pool_of[t] == &a->pools[t])
			pool_init(a, &a->pools[t], t);
	}
	return 0;
}

#define FOR_EACH_POOL(a, pool)                                                        \
	for (struct em_pool *pool = (a)->pools; pool < (a)->pools + EXECMEM_TYPE_MAX; pool++) \
		if ((a)->pool_of[pool - (a)->pools] == pool)

/* --------------------------------------------------------- chunk lists */

static void push(struct em_chunk **head, struct em_chunk *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

/* Chunks of a shard are kept oldest first (see moves_work()). */
static void insert_by_age(struct em_chunk **head, struct em_chunk *c)
{
	struct em_chunk **link = head, *before = NULL;
	while (*link && (*link)->age < c->age) {
		before = *link;
		link = &before->next;
	}
	c->prev = before;
	c->next = *link;
	if (*link)
		(*link)->prev = c;
	*link = c;
}

static void unlink_chunk(struct em_chunk **head, struct em_chunk *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static struct em_shard *lock_owner(struct em_chunk *c)
{
	struct em_shard *s = atomic_load(&c->shard);
	if (!s)
		return NULL;
	em_lock(&s->lock);
	if (atomic_load(&c->shard) != s) {
		em_unlock(&s->lock);
		return NULL;
	}
	return s;
}

static struct em_chunk *new_descriptor(struct em_pool *pool, bool large)
{
	em_lock(&pool->lock);
	struct em_chunk *c = pool->spare;
	if (c && c->large == large)
		unlink_chunk(&pool->spare, c);
	else
		c = NULL;
	em_unlock(&pool->lock);
	if (c)
		return c;
	uint32_t granules = large ? 1 : (uint32_t)(EM_CHUNK / pool->granule);
	/* Descriptors are written by their shard's thread: keep them apart. */
	c = aligned_alloc(64, (sizeof *c + 63) & ~(size_t)63);
	if (c)
		memset(c, 0, sizeof *c);
	size_t bytes = (em_fs_storage_size(granules) + 63) & ~(size_t)63;
	void *storage = c ? aligned_alloc(64, bytes) : NULL; /* a group per cache line */
	if (!storage) {
		free(c);
		return NULL;
	}
	c->pool = pool;
	c->large = large;
	c->fs_storage = storage;
	c->unit_shift = large ? 63 : (unsigned)__builtin_ctz(pool->granule);
	em_fs_init(&c->fs, granules, storage);
	return c;
}

static void free_descriptor(struct em_chunk *c)
{
	atomic_fetch_add_explicit(&descriptors_freed, 1, memory_order_release);
	free(c->fs_storage);
	free(c);
}

static enum em_chunk_kind kind_for(struct em_pool *pool)
{
	if (pool->prot & EXECMEM_PROT_WRITE)
		return EM_CHUNK_PLAIN;
	return atomic_load(&pool->arena->mode) == EXECMEM_MODE_DUAL ? EM_CHUNK_ALIASED
								    : EM_CHUNK_TOGGLED;
}

/* The kernel refuses dual mapping for good: a policy or a missing feature. */
static bool dual_refused(int err)
{
	return err == -EPERM || err == -EACCES || err == -ENOSYS || err == -EINVAL ||
	       err == -EOPNOTSUPP || err == -ENODEV;
}

/* No descriptor now: this chunk is toggled, later ones try dual again. */
static bool no_descriptor(int err)
{
	return err == -EMFILE || err == -ENFILE;
}

/* Map a chunk, falling back to mprotect mode when dual mapping cannot be had. */
static int map_with_fallback(struct em_chunk *c, const struct em_window *w)
{
	struct em_arena *a = c->pool->arena;
	enum em_chunk_kind kind = kind_for(c->pool);
	int rc = em_chunk_map(c, w, kind);
	if (kind == EM_CHUNK_ALIASED && !a->mode_forced && (dual_refused(rc) || no_descriptor(rc))) {
		if (dual_refused(rc)) {
			atomic_store(&a->mode, EXECMEM_MODE_MPROTECT);
			atomic_store(&a->mode_reason, EXECMEM_REASON_REFUSED);
		}
		kind = EM_CHUNK_TOGGLED;
		rc = em_chunk_map(c, w, kind);
	}
	if (!rc && kind == EM_CHUNK_TOGGLED && (rc = em_toggle_guard_install()))
		em_chunk_unmap(c);
	return rc;
}

static void count_chunk(struct em_pool *pool, struct em_chunk *c, int sign)
{
	em_lock(&pool->lock);
	if (c->large)
		pool->nlarge += sign;
	else
		pool->chunks += sign;
	pool->bytes_reserved += sign * c->size;
	if (c->huge)
		atomic_fetch_add(&pool->bytes_huge, sign * c->size);
	em_unlock(&pool->lock);
}

/* Chunks made so far: a chunk's age is its rank among them. */
static atomic_uint_fast64_t chunks_made;

/* A mapped, registered chunk spanning `span` bytes, or NULL with *err. */
static struct em_chunk *create_chunk(struct em_pool *pool, const struct em_window *w,
				     size_t size, bool large, int *err)
{
	struct em_chunk *c = new_descriptor(pool, large);
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	size_t page = (size_t)em_os_page_size();
	c->size = (size + page - 1) & ~(page - 1);
	c->span = (size + EM_CHUNK - 1) & ~(EM_CHUNK - 1);
	*err = map_with_fallback(c, w);
	if (!*err && (*err = em_addrmap_set(c->base, c->span, c)))
		em_chunk_unmap(c);
	if (*err) {
		free_descriptor(c);
		return NULL;
	}
	em_fs_init(&c->fs, c->fs.granules, c->fs_storage);
	c->age = atomic_fetch_add_explicit(&chunks_made, 1, memory_order_relaxed);
	count_chunk(pool, c, 1);
	return c;
}

/*
 * Unmap an unowned chunk; one the kernel will not unmap now is kept.  Its
 * address-map entry goes first: once the address space is free, another
 * thread may map a new chunk there and register it.
 */
static void release_chunk(struct em_pool *pool, struct em_chunk *c)
{
	em_addrmap_set(c->base, c->span, NULL);
	bool kept = em_chunk_unmap(c) != 0;
	if (kept)
		em_addrmap_set(c->base, c->span, c); /* the slots' nodes exist: cannot fail */
	else
		count_chunk(pool, c, -1);
	em_lock(&pool->lock);
	if (!kept) {
		push(&pool->spare, c);
	} else if (c->large) {
		push(&pool->large, c); /* unmapped again when the arena goes */
	} else {
		push(&pool->retained, c);
		pool->nretained++;
		atomic_fetch_add(&pool->arena->nretained, 1);
	}
	em_unlock(&pool->lock);
}

/* --------------------------------------------------------------- alloc */

static bool overlaps(const struct em_chunk *c, const struct em_window *w)
{
	return c->base < w->hi && c->base + c->size > w->lo;
}

static void chunk_emptied(struct em_shard *s, struct em_chunk *c);

/* The shard works in c from now on; an empty chunk it leaves goes back. */
static void work_in(struct em_shard *s, struct em_chunk *c)
{
	struct em_chunk *left = s->current;
	s->current = c;
	if (left && left != c && left->fs.free == left->fs.granules)
		chunk_emptied(s, left);
}

/*
 * Whether the shard works in c from now on, c having just served an
 * allocation found by a miss's scan: the oldest chunk with room keeps the
 * work, so that the holes of older chunks are filled before the fresh
 * space of newer ones; a chunk nearly full (under 1/16 free) hands it on,
 * so that misses do not scan every chunk while the newest one fills, and a
 * detached one always does (nothing is placed in it again: left, it goes).
 */
static bool moves_work(const struct em_shard *s, const struct em_chunk *c)
{
	const struct em_chunk *cur = s->current;
	if (cur == c)
		return false;
	return !cur || c->age < cur->age || cur->fs.free < cur->fs.granules / 16 ||
	       cur->kind == EM_CHUNK_DETACHED;
}

static void *alloc_in(struct em_shard *s, struct em_chunk *c, uint32_t n, uint32_t align,
		      const struct em_window *w)
{
	if (c->fs.free < n || !overlaps(c, w) || c->kind == EM_CHUNK_DETACHED)
		return NULL;
	unsigned shift = c->unit_shift;
	uint32_t lo = 0, hi = c->fs.granules;
	if (w->lo > c->base)
		lo = (uint32_t)((w->lo - c->base + (1u << shift) - 1) >> shift);
	if (w->hi < c->base + c->size)
		hi = (uint32_t)((w->hi - c->base) >> shift);
	long at = em_fs_alloc(&c->fs, n, align, lo, hi);
	if (at < 0)
		return NULL;
	s->live++;
	s->bytes_in_use += (size_t)n << shift;
	if (moves_work(s, c))
		work_in(s, c);
	uintptr_t p = c->base + ((uintptr_t)at << shift);
	remember_newest(c, p, (size_t)n << shift);
	return (void *)p;
}

/* Widen the window so that a chunk overlapping it by `need` bytes fits. */
static struct em_window chunk_window(const struct em_window *w, size_t need)
{
	size_t slack = EM_CHUNK - need;
	struct em_window cw = { w->lo > slack ? w->lo - slack : 0,
				w->hi < UINTPTR_MAX - slack ? w->hi + slack : UINTPTR_MAX, w->align };
	if (w->lo == 0 && w->hi == UINTPTR_MAX)
		cw = *w;
	return cw;
}

/*
 * A retained chunk that s held last comes first: its memory is in the
 * caches of the CPU s's thread runs on.  Taking another thread's would
 * move up to 2 MiB of lines between CPUs, every time threads take turns
 * emptying chunks and taking them back.
 */
static struct em_chunk *take_retained(struct em_pool *pool, const struct em_shard *s,
				      const struct em_window *w)
{
	em_lock(&pool->lock);
	struct em_chunk *c = pool->retained, *any = NULL;
	for (; c && (c->last_shard != s || !overlaps(c, w)); c = c->next)
		if (!any && overlaps(c, w))
			any = c;
	c = c ? c : any;
	if (c) {
		unlink_chunk(&pool->retained, c);
		pool->nretained--;
		atomic_fetch_sub(&pool->arena->nretained, 1);
	}
	em_unlock(&pool->lock);
	return c;
}

/* The shard takes a chunk it does not hold yet, or hands it back unused. */
static void *adopt(struct em_shard *s, struct em_chunk *c, uint32_t n, uint32_t align,
		   const struct em_window *w)
{
	atomic_store(&c->shard, s);
	insert_by_age(&s->chunks, c);
	void *p = alloc_in(s, c, n, align, w);
	if (!p)
		chunk_emptied(s, c);
	return p;
}

static void *alloc_small(struct em_pool *pool, size_t size, const struct em_window *w, int *err)
{
	unsigned shift = (unsigned)__builtin_ctz(pool->granule);
	uint32_t n = (uint32_t)((size + pool->granule - 1) >> shift);
	uint32_t align = (w->align > pool->align ? (uint32_t)w->align : pool->align) >> shift;
	struct em_shard *s = my_shard(pool);
	em_lock(&s->lock);
	void *p = s->current ? alloc_in(s, s->current, n, align, w) : NULL;
	for (struct em_chunk *c = s->chunks; !p && c; c = c->next)
		if (c != s->current)
			p = alloc_in(s, c, n, align, w);
	if (!p) {
		struct em_window cw = chunk_window(w, (size_t)n << shift);
		struct em_chunk *c = take_retained(pool, s, &cw);
		if (c)
			p = adopt(s, c, n, align, w);
		if (!p && (c = create_chunk(pool, &cw, EM_CHUNK, false, err)))
			p = adopt(s, c, n, align, w);
		if (!p && c)
			*err = -ENOMEM; /* the chunk barely missed the window */
	}
	em_unlock(&s->lock);
	return p;
}

static void *alloc_large(struct em_pool *pool, size_t size, const struct em_window *w, int *err)
{
	struct em_chunk *c = create_chunk(pool, w, size, true, err);
	if (!c)
		return NULL;
	struct em_shard *s = my_shard(pool);
	em_lock(&s->lock);
	em_fs_alloc(&c->fs, 1, 1, 0, 1);
	s->live++;
	s->bytes_in_use += c->size;
	atomic_store(&c->shard, s);
	remember_newest(c, c->base, c->size);
	em_lock(&pool->lock);
	push(&pool->large, c);
	em_unlock(&pool->lock);
	em_unlock(&s->lock);
	return (void *)c->base;
}

void *em_pool_alloc(struct em_pool *pool, size_t size, const struct em_window *w)
{
	int err = -ENOMEM;
	bool large = size > EM_LARGE_THRESHOLD || w->align > EM_CHUNK;
	void *p = large ? alloc_large(pool, size, w, &err) : alloc_small(pool, size, w, &err);
	if (!p)
		errno = -err;
	return p;
}

/* ------------------------------------------------------- lookup, free */

static size_t alloc_bytes(const struct em_chunk *c, uint32_t granules)
{
	return c->large ? c->size : (size_t)granules << c->unit_shift;
}

/* A live allocation found by its first byte, with its shard locked. */
struct held {
	struct em_shard *shard;
	uint32_t index, granules;
	unsigned flags;   /* em_fs_flags() when found */
	size_t size;
};

/*
 * Lock the shard owning c and find the allocation starting exactly at
 * addr.  Returns 0 with the shard locked, or -EINVAL with nothing locked.
 */
static int hold(struct em_chunk *c, uintptr_t addr, struct held *h)
{
	if (!(h->shard = lock_owner(c)))
		return -EINVAL;
	uintptr_t off = addr - c->base;
	h->index = (uint32_t)(off >> c->unit_shift);
	if (newest_starts_at(c, addr)) {
		/* A JIT often frees what it allocated last: no tracker lookup. */
		h->granules = c->large ? 1 : (uint32_t)((newest.hi - newest.lo) >> c->unit_shift);
		h->size = alloc_bytes(c, h->granules);
		h->flags = 0;
		return 0;
	}
	bool aligned = c->large ? off == 0 : (off & ((1ul << c->unit_shift) - 1)) == 0;
	if (addr >= c->base && off < c->size && aligned) {
		h->granules = em_fs_size(&c->fs, h->index);
		h->size = alloc_bytes(c, h->granules);
		h->flags = em_fs_flags(&c->fs, h->index);
		if (h->granules)
			return 0;
	}
	em_unlock(&h->shard->lock);
	return -EINVAL;
}

/* hold() for a write: EM_SHARED, with nothing held, for a chunk shared
 * since a fork, which the caller unshares first (fork.c). */
static int hold_to_write(struct em_chunk *c, uintptr_t addr, struct held *h)
{
	int rc = hold(c, addr, h);
	if (!rc && em_chunk_shared(c)) {
		em_unlock(&h->shard->lock);
		return EM_SHARED;
	}
	return rc;
}

/* Flags are read once by hold(): only the holder changes them. */
static bool flagged(const struct held *h, enum em_fs_flag flag)
{
	return (h->flags >> flag) & 1;
}

/* Whether [addr, addr + len) lies in one live, unsealed allocation of c
 * without an open write window. */
int em_check_range(struct em_chunk *c, uintptr_t addr, size_t len)
{
	if (newest_holds(c, addr, len))
		return 0;
	if (!atomic_load_explicit(&c->shard, memory_order_acquire) || addr < c->base ||
	    addr >= c->base + c->size)
		return -EINVAL;
	uint32_t granules;
	long first = em_fs_find(&c->fs, (uint32_t)((addr - c->base) >> c->unit_shift), &granules);
	if (first < 0)
		return -EINVAL;
	uintptr_t end = c->base + ((uintptr_t)first << c->unit_shift) + alloc_bytes(c, granules);
	if (len > end - addr)
		return -EINVAL;
	unsigned flags = em_fs_flags(&c->fs, (uint32_t)first);
	if (flags & (1u << EM_FS_SEALED))
		return -EPERM;
	if (flags & (1u << EM_FS_WINDOW))
		return -EBUSY;
	return 0;
}

size_t em_usable(struct em_chunk *c, uintptr_t addr)
{
	struct held h;
	if (hold(c, addr, &h))
		return 0;
	em_unlock(&h.shard->lock);
	return h.size;
}

/* Retain a wholly free chunk, or release it beyond the arena's limit (or
 * when detached: nothing is placed there again); each shard also keeps its
 * current chunk, so the bound is the limit plus one chunk per shard. */
static void chunk_emptied(struct em_shard *s, struct em_chunk *c)
{
	struct em_pool *pool = c->pool;
	struct em_arena *a = pool->arena;
	if (s->current == c)
		return; /* each shard keeps the chunk it works in: no churn on alloc/free cycles */
	unlink_chunk(&s->chunks, c);
	atomic_store(&c->shard, NULL);
	c->last_shard = s;
	if (c->kind == EM_CHUNK_DETACHED) {
		release_chunk(pool, c);
		return;
	}
	if (atomic_fetch_add(&a->nretained, 1) < a->params.retained_chunks) {
		em_lock(&pool->lock);
		push(&pool->retained, c);
		pool->nretained++;
		em_unlock(&pool->lock);
		return;
	}
	atomic_fetch_sub(&a->nretained, 1);
	release_chunk(pool, c);
}

/*
 * Space freed in a chunk older than the one the shard works in is where it
 * works next: allocations gather in the oldest chunks (a miss scans them
 * oldest first too) and the newest ones empty and go back, instead of a
 * fresh chunk taking every allocation while the holes of the others stay
 * resident.
 */
static void prefer_older(struct em_shard *s, struct em_chunk *c)
{
	if (s->current && c->age < s->current->age && c->kind != EM_CHUNK_DETACHED)
		work_in(s, c);
}

static int unseal(struct em_chunk *c, uintptr_t addr, const struct held *h)
{
	if (!flagged(h, EM_FS_SEALED))
		return 0;
	int rc = em_os_protect((void *)addr, h->size, PROT_READ | PROT_WRITE);
	if (!rc)
		em_fs_set_flag(&c->fs, EM_FS_SEALED, h->index, 0);
	return rc;
}

static void release_large(struct em_shard *s, struct em_chunk *c)
{
	struct em_pool *pool = c->pool;
	atomic_store(&c->shard, NULL);
	em_lock(&pool->lock);
	unlink_chunk(&pool->large, c);
	em_unlock(&pool->lock);
	em_unlock(&s->lock);
	release_chunk(pool, c);
}

int em_pool_free(struct em_chunk *c, uintptr_t addr)
{
	struct held h;
	int rc = c->large ? hold(c, addr, &h) : hold_to_write(c, addr, &h);
	if (rc)
		return rc;
	struct em_shard *s = h.shard;
	rc = flagged(&h, EM_FS_WINDOW) ? -EBUSY : unseal(c, addr, &h);
	/* Nothing is ever placed again in a detached chunk: no refill. */
	if (!rc && !c->large && c->kind != EM_CHUNK_DETACHED)
		rc = em_chunk_put(c, addr, NULL, h.size);
	if (rc) {
		em_unlock(&s->lock);
		return rc;
	}
	em_fs_free(&c->fs, h.index, h.granules);
	new_epoch(c);
	s->live--;
	s->bytes_in_use -= h.size;
	if (c->large) {
		release_large(s, c);
		return 0;
	}
	if (c->fs.free == c->fs.granules)
		chunk_emptied(s, c);
	else
		prefer_older(s, c);
	em_unlock(&s->lock);
	return 0;
}

/* --------------------------------------------------- windows and seals */

/*
 * In a toggled chunk a window is a copy of the allocation in ordinary
 * memory, put in place when the window closes: the pages stay executable
 * while the caller emits, so it may run their other code meanwhile.  The
 * copies are kept by address in the pool, under its lock.
 */
struct em_shadow {
	struct em_shadow *next;
	uintptr_t addr;
	void *bytes;
};

/* The copy is aligned as the allocation is, up to a page, like an alias. */
static int open_shadow(struct em_pool *pool, uintptr_t addr, size_t size, void **writable)
{
	size_t align = (size_t)(addr & -addr), page = (size_t)em_os_page_size();
	struct em_shadow *s = malloc(sizeof *s);
	if (!s || posix_memalign(&s->bytes, align < page ? align : page, size)) {
		free(s);
		return -ENOMEM;
	}
	s->addr = addr;
	memcpy(s->bytes, (void *)addr, size);
	em_lock(&pool->lock);
	s->next = pool->shadows;
	pool->shadows = s;
	em_unlock(&pool->lock);
	*writable = s->bytes;
	return 0;
}

static struct em_shadow *take_shadow(struct em_pool *pool, uintptr_t addr)
{
	em_lock(&pool->lock);
	struct em_shadow **link = &pool->shadows;
	while (*link && (*link)->addr != addr)
		link = &(*link)->next;
	struct em_shadow *s = *link;
	if (s)
		*link = s->next;
	em_unlock(&pool->lock);
	return s;
}

static void free_shadow(struct em_shadow *s)
{
	free(s->bytes);
	free(s);
}

int em_window_begin(struct em_chunk *c, uintptr_t addr, void **writable)
{
	struct held h;
	int rc = hold_to_write(c, addr, &h);
	if (rc)
		return rc;
	if (flagged(&h, EM_FS_SEALED))
		rc = -EPERM;
	else if (flagged(&h, EM_FS_WINDOW))
		rc = -EBUSY;
	else if (c->kind == EM_CHUNK_DETACHED)
		rc = -EIO;
	else if (c->kind == EM_CHUNK_TOGGLED && c->pool->in_place)
		rc = em_chunk_open_in_place(c, addr, h.size, writable);
	else if (c->kind == EM_CHUNK_TOGGLED)
		rc = open_shadow(c->pool, addr, h.size, writable);
	else
		*writable = em_chunk_writable(c, addr);
	if (!rc) {
		em_fs_set_flag(&c->fs, EM_FS_WINDOW, h.index, 1);
		c->windows++;
		new_epoch(c);
	}
	em_unlock(&h.shard->lock);
	return rc;
}

/* Put a closing window's bytes in place and publish them. */
static int close_window(struct em_chunk *c, uintptr_t addr, size_t size)
{
	if (c->kind == EM_CHUNK_TOGGLED && c->pool->in_place)
		return em_chunk_close_in_place(c, addr, size);
	/* A chunk made toggled by fork holds a window opened on its alias. */
	struct em_shadow *s = c->kind == EM_CHUNK_TOGGLED ? take_shadow(c->pool, addr) : NULL;
	int rc = 0;
	if (s) {
		rc = em_chunk_put(c, addr, s->bytes, size);
		free_shadow(s);
	} else if (c->pool->code) {
		rc = em_publish_code((void *)addr, size);
	}
	return rc;
}

/*
 * The window closes even when its bytes cannot be put in place.  A W+X
 * mapping of the chunk is looked for first, while an in-place window's
 * pages still have the protection the emitter left them.
 */
int em_window_end(struct em_chunk *c, uintptr_t addr)
{
	struct held h;
	int rc = hold(c, addr, &h);
	if (rc)
		return rc;
	if (!flagged(&h, EM_FS_WINDOW)) {
		em_unlock(&h.shard->lock);
		return -EINVAL;
	}
	bool hole = em_chunk_wx_hole(c);
	em_fs_set_flag(&c->fs, EM_FS_WINDOW, h.index, 0);
	c->windows--;
	rc = close_window(c, addr, h.size);
	if (hole) {
		atomic_fetch_add(&c->pool->arena->wx_holes, 1);
		rc = rc ? rc : -EPERM;
	}
	em_unlock(&h.shard->lock);
	return rc;
}

int em_seal(struct em_chunk *c, uintptr_t addr)
{
	struct held h;
	int rc = hold(c, addr, &h);
	if (rc)
		return rc;
	if (!c->pool->sealable)
		rc = -EINVAL;
	else if (flagged(&h, EM_FS_SEALED))
		rc = -EALREADY;
	else if (flagged(&h, EM_FS_WINDOW))
		rc = -EBUSY;
	else
		rc = em_os_protect((void *)addr, h.size, PROT_READ);
	if (!rc) {
		em_fs_set_flag(&c->fs, EM_FS_SEALED, h.index, 1);
		new_epoch(c);
	}
	em_unlock(&h.shard->lock);
	return rc;
}

/* ------------------------------------------------ stats, fork, destroy */

void em_arena_stats(struct em_arena *a, struct execmem_stats *out)
{
	memset(out, 0, sizeof *out);
	out->mode = atomic_load(&a->mode);
	out->wx_holes = atomic_load(&a->wx_holes);
	out->mode_reason = atomic_load(&a->mode_reason);
	out->named_mappings = em_os_names_mappings();
	FOR_EACH_POOL(a, pool) {
		for (unsigned i = 0; i <= a->shard_mask; i++) {
			struct em_shard *s = &pool->shards[i];
			em_lock(&s->lock);
			out->live_allocations += s->live;
			out->bytes_in_use += s->bytes_in_use;
			out->retained_chunks += s->current && s->current->fs.free == s->current->fs.granules;
			em_unlock(&s->lock);
		}
		em_lock(&pool->lock);
		out->bytes_reserved += pool->bytes_reserved;
		out->chunks += pool->chunks;
		out->retained_chunks += pool->nretained;
		out->large_mappings += pool->nlarge;
		out->bytes_huge += atomic_load(&pool->bytes_huge);
		em_unlock(&pool->lock);
	}
	em_os_counts(out->os_calls);
	for (int i = 0; i < EXECMEM_OS_CALL_MAX; i++)
		out->os_calls_total += out->os_calls[i];
}

void em_arena_lock_all(struct em_arena *a)
{
	FOR_EACH_POOL(a, pool) {
		for (unsigned i = 0; i <= a->shard_mask; i++)
			em_lock(&pool->shards[i].lock);
		em_lock(&pool->lock);
		em_lock(&pool->toggle_lock);
	}
}

void em_arena_unlock_all(struct em_arena *a)
{
	FOR_EACH_POOL(a, pool) {
		em_unlock(&pool->toggle_lock);
		em_unlock(&pool->lock);
		for (unsigned i = 0; i <= a->shard_mask; i++)
			em_unlock(&pool->shards[i].lock);
	}
}

/* Call fn on every mapped chunk of the arena (locks held or not needed). */
static void each_chunk(struct em_arena *a, void *ctx,
		       void (*fn)(struct em_pool *, struct em_chunk *, void *))
{
	FOR_EACH_POOL(a, pool) {
		struct em_chunk *lists[EM_MAX_SHARDS + 2];
		unsigned n = 0;
		for (unsigned i = 0; i <= a->shard_mask; i++)
			lists[n++] = pool->shards[i].chunks;
		lists[n++] = pool->retained;
		lists[n++] = pool->large;
		for (unsigned i = 0; i < n; i++) {
			for (struct em_chunk *c = lists[i], *next; c; c = next) {
				next = c->next;
				fn(pool, c, ctx);
			}
		}
	}
}

struct released {
	void (*fn)(uintptr_t base, size_t len);
};

static void destroy_chunk(struct em_pool *pool, struct em_chunk *c, void *ctx)
{
	const struct released *released = ctx;
	(void)pool;
	if (released->fn)
		released->fn(c->base, c->span);
	em_addrmap_set(c->base, c->span, NULL);
	em_chunk_unmap(c);
	free_descriptor(c);
}

void em_arena_release(struct em_arena *a, void (*released_fn)(uintptr_t base, size_t len))
{
	struct released released = { released_fn };
	each_chunk(a, &released, destroy_chunk);
	FOR_EACH_POOL(a, pool) {
		for (struct em_shadow *s = pool->shadows, *next; s; s = next) {
			next = s->next;
			free_shadow(s);
		}
		pool->shadows = NULL;
		for (struct em_chunk *c = pool->spare, *next; c; c = next) {
			next = c->next;
			free_descriptor(c);
		}
		pool->spare = NULL;
	}
}
