/*
 * publish.c - stage 8 of a load: describe the module (exports,
 * section map), close the write windows, run the constructors, seal
 * .data..ro_after_init and register the module.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "execmem/unwind.h"
#include "load_state.h"
#include "registry.h"
#include "unload.h"
#include "observe/observe.h"

/* ------------------------------------------------------------------ */
/* 8. publish                                                          */
/* ------------------------------------------------------------------ */

static int compare_init(const void *a, const void *b)
{
	const struct init_section *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	if (x->object != y->object)
		return x->object < y->object ? -1 : 1;
	return x->section < y->section ? -1 : x->section > y->section;
}

/* Function pointers of the sections of list, in running order, read from
 * the relocated images.  Entries 0 and -1 are .ctors/.dtors markers. */
static int collect_functions(struct load *ld, struct init_list *list, void (***out)(void),
			     uint32_t *count)
{
	uint64_t total = 0;

	if (list->count)
		qsort(list->items, list->count, sizeof(*list->items), compare_init);
	for (uint32_t i = 0; i < list->count; i++) {
		const struct init_section *is = &list->items[i];
		const struct mod_section *sec = &ld->objects[is->object].sections[is->section];
		if (sec->size % 8 || !sec->data)
			return mod_error(ENOEXEC, "%s: section %s is not an array of pointers",
					 ld->objects[is->object].name, sec->name);
		total += sec->size / 8;
	}
	*out = calloc(total ? total : 1, sizeof(**out));
	if (!*out)
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	*count = 0;
	for (uint32_t i = 0; i < list->count; i++) {
		const struct init_section *is = &list->items[i];
		const struct mod_section *sec = &ld->objects[is->object].sections[is->section];
		const uint8_t *p = section_image(ld, sec);
		uint64_t n = sec->size / 8;
		for (uint64_t k = 0; k < n; k++) {
			uint64_t index = is->reversed ? n - 1 - k : k;
			uint64_t fn;
			memcpy(&fn, p + index * 8, 8);
			if (fn != 0 && fn != UINT64_MAX)
				(*out)[(*count)++] = (void (*)(void))(uintptr_t)fn;
		}
	}
	return 0;
}

static void reverse_functions(void (**fns)(void), uint32_t count)
{
	for (uint32_t i = 0; i < count / 2; i++) {
		void (*t)(void) = fns[i];
		fns[i] = fns[count - 1 - i];
		fns[count - 1 - i] = t;
	}
}

static char *pool_add(char **cursor, const char *s)
{
	char *start = *cursor;
	size_t len = strlen(s) + 1;
	memcpy(start, s, len);
	*cursor += len;
	return start;
}

static size_t describe_sizes(const struct load *ld, uint32_t *nexports, uint32_t *nsections)
{
	size_t bytes = strlen(ld->name) + 1 + sizeof("<plt>") + sizeof("<got>") + sizeof("<common>") +
		       sizeof("<stubs>");
	*nexports = 0;
	*nsections = 4;
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		const struct mod_entry *e = &ld->globals.entries[i];
		if (e->state != ENTRY_UNDEFINED) {
			bytes += strlen(e->name) + 1;
			(*nexports)++;
		}
	}
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		const struct mod_object *obj = &ld->objects[o];
		bytes += strlen(obj->name) + 1;
		for (uint32_t s = 1; s < obj->nsections; s++)
			if (obj->sections[s].region != REGION_NONE) {
				bytes += strlen(obj->sections[s].name) + 1;
				(*nsections)++;
			}
	}
	return bytes;
}

static void add_placed(struct execmem_module *m, const char *name, const char *object,
		       uintptr_t address, uint64_t size, enum execmem_type type)
{
	m->sections[m->nsections++] = (struct mod_placed_section){ name, object, address, size,
								   (uint8_t)type };
}

static void describe_sections(struct load *ld, char **cursor)
{
	struct execmem_module *m = ld->module;
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		const struct mod_object *obj = &ld->objects[o];
		const char *oname = pool_add(cursor, obj->name);
		for (uint32_t s = 1; s < obj->nsections; s++) {
			const struct mod_section *sec = &obj->sections[s];
			if (sec->region != REGION_NONE)
				add_placed(m, pool_add(cursor, sec->name), oname,
					   section_address(ld, sec), sec->size,
					   m->blocks[sec->block].type);
		}
	}
	const char *loader = m->name;
	if (ld->plt.count)
		add_placed(m, pool_add(cursor, "<plt>"), loader, plt_base(ld),
			   (uint64_t)ld->plt.count * ld->arch->plt_size, m->blocks[ld->plt_block].type);
	if (ld->stubs.count)
		add_placed(m, pool_add(cursor, "<stubs>"), loader,
			   m->blocks[ld->stub_block].base + ld->stub_offset,
			   (uint64_t)ld->stubs.count * ld->arch->load_stub_size,
			   m->blocks[ld->stub_block].type);
	if (ld->got.count)
		add_placed(m, pool_add(cursor, "<got>"), loader, got_base(ld),
			   (uint64_t)ld->got.count * 8, m->blocks[ld->got_block].type);
	if (ld->common_size)
		add_placed(m, pool_add(cursor, "<common>"), loader,
			   m->blocks[ld->common_block].base + ld->common_offset, ld->common_size,
			   m->blocks[ld->common_block].type);
}

static enum execmem_type export_type(const struct load *ld, const struct mod_entry *e)
{
	if (e->state == ENTRY_COMMON)
		return ld->module->blocks[e->common_block].type;
	const struct mod_object *obj = &ld->objects[e->object];
	uint32_t shndx = obj->symbols[e->symbol].shndx;
	if (shndx == SHN_ABS || obj->sections[shndx].region == REGION_NONE)
		return EXECMEM_TYPE_MAX;
	return ld->module->blocks[obj->sections[shndx].block].type;
}

static void describe_exports(struct load *ld, char **cursor)
{
	struct execmem_module *m = ld->module;
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		const struct mod_entry *e = &ld->globals.entries[i];
		if (e->state == ENTRY_UNDEFINED)
			continue;
		const struct mod_symbol *sym = &ld->objects[e->object].symbols[e->symbol];
		struct mod_export *x = &m->exports[m->nexports++];
		x->name = pool_add(cursor, e->name);
		x->address = e->address;
		x->size = e->state == ENTRY_COMMON ? e->common_size : sym->size;
		x->type = (uint8_t)export_type(ld, e);
		x->is_function = sym->type == STT_FUNC;
		x->is_exported = (uint8_t)e->exported;
		uint32_t s = e->hash & m->export_mask;   /* mod_hash_name(e->name) */
		while (m->export_slots[s])
			s = (s + 1) & m->export_mask;
		m->export_slots[s] = m->nexports;
	}
}

/* Copy what outlives the load (names, exports, section map) into the module. */
static int describe_module(struct load *ld)
{
	struct execmem_module *m = ld->module;
	uint32_t nexports, nsections, nslots = 16;
	size_t bytes = describe_sizes(ld, &nexports, &nsections);

	while (nslots < nexports * 2u)
		nslots *= 2;
	m->strings = malloc(bytes);
	m->exports = calloc(nexports ? nexports : 1, sizeof(*m->exports));
	m->export_slots = calloc(nslots, sizeof(*m->export_slots));
	m->sections = calloc(nsections, sizeof(*m->sections));
	if (!m->strings || !m->exports || !m->export_slots || !m->sections)
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	m->export_mask = nslots - 1;
	char *cursor = m->strings;
	describe_sections(ld, &cursor);
	describe_exports(ld, &cursor);
	m->stats.objects = ld->nobjects;
	m->stats.sections = m->nsections;
	m->stats.relocations = ld->relocations;
	m->stats.plt_stubs = ld->plt.count;
	m->stats.got_entries = ld->got.count;
	return 0;
}

/*
 * Register the module's unwind tables (one per object, each ended by the
 * terminator the layout made room for), so that exceptions
 * and backtraces cross its code.  A process without an unwinder to
 * register with (a C program without libgcc_s) cannot throw through the
 * module anyway: the tables are then left unregistered.
 */
static int register_unwind_tables(struct load *ld)
{
	struct execmem_module *m = ld->module;
	uint32_t count = 0;

	if (ld->flags & EXECMEM_MODULE_LINK_ONLY)
		return 0;
	for (uint32_t o = 0; o < ld->nobjects; o++)
		for (uint32_t s = 1; s < ld->objects[o].nsections; s++)
			count += is_eh_frame(&ld->objects[o].sections[s]) &&
				 ld->objects[o].sections[s].region != REGION_NONE;
	if (!count)
		return 0;
	m->eh_frames = calloc(count, sizeof(*m->eh_frames));
	if (!m->eh_frames)
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		const struct mod_object *obj = &ld->objects[o];
		for (uint32_t s = 1; s < obj->nsections; s++) {
			const struct mod_section *sec = &obj->sections[s];
			if (!is_eh_frame(sec) || sec->region == REGION_NONE)
				continue;
			const void *table = (const void *)section_address(ld, sec);
			int err = execmem_unwind_register(table, sec->size + 4);
			if (err == -ENOTSUP)
				return 0;
			if (err)
				return mod_error(err == -EINVAL ? ENOEXEC : -err,
						 "%s: section %s: cannot register the unwind table: %s",
						 obj->name, sec->name, strerror(-err));
			m->eh_frames[m->neh_frames++] = table;
		}
	}
	return 0;
}

/* Constructors run with the module's ro_after_init data still writable;
 * sealing it afterwards is what makes it read-only. */
static int run_constructors_and_seal(struct load *ld, void (**ctors)(void), uint32_t nctors)
{
	struct execmem_module *m = ld->module;

	if (!(ld->flags & EXECMEM_MODULE_LINK_ONLY))
		for (uint32_t i = 0; i < nctors; i++)
			ctors[i]();
	int err = 0;
	for (uint32_t i = 0; i < m->nblocks && !err; i++)
		if (m->blocks[i].region == REGION_ROAI)
			err = execmem_seal(m->blocks[i].alloc);
	if (err)
		mod_run_destructors(m);
	return err ? mod_error(-err, "%s: sealing .data..ro_after_init failed: %s", ld->name,
			       strerror(-err)) : 0;
}

/* The caller's check, with the module described but nothing of it run. */
static int check_before_constructors(struct load *ld)
{
	int err = ld->options->check(ld->module, ld->options->check_context);
	if (err > 0 || err < -4095)
		err = -EINVAL;
	return err ? mod_error(-err, "%s: refused by the caller's check (%s)", ld->name,
			       strerror(-err)) : 0;
}

int load_publish(struct load *ld)
{
	struct execmem_module *m = ld->module;
	void (**ctors)(void) = NULL;
	uint32_t nctors = 0;

	if (ld->dso_handle_entry)
		m->dso_handle = ld->globals.entries[ld->dso_handle_entry - 1].address;
	int err = describe_module(ld);
	if (!err)
		err = collect_functions(ld, &ld->ctors, &ctors, &nctors);
	if (!err)
		err = collect_functions(ld, &ld->dtors, &m->fini, &m->nfini);
	if (!err) {
		reverse_functions(m->fini, m->nfini);
		err = load_close_windows(ld);
	}
	if (!err && ld->options && ld->options->check)
		err = check_before_constructors(ld);
	if (!err)
		err = register_unwind_tables(ld);
	if (!err)
		err = run_constructors_and_seal(ld, ctors, nctors);
	free(ctors);
	if (!err) {
		mod_registry_lock();
		mod_registry_add(m);
		mod_registry_unlock();
		mod_observe_publish(ld);
	}
	return err;
}
