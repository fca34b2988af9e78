/*
 * unwind.c - registration of .eh_frame tables with the process's unwinder
 * (see include/execmem/unwind.h).
 *
 * libgcc's unwinder takes extra tables through __register_frame() and drops
 * them with __deregister_frame(), which aborts the process for a table it
 * does not know: so the tables registered here are kept in a set, and only
 * those are ever handed back.  The set is a hash table (open addressing,
 * linear probing, at most half full): a module registers one table per
 * object, hundreds at once, and a list made each registration a walk over
 * all the others.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "execmem/unwind.h"

/* libgcc's, when linked in (static programs that use exceptions) ... */
extern void __register_frame(void *begin) __attribute__((weak));
extern void __deregister_frame(void *begin) __attribute__((weak));

struct unwinder {
	void (*add)(void *begin);
	void (*remove)(void *begin);
};

static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;
static const void **tables;        /* NULL: a free slot */
static size_t tables_mask, tables_count;

static size_t home_slot(const void *eh_frame)
{
	uint64_t h = (uint64_t)(uintptr_t)eh_frame * 0x9e3779b97f4a7c15ull;
	return (size_t)(h ^ h >> 29) & tables_mask;
}

/* The slot holding eh_frame, or the free slot where it would go. */
static size_t find_slot(const void *eh_frame)
{
	size_t s = home_slot(eh_frame);
	while (tables[s] && tables[s] != eh_frame)
		s = (s + 1) & tables_mask;
	return s;
}

/* Room for one more table, the set kept at most half full. */
static int make_room(void)
{
	if (tables && (tables_count + 1) * 2 <= tables_mask + 1)
		return 0;
	size_t nslots = tables ? (tables_mask + 1) * 2 : 64;
	const void **old = tables;
	size_t old_slots = tables ? tables_mask + 1 : 0;
	tables = calloc(nslots, sizeof(*tables));
	if (!tables) {
		tables = old;
		return -ENOMEM;
	}
	tables_mask = nslots - 1;
	for (size_t i = 0; i < old_slots; i++)
		if (old[i])
			tables[find_slot(old[i])] = old[i];
	free(old);
	return 0;
}

/* Empty slot s, moving back the entries after it that probed past it. */
static void remove_slot(size_t s)
{
	tables[s] = NULL;
	for (size_t next = (s + 1) & tables_mask; tables[next]; next = (next + 1) & tables_mask) {
		size_t home = home_slot(tables[next]);
		/* Stays when its home lies cyclically in (s, next]. */
		if (s <= next ? (s < home && home <= next) : (s < home || home <= next))
			continue;
		tables[s] = tables[next];
		tables[next] = NULL;
		s = next;
	}
	tables_count--;
}

/* ... or loaded (libgcc_s, which the C++ runtime brings). */
static struct unwinder find_unwinder(void)
{
	struct unwinder u = { __register_frame, __deregister_frame };
	if (!u.add || !u.remove) {
		u.add = (void (*)(void *))dlsym(RTLD_DEFAULT, "__register_frame");
		u.remove = (void (*)(void *))dlsym(RTLD_DEFAULT, "__deregister_frame");
	}
	return u;
}

static uint32_t read_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* len bytes of entries (a 32-bit length, or 0xffffffff and a 64-bit one)
 * that end with the terminator exactly. */
static int is_whole_table(const uint8_t *p, size_t len)
{
	size_t offset = 0;
	while (len - offset >= 4) {
		uint64_t size = read_u32(p + offset);
		size_t header = 4;
		if (size == 0)
			return offset + 4 == len;
		if (size == 0xffffffffu) {
			if (len - offset < 12)
				return 0;
			memcpy(&size, p + offset + 4, sizeof(size));
			header = 12;
		}
		if (size > len - offset - header)
			return 0;
		offset += header + (size_t)size;
	}
	return 0;
}

int execmem_unwind_register(const void *eh_frame, size_t len)
{
	if (!eh_frame || !is_whole_table(eh_frame, len))
		return -EINVAL;
	struct unwinder u = find_unwinder();
	if (!u.add || !u.remove)
		return -ENOTSUP;
	pthread_mutex_lock(&tables_lock);
	int err = make_room();
	size_t s = err ? 0 : find_slot(eh_frame);
	if (!err && tables[s])
		err = -EEXIST;
	if (!err) {
		u.add((void *)eh_frame);
		tables[s] = eh_frame;
		tables_count++;
	}
	pthread_mutex_unlock(&tables_lock);
	return err;
}

int execmem_unwind_unregister(const void *eh_frame)
{
	if (!eh_frame)
		return -EINVAL;
	pthread_mutex_lock(&tables_lock);
	size_t s = tables ? find_slot(eh_frame) : 0;
	int found = tables && tables[s];
	if (found) {
		remove_slot(s);
		find_unwinder().remove((void *)eh_frame);
	}
	pthread_mutex_unlock(&tables_lock);
	return found ? 0 : -ENOENT;
}
