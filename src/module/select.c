/*
 * select.c - stage 1 of a load: pick the objects to link, as a static
 * linker does.  Objects and --whole-archive archives are linked whole.  A
 * member of any other archive is linked when it defines a symbol that the
 * objects picked so far reference and none defines; its own references may
 * need more members, of any archive, so the archives are searched again
 * until a pass adds nothing (as if they were all in one ld --start-group).
 * A weak reference pulls nothing in, as with ld.  The loader's C runtime
 * object (crt.c) is searched last, like libc_nonshared.a after the inputs.
 *
 * An archive's symbol index tells which member defines what without
 * parsing any member; an archive without one is searched through the
 * symbol tables of its members, all parsed up front.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "load_state.h"
#include "archive.h"
#include "crt.h"
#include "reloc.h"

/* A symbol some member of an archive defines. */
struct offer {
	const char *name;
	uint32_t hash;                /* mod_hash_name(name): each pass looks it up */
	uint32_t member;
};

struct archive {
	const char *name;
	struct mod_member *members;
	size_t nmembers;
	uint8_t *taken;               /* per member */
	struct mod_object *parsed;    /* without an index: every member, parsed */
	struct offer *offers;
	size_t noffers;
};

struct selection {
	struct load *ld;
	struct archive *archives;
	size_t narchives;
	struct mod_symtab names;      /* defined, or referenced strongly / weakly only */
};

static int is_global_name(const struct mod_symbol *sym)
{
	return (sym->bind == STB_GLOBAL || sym->bind == STB_WEAK || sym->bind == STB_GNU_UNIQUE) &&
	       sym->name[0] != '\0';
}

/*
 * Note what object o defines and references.  ENTRY_UNDEFINED entries with
 * weak set are referenced only weakly.  Each global symbol's entry index
 * goes to obj->entry (-1 for the others), and each entry remembers the
 * first object symbol naming it (symbol 0: only required, named by none),
 * so that the module's table is made from this one without a lookup.
 */
static int note_symbols(struct selection *sel, uint32_t o)
{
	struct mod_object *obj = &sel->ld->objects[o];
	obj->entry = mod_pool_alloc(&sel->ld->pool, obj->nsymbols * sizeof(*obj->entry));
	if (!obj->entry)
		return mod_error(ENOMEM, "%s: out of memory for symbols", sel->ld->name);
	obj->entry[0] = -1;
	for (uint32_t i = 1; i < obj->nsymbols; i++) {
		const struct mod_symbol *sym = &obj->symbols[i];
		int created;
		obj->entry[i] = -1;
		if (!is_global_name(sym))
			continue;
		int32_t index = mod_symtab_intern_hashed(&sel->names, sym->name, sym->hash, &created);
		if (index < 0)
			return mod_error(ENOMEM, "%s: out of memory for symbols", sel->ld->name);
		obj->entry[i] = index;
		struct mod_entry *e = &sel->names.entries[index];
		if (!e->symbol) {
			e->object = o;
			e->symbol = i;
		}
		if (sym->shndx != SHN_UNDEF)
			e->state = ENTRY_DEFINED;
		else if (created)
			e->weak = sym->bind == STB_WEAK;
		else if (sym->bind != STB_WEAK)
			e->weak = 0;
	}
	return 0;
}

/* Append a parsed object to the load (it takes over obj's arrays). */
static int link_object(struct selection *sel, const struct mod_object *obj)
{
	struct load *ld = sel->ld;
	struct mod_object *n = NULL;
	int err = 0;

	if (ld->nobjects >= MOD_MAX_MEMBERS)
		err = mod_error(ENOEXEC, "%s: more than %d objects to link", ld->name,
				MOD_MAX_MEMBERS);
	else if (!(n = mod_grow(ld->objects, ld->nobjects, &ld->objects_capacity, sizeof(*n), 8)))
		err = mod_error(ENOMEM, "%s: out of memory", ld->name);
	if (err)
		return err;
	ld->objects = n;
	ld->objects[ld->nobjects] = *obj;
	return note_symbols(sel, ld->nobjects++);
}

static int timed_parse(struct selection *sel, struct mod_object *obj, const uint8_t *image,
		       size_t size, const char *name)
{
	uint64_t start = mod_now_ns();
	int err = mod_object_parse(obj, image, size, name, &sel->ld->pool);
	sel->ld->stage_ns[EXECMEM_MODULE_STAGE_PARSE] += mod_now_ns() - start;
	return err;
}

static int parse_and_link(struct selection *sel, const uint8_t *image, size_t size,
			  const char *name)
{
	struct mod_object obj;
	int err = timed_parse(sel, &obj, image, size, name);
	return err ? err : link_object(sel, &obj);
}

/* "archive(member)", kept with the load: objects and messages point to it. */
static const char *member_name(struct selection *sel, const struct archive *a, uint32_t m)
{
	/* Put together by hand: printf's machinery cost more than the rest of
	 * taking a small member. */
	size_t archive = strlen(a->name), member = a->members[m].name_len;
	char *name = mod_pool_alloc(&sel->ld->pool, archive + member + 3);
	if (!name)
		return NULL;
	memcpy(name, a->name, archive);
	name[archive] = '(';
	mod_member_name(name + archive + 1, &a->members[m]);
	memcpy(name + archive + 1 + member, ")", 2);
	return name;
}

static int take_member(struct selection *sel, struct archive *a, uint32_t m)
{
	a->taken[m] = 1;
	if (a->parsed)
		return link_object(sel, &a->parsed[m]);
	const char *name = member_name(sel, a, m);
	if (!name)
		return mod_error(ENOMEM, "%s: out of memory", sel->ld->name);
	return parse_and_link(sel, a->members[m].data, a->members[m].size, name);
}

/* Member index of the member whose header is at offset, or -1. */
static int64_t member_at(const struct archive *a, size_t offset)
{
	size_t lo = 0, hi = a->nmembers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a->members[mid].header_offset == offset)
			return (int64_t)mid;
		if (a->members[mid].header_offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static struct offer make_offer(const char *name, uint32_t member)
{
	return (struct offer){ name, mod_hash_name(name), member };
}

static int offers_from_index(struct archive *a, const struct mod_input *in)
{
	struct mod_archive_symbol *index;
	size_t count;
	int err = mod_archive_index(in->image, in->size, a->name, &index, &count);
	if (err || count == 0) {
		free(index);    /* an empty index: the members' symbols are searched */
		return err;
	}
	a->offers = calloc(count, sizeof(*a->offers));
	if (!a->offers) {
		free(index);
		return mod_error(ENOMEM, "%s: out of memory", a->name);
	}
	for (size_t i = 0; i < count; i++) {
		int64_t m = member_at(a, index[i].header_offset);
		if (m < 0) {
			err = mod_error(ENOEXEC, "%s: malformed archive: the symbol index names "
					"'%s' in a member at offset %zu, where there is none",
					a->name, index[i].name, index[i].header_offset);
			free(index);
			return err;
		}
		a->offers[a->noffers++] = make_offer(index[i].name, (uint32_t)m);
	}
	free(index);
	return 0;
}

/* Without an index: parse every member and offer what each defines. */
static int offers_from_members(struct selection *sel, struct archive *a)
{
	size_t total = 0;

	a->parsed = calloc(a->nmembers, sizeof(*a->parsed));
	if (!a->parsed)
		return mod_error(ENOMEM, "%s: out of memory", a->name);
	for (uint32_t m = 0; m < a->nmembers; m++) {
		const char *name = member_name(sel, a, m);
		if (!name)
			return mod_error(ENOMEM, "%s: out of memory", a->name);
		int err = timed_parse(sel, &a->parsed[m], a->members[m].data, a->members[m].size,
				      name);
		if (err)
			return err;
		total += a->parsed[m].nsymbols;
	}
	a->offers = calloc(total ? total : 1, sizeof(*a->offers));
	if (!a->offers)
		return mod_error(ENOMEM, "%s: out of memory", a->name);
	for (uint32_t m = 0; m < a->nmembers; m++)
		for (uint32_t i = 1; i < a->parsed[m].nsymbols; i++) {
			const struct mod_symbol *sym = &a->parsed[m].symbols[i];
			if (is_global_name(sym) && sym->shndx != SHN_UNDEF)
				a->offers[a->noffers++] = make_offer(sym->name, m);
		}
	return 0;
}

static int add_archive(struct selection *sel, const struct mod_input *in, struct archive *a)
{
	a->name = in->name;
	int err = mod_archive_members(in->image, in->size, in->name, &a->members, &a->nmembers);
	if (err)
		return err;
	a->taken = calloc(a->nmembers, 1);
	if (!a->taken)
		return mod_error(ENOMEM, "%s: out of memory", a->name);
	if (in->whole_archive) {
		for (uint32_t m = 0; m < a->nmembers && !err; m++)
			err = take_member(sel, a, m);
		return err;
	}
	err = offers_from_index(a, in);
	if (!err && !a->offers)
		err = offers_from_members(sel, a);
	return err;
}

static void release_archive(struct archive *a)
{
	free(a->parsed);
	free(a->offers);
	free(a->taken);
	free(a->members);
}

/* What a pass does with an offer, by one lookup of its name. */
enum offer_use { OFFER_KEEP, OFFER_TAKE, OFFER_SPENT };

/* Spent: no later pass can take it, as its member is linked or its symbol
 * defined (a definition stays).  Taken: its symbol is undefined and
 * referenced strongly. */
static enum offer_use use_of(const struct selection *sel, const struct archive *a,
			     const struct offer *o)
{
	if (a->taken[o->member])
		return OFFER_SPENT;
	int32_t i = mod_symtab_find_hashed(&sel->names, o->name, o->hash);
	if (i < 0)
		return OFFER_KEEP;
	const struct mod_entry *e = &sel->names.entries[i];
	if (e->state != ENTRY_UNDEFINED)
		return OFFER_SPENT;
	return e->weak ? OFFER_KEEP : OFFER_TAKE;
}

/*
 * One pass over every archive; *added counts the members taken.  The
 * offers no later pass can take are dropped on the way (one that is spent
 * only by a member taken later in the pass goes in the next).
 */
static int search_archives(struct selection *sel, size_t *added)
{
	for (size_t i = 0; i < sel->narchives; i++) {
		struct archive *a = &sel->archives[i];
		size_t kept = 0;
		for (size_t k = 0; k < a->noffers; k++) {
			const struct offer o = a->offers[k];
			enum offer_use use = use_of(sel, a, &o);
			if (use == OFFER_KEEP)
				a->offers[kept++] = o;
			if (use != OFFER_TAKE)
				continue;
			int err = take_member(sel, a, o.member);
			if (err)
				return err;
			++*added;
		}
		a->noffers = kept;
	}
	return 0;
}

/* The loader's C runtime object, searched after the inputs; only for
 * modules of the machine it was built for. */
static int add_crt_archive(struct selection *sel, struct archive *a)
{
	size_t size;
	const uint8_t *image = mod_crt_object(&size);
	struct load *ld = sel->ld;

	if (!image || ld->nobjects == 0 || ld->objects[0].machine != mod_host_machine())
		return 0;
	a->name = "<execmem C runtime>";
	a->members = calloc(1, sizeof(*a->members));
	a->taken = calloc(1, 1);
	if (!a->members || !a->taken)
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	a->nmembers = 1;
	a->members[0].data = image;
	a->members[0].size = size;
	a->members[0].name = "nonshared.o";
	a->members[0].name_len = strlen("nonshared.o");
	sel->narchives++;
	return offers_from_members(sel, a);
}

static int require_symbols(struct selection *sel)
{
	const struct execmem_module_options *opt = sel->ld->options;
	for (size_t i = 0; opt && opt->require && opt->require[i]; i++) {
		int created;
		if (mod_symtab_intern(&sel->names, opt->require[i], &created) < 0)
			return mod_error(ENOMEM, "%s: out of memory for symbols", sel->ld->name);
	}
	return 0;
}

static int check_machines(const struct load *ld)
{
	if (ld->nobjects == 0)
		return mod_error(ENOEXEC, "%s: nothing to link: no object, and no archive member "
				 "defines a symbol that is needed", ld->name);
	uint16_t machine = ld->objects[0].machine;
	for (uint32_t i = 1; i < ld->nobjects; i++)
		if (ld->objects[i].machine != machine)
			return mod_error(ENOEXEC, "%s: %s is built for %s, %s for %s", ld->name,
					 ld->objects[0].name, mod_arch_for(machine)->name,
					 ld->objects[i].name,
					 mod_arch_for(ld->objects[i].machine)->name);
	if (machine != mod_host_machine() && !(ld->flags & EXECMEM_MODULE_LINK_ONLY))
		return mod_error(ENOEXEC, "%s: built for %s, which this process cannot run",
				 ld->name, mod_arch_for(machine)->name);
	return 0;
}

static int select_all(struct selection *sel, const struct mod_input *inputs, size_t ninputs)
{
	int err = require_symbols(sel);

	for (size_t i = 0; i < ninputs && !err; i++) {
		const struct mod_input *in = &inputs[i];
		if (mod_is_archive(in->image, in->size))
			err = add_archive(sel, in, &sel->archives[sel->narchives++]);
		else
			err = parse_and_link(sel, in->image, in->size, in->name);
	}
	if (!err)
		err = add_crt_archive(sel, &sel->archives[sel->narchives]);
	for (size_t added = 1; added && !err;) {
		added = 0;
		err = search_archives(sel, &added);
	}
	return err ? err : check_machines(sel->ld);
}

/* A first size for the table of names: objects have about one global
 * name per 512 bytes of file (libcrypto.a's members one per 450), and
 * growing the table from a few dozen entries moved it a dozen times. */
static uint32_t expected_names(const struct mod_input *inputs, size_t ninputs)
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < ninputs; i++)
		bytes += inputs[i].size;
	return bytes / 512 < MOD_MAX_SYMBOLS / 2 ? (uint32_t)(bytes / 512) : MOD_MAX_SYMBOLS / 2;
}

/*
 * The module's table of global names: selection's, in the same order
 * (first named first, object by object), without the names that only
 * `require` asked for.  Each entry starts undefined, weak until a strong
 * reference or definition says otherwise (load_build_symbols()), with the
 * first object symbol naming it; the objects' entry indices are renumbered.
 */
static int make_globals(struct selection *sel)
{
	struct load *ld = sel->ld;
	int32_t *renumbered = malloc((sel->names.count ? sel->names.count : 1) * sizeof(*renumbered));
	if (!renumbered || mod_symtab_init(&ld->globals, sel->names.count + 16)) {
		free(renumbered);
		return mod_error(ENOMEM, "%s: out of memory for symbols", ld->name);
	}
	for (uint32_t i = 0; i < sel->names.count; i++) {
		const struct mod_entry *from = &sel->names.entries[i];
		renumbered[i] = -1;
		if (!from->symbol)
			continue;
		/* Sized to hold them all: appending never grows the table. */
		renumbered[i] = mod_symtab_append(&ld->globals, from->name, from->hash);
		struct mod_entry *e = &ld->globals.entries[renumbered[i]];
		e->state = ENTRY_UNDEFINED;
		e->weak = 1;
		e->object = from->object;
		e->symbol = from->symbol;
	}
	for (uint32_t o = 0; o < ld->nobjects; o++)
		for (uint32_t i = 1; i < ld->objects[o].nsymbols; i++)
			if (ld->objects[o].entry[i] >= 0)
				ld->objects[o].entry[i] = renumbered[ld->objects[o].entry[i]];
	free(renumbered);
	return 0;
}

int load_select_objects(struct load *ld, const struct mod_input *inputs, size_t ninputs)
{
	struct selection sel = { .ld = ld };

	/* One more archive than inputs: the C runtime's. */
	sel.archives = calloc(ninputs + 1, sizeof(*sel.archives));
	if (!sel.archives || mod_symtab_init(&sel.names, expected_names(inputs, ninputs))) {
		free(sel.archives);
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	}
	int err = select_all(&sel, inputs, ninputs);
	if (!err)
		err = make_globals(&sel);
	for (size_t i = 0; i < ninputs + 1; i++)
		release_archive(&sel.archives[i]);
	free(sel.archives);
	mod_symtab_release(&sel.names);
	if (!err)
		ld->arch = mod_arch_for(ld->objects[0].machine);
	return err;
}
