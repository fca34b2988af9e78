/*
 * common.c - the helpers every stage of the loader shares: the per-thread
 * error message, the clock of the stage times, array growth, names of
 * memory types.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common.h"

static __thread char last_error[512];

int mod_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return -err;
}

void mod_clear_error(void)
{
	last_error[0] = '\0';
}

const char *mod_last_error(void)
{
	return last_error;
}

uint64_t mod_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *mod_grow(void *items, size_t count, size_t *capacity, size_t item_size, size_t first)
{
	if (count < *capacity)
		return items;
	size_t ncap = *capacity ? *capacity * 2 : first;
	void *n = realloc(items, ncap * item_size);
	if (n)
		*capacity = ncap;
	return n;
}

/* Below malloc's threshold for a mapping of its own: the blocks come from
 * the heap that earlier loads gave back, already in memory. */
#define POOL_BLOCK_SIZE ((size_t)64 << 10)

struct mod_pool_block {
	struct mod_pool_block *next;
	max_align_t bytes[];
};

static struct mod_pool_block *new_block(size_t size)
{
	return malloc(sizeof(struct mod_pool_block) + size);
}

void *mod_pool_alloc(struct mod_pool *pool, size_t size)
{
	size = (size_t)mod_align_up(size ? size : 1, 16);
	if (size > POOL_BLOCK_SIZE / 4) {          /* its own block, behind the first */
		struct mod_pool_block *b = new_block(size);
		if (!b)
			return NULL;
		struct mod_pool_block **at = pool->blocks ? &pool->blocks->next : &pool->blocks;
		b->next = *at;
		*at = b;
		if (pool->blocks == b)
			pool->used = pool->size = 0;
		return b->bytes;
	}
	if (!pool->blocks || pool->size - pool->used < size) {
		struct mod_pool_block *b = new_block(POOL_BLOCK_SIZE);
		if (!b)
			return NULL;
		b->next = pool->blocks;
		pool->blocks = b;
		pool->used = 0;
		pool->size = POOL_BLOCK_SIZE;
	}
	void *p = (uint8_t *)pool->blocks->bytes + pool->used;
	pool->used += size;
	return p;
}

void mod_pool_release(struct mod_pool *pool)
{
	for (struct mod_pool_block *b = pool->blocks, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	memset(pool, 0, sizeof(*pool));
}

const char *mod_type_name(enum execmem_type type)
{
	switch (type) {
	case EXECMEM_CODE:          return "code";
	case EXECMEM_CODE_NEAR:     return "code_near";
	case EXECMEM_DATA:          return "data";
	case EXECMEM_RODATA:        return "rodata";
	case EXECMEM_RO_AFTER_INIT: return "ro_after_init";
	default:                    return "absolute";
	}
}
