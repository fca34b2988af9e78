/*
 * fuzz_elf.c - libFuzzer entry point for the module loader's ELF and archive
 * parser, symbol merging and relocation engine, over a memory buffer.
 *
 * Loads run with EXECMEM_MODULE_LINK_ONLY, so no constructor of a fuzzed
 * object ever runs and aarch64 objects are relocated on any host too; every
 * undefined symbol resolves to a fixed address through the resolver, so
 * inputs reach relocation instead of stopping at "undefined symbol".  An
 * archive is loaded twice: whole, and with members selected through its
 * symbol index.  A load that succeeds is unloaded at once.  Build (the fuzz/CMakeLists.txt owner
 * does): clang -fsanitize=fuzzer,address,undefined with libexecmem.
 * Seeds: fuzz/corpus_elf/ (small x86-64 and aarch64 objects and an archive).
 */
#include <stddef.h>
#include <stdint.h>

#include "execmem/module.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char imported[4096];

static void *resolve_anything(const char *name, void *context)
{
	(void)context;
	return imported + ((unsigned char)name[0] % 64) * 16;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct execmem_module_options options;
	struct execmem_module *module = NULL;

	execmem_module_options_init(&options);
	options.flags = EXECMEM_MODULE_LINK_ONLY | EXECMEM_MODULE_NO_EXPORT |
			EXECMEM_MODULE_NO_HOST_SYMBOLS;
	options.resolver = resolve_anything;
	if (execmem_module_load_buffer(data, size, "fuzz.o", &options, &module) == 0)
		execmem_module_unload(module);
	/* An archive again, linked as a linker would: its symbol index, and the
	 * members the seed's symbols pull in. */
	static const char *const wanted[] = { "seed", "seed2", "main", NULL };
	const struct execmem_module_input input = {
		.kind = EXECMEM_MODULE_INPUT_BUFFER, .data = data, .size = size, .name = "fuzz.a",
	};
	options.require = wanted;
	if (size >= 8 && data[0] == '!' && execmem_module_load(&input, 1, &options, &module) == 0)
		execmem_module_unload(module);
	return 0;
}
