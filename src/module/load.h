/*
 * load.h - one load, from the opened inputs to a running module (load.c).
 */
#ifndef EXECMEM_MODULE_LOAD_H
#define EXECMEM_MODULE_LOAD_H

#include "input.h"

/* The loader proper: link the inputs into a module named name. */
MOD_HIDDEN int mod_load_inputs(const struct mod_input *inputs, size_t ninputs, const char *name,
			       const struct execmem_module_options *options,
			       struct execmem_module **out);

#endif
