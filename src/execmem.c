/*
 * execmem.c - the public entry points: argument checks, the default arena,
 * routing from a type to its arena's pool and from an address to its chunk.
 */
#include "internal.h"
#include "observe/observe.h"

#include <stdlib.h>
#include <string.h>

const char *execmem_mode_name(enum execmem_mode mode)
{
	switch (mode) {
	case EXECMEM_MODE_DUAL:
		return "dual";
	case EXECMEM_MODE_MPROTECT:
		return "mprotect";
	default:
		return "auto";
	}
}

/* ------------------------------------------------------ the default arena */

enum { DEFAULT_UNSET, DEFAULT_BUSY, DEFAULT_READY, DEFAULT_FAILED };

static struct em_arena default_arena;
static struct execmem_params default_params;
static struct execmem_range configured_ranges[EXECMEM_TYPE_MAX];
static bool default_configured;
static struct em_lock default_lock;
static atomic_int default_state;
static int default_error;

static enum execmem_mode mode_from_env(void)
{
	const char *mode = getenv("EXECMEM_MODE");
	if (mode && !strcmp(mode, "dual"))
		return EXECMEM_MODE_DUAL;
	if (mode && !strcmp(mode, "mprotect"))
		return EXECMEM_MODE_MPROTECT;
	return EXECMEM_MODE_AUTO;
}

/* Once for every arena made: the fork guard, the registry, the tools watching. */
static int register_arena(struct em_arena *a)
{
	em_arena_observe(a);
	int rc = em_fork_guard_install();
	if (!rc)
		em_registry_add(a);
	return rc;
}

/* The default arena, set up on first use; NULL with errno on failure. */
static struct em_arena *default_get(void)
{
	if (atomic_load_explicit(&default_state, memory_order_acquire) == DEFAULT_READY)
		return &default_arena;
	em_lock(&default_lock);
	if (atomic_load(&default_state) == DEFAULT_UNSET) {
		struct execmem_params p;
		if (default_configured) {
			p = default_params;
		} else {
			execmem_params_init(&p);
			p.mode = mode_from_env();
		}
		int rc = em_arena_init(&default_arena, &p);
		if (!rc)
			rc = register_arena(&default_arena);
		default_error = -rc;
		atomic_store_explicit(&default_state, rc ? DEFAULT_FAILED : DEFAULT_READY,
				      memory_order_release);
	}
	em_unlock(&default_lock);
	if (atomic_load(&default_state) == DEFAULT_READY)
		return &default_arena;
	errno = default_error;
	return NULL;
}

int execmem_configure(const struct execmem_params *params)
{
	if (!params)
		return -EINVAL;
	struct em_arena probe; /* validates the parameters as an arena would */
	int rc = em_arena_init(&probe, params);
	if (rc)
		return rc;
	em_lock(&default_lock);
	if (atomic_load(&default_state) != DEFAULT_UNSET) {
		em_unlock(&default_lock);
		em_set_error("the default arena is already in use");
		return -EBUSY;
	}
	default_params = *params;
	if (params->ranges) {
		memcpy(configured_ranges, params->ranges, sizeof configured_ranges);
		default_params.ranges = configured_ranges;
	}
	default_configured = true;
	em_unlock(&default_lock);
	return 0;
}

/* ------------------------------------------------------- arena handles */

/*
 * What execmem_arena_create() hands out.  A handle outlives its arena:
 * destroy empties it and keeps it for good, so that every later call
 * through it finds no arena and fails, and so that no new arena can get the
 * address of a dead one.  Every handle stays on one list, so that leak
 * checkers see the dead ones as reachable.
 */
struct execmem_arena {
	_Atomic(struct em_arena *) body;  /* NULL once destroyed */
	struct execmem_arena *next;
};

static struct execmem_arena *handles;
static struct em_lock handles_lock;

static struct execmem_arena *new_handle(struct em_arena *a)
{
	struct execmem_arena *h = malloc(sizeof *h);
	if (!h)
		return NULL;
	atomic_init(&h->body, a);
	em_lock(&handles_lock);
	h->next = handles;
	handles = h;
	em_unlock(&handles_lock);
	return h;
}

/* The arena behind a handle; NULL for NULL or a destroyed arena. */
static struct em_arena *body_of(struct execmem_arena *h)
{
	return h ? atomic_load_explicit(&h->body, memory_order_acquire) : NULL;
}

/* ------------------------------------------------------------ allocation */

static bool type_ok(enum execmem_type type)
{
	return (unsigned)type < EXECMEM_TYPE_MAX;
}

static void *fail(int err)
{
	errno = err;
	return NULL;
}

static void *arena_alloc(struct em_arena *a, enum execmem_type type, size_t size,
			 const struct em_window *w)
{
	if (!a || !type_ok(type) || size == 0 || size > EM_MAX_SIZE)
		return fail(EINVAL);
	return em_pool_alloc(a->pool_of[type], size, w);
}

static const struct em_window everywhere = { 0, UINTPTR_MAX, 0 };

/* [target - reach, target + reach], saturating at both ends. */
static struct em_window reach_window(const void *target, size_t reach)
{
	uintptr_t t = (uintptr_t)target;
	struct em_window w = { t > reach ? t - reach : 0,
			       t < UINTPTR_MAX - reach ? t + reach + 1 : UINTPTR_MAX, 0 };
	return w;
}

static void *arena_alloc_near(struct em_arena *a, enum execmem_type type, size_t size,
			      const void *target, size_t reach)
{
	if (!target || reach < size)
		return fail(EINVAL);
	struct em_window w = reach_window(target, reach);
	return arena_alloc(a, type, size, &w);
}

static void *arena_alloc_aligned(struct em_arena *a, enum execmem_type type, size_t size,
				 size_t alignment)
{
	if (!alignment || (alignment & (alignment - 1)) || alignment > EXECMEM_ALIGN_MAX)
		return fail(EINVAL);
	struct em_window w = everywhere;
	w.align = alignment;
	return arena_alloc(a, type, size, &w);
}

void *execmem_alloc(enum execmem_type type, size_t size)
{
	return arena_alloc(default_get(), type, size, &everywhere);
}

void *execmem_alloc_near(enum execmem_type type, size_t size, const void *target, size_t reach)
{
	return arena_alloc_near(default_get(), type, size, target, reach);
}

void *execmem_alloc_aligned(enum execmem_type type, size_t size, size_t alignment)
{
	return arena_alloc_aligned(default_get(), type, size, alignment);
}

void *execmem_arena_alloc_aligned(struct execmem_arena *arena, enum execmem_type type,
				  size_t size, size_t alignment)
{
	return arena_alloc_aligned(body_of(arena), type, size, alignment);
}

void *execmem_arena_alloc(struct execmem_arena *arena, enum execmem_type type, size_t size)
{
	return arena_alloc(body_of(arena), type, size, &everywhere);
}

void *execmem_arena_alloc_near(struct execmem_arena *arena, enum execmem_type type, size_t size,
			       const void *target, size_t reach)
{
	return arena_alloc_near(body_of(arena), type, size, target, reach);
}

/* ------------------------------------------------ operations by address */

int execmem_free(void *addr)
{
	if (!addr)
		return 0;
	struct em_chunk *c = em_addrmap_get(addr);
	if (!c)
		return -EINVAL;
	if (em_observe_hooks_on())
		return em_observe_free(c, (uintptr_t)addr);
	return em_free_owned(c, (uintptr_t)addr);
}

/* Copy src, or fill when src is NULL, into one live allocation. */
static int put(void *dst, const void *src, size_t len)
{
	struct em_chunk *c = em_addrmap_get(dst);
	if (!c)
		return -EINVAL;
	int rc = em_check_range(c, (uintptr_t)dst, len);
	if (rc || len == 0)
		return rc;
	/* Private data needs no care at fork; writes through an alias or a
	 * toggled page must not straddle it (see fork.c). */
	if (c->kind == EM_CHUNK_PLAIN)
		return em_chunk_put(c, (uintptr_t)dst, src, len);
	while (!(rc = em_write_enter()) && em_chunk_shared(c)) {
		em_write_exit();
		em_unshare(c); /* first write since a fork */
	}
	if (rc)
		return rc;
	rc = em_chunk_put(c, (uintptr_t)dst, src, len);
	em_write_exit();
	return rc;
}

int execmem_write(void *dst, const void *src, size_t len)
{
	if (!src && len)
		return -EINVAL;
	int rc = put(dst, src, len);
	if (!rc && len && em_observe_rewrites_on())
		em_observe_written((uintptr_t)dst, len);
	return rc;
}

int execmem_invalidate(void *dst, size_t len)
{
	return put(dst, NULL, len);
}

void *execmem_write_begin(void *addr)
{
	struct em_chunk *c = em_addrmap_get(addr);
	void *writable = NULL;
	int rc = c ? em_window_begin_owned(c, (uintptr_t)addr, &writable) : -EINVAL;
	return rc ? fail(-rc) : writable;
}

int execmem_write_end(void *addr)
{
	struct em_chunk *c = em_addrmap_get(addr);
	size_t dumped = c && em_observe_rewrites_on() ? em_usable(c, (uintptr_t)addr) : 0;
	int rc = c ? em_window_end(c, (uintptr_t)addr) : -EINVAL;
	if (!rc && dumped)
		em_observe_written((uintptr_t)addr, dumped);
	return rc;
}

int execmem_seal(void *addr)
{
	struct em_chunk *c = em_addrmap_get(addr);
	return c ? em_seal(c, (uintptr_t)addr) : -EINVAL;
}

size_t execmem_usable_size(const void *addr)
{
	struct em_chunk *c = em_addrmap_get(addr);
	return c ? em_usable(c, (uintptr_t)addr) : 0;
}

int execmem_sync_cores(void)
{
	return em_arch.needs_sync_cores ? em_os_sync_core() : 0;
}

/* ------------------------------------------------------ arenas and stats */

/* A live, registered arena; NULL with errno on failure. */
static struct em_arena *new_arena(const struct execmem_params *params)
{
	/* Shards are cache-line aligned, so the arena must be too. */
	size_t bytes = (sizeof(struct em_arena) + 63) & ~(size_t)63;
	struct em_arena *a = aligned_alloc(64, bytes);
	if (!a)
		return fail(ENOMEM);
	int rc = em_arena_init(a, params);
	if (!rc)
		rc = register_arena(a);
	if (rc) {
		free(a);
		return fail(-rc);
	}
	return a;
}

static void drop_arena(struct em_arena *a)
{
	em_registry_remove(a);
	em_arena_release(a, em_observe_hooks_on() ? em_observe_freed : NULL);
	free(a);
}

struct execmem_arena *execmem_arena_create(const struct execmem_params *params)
{
	struct em_arena *a = new_arena(params);
	struct execmem_arena *h = a ? new_handle(a) : NULL;
	if (a && !h) {
		drop_arena(a);
		return fail(ENOMEM);
	}
	return h;
}

int execmem_arena_destroy(struct execmem_arena *arena)
{
	/* The exchange lets exactly one of two racing destroys have the arena. */
	struct em_arena *a = arena ? atomic_exchange(&arena->body, NULL) : NULL;
	if (!a)
		return -EINVAL;
	drop_arena(a);
	return 0;
}

static int arena_stats(struct em_arena *a, struct execmem_stats *out)
{
	if (!a || !out)
		return -EINVAL;
	em_arena_stats(a, out);
	return 0;
}

int execmem_arena_stats(struct execmem_arena *arena, struct execmem_stats *out)
{
	return arena_stats(body_of(arena), out);
}

int execmem_stats(struct execmem_stats *out)
{
	struct em_arena *a = default_get();
	if (!a)
		return -errno;
	return arena_stats(a, out);
}

int execmem_get_ranges(struct execmem_arena *arena, struct execmem_range out[EXECMEM_TYPE_MAX])
{
	struct em_arena *a = arena ? body_of(arena) : default_get();
	if (!out || !a)
		return -EINVAL;
	memcpy(out, a->ranges, sizeof a->ranges);
	return 0;
}
