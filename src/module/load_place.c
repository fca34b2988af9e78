/*
 * load_place.c - stages 5 and 6 of a load: resolve the imports and place
 * every block in execmem memory, within reach of each other.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "load.h"

/* Where modules with 32-bit absolute addresses go: [0, 2 GiB). */
#define LOW_TARGET ((uintptr_t)1 << 30)
#define LOW_REACH  (((size_t)1 << 30) - 1)
/* The range of the arena made for them: clear of non-PIE programs at 4 MiB. */
#define LOW_ARENA_START ((uintptr_t)256 << 20)
#define LOW_ARENA_END   ((uintptr_t)2 << 30)
/* Every block lies within this distance of the first code block, so any
 * two are less than 2 GiB apart and 32-bit PC-relative references fit. */
#define NEAR_LIMIT (((uint64_t)1 << 30) - ((uint64_t)1 << 24))

/* ------------------------------------------------------------------ */
/* 5. resolve imports                                                  */
/* ------------------------------------------------------------------ */

static int add_dependency(struct execmem_module *module, struct execmem_module *provider)
{
	for (uint32_t i = 0; i < module->ndeps; i++)
		if (module->deps[i] == provider)
			return 0;
	struct execmem_module **n = realloc(module->deps, (module->ndeps + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	module->deps = n;
	module->deps[module->ndeps++] = provider;
	provider->users++;     /* registry lock held by the caller */
	return 0;
}

/* Imports the resolver callback gives; runs without any lock. */
static void resolve_with_callback(struct load *ld)
{
	const struct execmem_module_options *opt = ld->options;
	if (!opt || !opt->resolver)
		return;
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		struct mod_entry *e = &ld->globals.entries[i];
		if (e->state != ENTRY_UNDEFINED || is_got_symbol(e->name))
			continue;
		e->address = (uintptr_t)opt->resolver(e->name, opt->resolver_context);
	}
}

static int resolve_from_modules_and_host(struct load *ld)
{
	int use_host = !(ld->flags & EXECMEM_MODULE_NO_HOST_SYMBOLS);
	int err = 0;

	mod_registry_lock();
	for (uint32_t i = 0; i < ld->globals.count && !err; i++) {
		struct mod_entry *e = &ld->globals.entries[i];
		if (e->state != ENTRY_UNDEFINED || e->address || is_got_symbol(e->name))
			continue;
		e->address = mod_registry_lookup(e->name, &e->provider);
		if (e->provider) {
			if (add_dependency(ld->module, e->provider))
				err = mod_error(ENOMEM, "%s: out of memory", ld->name);
		} else if (!(e->address = mod_crt_symbol(e->name)) && use_host) {
			e->address = (uintptr_t)dlsym(RTLD_DEFAULT, e->name);
		}
		if (!err && !e->address && !e->weak)
			err = mod_error(ENOENT, "%s: undefined symbol '%s' (referenced by %s)",
					ld->name, e->name, ld->objects[e->object].name);
	}
	mod_registry_unlock();
	return err;
}

/* Imports: the resolver callback first (without locks), then modules and host. */
int load_resolve_imports(struct load *ld)
{
	resolve_with_callback(ld);
	return resolve_from_modules_and_host(ld);
}

/* ------------------------------------------------------------------ */
/* 6. place                                                            */
/* ------------------------------------------------------------------ */

static struct execmem_arena *low_arena_instance;
static char low_arena_error[256];

/* Code built with -fno-pic holds 32-bit absolute addresses, so all of such a
 * module must lie below 2 GiB.  The default ranges keep data near the host
 * image, so these modules get an arena of their own whose ranges (every
 * type) are in the low 2 GiB; modules in it still pack together. */
static void make_low_arena(void)
{
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	struct execmem_params params;

	memset(ranges, 0, sizeof(ranges));
	for (int t = 0; t < EXECMEM_TYPE_MAX; t++) {
		ranges[t].start = LOW_ARENA_START;
		ranges[t].end = LOW_ARENA_END;
		ranges[t].flags = EXECMEM_RANGE_SET;
	}
	execmem_params_init(&params);
	params.ranges = ranges;
	low_arena_instance = execmem_arena_create(&params);
	if (!low_arena_instance)
		snprintf(low_arena_error, sizeof(low_arena_error), "%s", execmem_last_error());
}

static struct execmem_arena *low_arena(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, make_low_arena);
	return low_arena_instance;
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
	ld->arena = low_arena();
	if (!ld->arena)
		return mod_error(ENOMEM, "%s: built with -fno-pic (32-bit absolute relocations), "
				 "so it must lie in the low 2 GiB, but no arena could be made "
				 "there: %s", ld->name, low_arena_error);
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

/* Allocate size bytes of type whose start is aligned to align, within reach
 * of target when reach is non-zero.  Execmem aligns to its granularity; a
 * larger alignment costs a second try with room to slide. */
static void *alloc_aligned(const struct load *ld, enum execmem_type type, uint64_t size,
			   uint64_t align, uintptr_t target, size_t reach, uintptr_t *base)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		uint64_t total = size + (attempt ? align - 1 : 0);
		void *p = reach ? alloc_near(ld, type, total, target, reach)
				: alloc_anywhere(ld, type, total);
		if (!p)
			return NULL;
		uintptr_t aligned = (uintptr_t)mod_align_up((uintptr_t)p, align);
		if (aligned == (uintptr_t)p || attempt) {
			*base = aligned;
			return p;
		}
		execmem_free(p);
	}
	return NULL;
}

/* Place one block within reach of target (reach 0: anywhere its type may be). */
static int place_block(struct load *ld, struct mod_block *b, uintptr_t target, size_t reach)
{
	uint64_t size = b->size ? b->size : 1;

	b->alloc = alloc_aligned(ld, b->type, size, b->align, target, reach, &b->base);
	/* Code that cannot be near the image may be anywhere: its branches to
	 * the host then go through PLT stubs. */
	if (!b->alloc && b->type == EXECMEM_CODE_NEAR) {
		b->type = EXECMEM_CODE;
		b->alloc = alloc_aligned(ld, b->type, size, b->align, target, reach, &b->base);
	}
	if (!b->alloc)
		return mod_error(ENOMEM, "%s: no memory for %llu bytes of %s%s: %s", ld->name,
				 (unsigned long long)size, mod_type_name(b->type),
				 ld->low32 ? " in the low 2 GiB" : " within reach of the code",
				 execmem_last_error());
	ld->module->stats.bytes[b->type] += execmem_usable_size(b->alloc);
	return 0;
}

/*
 * The first code block goes where its type says (near the host image);
 * every other block within NEAR_LIMIT of it.  Modules built for 32-bit
 * absolute addresses go entirely below 2 GiB instead.
 */
int load_place_blocks(struct load *ld)
{
	struct execmem_module *m = ld->module;
	uintptr_t anchor = (uintptr_t)&load_place_blocks;   /* the host, if no code */
	uint32_t first_text = m->nblocks;
	int err = pick_arena(ld);

	if (!err && ld->total_size >= NEAR_LIMIT)
		err = mod_error(EFBIG, "%s: module too large to keep within 1 GiB", ld->name);
	for (uint32_t i = 0; i < m->nblocks && first_text == m->nblocks; i++)
		if (m->blocks[i].region == REGION_TEXT)
			first_text = i;
	if (!err && !ld->low32 && first_text < m->nblocks) {
		err = place_block(ld, &m->blocks[first_text], 0, 0);
		anchor = m->blocks[first_text].base;
	}
	for (uint32_t i = 0; i < m->nblocks && !err; i++) {
		if (ld->low32)
			err = place_block(ld, &m->blocks[i], LOW_TARGET, LOW_REACH);
		else if (i != first_text)
			err = place_block(ld, &m->blocks[i], anchor,
					  (size_t)(NEAR_LIMIT - ld->total_size));
	}
	m->stats.low32 = ld->low32;
	return err;
}
