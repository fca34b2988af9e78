/*
 * test_newest.c - a write to the allocation a thread made last is
 * validated from what that thread remembers of it; every change that
 * makes such a write invalid must still make it fail: a free by this
 * thread or another, a reuse of the place by a smaller allocation, a seal,
 * an open write window, the end of the allocation, and the destruction of
 * its arena (whose chunk descriptor may then be reused).  A free of that
 * allocation (and its usable size) is found the same way, and must refuse
 * what a free found in the tracker refuses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rtest.h"

static uint8_t payload[4096];

static void freed_by_this_thread(void)
{
	void *p = execmem_alloc(EXECMEM_CODE, 256);
	RT_CHECK(p && execmem_write(p, payload, 256) == 0, "first write");
	RT_CHECK(execmem_free(p) == 0, "free");
	RT_CHECK(execmem_write(p, payload, 8) == -EINVAL, "write after free");
	RT_CHECK(execmem_invalidate(p, 8) == -EINVAL, "invalidate after free");
}

static void *free_it(void *p)
{
	return (void *)(intptr_t)execmem_free(p);
}

static void freed_by_another_thread(void)
{
	void *p = execmem_alloc(EXECMEM_CODE, 256);
	pthread_t t;
	void *rc = (void *)1;
	RT_CHECK(p && pthread_create(&t, NULL, free_it, p) == 0, "start the freeing thread");
	if (p)
		pthread_join(t, &rc);
	RT_CHECK(rc == NULL, "free by another thread");
	RT_CHECK(execmem_write(p, payload, 8) == -EINVAL, "write after another thread's free");
}

static void place_reused_by_smaller(void)
{
	void *big = execmem_alloc(EXECMEM_CODE, 1024);
	RT_CHECK(big && execmem_free(big) == 0, "free the large one");
	void *small = execmem_alloc(EXECMEM_CODE, 64);
	RT_CHECK(small, "allocate the small one");
	size_t usable = execmem_usable_size(small);
	if (small == big)
		RT_CHECK(execmem_write(big, payload, 1024) == -EINVAL, "write of the old size");
	RT_CHECK(execmem_write(small, payload, usable) == 0, "write of the new size");
	RT_CHECK(execmem_write(small, payload, usable + 1) == -EINVAL, "one byte more");
	RT_CHECK(execmem_write((uint8_t *)small + usable - 4, payload, 8) == -EINVAL, "past the end");
	RT_CHECK(execmem_write((uint8_t *)small + 8, payload, SIZE_MAX - 4) == -EINVAL, "huge length");
	RT_CHECK(execmem_write((uint8_t *)small - 1, payload, 2) == -EINVAL, "before the start");
	execmem_free(small);
}

static void sealed(void)
{
	void *p = execmem_alloc(EXECMEM_RO_AFTER_INIT, 64);
	RT_CHECK(p && execmem_write(p, payload, 64) == 0, "write before the seal");
	RT_CHECK(execmem_seal(p) == 0, "seal");
	RT_CHECK(execmem_write(p, payload, 8) == -EPERM, "write after the seal");
	execmem_free(p);
}

static void window_open(void)
{
	void *p = execmem_alloc(EXECMEM_CODE, 128);
	void *w = p ? execmem_write_begin(p) : NULL;
	RT_CHECK(w, "open a window: errno %d", errno);
	RT_CHECK(execmem_write(p, payload, 8) == -EBUSY, "write while the window is open");
	RT_CHECK(w && execmem_write_end(p) == 0, "close the window");
	RT_CHECK(execmem_write(p, payload, 8) == 0, "write after the window closed");
	execmem_free(p);
}

static void newest_freed(void)
{
	void *p = execmem_alloc(EXECMEM_CODE, 100);
	RT_CHECK(p && execmem_usable_size(p) == 128, "usable size of the newest");
	RT_CHECK(execmem_free((uint8_t *)p + 64) == -EINVAL, "free inside it");
	RT_CHECK(execmem_free(p) == 0, "free");
	RT_CHECK(execmem_free(p) == -EINVAL, "second free");
	RT_CHECK(execmem_usable_size(p) == 0, "usable size after the free");

	p = execmem_alloc(EXECMEM_CODE, 128);
	void *w = p ? execmem_write_begin(p) : NULL;
	RT_CHECK(w, "open a window: errno %d", errno);
	RT_CHECK(execmem_free(p) == -EBUSY, "free while the window is open");
	RT_CHECK(w && execmem_write_end(p) == 0, "close the window");
	RT_CHECK(execmem_free(p) == 0, "free after the window closed");

	p = execmem_alloc(EXECMEM_RO_AFTER_INIT, 64);
	RT_CHECK(p && execmem_seal(p) == 0, "seal");
	RT_CHECK(execmem_free(p) == 0, "free of the sealed one");
	void *q = execmem_alloc(EXECMEM_RO_AFTER_INIT, 64);
	RT_CHECK(q && execmem_write(q, payload, 64) == 0, "write to its place");
	execmem_free(q);

	size_t large = EXECMEM_CHUNK_SIZE;
	p = execmem_alloc(EXECMEM_CODE, large);
	RT_CHECK(p && execmem_usable_size(p) == large, "usable size of a large newest");
	RT_CHECK(execmem_free(p) == 0, "free of a large newest");
}

/* Arenas come and go; a stale address is refused whoever holds it now. */
static void arena_destroyed(void)
{
	for (int round = 0; round < 8; round++) {
		struct execmem_arena *a = rt_arena_in(rt_mode_under_test());
		void *p = a ? execmem_arena_alloc(a, EXECMEM_CODE, 256) : NULL;
		RT_CHECK(p && execmem_write(p, payload, 256) == 0, "write in a new arena");
		RT_CHECK(execmem_arena_destroy(a) == 0, "destroy");
		struct execmem_arena *b = rt_arena_in(rt_mode_under_test());
		void *q = b ? execmem_arena_alloc(b, EXECMEM_CODE, 64) : NULL;
		RT_CHECK(q, "allocate in the next arena");
		int rc = execmem_write(p, payload, 256);
		RT_CHECK(rc == -EINVAL, "write to a destroyed arena's allocation: %d", rc);
		execmem_arena_destroy(b);
	}
}

/* An arena whose code lives in the one chunk of address space at `slot`. */
static struct execmem_arena *arena_at(uintptr_t slot)
{
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	memset(ranges, 0, sizeof ranges);
	ranges[EXECMEM_CODE] = (struct execmem_range){ .start = slot, .end = slot + EXECMEM_CHUNK_SIZE,
						       .flags = EXECMEM_RANGE_SET };
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = rt_mode_under_test();
	params.ranges = ranges;
	return execmem_arena_create(&params);
}

struct successor {
	uintptr_t slot;
	struct execmem_arena *old, *next;
	void *at;
};

/* Destroys the old arena and allocates 64 B in a new one at the same
 * place: the freed chunk descriptor is this thread's to reuse. */
static void *succeed(void *arg)
{
	struct successor *s = arg;
	/* This thread's first malloc() maps its heap; done while the slot is
	 * still taken, it cannot land there once the old arena is gone. */
	void *volatile heap = malloc(1);
	free(heap);
	execmem_arena_destroy(s->old);
	s->next = arena_at(s->slot);
	s->at = s->next ? execmem_arena_alloc(s->next, EXECMEM_CODE, 64) : NULL;
	return NULL;
}

/* Another thread destroys the arena and makes a new one in the same
 * place, whose first allocation is smaller than this thread's last. */
static void arena_replaced_in_place(void)
{
	size_t chunk = EXECMEM_CHUNK_SIZE;
	uint8_t *raw = mmap(NULL, 2 * chunk, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	RT_CHECK(raw != MAP_FAILED, "reserve address space");
	if (raw == MAP_FAILED)
		return;
	uintptr_t slot = ((uintptr_t)raw + chunk - 1) & ~(uintptr_t)(chunk - 1);
	munmap(raw, 2 * chunk);
	for (int round = 0; round < 4; round++) {
		struct successor s = { slot, arena_at(slot), NULL, NULL };
		void *p = s.old ? execmem_arena_alloc(s.old, EXECMEM_CODE, 1024) : NULL;
		RT_CHECK(p && execmem_write(p, payload, 1024) == 0, "write in the first arena");
		pthread_t t;
		RT_CHECK(pthread_create(&t, NULL, succeed, &s) == 0, "start the successor");
		pthread_join(t, NULL);
		RT_CHECK(s.at, "allocate in the successor");
		if (s.at == p)
			RT_CHECK(execmem_write(p, payload, 1024) == -EINVAL, "write of the old size");
		execmem_arena_destroy(s.next);
	}
}

int main(void)
{
	memset(payload, 0xc3, sizeof payload);
	printf("writes to the newest allocation, %s mode\n",
	       execmem_mode_name(rt_mode_under_test()));
	freed_by_this_thread();
	freed_by_another_thread();
	place_reused_by_smaller();
	sealed();
	window_open();
	newest_freed();
	arena_destroyed();
	arena_replaced_in_place();
	return rt_finish("newest");
}
