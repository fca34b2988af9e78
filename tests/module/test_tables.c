/*
 * test_tables.c - the tables that make a module load fast, on their own:
 * the module-wide symbol table (hashes kept in its slots, growth without
 * hashing again, names whose hashes collide) and the batch that names a
 * module's functions (sorted by a radix sort, merged into the table of
 * names in one pass, ranges kept to their owners).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "execmem.h"
#include "module/symtab.h"
#include "observe/observe.h"

#include "module_check.h"

static int failures;


enum { NAMES = 5000 };

/* Names interned through several growths are all found, at their index. */
static void test_symtab_growth(void)
{
	static char names[NAMES][16];
	struct mod_symtab t;
	CHECK(mod_symtab_init(&t, 1) == 0, "init");
	for (int i = 0; i < NAMES; i++) {
		int created;
		snprintf(names[i], sizeof(names[i]), "sym%d", i);
		CHECK(mod_symtab_intern(&t, names[i], &created) == i && created, "intern %d", i);
	}
	for (int i = 0; i < NAMES; i++) {
		int created;
		CHECK(mod_symtab_find(&t, names[i]) == i, "find %d after growing", i);
		CHECK(mod_symtab_intern(&t, names[i], &created) == i && !created, "again %d", i);
		CHECK(t.entries[i].hash == mod_hash_name(names[i]), "hash kept %d", i);
	}
	CHECK(t.count == NAMES, "count %u", t.count);
	CHECK(mod_symtab_find(&t, "sym") == -1 && mod_symtab_find(&t, "sym50000") == -1 &&
	      mod_symtab_find(&t, "") == -1, "absent names");
	mod_symtab_release(&t);
}

/* Names with one hash are told apart by their strings, before and after
 * the table grows; a lookup under another hash does not find them. */
static void test_symtab_collisions(void)
{
	static char names[64][8];
	struct mod_symtab t;
	CHECK(mod_symtab_init(&t, 16) == 0, "init");
	for (int i = 0; i < 64; i++) {
		int created;
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		CHECK(mod_symtab_intern_hashed(&t, names[i], 0x1234u, &created) == i && created,
		      "colliding intern %d", i);
	}
	for (int i = 0; i < 64; i++) {
		char copy[8];
		memcpy(copy, names[i], sizeof(copy));  /* equal strings, not equal pointers */
		CHECK(mod_symtab_find_hashed(&t, copy, 0x1234u) == i, "colliding find %d", i);
		CHECK(mod_symtab_find_hashed(&t, copy, 0x1235u) == -1, "other hash %d", i);
	}
	CHECK(mod_symtab_find_hashed(&t, "c64", 0x1234u) == -1, "absent colliding name");
	mod_symtab_release(&t);
}

static int named(const void *addr, const char *want)
{
	char buf[64];
	int rc = execmem_get_name(addr, buf, sizeof(buf));
	return want ? rc >= 0 && strcmp(buf, want) == 0 : rc == -ENOENT;
}

static struct em_range range_of(const void *p, size_t size)
{
	return (struct em_range){ (uintptr_t)p, (uintptr_t)p + size };
}

/* A batch: unsorted over more than one radix digit, overlaps, a name
 * that was there before, names outside the batch's owners kept, one name
 * of a batch replaced while the others stay. */
static void test_names_batch(void)
{
	enum { SIZE = 1 << 16 };
	char *a = execmem_alloc(EXECMEM_CODE, SIZE), *b = execmem_alloc(EXECMEM_CODE, SIZE);
	CHECK(a && b, "alloc");
	if (!a || !b)
		return;
	char *lo = a < b ? a : b, *hi = a < b ? b : a;
	CHECK(execmem_set_name(hi, 16, "other") == 0, "name outside the batch");
	CHECK(execmem_set_name(lo + 0x3000, 16, "stale") == 0, "name inside, before");
	struct em_symbol syms[] = {
		{ (uintptr_t)lo + 0x8010, 16, "high" },
		{ (uintptr_t)lo + 0x0010, 32, "low" },
		{ (uintptr_t)lo + 0x0020, 8, "inside_low" },   /* overlaps "low": dropped */
		{ (uintptr_t)lo + 0x0100, 8, "first_at" },
		{ (uintptr_t)lo + 0x0100, 8, "second_at" },    /* same start: dropped */
		{ (uintptr_t)lo + 0x0200, 4, "mid" },
	};
	struct em_range owner = range_of(lo, SIZE);
	CHECK(em_names_for_perf(syms, 6, &owner, 1) == 0, "batch");
	CHECK(named(lo + 0x10, "low") && named(lo + 0x2f, "low") && named(lo + 0x30, NULL),
	      "low");
	CHECK(named(lo + 0x100, "first_at") && named(lo + 0x200, "mid") &&
	      named(lo + 0x8010, "high"), "sorted and kept");
	CHECK(named(lo + 0x3000, NULL), "the owner's old name dropped");
	/* The batch's names share their strings: replacing one keeps the rest. */
	CHECK(execmem_set_name(lo + 0x200, 4, "replaced") == 0 && named(lo + 0x200, "replaced") &&
	      named(lo + 0x10, "low") && named(lo + 0x8010, "high"),
	      "the other names of a batch outlive one replaced");
	CHECK(named(hi, "other"), "a name outside the owners kept");

	struct em_symbol odd[] = { { (uintptr_t)lo + 0x400, 8, "fine" },
				   { (uintptr_t)lo + SIZE - 4, 8, "past_end" },
				   { (uintptr_t)lo + 0x500, 8, "" },
				   { (uintptr_t)lo - 8, 8, "before" } };
	CHECK(em_names_for_perf(odd, 4, &owner, 1) == 0, "odd ranges");
	CHECK(named(lo + 0x400, "fine") && named(lo + SIZE - 4, NULL) && named(lo + 0x500, NULL),
	      "only the range inside its owner and with a name is named");
	CHECK(em_names_for_perf(syms, 6, &owner, 1) == 0, "batch again");
	struct em_range two[] = { range_of(lo, SIZE), range_of(lo + 16, 16) };
	CHECK(em_names_for_perf(syms, 1, two, 2) == -EINVAL, "overlapping owners");
	struct em_range bogus = { 4096, 8192 };
	struct em_symbol at_bogus[] = { { 4096, 8, "nowhere" } };
	CHECK(em_names_for_perf(at_bogus, 1, &bogus, 1) == -EINVAL, "an owner not allocated");
	CHECK(named(lo + 0x400, NULL) && named(lo + 0x10, "low"), "failed batches name nothing");
	CHECK(em_names_for_perf(NULL, 0, &owner, 1) == 0 && named(lo + 0x10, NULL),
	      "an empty batch clears its owner");
	CHECK(execmem_free(lo) == 0 && execmem_free(hi) == 0, "free");
}

int main(void)
{
	test_symtab_growth();
	test_symtab_collisions();
	test_names_batch();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	else
		printf("test_tables: all passed\n");
	return failures ? 1 : 0;
}
