/*
 * symtab.c - the module-wide table of global symbols: every name defined or
 * referenced by any object of the module maps to one entry, so that all
 * objects share a definition, a PLT stub and a GOT entry.
 * Open addressing with linear probing over a power-of-two slot array kept
 * at most half full.  Each slot keeps the full hash of its name next to
 * the entry index, so a probe compares strings only when the hashes agree,
 * and growing the table never hashes a name again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "symtab.h"

/*
 * Eight bytes a step (a byte-wise hash was a tenth of a load: a module's
 * names are long and each is hashed when its object is parsed): each word
 * is mixed in by a multiplication, whose high bits the final steps fold
 * into the low bits that index the slots.  Reads only the name's bytes.
 */
/* The last len (< 8) bytes at p as one word: two 4-byte loads that may
 * overlap, or single bytes (a copy of variable length is a call). */
static uint64_t tail_word(const char *p, size_t len)
{
	uint32_t a, b;
	if (len >= 4) {
		memcpy(&a, p, 4);
		memcpy(&b, p + len - 4, 4);
		return (uint64_t)a << 32 | b;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

uint32_t mod_hash_name(const char *name)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	size_t len = strlen(name);
	uint64_t h = len * k;
	for (; len >= 8; len -= 8, name += 8) {
		uint64_t w;
		memcpy(&w, name, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	h = (h ^ tail_word(name, len)) * k;
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdull;
	return (uint32_t)(h ^ h >> 29);
}

static void put_slot(struct mod_symtab_slot *slots, uint32_t mask, uint32_t hash,
		     uint32_t index)
{
	uint32_t s = hash & mask;
	while (slots[s].index)
		s = (s + 1) & mask;
	slots[s] = (struct mod_symtab_slot){ hash, index + 1 };
}

static int make_slots(struct mod_symtab *table, uint32_t capacity)
{
	uint32_t nslots = 16;
	while (nslots < capacity * 2u)
		nslots *= 2;
	struct mod_symtab_slot *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint32_t i = 0; i < table->count; i++)
		put_slot(slots, nslots - 1, table->entries[i].hash, i);
	free(table->slots);
	table->slots = slots;
	table->mask = nslots - 1;
	return 0;
}

int mod_symtab_init(struct mod_symtab *table, uint32_t expected)
{
	memset(table, 0, sizeof(*table));
	table->capacity = expected < 16 ? 16 : expected;
	/* Not zeroed: mod_symtab_intern() clears each entry it hands out. */
	table->entries = malloc(table->capacity * sizeof(*table->entries));
	if (!table->entries || make_slots(table, table->capacity)) {
		mod_symtab_release(table);
		return -ENOMEM;
	}
	return 0;
}

int32_t mod_symtab_find_hashed(const struct mod_symtab *table, const char *name, uint32_t hash)
{
	for (uint32_t s = hash & table->mask; table->slots[s].index; s = (s + 1) & table->mask) {
		uint32_t i = table->slots[s].index - 1;
		if (table->slots[s].hash == hash && strcmp(table->entries[i].name, name) == 0)
			return (int32_t)i;
	}
	return -1;
}

int32_t mod_symtab_find(const struct mod_symtab *table, const char *name)
{
	return mod_symtab_find_hashed(table, name, mod_hash_name(name));
}

static int grow(struct mod_symtab *table)
{
	if (table->capacity >= MOD_MAX_SYMBOLS)
		return -ENOMEM;
	uint32_t ncap = table->capacity * 2;
	struct mod_entry *n = realloc(table->entries, ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	table->entries = n;
	table->capacity = ncap;
	return make_slots(table, ncap);
}

int32_t mod_symtab_intern_hashed(struct mod_symtab *table, const char *name, uint32_t hash,
				 int *created)
{
	int32_t found = mod_symtab_find_hashed(table, name, hash);

	*created = found < 0;
	return found >= 0 ? found : mod_symtab_append(table, name, hash);
}

int32_t mod_symtab_append(struct mod_symtab *table, const char *name, uint32_t hash)
{
	if (table->count == table->capacity && grow(table))
		return -1;
	uint32_t index = table->count++;
	struct mod_entry *e = &table->entries[index];
	memset(e, 0, sizeof(*e));
	e->name = name;
	e->hash = hash;
	e->plt_slot = -1;
	e->got_slot = -1;
	put_slot(table->slots, table->mask, hash, index);
	return (int32_t)index;
}

int32_t mod_symtab_intern(struct mod_symtab *table, const char *name, int *created)
{
	return mod_symtab_intern_hashed(table, name, mod_hash_name(name), created);
}

void mod_symtab_release(struct mod_symtab *table)
{
	free(table->entries);
	free(table->slots);
	memset(table, 0, sizeof(*table));
}
