/*
 * relocate.c - stage 7 of a load: once the blocks are placed, compute the
 * final addresses, copy the sections in through write windows, apply the
 * relocations and fill the PLT and GOT.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rela.h"
#include "reloc.h"
#include "reloc_engine.h"
#include "registry.h"

static int symbol_address(struct load *ld, struct mod_object *obj, uint32_t i, uintptr_t *out)
{
	const struct mod_symbol *sym = &obj->symbols[i];

	if (sym->shndx == SHN_ABS) {
		*out = sym->value;
		return 0;
	}
	const struct mod_section *sec = &obj->sections[sym->shndx];
	if (sec->region == REGION_NONE) {
		*out = 0;       /* only an error if a loaded section refers to it */
		return 0;
	}
	if (sym->value > sec->size)
		return mod_error(ENOEXEC, "%s: symbol '%s' lies outside its section %s", obj->name,
				 sym->name, sec->name);
	*out = section_address(ld, sec) + sym->value;
	return 0;
}

/* Final addresses: definitions first, then every object's view of them. */
int load_compute_addresses(struct load *ld)
{
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		struct mod_object *obj = &ld->objects[o];
		for (uint32_t i = 1; i < obj->nsymbols; i++) {
			uint32_t shndx = obj->symbols[i].shndx;
			if (shndx == SHN_UNDEF || shndx == SHN_COMMON)
				continue;
			int err = symbol_address(ld, obj, i, &obj->address[i]);
			if (err)
				return err;
		}
	}
	for (uint32_t i = 0; i < ld->globals.count; i++) {
		struct mod_entry *e = &ld->globals.entries[i];
		if (e->state == ENTRY_DEFINED)
			e->address = ld->objects[e->object].address[e->symbol];
		else if (e->state == ENTRY_COMMON)
			e->address += ld->module->blocks[e->common_block].base;
		else if (is_got_symbol(e->name))
			e->address = got_base(ld);
	}
	for (uint32_t o = 0; o < ld->nobjects; o++) {
		struct mod_object *obj = &ld->objects[o];
		for (uint32_t i = 1; i < obj->nsymbols; i++)
			if (obj->entry[i] >= 0)
				obj->address[i] = ld->globals.entries[obj->entry[i]].address;
	}
	return 0;
}

/*
 * Open a write window on every block.  Execmem hands out code memory
 * filled with traps and data memory filled with zeros, so gaps and .bss
 * need no work, and linking in place saves a private copy of the whole
 * module.  Code stays unreachable until the windows close
 * (load_close_windows()), which publishes it.
 */
int load_open_windows(struct load *ld)
{
	struct execmem_module *m = ld->module;
	for (uint32_t i = 0; i < m->nblocks; i++) {
		struct mod_block *b = &m->blocks[i];
		uint8_t *w = execmem_write_begin(b->alloc);
		if (!w)
			return mod_error(errno ? errno : EIO, "%s: cannot write %s memory: %s",
					 ld->name, mod_type_name(b->type), strerror(errno));
		b->window = w;
		b->image = w + (b->base - (uintptr_t)b->alloc);
	}
	return 0;
}

/* Close the windows: the bytes become visible (and code executable). */
int load_close_windows(struct load *ld)
{
	int first = 0;
	for (uint32_t i = 0; i < ld->module->nblocks; i++) {
		struct mod_block *b = &ld->module->blocks[i];
		if (!b->window)
			continue;
		int err = execmem_write_end(b->alloc);
		b->window = NULL;
		b->image = NULL;
		if (err && !first)
			first = mod_error(-err, "%s: publishing %s memory failed: %s", ld->name,
					  mod_type_name(b->type), strerror(-err));
	}
	return first;
}

/* The dynamic symbol a host import resolved to, or NULL.  Asked only for
 * relocations that do not fit, which are rare, because dladdr1() is slow. */
static const ElfW(Sym) *host_symbol(const struct mod_entry *e)
{
	Dl_info info;
	const ElfW(Sym) *sym = NULL;
	if (!e->address || !dladdr1((void *)e->address, &info, (void **)&sym, RTLD_DL_SYMENT) ||
	    (uintptr_t)info.dli_saddr != e->address)
		return NULL;
	return sym;
}

/* The import's export, when an earlier module provides it. */
static const struct mod_export *module_export(const struct mod_entry *e)
{
	return e->provider ? mod_find_export(e->provider, e->name) : NULL;
}

static int import_is_function(const struct mod_entry *e)
{
	if (e->provider)
		return module_export(e) && module_export(e)->is_function;
	const ElfW(Sym) *sym = host_symbol(e);
	int type = sym ? ELF64_ST_TYPE(sym->st_info) : STT_NOTYPE;
	return type == STT_FUNC || type == STT_GNU_IFUNC;
}

/* Size of the import an out-of-reach load reads, or 0 when unknown. */
static uint64_t import_size(const struct mod_entry *e)
{
	if (e->provider)
		return module_export(e) ? module_export(e)->size : 0;
	const ElfW(Sym) *sym = host_symbol(e);
	return sym ? sym->st_size : 0;
}

/* The PLT stub a relocation may use instead of its symbol, or 0.  Branches
 * may always; a 32-bit absolute address of an import only if it is a
 * function (the stub then stands for it, as in non-PIE executables). */
static uintptr_t plt_stub_address(const struct load *ld, const struct mod_object *obj, uint32_t i,
				  const struct mod_howto *howto)
{
	int32_t entry = obj->entry[i];
	if (entry < 0 || ld->globals.entries[entry].plt_slot < 0)
		return 0;
	const struct mod_entry *e = &ld->globals.entries[entry];
	if (!(howto->flags & HOWTO_BRANCH) && (!(e->address >> 31) || !import_is_function(e)))
		return 0;
	return plt_base(ld) + (uint64_t)e->plt_slot * ld->arch->plt_size;
}

/* Why a relocation failed, with a hint for the usual cause. */
static int reloc_failure(const struct mod_object *obj,
			 const struct mod_section *target, const struct mod_howto *howto,
			 uint32_t symbol, uint64_t offset, uintptr_t S, const char *detail, int err)
{
	const char *hint = "";
	if (err == -ERANGE && obj->symbols[symbol].shndx == SHN_UNDEF)
		hint = "; build the module with -fPIC";
	return mod_error(-err, "%s: %s against '%s' (0x%llx) at %s+0x%llx: %s%s", obj->name,
			 howto->name, symbol_name(obj, symbol), (unsigned long long)S, target->name,
			 (unsigned long long)offset, detail ? detail : "failed", hint);
}

/*
 * What every relocation of one relocation section shares, read once per
 * section.  Kept in a local so that the compiler can hold it in registers:
 * stores into the module's bytes go through uint8_t pointers, which may
 * alias anything, and would otherwise force every field to be reloaded
 * from the load state after each relocation.
 */
struct reloc_pass {
	struct load *ld;
	struct mod_object *obj;
	const struct mod_section *target;
	const struct mod_howto *howtos;   /* checked by scan_one() (scan.c) */
	const uintptr_t *address;         /* final address of each symbol */
	const int32_t *got_slot;          /* GOT slot of each symbol (scan.c) */
	uintptr_t P0;                     /* final address of target */
	uint8_t *loc0;                    /* its bytes, writable */
	uint64_t size;                    /* its size */
	uintptr_t GOT;                    /* GOT base, or 0 */
	uint32_t rel_section;             /* index of the relocation section */
};

static int compare_site(const void *key, const void *item)
{
	const struct stub_site *a = key, *b = item;
	if (a->object != b->object)
		return a->object < b->object ? -1 : 1;
	if (a->section != b->section)
		return a->section < b->section ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

/* A pointer load out of reach: the instruction jumps to its load stub.
 * Only for an import known to be 8 bytes, which is what tells a REX.W
 * prefix from a byte of the previous instruction. */
static int apply_through_stub(const struct reloc_pass *rp, const Elf64_Rela *r, uint64_t index,
			      const struct mod_reloc_site *site)
{
	struct load *ld = rp->ld;
	int32_t entry = rp->obj->entry[ELF64_R_SYM(r->r_info)];
	struct stub_site key = { (uint32_t)(rp->obj - ld->objects), rp->rel_section, index };
	const struct stub_site *found = bsearch(&key, ld->stubs.items, ld->stubs.count,
						sizeof(key), compare_site);
	if (!found || entry < 0 || import_size(&ld->globals.entries[entry]) != 8)
		return -ERANGE;
	const struct mod_block *sb = &ld->module->blocks[ld->stub_block];
	uint64_t offset = ld->stub_offset +
			  (uint64_t)(found - ld->stubs.items) * ld->arch->load_stub_size;
	ld->arch->use_load_stub(rp->loc0, r->r_offset, site->P, (uint32_t)ELF64_R_TYPE(r->r_info),
				site->S + site->A, sb->image + offset, sb->base + offset);
	return 0;
}

/* A reference out of reach whose instruction may get there another way
 * (note_reach()): through the symbol's GOT entry or a load stub. */
static int apply_indirect(const struct reloc_pass *rp, const Elf64_Rela *r, uint64_t index,
			  struct mod_reloc_site *site, const char **detail)
{
	const struct mod_arch *arch = rp->ld->arch;
	int32_t slot = rp->got_slot ? rp->got_slot[ELF64_R_SYM(r->r_info)] : -1;
	int err;

	switch (indirect_form_of(rp->ld, rp->target, rp->loc0, r)) {
	case INDIRECT_GOT:
		if (slot < 0)
			return -ERANGE;
		site->G = rp->GOT + (uint64_t)slot * 8;
		err = reloc_engine_apply(&rp->howtos[arch->got_form_type], site, detail);
		if (!err)
			arch->use_got_form(rp->loc0, r->r_offset);
		return err;
	case INDIRECT_STUB:
		return apply_through_stub(rp, r, index, site);
	default:
		return -ERANGE;
	}
}

/* One relocation of the pass's section.  scan_one() has checked its type
 * and symbol. */
static int apply_one(const struct reloc_pass *rp, const Elf64_Rela *r, uint64_t index)
{
	uint32_t symbol = (uint32_t)ELF64_R_SYM(r->r_info);
	const struct mod_howto *howto = &rp->howtos[ELF64_R_TYPE(r->r_info)];
	const char *detail = NULL;

	if (r->r_offset > rp->size)
		return reloc_failure(rp->obj, rp->target, howto, symbol, r->r_offset, 0,
				     "offset outside the section", -EINVAL);
	struct mod_reloc_site site = {
		.S = rp->address[symbol],
		.A = (uint64_t)r->r_addend,
		.P = rp->P0 + r->r_offset,
		.GOT = rp->GOT,
		.loc = rp->loc0 + r->r_offset,
		.room = rp->size - r->r_offset,
	};
	if (howto->flags & HOWTO_GOT) {
		site.G = rp->GOT + (uint64_t)rp->got_slot[symbol] * 8;
		if (howto->value == VAL_GOT_PAGE && r->r_addend)
			return reloc_failure(rp->obj, rp->target, howto, symbol, r->r_offset, site.S,
					     "GOT relocation with a non-zero addend", -ENOTSUP);
	}
	int err = reloc_engine_apply(howto, &site, &detail);
	if (err == -ERANGE && !(howto->flags & HOWTO_BRANCH) &&
	    rp->obj->symbols[symbol].shndx == SHN_UNDEF) {
		err = apply_indirect(rp, r, index, &site, &detail);
		if (err == -ERANGE)
			detail = "value out of range (target out of reach)";
	}
	/* Out of reach: a branch (or a function address in a 32-bit field)
	 * may use the symbol's PLT stub, which lies near the module. */
	if (err == -ERANGE && (howto->flags & (HOWTO_BRANCH | HOWTO_LOW32))) {
		uintptr_t S = site.S;
		site.S = plt_stub_address(rp->ld, rp->obj, symbol, howto);
		if (site.S)
			err = reloc_engine_apply(howto, &site, &detail);
		site.S = S;
	}
	return err ? reloc_failure(rp->obj, rp->target, howto, symbol, r->r_offset, site.S,
				   detail, err) : 0;
}

/*
 * The relocation most code is full of, a 32-bit PC-relative word whose
 * value fits (x86-64 PC32 and PLT32 within reach, aarch64 PREL32), applied
 * without the general path's bookkeeping: the same value, the same bounds
 * and overflow checks.  Returns 1 when applied; anything else (another
 * kind, a bad offset, a value out of reach) is apply_one()'s.
 */
static inline int apply_pcrel32(const struct reloc_pass *rp, const Elf64_Rela *r)
{
	const struct mod_howto *howto = &rp->howtos[ELF64_R_TYPE(r->r_info)];
	if (howto->value != VAL_PCREL || howto->field != FIELD_S32 || rp->size < 4 ||
	    r->r_offset > rp->size - 4)
		return 0;
	uint64_t v = rp->address[ELF64_R_SYM(r->r_info)] + (uint64_t)r->r_addend -
		     (rp->P0 + r->r_offset);
	if (!fits_signed(v, 32))
		return 0;
	put_le(rp->loc0 + r->r_offset, v, 4);
	return 1;
}

static int apply_section(struct load *ld, struct mod_object *obj, const struct mod_section *rel,
			 const struct mod_section *target)
{
	const struct reloc_pass rp = {
		.ld = ld, .obj = obj, .target = target, .howtos = ld->arch->howtos,
		.address = obj->address, .got_slot = obj->got_slot, .P0 = section_address(ld, target),
		.loc0 = section_image(ld, target), .size = target->size, .GOT = got_base(ld),
		.rel_section = (uint32_t)(rel - obj->sections),
	};
	uint64_t n = rel->size / sizeof(Elf64_Rela);
	int unwind = is_eh_frame(target);
	for (uint64_t k = 0; k < n; k++) {
		Elf64_Rela r;
		read_rela(rel, k, &r);
		if (unwind && describes_discarded(obj, target, (uint32_t)ELF64_R_SYM(r.r_info)))
			continue;
		if (apply_pcrel32(&rp, &r))
			continue;
		int err = apply_one(&rp, &r, k);
		if (err)
			return err;
	}
	return 0;
}

static void copy_section(struct load *ld, struct mod_section *sec)
{
	if (sec->copied || sec->region == REGION_NONE || !sec->data || !sec->size)
		return;
	memcpy(section_image(ld, sec), sec->data, sec->size);
	sec->copied = 1;
}

/* Sections are copied in runs of about this many bytes, each run relocated
 * right after: small enough to stay in the cache, large enough that the
 * two clock reads timing a run's copy cost nothing beside it (one pair per
 * section cost 8% of a load of a thousand small sections). */
#define COPY_RUN_BYTES ((uint64_t)128 << 10)

/* A section of a load: section `section` of object `object`. */
struct section_at {
	uint32_t object, section;
};

static int before(struct section_at a, struct section_at b)
{
	return a.object < b.object || (a.object == b.object && a.section < b.section);
}

/* at, or the first section after it when the object has no more (section
 * 0 is the null one); at.object == nobjects past the last. */
static struct section_at existing(const struct load *ld, struct section_at at)
{
	while (at.object < ld->nobjects && at.section >= ld->objects[at.object].nsections)
		at = (struct section_at){ at.object + 1, 1 };
	return at;
}

static struct section_at next_section(const struct load *ld, struct section_at at)
{
	at.section++;
	return existing(ld, at);
}

/* Copy the sections from `from` on, and the sections their relocations
 * patch, until a run's worth of bytes is copied; where the run ends. */
static struct section_at copy_run(struct load *ld, struct section_at from)
{
	uint64_t start = mod_now_ns(), bytes = 0;
	struct section_at at = from;
	for (; at.object < ld->nobjects && bytes < COPY_RUN_BYTES; at = next_section(ld, at)) {
		struct mod_object *obj = &ld->objects[at.object];
		struct mod_section *sec = &obj->sections[at.section];
		uint32_t target = patched_section(obj, sec);
		copy_section(ld, sec);
		if (target)
			copy_section(ld, &obj->sections[target]);
		bytes += sec->size;
	}
	ld->stage_ns[EXECMEM_MODULE_STAGE_COPY] += mod_now_ns() - start;
	return at;
}

/*
 * Copy every loaded section in and apply the relocations of each run of
 * sections right after, while its bytes are still in the cache: a module's
 * code is larger than the cache, so copying all of it first and relocating
 * it afterwards read it back from memory.  A relocation section may come
 * before the section it patches; the run copies that section with it.
 */
int load_apply_relocations(struct load *ld)
{
	struct section_at at = existing(ld, (struct section_at){ 0, 1 });
	while (at.object < ld->nobjects) {
		struct section_at end = copy_run(ld, at);
		for (; before(at, end); at = next_section(ld, at)) {
			struct mod_object *obj = &ld->objects[at.object];
			struct mod_section *sec = &obj->sections[at.section];
			uint32_t target = patched_section(obj, sec);
			if (!target)
				continue;
			int err = apply_section(ld, obj, sec, &obj->sections[target]);
			if (err)
				return err;
		}
	}
	return 0;
}

static uintptr_t slot_target(const struct load *ld, const struct slot_owner *owner)
{
	if (owner->entry >= 0)
		return ld->globals.entries[owner->entry].address;
	return ld->objects[owner->object].address[owner->symbol];
}

void load_write_plt_and_got(struct load *ld)
{
	for (uint32_t i = 0; i < ld->plt.count; i++) {
		const struct mod_block *pb = &ld->module->blocks[ld->plt_block];
		uint64_t offset = ld->plt_offset + (uint64_t)i * ld->arch->plt_size;
		ld->arch->write_plt(pb->image + offset, pb->base + offset,
				    slot_target(ld, &ld->plt.items[i]));
	}
	for (uint32_t i = 0; i < ld->got.count; i++) {
		const struct mod_block *gb = &ld->module->blocks[ld->got_block];
		uint64_t value = slot_target(ld, &ld->got.items[i]);
		uint8_t *p = gb->image + ld->got_offset + (uint64_t)i * 8;
		for (int b = 0; b < 8; b++)
			p[b] = (uint8_t)(value >> (8 * b));
	}
}
