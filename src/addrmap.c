/*
 * addrmap.c - which chunk owns an address.  A three-level radix table keyed
 * by the 2 MiB slot number; every chunk and large mapping owns whole slots.
 * Lookups take no lock (the SIGSEGV guard of mprotect mode runs them too);
 * inner nodes are never freed, so a lookup racing with an update reads
 * either the old or the new owner, never freed memory.
 */
#include "internal.h"

#include <stdlib.h>

#define LEVEL_BITS 12
#define LEVEL_SIZE (1u << LEVEL_BITS)
#define SLOT_SHIFT 21 /* log2(EXECMEM_CHUNK_SIZE) */

struct node {
	void *entry[LEVEL_SIZE];
};

static struct node root;
static struct em_lock update_lock;

/*
 * The first two nodes are static too: zero without being written, and
 * resident only where lookups touch them, where a calloc()ed node is
 * written whole by the first chunk of the process (its 32 KiB, 8 page
 * faults on a fresh heap).  They cover every chunk within 8 GiB of it.
 */
static struct node first_nodes[2];
static unsigned first_nodes_used;

/* Under the update lock. */
static struct node *new_node(void)
{
	if (first_nodes_used < sizeof first_nodes / sizeof first_nodes[0])
		return &first_nodes[first_nodes_used++];
	return calloc(1, sizeof(struct node));
}

static unsigned level_index(uintptr_t slot, int level)
{
	return (unsigned)(slot >> (LEVEL_BITS * (2 - level))) & (LEVEL_SIZE - 1);
}

static int slot_of(uintptr_t addr, uintptr_t *slot)
{
	*slot = addr >> SLOT_SHIFT;
	return (*slot >> (3 * LEVEL_BITS)) == 0;
}

struct em_chunk *em_addrmap_get(const void *addr)
{
	uintptr_t slot;
	if (!slot_of((uintptr_t)addr, &slot))
		return NULL;
	struct node *n = &root;
	for (int level = 0; level < 2 && n; level++)
		n = __atomic_load_n((struct node **)&n->entry[level_index(slot, level)], __ATOMIC_ACQUIRE);
	return n ? __atomic_load_n((struct em_chunk **)&n->entry[level_index(slot, 2)], __ATOMIC_ACQUIRE) : NULL;
}

static int set_slot(uintptr_t slot, struct em_chunk *chunk)
{
	struct node *n = &root;
	for (int level = 0; level < 2; level++) {
		void **entry = &n->entry[level_index(slot, level)];
		struct node *next = *entry;
		if (!next) {
			if (!chunk)
				return 0;
			next = new_node();
			if (!next)
				return -ENOMEM;
			__atomic_store_n(entry, next, __ATOMIC_RELEASE);
		}
		n = next;
	}
	__atomic_store_n(&n->entry[level_index(slot, 2)], chunk, __ATOMIC_RELEASE);
	return 0;
}

int em_addrmap_set(uintptr_t base, size_t size, struct em_chunk *chunk)
{
	uintptr_t first, last;
	if (!slot_of(base, &first) || !slot_of(base + size - 1, &last))
		return -EINVAL;
	em_lock(&update_lock);
	int rc = 0;
	for (uintptr_t s = first; s <= last && !rc; s++)
		rc = set_slot(s, chunk);
	if (rc)
		for (uintptr_t s = first; s <= last; s++)
			set_slot(s, NULL);
	em_unlock(&update_lock);
	return rc;
}
