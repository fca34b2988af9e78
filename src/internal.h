/*
 * internal.h - what the parts of execmem share.  Nothing here is exported:
 * the library is built with hidden visibility.
 */
#ifndef EXECMEM_INTERNAL_H
#define EXECMEM_INTERNAL_H

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "execmem.h"
#include "freespace.h"
#include "os.h"

#define EM_CHUNK EXECMEM_CHUNK_SIZE
#define EM_MAX_SHARDS 16
/* Allocations above this get a mapping of their own. */
#define EM_LARGE_THRESHOLD (EM_CHUNK / 2)
/* No allocation can be this large on any supported architecture. */
#define EM_MAX_SIZE ((size_t)1 << 46)

/* ---- a small spinlock: critical sections are short and never sleep ---- */
struct em_lock {
	atomic_int held;
};

static inline void em_lock(struct em_lock *l)
{
	for (unsigned spins = 0;; spins++) {
		if (!atomic_load_explicit(&l->held, memory_order_relaxed) &&
		    !atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
			return;
		if (spins > 64)
			sched_yield();
#if defined(__x86_64__) || defined(__i386__)
		else
			__builtin_ia32_pause();
#endif
	}
}

static inline void em_unlock(struct em_lock *l)
{
	atomic_store_explicit(&l->held, 0, memory_order_release);
}

/* ---- per-architecture facts (src/arch/<arch>.c) ---- */
struct em_arch {
	const char *name;
	uint8_t trap[4];          /* one trap instruction */
	unsigned trap_len;
	size_t code_reach;        /* direct branch: max distance between caller and callee */
	size_t code_fallback_reach; /* through veneers; 0 when none */
	size_t data_reach;        /* PC-relative data access */
	bool needs_sync_cores;    /* other threads need a context synchronisation */
	/* Make instruction fetch at [exec, exec + len) see the bytes written. */
	int (*publish)(void *exec, size_t len);
};
extern const struct em_arch em_arch;

/* ---- chunks ---- */
enum em_chunk_kind {
	EM_CHUNK_ALIASED, /* memfd, executable/readable view + RW alias */
	EM_CHUNK_TOGGLED, /* private mapping toggled to RW for each write */
	EM_CHUNK_PLAIN,   /* private read-write data */
	EM_CHUNK_DETACHED /* after a fork that could not copy it: runs, is never written */
};

struct em_pool;
struct em_shard;
struct em_shadow;

struct em_chunk {
	uintptr_t base;            /* the view code runs from / data is read from */
	uint8_t *alias;            /* RW alias (ALIASED), else NULL */
	size_t size;               /* bytes mapped (a multiple of the page size) */
	size_t span;               /* bytes of address space owned (multiple of EM_CHUNK) */
	enum em_chunk_kind kind;
	/* ALIASED: the fork generation in which its memfd became this process's
	 * alone; changed with every writer stopped (fork.c), or at unmap */
	atomic_uint own_gen;
	bool alias_reserved;       /* ALIASED: its alias address holds only a reservation */
	bool alias_forked;         /* ALIASED: its alias is inherited by the next fork */
	bool large;                /* one allocation covering the whole mapping */
	bool huge;                 /* the kernel confirmed 2 MiB pages */
	unsigned unit_shift;       /* log2 of the granule; 63 for a large mapping */
	uint64_t age;              /* creation rank: older chunks are filled first */
	struct em_pool *pool;
	_Atomic(struct em_shard *) shard; /* owner while in use; NULL when retained */
	const struct em_shard *last_shard; /* the owner it had, while retained */
	struct em_freespace fs;    /* small-allocation chunks only */
	void *fs_storage;
	atomic_uint *rw_refs;      /* TOGGLED: open writes per page */
	atomic_uint toggle_gen;     /* TOGGLED: bumped whenever a page goes back to RX */
	unsigned windows;          /* open write windows, under the owning shard's lock */
	atomic_ulong epoch;        /* bumped when an allocation is freed, sealed or opened (arena.c) */
	struct em_chunk *next, *prev;
	struct em_chunk *alias_next, *alias_prev; /* chunk.c's list of aliased chunks */
};

/* ---- pools: one per distinct (range, protection) of an arena ---- */
struct em_shard {
	struct em_lock lock;
	struct em_chunk *chunks;   /* chunks this shard allocates from */
	struct em_chunk *current;  /* where the last allocation succeeded */
	size_t live, bytes_in_use;
} __attribute__((aligned(64)));

struct em_window {
	uintptr_t lo, hi; /* allocation must lie in [lo, hi) */
	size_t align;     /* and start at a multiple of it; 0: the pool's alignment */
};

struct em_pool {
	struct em_arena *arena;
	enum execmem_type type;    /* first type served; fixes protection and fill */
	struct execmem_range range;
	unsigned prot;
	bool code;                 /* trap fill; otherwise zero fill */
	bool sealable;
	bool in_place;             /* windows open the allocation's own pages (toggled chunks) */
	uint32_t granule;
	uint32_t align;            /* allocation alignment, >= granule */
	struct em_lock lock;       /* retained list, counters, large list, shadows */
	struct em_lock toggle_lock; /* page toggles in mprotect mode */
	struct em_chunk *retained;
	struct em_chunk *large;    /* large mappings */
	struct em_chunk *spare;    /* descriptors of released chunks, reused */
	struct em_shadow *shadows; /* open windows of toggled chunks (arena.c) */
	size_t chunks, nretained, nlarge, bytes_reserved;
	atomic_size_t bytes_huge;  /* also lowered by page toggles, under the toggle lock */
	struct em_shard shards[EM_MAX_SHARDS];
};

struct em_arena {
	struct execmem_params params;
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	_Atomic enum execmem_mode mode;  /* DUAL or MPROTECT: how new chunks are made */
	bool mode_forced;          /* no automatic fallback */
	_Atomic enum execmem_mode_reason mode_reason;
	unsigned shard_mask;
	atomic_size_t nretained;   /* arena-wide count against params.retained_chunks */
	atomic_size_t wx_holes;    /* W+X mappings of its chunks found by window ends */
	struct em_pool *pool_of[EXECMEM_TYPE_MAX];
	struct em_pool pools[EXECMEM_TYPE_MAX];
	struct em_arena *next;     /* registry */
};

/* Type facts. */
unsigned em_type_prot(enum execmem_type type);
bool em_type_is_code(enum execmem_type type);

/* addrmap.c */
struct em_chunk *em_addrmap_get(const void *addr);
int em_addrmap_set(uintptr_t base, size_t size, struct em_chunk *chunk);

/* image.c */
void em_image_bounds(uintptr_t *lo, uintptr_t *hi);

/* placement.c */
uintptr_t em_user_va_top(void);
int em_place(const struct execmem_range *range, const struct em_window *window,
	     size_t span, void **out);
int em_place_random(size_t span, uintptr_t avoid, void **out);
int em_unreserve(void *addr, size_t len);
void em_near_window(uintptr_t image_lo, uintptr_t image_hi, size_t reach,
		    uintptr_t *lo, uintptr_t *hi);

/* chunk.c */
int em_chunk_map(struct em_chunk *c, const struct em_window *window, enum em_chunk_kind kind);
int em_chunk_unmap(struct em_chunk *c);
/* Fork: the lock that chunk creation and release hold, and privatization. */
void em_aliases_lock(void);
void em_aliases_unlock(void);
void em_aliases_forking(void);
void em_aliases_forked(bool in_child);
void em_chunk_privatize(struct em_chunk *c);
int em_chunk_put(struct em_chunk *c, uintptr_t dst, const void *src, size_t len);
void *em_chunk_writable(struct em_chunk *c, uintptr_t addr);
bool em_chunk_wx_hole(struct em_chunk *c);
int em_chunk_open_in_place(struct em_chunk *c, uintptr_t addr, size_t len, void **writable);
int em_chunk_close_in_place(struct em_chunk *c, uintptr_t addr, size_t len);
void em_fill(struct em_pool *pool, void *dst, size_t len);
/* Make instruction fetch (and valgrind) see code bytes just written. */
int em_publish_code(void *exec, size_t len);

/* arena.c.  em_pool_free() and em_window_begin() return EM_SHARED, having
 * done nothing, for a chunk shared since a fork: the caller unshares it and
 * calls again (em_free_owned(), em_window_begin_owned()). */
enum { EM_SHARED = 1 };
int em_arena_init(struct em_arena *a, const struct execmem_params *params);
/* Unmaps every chunk, telling released_fn (when not NULL) each one's range first. */
void em_arena_release(struct em_arena *a, void (*released_fn)(uintptr_t base, size_t len));
void *em_pool_alloc(struct em_pool *pool, size_t size, const struct em_window *window);
int em_pool_free(struct em_chunk *c, uintptr_t addr);
int em_check_range(struct em_chunk *c, uintptr_t addr, size_t len);
int em_window_begin(struct em_chunk *c, uintptr_t addr, void **writable);
int em_window_end(struct em_chunk *c, uintptr_t addr);
int em_seal(struct em_chunk *c, uintptr_t addr);
size_t em_usable(struct em_chunk *c, uintptr_t addr);
void em_arena_stats(struct em_arena *a, struct execmem_stats *out);
void em_arena_lock_all(struct em_arena *a);
void em_arena_unlock_all(struct em_arena *a);

/* fork.c: the registry of live arenas, and fork handling */
int em_fork_guard_install(void);
void em_registry_add(struct em_arena *a);
bool em_registry_remove(struct em_arena *a);
int em_write_enter(void);
void em_write_exit(void);
void em_unshare(struct em_chunk *c);
int em_free_owned(struct em_chunk *c, uintptr_t addr);
int em_window_begin_owned(struct em_chunk *c, uintptr_t addr, void **writable);

/* Forks this process and its ancestors made since execmem's first use. */
extern atomic_uint em_fork_generation;

/*
 * Whether a forked process may still map the chunk's memory (an aliased
 * chunk not given memory of its own since the last fork): it must then
 * get memory of its own (em_unshare(), with no execmem lock held and
 * outside the write gate) before anything writes it.  Stable while the
 * caller is inside the write gate or holds the chunk's shard lock.  Fork
 * writes no chunk descriptor in the parent: a write after fork() would
 * copy the page holding it.
 */
static inline bool em_chunk_shared(struct em_chunk *c)
{
	return c->kind == EM_CHUNK_ALIASED &&
	       atomic_load_explicit(&c->own_gen, memory_order_relaxed) !=
		       atomic_load_explicit(&em_fork_generation, memory_order_relaxed);
}

/* toggle_guard.c */
int em_toggle_guard_install(void);
/* The interrupted context of the fault this thread waits in the guard
 * for, else NULL: live patching asks where such a thread will resume. */
extern _Thread_local void *volatile em_guard_parked_context;
void em_toggle_guard_lock(void);
void em_toggle_guard_unlock(void);

/* observers.c: debuggers and valgrind, looked for when an arena is made */
void em_arena_observe(struct em_arena *a);

/* error.c */
void em_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
