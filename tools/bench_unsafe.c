/*
 * bench_unsafe.c - "rwx-bitmap", the fastest allocator we know how to write
 * without any of execmem's guarantees, as a reference for speed only.
 *
 * UNSAFE BY DESIGN, bench-only: its memory is writable and executable at
 * once, freed memory keeps its old code, writes are not checked.  2 MiB RWX
 * blocks, 64-byte granules marked in a bitmap, first fit from a cursor, one
 * lock.  The cursor steps back when the newest allocation is freed, so a
 * lone allocate + free cycle reuses the same warm memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_alloc.h"

enum {
	RB_BLOCK = 2 << 20,
	RB_GRANULE = 64,
	RB_BITS = RB_BLOCK / RB_GRANULE,
	RB_WORDS = RB_BITS / 64,
};

struct rb_block {
	uint8_t *base;
	uint64_t used[RB_WORDS];
	size_t cursor;          /* granule where the next search starts */
};

struct rwx_bitmap {
	pthread_mutex_t lock;
	struct rb_block **blocks;
	size_t nblocks, cap, current;
};

/* First bit equal to want in [from, limit), or limit. */
static size_t next_bit(const uint64_t *bits, size_t from, size_t limit, bool want)
{
	for (size_t i = from; i < limit; i = (i / 64 + 1) * 64) {
		uint64_t word = (want ? bits[i / 64] : ~bits[i / 64]) & (~0ull << (i % 64));
		if (word) {
			size_t at = i / 64 * 64 + (size_t)__builtin_ctzll(word);
			return at < limit ? at : limit;
		}
	}
	return limit;
}

/* First run of need clear bits in [from, limit); limit when none. */
static size_t find_run(const uint64_t *bits, size_t from, size_t limit, size_t need)
{
	for (size_t start = next_bit(bits, from, limit, false); start + need <= limit;) {
		size_t end = next_bit(bits, start, start + need, true);
		if (end == start + need)
			return start;
		start = next_bit(bits, end, limit, false);
	}
	return limit;
}

static void mark(uint64_t *bits, size_t from, size_t count, bool set)
{
	for (size_t i = from; i < from + count;) {
		size_t in_word = 64 - i % 64 < from + count - i ? 64 - i % 64 : from + count - i;
		uint64_t mask = (in_word == 64 ? ~0ull : ((1ull << in_word) - 1)) << (i % 64);
		bits[i / 64] = set ? bits[i / 64] | mask : bits[i / 64] & ~mask;
		i += in_word;
	}
}

static bool block_take(struct rb_block *b, size_t need, size_t *at)
{
	size_t start = find_run(b->used, b->cursor, RB_BITS, need);
	if (start == RB_BITS)
		start = find_run(b->used, 0, RB_BITS, need);
	if (start == RB_BITS)
		return false;
	mark(b->used, start, need, true);
	b->cursor = start + need;
	*at = start;
	return true;
}

static struct rb_block *block_new(struct rwx_bitmap *rb)
{
	if (rb->nblocks == rb->cap) {
		size_t cap = rb->cap ? rb->cap * 2 : 16;
		struct rb_block **v = realloc(rb->blocks, cap * sizeof(*v));
		if (!v)
			return NULL;
		rb->blocks = v;
		rb->cap = cap;
	}
	struct rb_block *b = calloc(1, sizeof(*b));
	void *base = b ? mmap(NULL, RB_BLOCK, PROT_READ | PROT_WRITE | PROT_EXEC,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
	if (base == MAP_FAILED) {
		free(b);
		return NULL;
	}
	b->base = base;
	rb->blocks[rb->nblocks++] = b;
	return b;
}

static int rb_open(void **self, char *why, size_t whylen)
{
	struct rwx_bitmap *rb = calloc(1, sizeof(*rb));
	if (!rb) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&rb->lock, NULL);
	*self = rb;
	return 0;
}

static int rb_alloc(void *self, size_t size, struct bench_block *out)
{
	struct rwx_bitmap *rb = self;
	size_t need = (size + RB_GRANULE - 1) / RB_GRANULE, at = 0;
	struct rb_block *b = NULL;

	if (!size || need > RB_BITS)
		return -EINVAL;
	pthread_mutex_lock(&rb->lock);
	for (size_t k = 0; k < rb->nblocks && !b; k++) {
		size_t i = (rb->current + k) % rb->nblocks;
		if (block_take(rb->blocks[i], need, &at)) {
			b = rb->blocks[i];
			rb->current = i;
		}
	}
	if (!b && (b = block_new(rb))) {
		rb->current = rb->nblocks - 1;
		block_take(b, need, &at);
	}
	pthread_mutex_unlock(&rb->lock);
	if (!b)
		return -ENOMEM;
	out->code = out->writable = b->base + at * RB_GRANULE;
	return 0;
}

static int rb_write(void *self, const struct bench_block *block, const void *src, size_t len)
{
	(void)self;
	memcpy(block->writable, src, len);
	__builtin___clear_cache((char *)block->code, (char *)block->code + len);
	return 0;
}

static int rb_release(void *self, const struct bench_block *block, size_t size)
{
	struct rwx_bitmap *rb = self;
	uint8_t *p = block->code;
	int err = -EINVAL;

	pthread_mutex_lock(&rb->lock);
	for (size_t k = 0; k < rb->nblocks; k++) {
		size_t i = (rb->current + k) % rb->nblocks;
		struct rb_block *b = rb->blocks[i];
		if (p < b->base || p >= b->base + RB_BLOCK)
			continue;
		size_t at = (size_t)(p - b->base) / RB_GRANULE, need = (size + RB_GRANULE - 1) / RB_GRANULE;
		mark(b->used, at, need, false);
		if (b->cursor == at + need)
			b->cursor = at;
		err = 0;
		break;
	}
	pthread_mutex_unlock(&rb->lock);
	return err;
}

static uint64_t rb_os_calls(void *self)
{
	(void)self;
	return bench_wrapped_os_calls();
}

static const char *rb_mode(void *self)
{
	(void)self;
	return "UNSAFE reference: RWX blocks, no refill, unchecked writes";
}

static const char *rb_config(void *self)
{
	(void)self;
	return "blocks of 2 MiB RWX, 64 B granules in a bitmap, first fit from a cursor, one mutex";
}

static void rb_close(void *self)
{
	struct rwx_bitmap *rb = self;
	for (size_t i = 0; i < rb->nblocks; i++) {
		munmap(rb->blocks[i]->base, RB_BLOCK);
		free(rb->blocks[i]);
	}
	free(rb->blocks);
	pthread_mutex_destroy(&rb->lock);
	free(rb);
}

const struct bench_allocator bench_rwx_bitmap = {
	.name = "rwx-bitmap",
	.caps = BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER | BENCH_UNSAFE,
	.open = rb_open,
	.alloc = rb_alloc,
	.write = rb_write,
	.release = rb_release,
	.os_calls = rb_os_calls,
	.mode = rb_mode,
	.close = rb_close,
	.config = rb_config,
};
