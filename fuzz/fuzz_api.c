/*
 * fuzz_api.c - libFuzzer harness driving random sequences of the whole
 * public API against a shadow model.  The model knows every live
 * allocation (arena, type, size, usable size, seal, open window) and a copy
 * of its bytes; before each call it predicts the result (return value or
 * errno, and for allocations where the memory must lie and what it must
 * hold), and after the call it checks the prediction and the bytes.  Any
 * difference aborts with a message, which libFuzzer reports as a crash.
 *
 * Each input is a program: one byte picks an operation, the next bytes its
 * arguments.  The arenas live across inputs (one per granularity and mode,
 * created once), so that an input reuses the chunks earlier ones left
 * retained instead of paying for fresh ones; every input still ends by
 * freeing everything it allocated, so the model never depends on earlier
 * inputs: their allocations and byte counts are exact, and what retained
 * chunks carry over is only bounded.  Creating and destroying an arena is
 * an operation of its own, rationed like the other costly ones (see
 * may_afford()).  Two operations go beyond one thread: a burst of calls on
 * a second thread while the main one goes on, and fork() with checks on
 * both sides.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "execmem.h"
#include "rtest.h"

/* ---- reading the input ---- */

struct input {
	const uint8_t *data;
	size_t size, at;
};

static uint8_t next_byte(struct input *in)
{
	return in->at < in->size ? in->data[in->at++] : 0;
}

static uint32_t next_u32(struct input *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | next_byte(in);
	return v;
}

static bool input_left(const struct input *in)
{
	return in->at < in->size;
}

/* ---- the model ---- */

/*
 * Arena slots: 0 is the default arena, 1..FIXED_ARENAS the long-lived ones
 * (granularities[0..3] x dual, mprotect), TRANSIENT the one an input may
 * create and destroy.
 */
enum { FIXED_ARENAS = 8, TRANSIENT = FIXED_ARENAS + 1, MAX_ARENAS = TRANSIENT + 1 };
enum { MAX_ALLOCS = 40, MAX_BIG = 2, RECENT = 8 };
/* Costly operations, bounded per input so that inputs stay fast. */
enum { CREATES_PER_INPUT = 1, LARGES_PER_INPUT = 2, BURSTS_PER_INPUT = 2, FORKS_PER_INPUT = 1 };

/*
 * Operations that cost milliseconds where the others cost microseconds: a
 * new mapping (a large allocation, the chunks of a new arena: the kernel
 * finds a 2 MiB page for each) and fork (tens of milliseconds: the page
 * tables of a sanitized process, and the child copies every dual-mapped
 * chunk).  Each kind happens in one input out of its spacing, counting from
 * the first input of the process, which may always: an input replayed alone
 * does what it did when it failed.
 */
enum costly { COSTLY_LARGE, COSTLY_ARENA, COSTLY_FORK, COSTLY_KINDS };
static const unsigned costly_spacing[COSTLY_KINDS] = { 256, 1024, 4096 };
static unsigned inputs_since[COSTLY_KINDS] = { UINT32_MAX, UINT32_MAX, UINT32_MAX };
static bool granted[COSTLY_KINDS]; /* to this input */

static bool may_afford(enum costly kind)
{
	if (!granted[kind] && inputs_since[kind] >= costly_spacing[kind]) {
		granted[kind] = true;
		inputs_since[kind] = 0;
	}
	return granted[kind];
}

static void next_input_costs(void)
{
	for (int kind = 0; kind < COSTLY_KINDS; kind++) {
		granted[kind] = false;
		if (inputs_since[kind] < UINT32_MAX)
			inputs_since[kind]++;
	}
}

/* Wholly free chunks each long-lived arena keeps: what makes reuse cheap
 * (enough for what an input's 40 allocations can fill). */
enum { FIXED_RETAINED = 8 };
#define MAX_SIZE_CHECKED ((size_t)1 << 46) /* sizes above are refused with EINVAL */
#define LARGE_SIZE (EXECMEM_CHUNK_SIZE / 2) /* above: a mapping of its own (docs/internals.md) */

struct arena_model {
	struct execmem_arena *arena; /* NULL for the default arena (slot 0) */
	bool live;
	size_t granularity, retained;
	enum execmem_mode mode;      /* AUTO: dual or mprotect */
};

struct alloc_model {
	uint8_t *p;
	size_t size, usable;
	enum execmem_type type;
	int arena;                   /* slot in arenas[] */
	bool sealed, window;
	uint8_t *shadow;             /* what its usable bytes must be */
	bool has_program;            /* shadow starts with "return program_value" */
	uint32_t program_value;
};

static struct arena_model arenas[MAX_ARENAS];
static struct alloc_model allocs[MAX_ALLOCS];
static void *recent_frees[RECENT];          /* for use-after-free and double free */
static struct execmem_arena *destroyed[RECENT]; /* for destroy-twice */
static unsigned recent_at, destroyed_at;
static unsigned creates, larges, bursts, forks; /* this input's */
static unsigned touched;                    /* bit per arena slot this input allocated from */
static size_t shards;                       /* per pool: the CPU count rounded up to a power of two */

/* The second thread's burst: its script, and allocations the model handed it. */
enum { BURST_SCRIPT = 48, MAX_HANDED = 4, BURST_LIVE = 8 };
static struct {
	pthread_t thread;
	bool running;
	bool may_map_large; /* one large allocation this burst may make */
	uint8_t script[BURST_SCRIPT];
	size_t script_len;
	struct alloc_model handed[MAX_HANDED];
	unsigned handed_n;
} burst;

#define EXPECT(cond, ...)                                                       \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "fuzz_api: model mismatch at %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			abort();                                                \
		}                                                               \
	} while (0)

static bool is_code(enum execmem_type type)
{
	return type == EXECMEM_CODE || type == EXECMEM_CODE_NEAR;
}

static void fill_fresh(const struct alloc_model *a, uint8_t *to, size_t offset, size_t len)
{
	if (!is_code(a->type)) {
		memset(to, 0, len);
		return;
	}
	size_t trap_len;
	const uint8_t *trap = rt_trap_pattern(&trap_len);
	size_t first = len < trap_len ? len : trap_len;
	for (size_t i = 0; i < first; i++)
		to[i] = trap[((uintptr_t)a->p + offset + i) % trap_len];
	/* The pattern repeats every trap_len bytes: double what is done (large
	 * allocations are megabytes, filled byte by byte they dominate a run). */
	for (size_t done = first; done < len; done *= 2)
		memcpy(to + done, to, done < len - done ? done : len - done);
}

/* The allocation holding addr, or NULL. */
static struct alloc_model *containing(const void *addr)
{
	uintptr_t x = (uintptr_t)addr;
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (allocs[i].p && x >= (uintptr_t)allocs[i].p && x < (uintptr_t)allocs[i].p + allocs[i].usable)
			return &allocs[i];
	return NULL;
}

static struct alloc_model *starting_at(const void *addr)
{
	struct alloc_model *a = containing(addr);
	return a && a->p == addr ? a : NULL;
}

static void check_bytes(const struct alloc_model *a)
{
	/* Code and rodata written in a window may reach the allocation only when it closes. */
	if (a->window && a->type != EXECMEM_DATA && a->type != EXECMEM_RO_AFTER_INIT)
		return;
	EXPECT(memcmp(a->p, a->shadow, a->usable) == 0, "bytes of %p (type %d, %zu bytes) differ from the model",
	       (void *)a->p, a->type, a->usable);
}

static void check_all_bytes(void)
{
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (allocs[i].p)
			check_bytes(&allocs[i]);
}

static bool is_large(const struct alloc_model *a)
{
	return a->size > LARGE_SIZE;
}

/* Runs a's program, if it has one; the burst calls it on allocations the model does not see. */
static void run_program(const struct alloc_model *a)
{
	if (!a->has_program)
		return;
	uint32_t got = rt_call(a->p);
	EXPECT(got == a->program_value, "program at %p returned %#x, expected %#x", (void *)a->p, got,
	       a->program_value);
}

static void check_program(const struct alloc_model *a)
{
	/* Code beside an open window runs: windows never make pages non-executable. */
	if (!a->window)
		run_program(a);
}

static void check_all_programs(void)
{
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (allocs[i].p)
			check_program(&allocs[i]);
}

/* What the model knows of an arena slot's live allocations. */
struct counts {
	size_t live, bytes, large, large_bytes;
};

static struct counts model_counts(int slot)
{
	struct counts n = { 0 };
	for (int i = 0; i < MAX_ALLOCS; i++) {
		const struct alloc_model *a = &allocs[i];
		if (!a->p || a->arena != slot)
			continue;
		n.live++;
		n.bytes += a->usable;
		if (is_large(a)) {
			n.large++;
			n.large_bytes += a->usable;
		}
	}
	return n;
}

/* Whether a burst may be using the arena in slot, so that its counts are not the model's alone. */
static bool shared_arena(int slot)
{
	return burst.running && slot != TRANSIENT;
}

/*
 * Live allocations, bytes in use, large mappings and bytes reserved are
 * exact; chunks carried over are bounded: each pool keeps at most the
 * arena's retained chunks plus one per shard.  (A chunk taken for an
 * alloc_near() that it then barely misses stays empty in its shard without
 * counting as retained, so chunks in use are not bounded by allocations.)
 */
static void check_stats(int slot)
{
	const struct arena_model *m = &arenas[slot];
	struct execmem_stats st;
	int rc = slot ? execmem_arena_stats(m->arena, &st) : execmem_stats(&st);
	EXPECT(rc == 0, "stats of arena %d: %d", slot, rc);
	EXPECT(m->mode == EXECMEM_MODE_AUTO ? st.mode == EXECMEM_MODE_DUAL || st.mode == EXECMEM_MODE_MPROTECT
					    : st.mode == m->mode,
	       "arena %d: stats mode %d, made with %d", slot, st.mode, m->mode);
	EXPECT(st.retained_chunks <= st.chunks && st.bytes_huge <= st.bytes_reserved &&
		       st.bytes_in_use <= st.bytes_reserved,
	       "arena %d stats: %zu retained of %zu chunks, %zu huge and %zu in use of %zu reserved", slot,
	       st.retained_chunks, st.chunks, st.bytes_huge, st.bytes_in_use, st.bytes_reserved);
	EXPECT(st.retained_chunks <= m->retained + EXECMEM_TYPE_MAX * shards,
	       "arena %d keeps %zu free chunks; at most %zu + %d pools x %zu shards", slot, st.retained_chunks,
	       m->retained, EXECMEM_TYPE_MAX, shards);
	struct counts n = model_counts(slot);
	if (shared_arena(slot)) {
		EXPECT(st.live_allocations >= n.live && st.bytes_in_use >= n.bytes,
		       "arena %d stats: %zu live, %zu bytes, below the model's %zu, %zu", slot,
		       st.live_allocations, st.bytes_in_use, n.live, n.bytes);
		return;
	}
	EXPECT(st.live_allocations == n.live && st.bytes_in_use == n.bytes && st.large_mappings == n.large,
	       "arena %d stats: %zu live, %zu bytes, %zu large; model %zu, %zu, %zu", slot, st.live_allocations,
	       st.bytes_in_use, st.large_mappings, n.live, n.bytes, n.large);
	EXPECT(st.bytes_reserved == st.chunks * EXECMEM_CHUNK_SIZE + n.large_bytes,
	       "arena %d: %zu bytes reserved for %zu chunks and %zu bytes of large mappings", slot,
	       st.bytes_reserved, st.chunks, n.large_bytes);
}

/*
 * Shadows of big allocations are kept for the next ones: megabytes of fresh
 * heap (mapped, faulted in, unmapped) per input would cost more than the
 * rest of it.  Only the main thread makes and drops shadows.
 */
enum { SPARE_SHADOWS = 2 * MAX_BIG };
#define SHADOW_CAPACITY (EXECMEM_CHUNK_SIZE + 2 * 4096) /* every size pick_size() lets through */
static uint8_t *spare_shadows[SPARE_SHADOWS];

static bool big_shadow(size_t usable)
{
	return usable > 256 * 1024 && usable <= SHADOW_CAPACITY;
}

static uint8_t *new_shadow(size_t usable)
{
	uint8_t *shadow = NULL;
	for (int i = 0; i < SPARE_SHADOWS && big_shadow(usable) && !shadow; i++) {
		shadow = spare_shadows[i];
		spare_shadows[i] = NULL;
	}
	if (!shadow)
		shadow = malloc(big_shadow(usable) ? SHADOW_CAPACITY : usable);
	EXPECT(shadow, "out of memory for the shadow");
	return shadow;
}

static void drop_shadow(uint8_t *shadow, size_t usable)
{
	for (int i = 0; i < SPARE_SHADOWS && big_shadow(usable); i++) {
		if (!spare_shadows[i]) {
			spare_shadows[i] = shadow;
			return;
		}
	}
	free(shadow);
}

static void forget(struct alloc_model *a)
{
	recent_frees[recent_at++ % RECENT] = a->p;
	drop_shadow(a->shadow, a->usable);
	memset(a, 0, sizeof(*a));
}

/* ---- choosing arguments ---- */

static int pick_live_arena(struct input *in)
{
	int slot = next_byte(in) % MAX_ARENAS;
	slot = arenas[slot].live ? slot : 0;
	touched |= 1u << slot;
	return slot;
}

static struct alloc_model *pick_alloc(struct input *in)
{
	unsigned start = next_byte(in) % MAX_ALLOCS;
	for (unsigned i = 0; i < MAX_ALLOCS; i++)
		if (allocs[(start + i) % MAX_ALLOCS].p)
			return &allocs[(start + i) % MAX_ALLOCS];
	return NULL;
}

static int stack_word;

/*
 * While a burst runs, memory next to the model's allocations, or freed by
 * the model, may be the burst's: a pointer there is replaced by NULL, so
 * that no result depends on the other thread.
 */
static uint8_t *unshared(uint8_t *p)
{
	bool foreign = p == (uint8_t *)&stack_word || p == (uint8_t *)(uintptr_t)unshared;
	return !burst.running || !p || foreign || containing(p) ? p : NULL;
}

/* A pointer of any kind: live start or interior, freed, foreign, NULL. */
static uint8_t *any_pointer(struct input *in)
{
	struct alloc_model *a = pick_alloc(in);
	uint8_t choice = next_byte(in);
	switch (choice % 8) {
	case 0:
	case 1:
	case 2:
		return a ? a->p : NULL;
	case 3:
		return a ? a->p + (next_u32(in) % (a->usable + 64)) : NULL;
	case 4:
		return recent_frees[next_byte(in) % RECENT];
	case 5:
		return (uint8_t *)&stack_word;
	case 6:
		return a ? a->p - 1 - next_byte(in) : (uint8_t *)(uintptr_t)unshared;
	default:
		return NULL;
	}
}

static uint8_t *pick_pointer(struct input *in)
{
	return unshared(any_pointer(in));
}

static enum execmem_type pick_type(struct input *in)
{
	uint8_t t = next_byte(in);
	if (t >= 250)
		return (enum execmem_type)(t == 255 ? -1 : EXECMEM_TYPE_MAX + (t & 3)); /* unknown types */
	return (enum execmem_type)(t % EXECMEM_TYPE_MAX);
}

static size_t pick_size(struct input *in)
{
	uint8_t kind = next_byte(in);
	uint32_t v = next_u32(in);
	switch (kind % 16) {
	case 0:
		return 0;
	case 1:
		return SIZE_MAX - (v % 4096);
	case 2:
		return MAX_SIZE_CHECKED + 1 + v;
	case 5:
		return 4096 + v % (256 * 1024);
	case 3:
	case 4:
		/* Megabytes cost a mapping of their own, or most of a chunk, and as
		 * much of the model: 1 in 128 sizes, not 1 in 8. */
		if (kind == 3)
			return EXECMEM_CHUNK_SIZE - 64 + v % 128;      /* around the chunk size */
		if (kind == 4)
			return EXECMEM_CHUNK_SIZE / 2 - 64 + v % 128;  /* around the large threshold */
		/* fall through */
	default:
		return 1 + v % 2048;
	}
}

/* ---- operations ---- */

static bool big(size_t size)
{
	return size > 256 * 1024;
}

static unsigned live_big(void)
{
	unsigned n = 0;
	for (int i = 0; i < MAX_ALLOCS; i++)
		n += allocs[i].p && big(allocs[i].size);
	return n;
}

/* A large mapping this input may make: counted, so call only when it will be made. */
static bool large_affordable(void)
{
	if (larges >= LARGES_PER_INPUT || !may_afford(COSTLY_LARGE))
		return false;
	larges++;
	return true;
}

/* Whether a valid request of size is left out: two big ones are live, or it is a large one too many. */
static bool skip_big(size_t size)
{
	if (!big(size))
		return false;
	return live_big() >= MAX_BIG || (size > LARGE_SIZE && !large_affordable());
}

static struct alloc_model *free_model_slot(void)
{
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (!allocs[i].p)
			return &allocs[i];
	return NULL;
}

static bool valid_request(enum execmem_type type, size_t size)
{
	return (unsigned)type < EXECMEM_TYPE_MAX && size != 0 && size <= MAX_SIZE_CHECKED;
}

/* Checks a fresh allocation and enters it into the model. */
static void adopt(struct alloc_model *slot, uint8_t *p, enum execmem_type type, size_t size, int arena)
{
	size_t granularity = arenas[arena].granularity;
	size_t usable = execmem_usable_size(p);
	EXPECT(usable >= size && usable % granularity == 0, "usable size %zu for size %zu", usable, size);
	EXPECT(((uintptr_t)p & (granularity - 1)) == 0, "%p not aligned to %zu", (void *)p, granularity);
	for (int i = 0; i < MAX_ALLOCS; i++) {
		const struct alloc_model *o = &allocs[i];
		EXPECT(!o->p || (uintptr_t)p + usable <= (uintptr_t)o->p || (uintptr_t)o->p + o->usable <= (uintptr_t)p,
		       "new allocation [%p, +%zu) overlaps live [%p, +%zu)", (void *)p, usable, (void *)o->p, o->usable);
	}
	*slot = (struct alloc_model){ .p = p, .size = size, .usable = usable, .type = type, .arena = arena };
	slot->shadow = new_shadow(usable);
	fill_fresh(slot, slot->shadow, 0, usable);
	check_bytes(slot);
}

static void *alloc_from(int arena, enum execmem_type type, size_t size)
{
	return arena ? execmem_arena_alloc(arenas[arena].arena, type, size) : execmem_alloc(type, size);
}

static void op_alloc(struct input *in)
{
	int arena = pick_live_arena(in);
	enum execmem_type type = pick_type(in);
	size_t size = pick_size(in);
	struct alloc_model *slot = free_model_slot();
	if (!slot || (valid_request(type, size) && skip_big(size)))
		return;
	errno = 0;
	uint8_t *p = alloc_from(arena, type, size);
	if (!valid_request(type, size)) {
		EXPECT(!p && errno == EINVAL, "alloc(type %d, size %zu) = %p errno %d, expected EINVAL", type, size,
		       (void *)p, errno);
		return;
	}
	EXPECT(p, "alloc(type %d, size %zu) failed: errno %d", type, size, errno);
	adopt(slot, p, type, size, arena);
}

/* Targets near which allocations are asked for. */
static const void *pick_target(struct input *in, bool *reachable)
{
	struct alloc_model *a = pick_alloc(in);
	*reachable = false;
	switch (next_byte(in) % 5) {
	case 0:
		*reachable = true;
		return (const void *)(uintptr_t)op_alloc; /* the image */
	case 1:
		*reachable = a && a->type == EXECMEM_CODE;
		return a ? a->p : NULL;
	case 2:
		return (const void *)64;
	case 3:
		return (const void *)(UINTPTR_MAX - 4095);
	default:
		return NULL;
	}
}

static size_t pick_reach(struct input *in, size_t size)
{
	static const size_t reaches[] = { 0, 4096, 1 << 20, 128 << 20, (size_t)2 << 30, SIZE_MAX };
	uint8_t r = next_byte(in);
	if (r % 8 == 6)
		return size - 1;
	if (r % 8 == 7)
		return size;
	return reaches[r % 6];
}

static void check_within_reach(const uint8_t *p, size_t size, const void *target, size_t reach)
{
	uintptr_t t = (uintptr_t)target, lo = (uintptr_t)p, hi = (uintptr_t)p + size - 1;
	EXPECT((t <= lo || t - lo <= reach) && (hi <= t || hi - t <= reach),
	       "[%p, +%zu) is not within %zu of %p", (const void *)p, size, reach, target);
}

static void op_alloc_near(struct input *in)
{
	int arena = pick_live_arena(in);
	enum execmem_type type = pick_type(in);
	size_t size = pick_size(in);
	bool reachable;
	const void *target = pick_target(in, &reachable);
	size_t reach = pick_reach(in, size);
	struct alloc_model *slot = free_model_slot();
	if (!slot || (valid_request(type, size) && skip_big(size)))
		return;
	errno = 0;
	uint8_t *p = arena ? execmem_arena_alloc_near(arenas[arena].arena, type, size, target, reach)
			   : execmem_alloc_near(type, size, target, reach);
	if (!target || reach < size || !valid_request(type, size)) {
		EXPECT(!p && errno == EINVAL, "alloc_near(type %d, size %zu, %p, reach %zu) = %p errno %d, expected EINVAL",
		       type, size, target, reach, (void *)p, errno);
		return;
	}
	if (!p) {
		/* Only a far target, a short reach or a type with its own range may fail. */
		EXPECT(errno == ENOMEM, "alloc_near failed with errno %d", errno);
		EXPECT(!(reachable && type == EXECMEM_CODE && reach >= ((size_t)2 << 30) && size < (64u << 20)),
		       "alloc_near(CODE, %zu, %p, %zu) failed though the reach is wide", size, target, reach);
		return;
	}
	check_within_reach(p, size, target, reach);
	adopt(slot, p, type, size, arena);
}

static void op_free(struct input *in)
{
	uint8_t *p = pick_pointer(in);
	struct alloc_model *a = starting_at(p);
	int expected = !p ? 0 : !a ? -EINVAL : a->window ? -EBUSY : 0;
	int rc = execmem_free(p);
	EXPECT(rc == expected, "free(%p) = %d, expected %d", (void *)p, rc, expected);
	if (a && rc == 0)
		forget(a);
}

/* Bytes to write: a "return value" program at the start of code, else input bytes. */
static size_t make_payload(struct input *in, struct alloc_model *a, size_t offset, uint8_t *buf, size_t len,
			   uint32_t *program_value)
{
	if (a && is_code(a->type) && offset == 0 && len >= RT_PROGRAM_MAX) {
		*program_value = next_u32(in);
		size_t n = rt_emit_return(buf, *program_value);
		memset(buf + n, 0, len - n);
		return n;
	}
	for (size_t i = 0; i < len; i++)
		buf[i] = next_byte(in);
	return 0;
}

/* Expected result of writing len bytes at dst (EINVAL, EPERM or 0). */
static int predict_put(const uint8_t *dst, size_t len, struct alloc_model **out)
{
	struct alloc_model *a = containing(dst);
	*out = a;
	if (!a || len > (size_t)(a->p + a->usable - dst))
		return -EINVAL;
	return a->sealed ? -EPERM : a->window ? -EBUSY : 0;
}

static void note_program(struct alloc_model *a, size_t offset, size_t len, size_t program_len, uint32_t value)
{
	if (program_len) {
		a->has_program = true;
		a->program_value = value;
	} else if (offset < RT_PROGRAM_MAX && len) {
		a->has_program = false; /* bytes of the program changed */
	}
}

/* Enters a write that succeeded (src NULL: an invalidation) into the model. */
static void record_put(struct alloc_model *a, size_t offset, const uint8_t *src, size_t len, size_t program_len,
		       uint32_t value)
{
	if (!len)
		return;
	if (src)
		memcpy(a->shadow + offset, src, len);
	else
		fill_fresh(a, a->shadow + offset, offset, len);
	note_program(a, offset, len, program_len, value);
	check_bytes(a);
}

static void op_write(struct input *in, bool invalidate)
{
	struct alloc_model *a = pick_alloc(in);
	uint8_t kind = next_byte(in);
	uint8_t *dst = a ? unshared(a->p + (kind & 1 ? next_u32(in) % (a->usable + 32) : 0)) : pick_pointer(in);
	size_t len = kind & 2 ? next_u32(in) % 64 : (kind & 4 ? next_u32(in) % 4096 : RT_PROGRAM_MAX);
	if (kind >= 0xf0)
		len = SIZE_MAX - next_byte(in); /* wraps the address space */
	struct alloc_model *target;
	int expected = predict_put(dst, len, &target);
	size_t offset = target ? (size_t)(dst - target->p) : 0;
	uint8_t *buf = NULL;
	size_t program_len = 0;
	uint32_t value = 0;
	int rc;
	if (invalidate) {
		rc = execmem_invalidate(dst, len);
	} else if (kind % 16 == 8) {
		expected = len ? -EINVAL : expected; /* NULL source */
		rc = execmem_write(dst, NULL, len);
	} else {
		/* Lengths past 4096 only come from wrapping ones, which must be refused unread. */
		size_t filled = len < 4096 ? len : 0;
		buf = malloc(filled + RT_PROGRAM_MAX);
		program_len = make_payload(in, target, offset, buf, filled, &value);
		rc = execmem_write(dst, buf, len);
	}
	EXPECT(rc == expected, "%s(%p, %zu) = %d, expected %d", invalidate ? "invalidate" : "write", (void *)dst,
	       len, rc, expected);
	if (rc == 0 && target)
		record_put(target, offset, invalidate ? NULL : buf, len, program_len, value);
	free(buf);
}

static void op_window(struct input *in)
{
	uint8_t *p = pick_pointer(in);
	struct alloc_model *a = starting_at(p);
	int expected = !a ? EINVAL : a->sealed ? EPERM : a->window ? EBUSY : 0;
	errno = 0;
	uint8_t *w = execmem_write_begin(p);
	EXPECT(expected ? !w && errno == expected : w != NULL, "write_begin(%p) = %p errno %d, expected %d",
	       (void *)p, (void *)w, errno, expected);
	if (!w)
		return;
	a->window = true;
	if (a->type == EXECMEM_DATA || a->type == EXECMEM_RO_AFTER_INIT)
		EXPECT(w == a->p, "window of writable data is not the data itself");
	size_t offset = next_u32(in) % a->usable;
	size_t len = next_byte(in) % (a->usable - offset + 1);
	for (size_t i = 0; i < len; i++)
		w[offset + i] = a->shadow[offset + i] = next_byte(in);
	note_program(a, offset, len, 0, 0);
	if (offset == 0 && is_code(a->type) && a->usable >= RT_PROGRAM_MAX && (next_byte(in) & 1)) {
		uint32_t value = next_u32(in);
		rt_emit_return(w, value);
		rt_emit_return(a->shadow, value);
		note_program(a, 0, 1, 1, value);
	}
}

static void op_window_end(struct input *in)
{
	uint8_t *p = pick_pointer(in);
	struct alloc_model *a = starting_at(p);
	int expected = a && a->window ? 0 : -EINVAL;
	int rc = execmem_write_end(p);
	EXPECT(rc == expected, "write_end(%p) = %d, expected %d", (void *)p, rc, expected);
	if (a && rc == 0) {
		a->window = false;
		check_bytes(a);
	}
}

static void op_seal(struct input *in)
{
	uint8_t *p = pick_pointer(in);
	struct alloc_model *a = starting_at(p);
	int expected = !a || a->type != EXECMEM_RO_AFTER_INIT ? -EINVAL
		       : a->sealed ? -EALREADY : a->window ? -EBUSY : 0;
	int rc = execmem_seal(p);
	EXPECT(rc == expected, "seal(%p) = %d, expected %d", (void *)p, rc, expected);
	if (a && rc == 0)
		a->sealed = true;
}

/* Writes straight into memory that is plainly writable. */
static void op_store(struct input *in)
{
	struct alloc_model *a = pick_alloc(in);
	if (!a || !(a->type == EXECMEM_DATA || (a->type == EXECMEM_RO_AFTER_INIT && !a->sealed)))
		return;
	size_t at = next_u32(in) % a->usable;
	a->p[at] = a->shadow[at] = next_byte(in);
}

static void op_call(struct input *in)
{
	struct alloc_model *a = pick_alloc(in);
	if (a)
		check_program(a);
}

static void op_usable(struct input *in)
{
	uint8_t *p = pick_pointer(in);
	struct alloc_model *a = starting_at(p);
	size_t got = execmem_usable_size(p);
	EXPECT(got == (a ? a->usable : 0), "usable_size(%p) = %zu, expected %zu", (void *)p, got, a ? a->usable : 0);
}

/* ---- arenas ---- */

static const size_t granularities[] = { 16, 64, 256, 4096, 0, 3, 48, 8192 }; /* the first 4 are valid */

static void open_fixed_arenas(void)
{
	for (int i = 0; i < FIXED_ARENAS; i++) {
		struct execmem_params params;
		execmem_params_init(&params);
		params.granularity = granularities[i % 4];
		params.mode = i < 4 ? EXECMEM_MODE_DUAL : EXECMEM_MODE_MPROTECT;
		params.retained_chunks = FIXED_RETAINED;
		struct execmem_arena *arena = execmem_arena_create(&params);
		EXPECT(arena, "arena_create(granularity %zu, mode %d): errno %d", params.granularity, params.mode, errno);
		arenas[1 + i] = (struct arena_model){ arena, true, params.granularity, FIXED_RETAINED, params.mode };
	}
}

static void op_arena_create(struct input *in)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.granularity = granularities[next_byte(in) % 8];
	params.mode = (enum execmem_mode)(next_byte(in) % 4); /* 3 is not a mode */
	params.retained_chunks = next_byte(in) % 3;
	bool valid = params.granularity >= 16 && params.granularity <= 4096 &&
		     !(params.granularity & (params.granularity - 1)) && params.mode <= EXECMEM_MODE_MPROTECT;
	if (arenas[TRANSIENT].live || (valid && (creates >= CREATES_PER_INPUT || !may_afford(COSTLY_ARENA))))
		return;
	errno = 0;
	struct execmem_arena *arena = execmem_arena_create(&params);
	EXPECT(valid ? arena != NULL : !arena && errno == EINVAL, "arena_create(granularity %zu, mode %d) = %p errno %d",
	       params.granularity, params.mode, (void *)arena, errno);
	if (!arena)
		return;
	creates++;
	arenas[TRANSIENT] = (struct arena_model){ arena, true, params.granularity, params.retained_chunks, params.mode };
}

/* Destroys the transient arena with whatever it still holds. */
static void destroy_transient(void)
{
	struct execmem_arena *arena = arenas[TRANSIENT].arena;
	int rc = execmem_arena_destroy(arena);
	EXPECT(rc == 0, "arena_destroy of a live arena = %d", rc);
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (allocs[i].p && allocs[i].arena == TRANSIENT)
			forget(&allocs[i]);
	destroyed[destroyed_at++ % RECENT] = arena;
	arenas[TRANSIENT] = (struct arena_model){ NULL, false, 0, 0, EXECMEM_MODE_AUTO };
}

static void op_arena_destroy(struct input *in)
{
	uint8_t choice = next_byte(in);
	if (choice & 1) {
		if (arenas[TRANSIENT].live)
			destroy_transient();
		return;
	}
	/* An arena destroyed before (its address may belong to a new one by now). */
	struct execmem_arena *old = destroyed[(choice >> 1) % RECENT];
	if (arenas[TRANSIENT].live && arenas[TRANSIENT].arena == old) {
		destroy_transient();
		return;
	}
	int rc = execmem_arena_destroy(old);
	EXPECT(rc == -EINVAL, "destroy of a destroyed arena or NULL = %d", rc);
}

static void op_stats(struct input *in)
{
	int slot = next_byte(in) % MAX_ARENAS;
	check_stats(arenas[slot].live ? slot : 0);
}

/* ---- a second thread ---- */

/* Writes RT_PROGRAM_MAX bytes (fewer if it is smaller) at the start of a:
 * a program returning value for code, else bytes of value. */
static void burst_write(struct alloc_model *a, uint32_t value)
{
	uint8_t buf[RT_PROGRAM_MAX] = { 0 };
	size_t len = a->usable < RT_PROGRAM_MAX ? a->usable : RT_PROGRAM_MAX;
	bool program = is_code(a->type) && len == RT_PROGRAM_MAX;
	if (program)
		rt_emit_return(buf, value);
	else
		memset(buf, (int)value, len);
	int rc = execmem_write(a->p, buf, len);
	EXPECT(rc == (a->sealed ? -EPERM : 0), "burst: write(%p) = %d", (void *)a->p, rc);
	if (rc)
		return;
	EXPECT(memcmp(a->p, buf, len) == 0, "burst: bytes of %p differ from those written", (void *)a->p);
	if (a->shadow)
		memcpy(a->shadow, buf, len);
	a->has_program = program;
	a->program_value = value;
	run_program(a);
}

/* The burst's own allocations are small (one may be large), in the arenas the main thread uses but
 * never the transient one, which it may destroy meanwhile. */
static void burst_alloc(struct alloc_model *own, unsigned *n, uint8_t op, uint8_t arg, bool *large_done)
{
	if (*n == BURST_LIVE)
		return;
	int arena = arg % (1 + FIXED_ARENAS);
	enum execmem_type type = (enum execmem_type)((op >> 2) % EXECMEM_TYPE_MAX);
	size_t size = 1 + (size_t)arg * 61 % 4096;
	if (op >= 0xf0 && !*large_done) {
		size = EXECMEM_CHUNK_SIZE;
		*large_done = true;
	}
	struct alloc_model *a = &own[*n];
	*a = (struct alloc_model){ .p = alloc_from(arena, type, size), .size = size, .type = type, .arena = arena };
	EXPECT(a->p, "burst: alloc(type %d, size %zu) failed: errno %d", type, size, errno);
	a->usable = execmem_usable_size(a->p);
	EXPECT(a->usable >= size, "burst: usable size %zu for size %zu", a->usable, size);
	uint8_t fresh[64];
	size_t len = a->usable < sizeof(fresh) ? a->usable : sizeof(fresh);
	fill_fresh(a, fresh, 0, len);
	EXPECT(memcmp(a->p, fresh, len) == 0, "burst: fresh allocation %p is not filled", (void *)a->p);
	++*n;
}

static void burst_free(struct alloc_model *a)
{
	int rc = execmem_free(a->p);
	EXPECT(rc == 0, "burst: free(%p) = %d", (void *)a->p, rc);
}

/* Runs the script on the second thread: two bytes a step. */
static void *burst_run(void *unused)
{
	(void)unused;
	struct alloc_model own[BURST_LIVE];
	unsigned n = 0;
	bool large_done = !burst.may_map_large;
	for (unsigned i = 0; i < burst.handed_n; i++) {
		check_bytes(&burst.handed[i]);
		run_program(&burst.handed[i]);
	}
	for (size_t at = 0; at + 1 < burst.script_len; at += 2) {
		uint8_t op = burst.script[at], arg = burst.script[at + 1];
		unsigned any = n + burst.handed_n;
		struct alloc_model *a = !any ? NULL : arg % any < n ? &own[arg % any] : &burst.handed[arg % any - n];
		switch (op % 4) {
		case 0:
			burst_alloc(own, &n, op, arg, &large_done);
			break;
		case 1:
			if (a)
				burst_write(a, (uint32_t)op << 8 | arg);
			break;
		case 2:
			if (n) {
				burst_free(&own[arg % n]);
				own[arg % n] = own[n - 1];
				n--;
			}
			break;
		default:
			if (a)
				run_program(a);
			break;
		}
	}
	while (n)
		burst_free(&own[--n]);
	for (unsigned i = 0; i < burst.handed_n; i++) {
		check_bytes(&burst.handed[i]);
		burst_free(&burst.handed[i]);
	}
	return NULL;
}

/* Gives the burst the allocations the mask picks (none with a window open: that is the main
 * thread's, nor of the transient arena), which leave the model until the join. */
static void hand_over(uint8_t mask)
{
	unsigned seen = 0;
	for (int i = 0; i < MAX_ALLOCS && burst.handed_n < MAX_HANDED; i++) {
		struct alloc_model *a = &allocs[i];
		if (!a->p || a->window || a->arena == TRANSIENT || !(mask >> (seen++ % 8) & 1))
			continue;
		burst.handed[burst.handed_n++] = *a;
		memset(a, 0, sizeof(*a));
	}
}

/* Closes the windows the model holds open. */
static void close_windows(void)
{
	for (int i = 0; i < MAX_ALLOCS; i++) {
		struct alloc_model *a = &allocs[i];
		if (!a->window)
			continue;
		int rc = execmem_write_end(a->p);
		EXPECT(rc == 0, "write_end(%p) = %d closing its window", (void *)a->p, rc);
		a->window = false;
		check_bytes(a);
	}
}

/* Waits for the burst, which may have run code on pages under open windows. */
static void burst_join(void)
{
	if (!burst.running)
		return;
	int rc = pthread_join(burst.thread, NULL);
	EXPECT(rc == 0, "pthread_join: %d", rc);
	burst.running = false;
	for (unsigned i = 0; i < burst.handed_n; i++)
		forget(&burst.handed[i]); /* freed by the burst */
	burst.handed_n = 0;
}

/* Starts a burst (joining the one that runs, if any). */
static void op_burst(struct input *in)
{
	uint8_t mask = next_byte(in);
	size_t len = next_byte(in) % (BURST_SCRIPT + 1);
	uint8_t script[BURST_SCRIPT];
	for (size_t i = 0; i < len; i++)
		script[i] = next_byte(in);
	if (burst.running) {
		burst_join();
		return;
	}
	if (bursts >= BURSTS_PER_INPUT)
		return;
	bursts++;
	memcpy(burst.script, script, len);
	burst.script_len = len;
	burst.may_map_large = large_affordable();
	hand_over(mask);
	touched |= (1u << TRANSIENT) - 1; /* the burst allocates from any but the transient arena */
	int rc = pthread_create(&burst.thread, NULL, burst_run, NULL);
	EXPECT(rc == 0, "pthread_create: %d", rc);
	burst.running = true;
}

/* ---- fork ---- */

/* In the child: everything is there and runs, and writes of its own work; then leaves without
 * running the parent's exit handlers. */
static _Noreturn void run_child(uint8_t mask)
{
	check_all_bytes();
	check_all_programs();
	for (int i = 0; i < MAX_ALLOCS; i++) {
		struct alloc_model *a = &allocs[i];
		if (!a->p || !(mask >> (i % 8) & 1))
			continue;
		uint8_t buf[RT_PROGRAM_MAX] = { 0 };
		uint32_t value = ~a->program_value;
		size_t len = a->usable < RT_PROGRAM_MAX ? a->usable : RT_PROGRAM_MAX;
		size_t program_len = is_code(a->type) && len == RT_PROGRAM_MAX ? rt_emit_return(buf, value) : 0;
		if (!program_len)
			memset(buf, 0xa5, len);
		struct alloc_model *target;
		int expected = predict_put(a->p, len, &target);
		int rc = execmem_write(a->p, buf, len);
		EXPECT(rc == expected, "child: write(%p, %zu) = %d, expected %d", (void *)a->p, len, rc, expected);
		if (rc == 0)
			record_put(a, 0, buf, len, program_len, value);
		check_program(a);
	}
	_exit(0);
}

/* Forks; the child checks and rewrites, the parent checks that nothing of that reached it. */
static void op_fork(struct input *in)
{
	uint8_t mask = next_byte(in);
	if (forks >= FORKS_PER_INPUT || !may_afford(COSTLY_FORK))
		return;
	forks++;
	pid_t pid = fork();
	EXPECT(pid >= 0, "fork: errno %d", errno);
	if (pid == 0)
		run_child(mask);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		EXPECT(errno == EINTR, "waitpid: errno %d", errno);
	EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child ended with status %#x", status);
	check_all_bytes();
	check_all_programs();
}

/* ---- one input ---- */

/* Frees all, destroys the transient arena: the next input starts afresh. */
static void clean_up(void)
{
	burst_join();
	check_all_bytes();
	close_windows();
	for (int i = 0; i < MAX_ALLOCS; i++) {
		if (!allocs[i].p || allocs[i].arena == TRANSIENT)
			continue;
		EXPECT(execmem_free(allocs[i].p) == 0, "final free of %p", (void *)allocs[i].p);
		forget(&allocs[i]);
	}
	if (arenas[TRANSIENT].live)
		destroy_transient();
	for (int slot = 0; slot < TRANSIENT; slot++)
		if (touched >> slot & 1)
			check_stats(slot);
	touched = 0;
	memset(recent_frees, 0, sizeof(recent_frees));
	memset(destroyed, 0, sizeof(destroyed));
	creates = larges = bursts = forks = 0;
	next_input_costs();
}

static size_t count_shards(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = 1;
	while (n < (size_t)cpus && n < 16)
		n <<= 1;
	return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	struct execmem_params defaults;
	execmem_params_init(&defaults);
	arenas[0] = (struct arena_model){ NULL, true, defaults.granularity, defaults.retained_chunks, EXECMEM_MODE_AUTO };
	open_fixed_arenas();
	shards = count_shards();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	for (unsigned steps = 0; input_left(&in) && steps < 200; steps++) {
		uint8_t op = next_byte(&in);
		switch (op % 16) {
		case 0: case 1: case 2: op_alloc(&in); break;
		case 3: op_alloc_near(&in); break;
		case 4: case 5: op_free(&in); break;
		case 6: case 7: op_write(&in, false); break;
		case 8: op_write(&in, true); break;
		case 9: op_window(&in); break;
		case 10: op_window_end(&in); break;
		case 11: op_seal(&in); break;
		case 12: op_store(&in); op_call(&in); break;
		case 13: op_usable(&in); break;
		case 14: op_arena_create(&in); break;
		default:
			/* The rarer operations share the last code. */
			switch (op >> 4 & 3) {
			case 0: op_arena_destroy(&in); break;
			case 1: op_stats(&in); break;
			case 2: op_burst(&in); break;
			default: op_fork(&in); break;
			}
			break;
		}
	}
	clean_up();
	return 0;
}
