/*
 * unwind.c - registration of .eh_frame tables with the process's unwinder
 * (see include/execmem/unwind.h).
 *
 * libgcc's unwinder takes extra tables through __register_frame() and drops
 * them with __deregister_frame(), which aborts the process for a table it
 * does not know: so the tables registered here are kept in a list, and only
 * those are ever handed back.
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

struct table {
	const void *eh_frame;
	struct table *next;
};

static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table *tables;

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

static struct table **find_table(const void *eh_frame)
{
	struct table **t = &tables;
	while (*t && (*t)->eh_frame != eh_frame)
		t = &(*t)->next;
	return t;
}

int execmem_unwind_register(const void *eh_frame, size_t len)
{
	if (!eh_frame || !is_whole_table(eh_frame, len))
		return -EINVAL;
	struct unwinder u = find_unwinder();
	if (!u.add || !u.remove)
		return -ENOTSUP;
	struct table *n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->eh_frame = eh_frame;
	pthread_mutex_lock(&tables_lock);
	int err = *find_table(eh_frame) ? -EEXIST : 0;
	if (!err) {
		u.add((void *)eh_frame);
		n->next = tables;
		tables = n;
	}
	pthread_mutex_unlock(&tables_lock);
	if (err)
		free(n);
	return err;
}

int execmem_unwind_unregister(const void *eh_frame)
{
	if (!eh_frame)
		return -EINVAL;
	pthread_mutex_lock(&tables_lock);
	struct table **t = find_table(eh_frame), *found = *t;
	if (found) {
		*t = found->next;
		find_unwinder().remove((void *)eh_frame);
	}
	pthread_mutex_unlock(&tables_lock);
	free(found);
	return found ? 0 : -ENOENT;
}
