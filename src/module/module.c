/*
 * module.c - the public module API: loading from inputs, a file, a
 * descriptor or a buffer, lookups, iteration, unloading, and the per-thread
 * error message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "module_internal.h"
#include "observe/observe.h"

static __thread char last_error[512];

int mod_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return -err;
}

void mod_clear_error(void)
{
	last_error[0] = '\0';
}

uint64_t mod_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *mod_grow(void *items, size_t count, size_t *capacity, size_t item_size, size_t first)
{
	if (count < *capacity)
		return items;
	size_t ncap = *capacity ? *capacity * 2 : first;
	void *n = realloc(items, ncap * item_size);
	if (n)
		*capacity = ncap;
	return n;
}

const char *execmem_module_last_error(void)
{
	return last_error;
}

void execmem_module_options_init(struct execmem_module_options *options)
{
	if (options)
		memset(options, 0, sizeof(*options));
}

const char *mod_type_name(enum execmem_type type)
{
	switch (type) {
	case EXECMEM_CODE:          return "code";
	case EXECMEM_CODE_NEAR:     return "code_near";
	case EXECMEM_DATA:          return "data";
	case EXECMEM_RODATA:        return "rodata";
	case EXECMEM_RO_AFTER_INIT: return "ro_after_init";
	default:                    return "absolute";
	}
}

const char *execmem_module_type_name(enum execmem_type type)
{
	return mod_type_name(type);
}

/* The cheapest call that fails for a destroyed arena, before any work. */
static int check_options(const struct execmem_module_options *options)
{
	struct execmem_range ranges[EXECMEM_TYPE_MAX];

	if (options && options->arena && execmem_get_ranges(options->arena, ranges) != 0)
		return mod_error(EINVAL, "options.arena is an arena that was destroyed");
	return 0;
}

int execmem_module_load(const struct execmem_module_input *inputs, size_t ninputs,
			const struct execmem_module_options *options, struct execmem_module **out)
{
	struct mod_input *opened;

	mod_clear_error();
	if (out)
		*out = NULL;
	if (!out)
		return mod_error(EINVAL, "NULL argument");
	int err = check_options(options);
	uint64_t start = mod_now_ns();
	if (!err)
		err = mod_open_inputs(inputs, ninputs, &opened);
	if (err)
		return err;
	uint64_t opened_at = mod_now_ns();
	const char *name = options && options->name ? options->name : opened[0].name;
	err = mod_load_inputs(opened, ninputs, name, options, out);
	uint64_t closing_at = mod_now_ns();
	mod_close_inputs(opened, ninputs);
	if (!err)
		(*out)->load_ns[EXECMEM_MODULE_STAGE_READ] =
			(opened_at - start) + (mod_now_ns() - closing_at);
	return err;
}

/* The single-input calls link every member of an archive, as they always did. */
static int load_one(const struct execmem_module_input *input,
		    const struct execmem_module_options *options, struct execmem_module **out)
{
	return execmem_module_load(input, 1, options, out);
}

int execmem_module_load_buffer(const void *data, size_t size, const char *name,
			       const struct execmem_module_options *options,
			       struct execmem_module **out)
{
	const struct execmem_module_input input = {
		.kind = EXECMEM_MODULE_INPUT_BUFFER, .data = data, .size = size, .name = name,
		.flags = EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE,
	};
	return load_one(&input, options, out);
}

int execmem_module_load_file(const char *path, const struct execmem_module_options *options,
			     struct execmem_module **out)
{
	const struct execmem_module_input input = {
		.kind = EXECMEM_MODULE_INPUT_FILE, .path = path,
		.flags = EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE,
	};
	return load_one(&input, options, out);
}

int execmem_module_load_fd(int fd, const char *name, const struct execmem_module_options *options,
			   struct execmem_module **out)
{
	const struct execmem_module_input input = {
		.kind = EXECMEM_MODULE_INPUT_FD, .fd = fd, .name = name,
		.flags = EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE,
	};
	return load_one(&input, options, out);
}

/* With the registry lock held: a loaded module that uses module, or NULL. */
static const struct execmem_module *find_user(const struct execmem_module *module)
{
	for (const struct execmem_module *m = module->next; m; m = m->next)
		for (uint32_t i = 0; i < m->ndeps; i++)
			if (m->deps[i] == module)
				return m;
	return NULL;
}

/*
 * Destructors, in the order a shared library's run at dlclose(): the
 * .fini_array/.dtors functions, then (as crtbegin.o's would) the functions
 * registered with atexit() or __cxa_atexit() for the module's __dso_handle:
 * C++ static destructors and atexit().
 */
void mod_run_destructors(struct execmem_module *module)
{
	if (module->flags & EXECMEM_MODULE_LINK_ONLY)
		return;
	for (uint32_t i = 0; i < module->nfini; i++)
		module->fini[i]();
	mod_crt_finalize(module);
}

void mod_drop_dependencies(struct execmem_module *module)
{
	mod_registry_lock();
	for (uint32_t i = 0; i < module->ndeps; i++)
		module->deps[i]->users--;
	mod_registry_unlock();
	free(module->deps);
	module->deps = NULL;
	module->ndeps = 0;
}

void mod_release_memory(struct execmem_module *module)
{
	mod_unregister_unwind_tables(module);
	for (uint32_t b = 0; b < module->nblocks; b++)
		if (module->blocks[b].alloc)
			execmem_free(module->blocks[b].alloc);
	free(module->blocks);
	free(module->exports);
	free(module->export_slots);
	free(module->sections);
	free(module->fini);
	free(module->strings);
	free(module->name);
	free(module->deps);
	free(module);
}

int execmem_module_unload(struct execmem_module *module)
{
	mod_clear_error();
	if (!module)
		return mod_error(EINVAL, "NULL module");
	mod_registry_lock();
	if (module->users) {
		const struct execmem_module *user = find_user(module);
		int err = mod_error(EBUSY, "%s: still used by module %s", module->name,
				    user ? user->name : "(unknown)");
		mod_registry_unlock();
		return err;
	}
	mod_registry_remove(module);
	mod_registry_unlock();
	mod_run_destructors(module);
	mod_drop_dependencies(module);
	mod_observe_unload(module);
	mod_release_memory(module);
	return 0;
}

void *execmem_module_symbol(const struct execmem_module *module, const char *name)
{
	if (!module || !name)
		return NULL;
	const struct mod_export *e = mod_find_export(module, name);
	return e ? (void *)e->address : NULL;
}

const char *execmem_module_name(const struct execmem_module *module)
{
	return module ? module->name : NULL;
}

int execmem_module_foreach_symbol(const struct execmem_module *module,
				  int (*fn)(const struct execmem_module_symbol_info *, void *),
				  void *context)
{
	if (!module || !fn)
		return mod_error(EINVAL, "NULL argument");
	for (uint32_t i = 0; i < module->nexports; i++) {
		const struct mod_export *e = &module->exports[i];
		struct execmem_module_symbol_info info = {
			.name = e->name, .address = (void *)e->address, .size = e->size,
			.type = (enum execmem_type)e->type, .is_function = e->is_function,
			.is_exported = e->is_exported && !(module->flags & EXECMEM_MODULE_NO_EXPORT),
		};
		int ret = fn(&info, context);
		if (ret)
			return ret;
	}
	return 0;
}

int execmem_module_foreach_section(const struct execmem_module *module,
				   int (*fn)(const struct execmem_module_section_info *, void *),
				   void *context)
{
	if (!module || !fn)
		return mod_error(EINVAL, "NULL argument");
	for (uint32_t i = 0; i < module->nsections; i++) {
		const struct mod_placed_section *s = &module->sections[i];
		struct execmem_module_section_info info = {
			.name = s->name, .object = s->object, .address = (void *)s->address,
			.size = s->size, .type = (enum execmem_type)s->type,
		};
		int ret = fn(&info, context);
		if (ret)
			return ret;
	}
	return 0;
}

int execmem_module_stats(const struct execmem_module *module, struct execmem_module_stats *out)
{
	if (!module || !out)
		return mod_error(EINVAL, "NULL argument");
	*out = module->stats;
	return 0;
}

int execmem_module_load_times(const struct execmem_module *module, uint64_t *ns, size_t count)
{
	if (!module || (!ns && count))
		return mod_error(EINVAL, "NULL argument");
	if (count > EXECMEM_MODULE_STAGES)
		count = EXECMEM_MODULE_STAGES;
	if (count)
		memcpy(ns, module->load_ns, count * sizeof(*ns));
	return (int)count;
}
