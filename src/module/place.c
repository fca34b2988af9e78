/*
 * place.c - stage 6 of a load: place every block in execmem memory, within
 * reach of each other and of the imports that code reaches PC-relatively.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "load_state.h"
#include "reach.h"

/* Where modules with 32-bit absolute addresses go: [0, 2 GiB). */
#define LOW_TARGET ((uintptr_t)1 << 30)
#define LOW_REACH  (((size_t)1 << 30) - 1)
/* The range of the arena made for them: clear of non-PIE programs at 4 MiB. */
#define LOW_ARENA_START ((uintptr_t)256 << 20)
#define LOW_ARENA_END   ((uintptr_t)2 << 30)
/* Every block lies within this distance of the first code block, so any
 * two are less than 2 GiB apart and 32-bit PC-relative references fit. */
#define NEAR_LIMIT (((uint64_t)1 << 30) - ((uint64_t)1 << 24))

/* An arena the loader makes for itself, once. */
struct own_arena {
	pthread_once_t once;
	struct execmem_arena *arena;
	char error[256];
};

static void make_own_arena(struct own_arena *own, uintptr_t start, uintptr_t end, unsigned flags)
{
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	struct execmem_params params;

	memset(ranges, 0, sizeof(ranges));
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++) {
		ranges[t].start = start;
		ranges[t].end = end;
		ranges[t].flags = EXECMEM_RANGE_SET | flags;
	}
	execmem_params_init(&params);
	params.ranges = ranges;
	own->arena = execmem_arena_create(&params);
	if (!own->arena)
		snprintf(own->error, sizeof(own->error), "%s", execmem_last_error());
}

/* Code built with -fno-pic holds 32-bit absolute addresses, so all of such a
 * module must lie below 2 GiB.  The default ranges keep data near the host
 * image, so these modules get an arena of their own whose ranges (every
 * type) are in the low 2 GiB; modules in it still pack together. */
static struct own_arena low = { .once = PTHREAD_ONCE_INIT };

static void make_low_arena(void)
{
	make_own_arena(&low, LOW_ARENA_START, LOW_ARENA_END, 0);
}

/* Modules that must lie near data of a shared library (PIE code reading
 * libc's stdin, for one) cannot use the default ranges, which keep every
 * type near the host image: they go to an arena whose types may lie
 * anywhere, each allocation within reach of what it must reach. */
static struct own_arena anywhere = { .once = PTHREAD_ONCE_INIT };

static void make_anywhere_arena(void)
{
	make_own_arena(&anywhere, 0, 0, EXECMEM_RANGE_ANYWHERE);
}

/* The arena to use: the caller's, else the low arena or the default (NULL). */
static int pick_arena(struct load *ld)
{
	if (ld->options && ld->options->arena) {
		ld->arena = ld->options->arena;
		return 0;
	}
	if (!ld->low32)
		return 0;
	pthread_once(&low.once, make_low_arena);
	ld->arena = low.arena;
	if (!ld->arena)
		return mod_error(ENOMEM, "%s: built with -fno-pic (32-bit absolute relocations), "
				 "so it must lie in the low 2 GiB, but no arena could be made "
				 "there: %s", ld->name, low.error);
	return 0;
}

static void *alloc_near(const struct load *ld, enum execmem_type type, size_t size,
			uintptr_t target, size_t reach)
{
	if (ld->arena)
		return execmem_arena_alloc_near(ld->arena, type, size, (const void *)target, reach);
	return execmem_alloc_near(type, size, (const void *)target, reach);
}

static void *alloc_anywhere(const struct load *ld, enum execmem_type type, size_t size)
{
	return ld->arena ? execmem_arena_alloc(ld->arena, type, size) : execmem_alloc(type, size);
}

static int window_is_everything(const struct mod_window *w)
{
	return w->lo == 0 && w->hi == UINT64_MAX;
}

/* Every execmem allocation is aligned to the arena's granularity, which is
 * at least this. */
#define MIN_GRANULARITY 16

/* Allocate size bytes of type whose start is aligned to align, inside w.
 * A larger alignment than every allocation has is had by asking for room
 * to slide: an allocation tried without it and freed when misaligned cost
 * the trap fill of the whole block on the free. */
static void *alloc_aligned(const struct load *ld, enum execmem_type type, uint64_t size,
			   uint64_t align, const struct mod_window *w, uintptr_t *base)
{
	uintptr_t center = (uintptr_t)(w->lo + (w->hi - w->lo) / 2);
	size_t reach = (size_t)((w->hi - w->lo) / 2);
	uint64_t total = size + (align > MIN_GRANULARITY ? align - 1 : 0);
	void *p = window_is_everything(w) ? alloc_anywhere(ld, type, total)
		: reach >= total ? alloc_near(ld, type, total, center, reach) : NULL;
	if (p)
		*base = (uintptr_t)mod_align_up((uintptr_t)p, align);
	return p;
}

/* "'stdin' (R_X86_64_PC32 from x.o)" or what bounds the window at the start. */
static void describe_bound(const struct load *ld, uint32_t by, char *out, size_t len)
{
	if (!by) {
		snprintf(out, len, ld->low32 ? "the low 2 GiB (32-bit absolute relocations)"
					     : "the module's own reach");
		return;
	}
	const struct mod_entry *e = &ld->globals.entries[by - 1];
	snprintf(out, len, "'%s' at %#llx (%s from %s)", e->name, (unsigned long long)e->address,
		 e->near_howto, ld->objects[e->object].name);
}

static int unreachable(const struct load *ld, const struct mod_window *w, int err,
		       const char *why)
{
	char a[256], b[256];
	describe_bound(ld, w->lo_by, a, sizeof(a));
	describe_bound(ld, w->hi_by, b, sizeof(b));
	return mod_error(err, "%s: no placement reaches all of its PC-relative references: %s "
			 "and %s cannot both be reached (%s); build the module with -fPIC",
			 ld->name, a, b, why);
}

/* Place one block inside w. */
static int place_block(struct load *ld, struct mod_block *b, const struct mod_window *w)
{
	uint64_t size = b->size ? b->size : 1;

	b->alloc = alloc_aligned(ld, b->type, size, b->align, w, &b->base);
	/* Code that cannot be near the image may be anywhere: its branches to
	 * the host then go through PLT stubs. */
	if (!b->alloc && b->type == EXECMEM_CODE_NEAR) {
		b->type = EXECMEM_CODE;
		b->alloc = alloc_aligned(ld, b->type, size, b->align, w, &b->base);
	}
	if (!b->alloc && (w->lo_by || w->hi_by))
		return unreachable(ld, w, ENOMEM, "no free memory within reach of both");
	if (!b->alloc)
		return mod_error(ENOMEM, "%s: no memory for %llu bytes of %s%s: %s", ld->name,
				 (unsigned long long)size, mod_type_name(b->type),
				 ld->low32 ? " in the low 2 GiB" : " within reach of the code",
				 execmem_last_error());
	ld->module->stats.bytes[b->type] += execmem_usable_size(b->alloc);
	return 0;
}

/* Undo place_blocks(), to try again in another arena. */
static void unplace_blocks(struct load *ld)
{
	struct execmem_module *m = ld->module;
	for (uint32_t i = 0; i < m->nblocks; i++) {
		struct mod_block *b = &m->blocks[i];
		if (b->alloc)
			execmem_free(b->alloc);
		b->alloc = NULL;
		if (b->region == REGION_TEXT)
			b->type = EXECMEM_CODE_NEAR;
	}
	memset(m->stats.bytes, 0, sizeof(m->stats.bytes));
}

/*
 * The window the whole module must lie in: the low 2 GiB for 32-bit
 * absolute addresses, and within reach of every import that code reaches
 * PC-relatively with no PLT stub or GOT entry to go through (note_reach()).
 */
static int module_window(struct load *ld, struct mod_window *w)
{
	if (ld->low32)
		mod_window_init(w, LOW_TARGET - LOW_REACH, LOW_TARGET + LOW_REACH);
	else
		mod_window_init(w, 0, UINT64_MAX);
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		const struct mod_entry *e = &ld->globals.entries[i];
		if (e->state == ENTRY_UNDEFINED && e->near_reach && e->address)
			mod_window_narrow(w, e->address, e->near_reach, i + 1);
	}
	if (!mod_window_holds(w, ld->total_size))
		return unreachable(ld, w, ERANGE, "they are too far apart");
	return 0;
}

/*
 * The first code block goes inside the window (where its type says when
 * nothing narrows it: near the host image); every other block within
 * NEAR_LIMIT of it and inside the window as well.
 */
static int place_blocks(struct load *ld, struct mod_window w)
{
	struct execmem_module *m = ld->module;
	uint32_t first = 0;

	for (uint32_t i = 0; i < m->nblocks; i++)
		if (m->blocks[i].region == REGION_TEXT) {
			first = i;
			break;
		}
	if (!m->nblocks)
		return 0;
	int err = place_block(ld, &m->blocks[first], &w);
	if (!err)
		mod_window_narrow(&w, m->blocks[first].base, NEAR_LIMIT - ld->total_size,
				  0);
	for (uint32_t i = 0; i < m->nblocks && !err; i++)
		if (i != first)
			err = place_block(ld, &m->blocks[i], &w);
	return err;
}

int load_place_blocks(struct load *ld)
{
	struct mod_window w;
	int err = pick_arena(ld);

	if (!err && ld->total_size >= NEAR_LIMIT)
		err = mod_error(EFBIG, "%s: module too large to keep within 1 GiB", ld->name);
	if (!err)
		err = module_window(ld, &w);
	if (!err)
		err = place_blocks(ld, w);
	/* The default ranges keep every type near the host image: a module
	 * that must lie near a library's data goes where any type may be. */
	if (err == -ENOMEM && !ld->arena && (w.lo_by || w.hi_by)) {
		unplace_blocks(ld);
		pthread_once(&anywhere.once, make_anywhere_arena);
		ld->arena = anywhere.arena;
		err = ld->arena ? place_blocks(ld, w)
				: mod_error(ENOMEM, "%s: no arena for modules placed near "
					    "libraries: %s", ld->name, anywhere.error);
	}
	ld->module->stats.low32 = ld->low32;
	return err;
}
