/*
 * load.c - turn parsed objects into a running module.
 *
 *   1. select     parse the objects, and the archive members they need
 *   2. classify   give each allocated section a region (memory type), a
 *                 block of that region and an offset inside the block
 *   3. symbols    merge global symbols of all objects into one table;
 *                 COMMON symbols get space in the data region
 *   4. scan       check every relocation and count PLT stubs and GOT entries
 *   5. resolve    look imports up (resolver, earlier modules, host)
 *   6. place      allocate every block, all within reach of each other
 *   7. link       copy sections in through execmem write windows, relocate
 *   8. publish    close the windows, run constructors, seal
 *
 * Nothing is visible to other modules until the last step succeeds, and
 * every failure path frees what was made so far (see mod_load_inputs()).
 * Each stage is a file; see load_state.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "load_state.h"
#include "crt.h"
#include "load.h"
#include "unload.h"

static void free_load(struct load *ld)
{
	free(ld->objects);
	mod_pool_release(&ld->pool);
	mod_symtab_release(&ld->globals);
	free(ld->plt.items);
	free(ld->got.items);
	free(ld->stubs.items);
	free(ld->ctors.items);
	free(ld->dtors.items);
}

static int make_module(struct load *ld)
{
	ld->module = calloc(1, sizeof(*ld->module));
	if (!ld->module || !(ld->module->name = strdup(ld->name)))
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	ld->module->flags = ld->flags;
	return 0;
}

/* Registrations of the module's constructors with its __dso_handle are
 * the module's own from the first constructor on. */
static void attach_dso_handle(struct load *ld)
{
	if (!ld->dso_handle_entry || (ld->flags & EXECMEM_MODULE_LINK_ONLY))
		return;
	ld->module->dso_handle = ld->globals.entries[ld->dso_handle_entry - 1].address;
	mod_crt_attach(ld->module);
}

/* The time since *t goes to stage (selection's and relocation's own times
 * exclude the parsing and the copying they counted already); *t moves on. */
static void stage_done(struct load *ld, enum execmem_module_stage stage, uint64_t *t)
{
	uint64_t now = mod_now_ns(), spent = now - *t;
	if (stage == EXECMEM_MODULE_STAGE_SELECT)
		spent -= ld->stage_ns[EXECMEM_MODULE_STAGE_PARSE];
	if (stage == EXECMEM_MODULE_STAGE_RELOCATE)
		spent -= ld->stage_ns[EXECMEM_MODULE_STAGE_COPY];
	ld->stage_ns[stage] += spent;
	*t = now;
}

int mod_load_inputs(const struct mod_input *inputs, size_t ninputs, const char *name,
		    const struct execmem_module_options *options, struct execmem_module **out)
{
	struct load ld;

	memset(&ld, 0, sizeof(ld));
	ld.options = options;
	ld.flags = options ? options->flags : 0;
	ld.name = name;
	uint64_t t = mod_now_ns();
	int err = make_module(&ld);
	if (!err)
		err = load_select_objects(&ld, inputs, ninputs);
	stage_done(&ld, EXECMEM_MODULE_STAGE_SELECT, &t);
	if (!err) {
		ld.module->machine = ld.arch->machine;
		err = load_classify_sections(&ld);
	}
	if (!err)
		err = load_build_symbols(&ld);
	if (!err)
		err = load_allocate_commons(&ld);
	if (!err)
		err = load_scan_relocations(&ld);
	if (!err)
		err = load_reserve_plt_got(&ld);
	stage_done(&ld, EXECMEM_MODULE_STAGE_LAYOUT, &t);
	if (!err)
		err = load_resolve_imports(&ld);
	stage_done(&ld, EXECMEM_MODULE_STAGE_RESOLVE, &t);
	if (!err)
		err = load_place_blocks(&ld);
	if (!err)
		err = load_compute_addresses(&ld);
	stage_done(&ld, EXECMEM_MODULE_STAGE_PLACE, &t);
	if (!err)
		err = load_open_windows(&ld);
	if (!err)
		err = load_apply_relocations(&ld);
	if (!err)
		load_write_plt_and_got(&ld);
	stage_done(&ld, EXECMEM_MODULE_STAGE_RELOCATE, &t);
	if (!err) {
		attach_dso_handle(&ld);
		err = load_publish(&ld);
	}
	stage_done(&ld, EXECMEM_MODULE_STAGE_PUBLISH, &t);
	if (!err)
		memcpy(ld.module->load_ns, ld.stage_ns, sizeof(ld.stage_ns));
	if (!err) {
		*out = ld.module;
	} else if (ld.module) {       /* undo everything: windows, references, memory */
		mod_crt_detach(ld.module);
		load_close_windows(&ld);
		mod_drop_dependencies(ld.module);
		mod_release_memory(ld.module);
	}
	free_load(&ld);
	return err;
}
