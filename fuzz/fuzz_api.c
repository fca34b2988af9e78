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
 * arguments.  Every input ends by freeing everything it allocated and
 * destroying its arenas, so inputs do not depend on each other.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

enum { MAX_ARENAS = 3, MAX_ALLOCS = 40, MAX_BIG = 2, RECENT = 8 };
#define MAX_SIZE_CHECKED ((size_t)1 << 46) /* sizes above are refused with EINVAL */

struct arena_model {
	struct execmem_arena *arena; /* NULL for the default arena (slot 0) */
	bool live;
	size_t granularity;
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
	for (size_t i = 0; i < len; i++)
		to[i] = trap[((uintptr_t)a->p + offset + i) % trap_len];
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

/* Live allocations and bytes in use of arena slot, as the model counts them. */
static void model_counts(int slot, size_t *live, size_t *bytes)
{
	*live = *bytes = 0;
	for (int i = 0; i < MAX_ALLOCS; i++) {
		if (allocs[i].p && allocs[i].arena == slot) {
			++*live;
			*bytes += allocs[i].usable;
		}
	}
}

static void check_stats(int slot)
{
	struct execmem_stats stats;
	int rc = slot ? execmem_arena_stats(arenas[slot].arena, &stats) : execmem_stats(&stats);
	EXPECT(rc == 0, "stats of arena %d: %d", slot, rc);
	size_t live, bytes;
	model_counts(slot, &live, &bytes);
	EXPECT(stats.live_allocations == live && stats.bytes_in_use == bytes,
	       "arena %d stats: %zu live, %zu bytes; model %zu, %zu", slot, stats.live_allocations,
	       stats.bytes_in_use, live, bytes);
	EXPECT(stats.mode == EXECMEM_MODE_DUAL || stats.mode == EXECMEM_MODE_MPROTECT, "stats mode %d", stats.mode);
}

static void forget(struct alloc_model *a)
{
	recent_frees[recent_at++ % RECENT] = a->p;
	free(a->shadow);
	memset(a, 0, sizeof(*a));
}

/* ---- choosing arguments ---- */

static int pick_live_arena(struct input *in)
{
	int slot = next_byte(in) % MAX_ARENAS;
	return arenas[slot].live ? slot : 0;
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

/* A pointer of any kind: live start or interior, freed, foreign, NULL. */
static uint8_t *pick_pointer(struct input *in)
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
		return a ? a->p - 1 - next_byte(in) : (uint8_t *)pick_pointer;
	default:
		return NULL;
	}
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
	case 3:
		return EXECMEM_CHUNK_SIZE - 64 + v % 128;      /* around the chunk size */
	case 4:
		return EXECMEM_CHUNK_SIZE / 2 - 64 + v % 128;  /* around the large threshold */
	case 5:
		return 4096 + v % (256 * 1024);
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
	slot->shadow = malloc(usable);
	EXPECT(slot->shadow, "out of memory for the shadow");
	fill_fresh(slot, slot->shadow, 0, usable);
	check_bytes(slot);
}

static void op_alloc(struct input *in)
{
	int arena = pick_live_arena(in);
	enum execmem_type type = pick_type(in);
	size_t size = pick_size(in);
	struct alloc_model *slot = free_model_slot();
	if (!slot || (big(size) && valid_request(type, size) && live_big() >= MAX_BIG))
		return;
	errno = 0;
	uint8_t *p = arena ? execmem_arena_alloc(arenas[arena].arena, type, size) : execmem_alloc(type, size);
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
	if (!slot || (big(size) && live_big() >= MAX_BIG))
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

static void op_write(struct input *in, bool invalidate)
{
	struct alloc_model *a = pick_alloc(in);
	uint8_t kind = next_byte(in);
	uint8_t *dst = a ? a->p + (kind & 1 ? next_u32(in) % (a->usable + 32) : 0) : pick_pointer(in);
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
	if (rc == 0 && target && len) {
		if (invalidate || !buf)
			fill_fresh(target, target->shadow + offset, offset, len);
		else
			memcpy(target->shadow + offset, buf, len);
		note_program(target, offset, len, invalidate ? 0 : program_len, value);
		check_bytes(target);
	}
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
	if (!a || !a->has_program || a->window)
		return;
	uint32_t got = rt_call(a->p);
	EXPECT(got == a->program_value, "program at %p returned %#x, expected %#x", (void *)a->p, got,
	       a->program_value);
}

static void op_usable(struct input *in)
{
	uint8_t *p = pick_pointer(in);
	struct alloc_model *a = starting_at(p);
	size_t got = execmem_usable_size(p);
	EXPECT(got == (a ? a->usable : 0), "usable_size(%p) = %zu, expected %zu", (void *)p, got, a ? a->usable : 0);
}

static void op_arena_create(struct input *in)
{
	static const size_t granularities[] = { 16, 64, 256, 4096, 0, 3, 48, 8192 };
	int slot = 1 + next_byte(in) % (MAX_ARENAS - 1);
	struct execmem_params params;
	execmem_params_init(&params);
	params.granularity = granularities[next_byte(in) % 8];
	params.mode = (enum execmem_mode)(next_byte(in) % 4); /* 3 is not a mode */
	params.retained_chunks = next_byte(in) % 3;
	if (arenas[slot].live)
		return;
	bool valid = params.granularity >= 16 && params.granularity <= 4096 &&
		     !(params.granularity & (params.granularity - 1)) && params.mode <= EXECMEM_MODE_MPROTECT;
	errno = 0;
	struct execmem_arena *arena = execmem_arena_create(&params);
	EXPECT(valid ? arena != NULL : !arena && errno == EINVAL, "arena_create(granularity %zu, mode %d) = %p errno %d",
	       params.granularity, params.mode, (void *)arena, errno);
	if (arena)
		arenas[slot] = (struct arena_model){ arena, true, params.granularity };
}

static void destroy_slot(int slot)
{
	struct execmem_arena *arena = arenas[slot].arena;
	int rc = execmem_arena_destroy(arena);
	EXPECT(rc == 0, "arena_destroy of a live arena = %d", rc);
	for (int i = 0; i < MAX_ALLOCS; i++)
		if (allocs[i].p && allocs[i].arena == slot)
			forget(&allocs[i]);
	destroyed[destroyed_at++ % RECENT] = arena;
	arenas[slot] = (struct arena_model){ NULL, false, 0 };
}

static int slot_of(struct execmem_arena *arena)
{
	for (int slot = 1; slot < MAX_ARENAS; slot++)
		if (arenas[slot].live && arenas[slot].arena == arena)
			return slot;
	return -1;
}

static void op_arena_destroy(struct input *in)
{
	uint8_t choice = next_byte(in);
	if (choice & 1) {
		int slot = 1 + (choice >> 1) % (MAX_ARENAS - 1);
		if (arenas[slot].live)
			destroy_slot(slot);
		return;
	}
	/* An arena destroyed before (its address may belong to a new one by now). */
	struct execmem_arena *old = destroyed[(choice >> 1) % RECENT];
	int slot = slot_of(old);
	if (slot > 0) {
		destroy_slot(slot);
		return;
	}
	int rc = execmem_arena_destroy(old);
	EXPECT(rc == -EINVAL, "destroy of a destroyed arena or NULL = %d", rc);
}

static void check_everything(void)
{
	check_all_bytes();
	for (int slot = 0; slot < MAX_ARENAS; slot++)
		if (arenas[slot].live)
			check_stats(slot);
}

/* Frees all, destroys the arenas: the next input starts afresh. */
static void clean_up(void)
{
	check_everything();
	for (int i = 0; i < MAX_ALLOCS; i++) {
		if (!allocs[i].p || allocs[i].arena != 0)
			continue;
		if (allocs[i].window)
			EXPECT(execmem_write_end(allocs[i].p) == 0, "closing a window");
		EXPECT(execmem_free(allocs[i].p) == 0, "final free of %p", (void *)allocs[i].p);
		forget(&allocs[i]);
	}
	check_stats(0);
	for (int slot = 1; slot < MAX_ARENAS; slot++)
		if (arenas[slot].live)
			destroy_slot(slot);
	memset(recent_frees, 0, sizeof(recent_frees));
	memset(destroyed, 0, sizeof(destroyed));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	arenas[0] = (struct arena_model){ NULL, true, 64 };
	for (unsigned steps = 0; input_left(&in) && steps < 200; steps++) {
		switch (next_byte(&in) % 16) {
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
		default: op_arena_destroy(&in); break;
		}
	}
	clean_up();
	return 0;
}
