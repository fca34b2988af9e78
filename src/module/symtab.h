/*
 * symtab.h - the module-wide table of global symbols (name -> entry).
 */
#ifndef EXECMEM_MODULE_SYMTAB_H
#define EXECMEM_MODULE_SYMTAB_H

#include "common.h"

enum mod_entry_state {
	ENTRY_UNDEFINED,   /* referenced, not defined in the module */
	ENTRY_DEFINED,
	ENTRY_COMMON,
};

struct mod_entry {
	const char *name;
	uint32_t hash;            /* mod_hash_name(name) */
	int state;
	int weak;                 /* every definition or reference seen so far is weak */
	int exported;             /* defined with default/protected visibility */
	uint32_t object, symbol;  /* the defining (or first referencing) object symbol */
	uint64_t common_size, common_align;
	uint32_t common_block;
	uintptr_t address;
	int32_t plt_slot, got_slot;
	struct execmem_module *provider; /* module that resolved an import, if any */
	uint64_t near_reach;      /* an import that code reaches PC-relatively, with no PLT
				   * or GOT to go through: its smallest reach, else 0 */
	const char *near_howto;   /* the relocation that asks it, for messages */
};

struct mod_symtab_slot {
	uint32_t hash;             /* of the entry's name */
	uint32_t index;            /* entry index + 1, 0 empty */
};

struct mod_symtab {
	struct mod_entry *entries;
	uint32_t count, capacity;
	struct mod_symtab_slot *slots;  /* open addressing */
	uint32_t mask;
};

MOD_HIDDEN uint32_t mod_hash_name(const char *name);
MOD_HIDDEN int mod_symtab_init(struct mod_symtab *table, uint32_t expected);
/* Find name; returns the entry index or -1.  The _hashed forms take
 * mod_hash_name(name), for callers that look one name up many times. */
MOD_HIDDEN int32_t mod_symtab_find(const struct mod_symtab *table, const char *name);
MOD_HIDDEN int32_t mod_symtab_find_hashed(const struct mod_symtab *table, const char *name,
					  uint32_t hash);
/* Find or add name; *created says whether it was added.  -1 when out of memory. */
MOD_HIDDEN int32_t mod_symtab_intern(struct mod_symtab *table, const char *name, int *created);
MOD_HIDDEN int32_t mod_symtab_intern_hashed(struct mod_symtab *table, const char *name,
					    uint32_t hash, int *created);
/* Add name, which the table does not hold, with its hash: no string is
 * compared.  The entry index, or -1 when out of memory. */
MOD_HIDDEN int32_t mod_symtab_append(struct mod_symtab *table, const char *name, uint32_t hash);
MOD_HIDDEN void mod_symtab_release(struct mod_symtab *table);

#endif
