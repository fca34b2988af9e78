/*
 * blocks.c - room in a module's blocks: the layout reserves its sections
 * there, the relocation stage its PLT stubs, GOT entries and load stubs.
 */
#include <errno.h>
#include <string.h>
#include "load_state.h"

static const enum execmem_type region_type[REGION_COUNT] = {
	[REGION_TEXT] = EXECMEM_CODE_NEAR,
	[REGION_RODATA] = EXECMEM_RODATA,
	[REGION_DATA] = EXECMEM_DATA,
	[REGION_ROAI] = EXECMEM_RO_AFTER_INIT,
};

static int new_block(struct load *ld, int region, uint32_t *index)
{
	struct execmem_module *m = ld->module;
	struct mod_block *n = mod_grow(m->blocks, m->nblocks, &ld->blocks_capacity, sizeof(*n), 8);
	if (!n)
		return mod_error(ENOMEM, "%s: out of memory", ld->name);
	m->blocks = n;
	*index = m->nblocks++;
	memset(&m->blocks[*index], 0, sizeof(m->blocks[*index]));
	m->blocks[*index].region = region;
	m->blocks[*index].type = region_type[region];
	m->blocks[*index].align = 1;
	return 0;
}

/*
 * Reserve size bytes aligned to align in region: at the end of its open
 * block while that stays under MOD_BLOCK_TARGET, else in a new block.
 * Small blocks come from execmem's shared chunks, which stay mapped and
 * faulted in from one load to the next.
 */
int load_reserve(struct load *ld, int region, uint64_t size, uint64_t align,
		   uint32_t *block, uint64_t *offset)
{
	if (size > MOD_MAX_REGION || ld->total_size + size + align > MOD_MAX_REGION)
		return mod_error(EFBIG, "%s: more than %llu bytes to load", ld->name,
				 (unsigned long long)MOD_MAX_REGION);
	uint32_t open = ld->open_block[region];
	if (open) {
		struct mod_block *b = &ld->module->blocks[open - 1];
		uint64_t start = mod_align_up(b->size, align);
		if (b->size == 0 || start + size <= MOD_BLOCK_TARGET) {
			*block = open - 1;
			*offset = start;
			ld->total_size += start + size - b->size;
			b->size = start + size;
			if (align > b->align)
				b->align = align;
			return 0;
		}
	}
	int err = new_block(ld, region, block);
	if (err)
		return err;
	ld->open_block[region] = *block + 1;
	struct mod_block *b = &ld->module->blocks[*block];
	*offset = 0;
	b->size = size;
	b->align = align;
	ld->total_size += size;
	return 0;
}
