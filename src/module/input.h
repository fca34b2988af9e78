/*
 * input.h - the inputs of a load, their bytes in memory.
 */
#ifndef EXECMEM_MODULE_INPUT_H
#define EXECMEM_MODULE_INPUT_H

#include "common.h"

/* One input of a load, its bytes in memory (see input.c). */
struct mod_input {
	const uint8_t *image;
	size_t size;
	const char *name;
	int whole_archive;
	void *mapping;                /* what input.c mapped or read, to give back */
	size_t mapping_size;
	int mapping_is_heap;
	char default_name[32];        /* "<fd N>" */
};
/* Read or map the inputs; on failure nothing is left open.  0 or -errno. */
MOD_HIDDEN int mod_open_inputs(const struct execmem_module_input *inputs, size_t ninputs,
			       struct mod_input **out);
MOD_HIDDEN void mod_close_inputs(struct mod_input *inputs, size_t ninputs);

#endif
