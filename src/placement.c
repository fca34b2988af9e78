/*
 * placement.c - finding address space.  Memory with a range is reserved
 * (PROT_NONE) inside it at 2 MiB-aligned slots; the first probe is random
 * so that placement differs between processes, later probes walk every
 * slot so that a free slot is found whenever one exists.  RW aliases go to
 * random addresses away from their executable view.  The room above the
 * program break is used last (see heap_room()).
 */
#include "internal.h"

#include <sys/mman.h>

/* Probes before giving up on a range; bounds the cost of a full range. */
#define MAX_PROBES 8192
#define ALIAS_TRIES 32

static uintptr_t align_up(uintptr_t v, uintptr_t a)
{
	return (v + a - 1) & ~(a - 1);
}

uintptr_t em_user_va_top(void)
{
	/* The stack lives near the top of the user address space. */
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	unsigned bits = 64 - (unsigned)__builtin_clzll((unsigned long long)sp);
	return (uintptr_t)1 << bits;
}

void em_near_window(uintptr_t image_lo, uintptr_t image_hi, size_t reach,
		    uintptr_t *lo, uintptr_t *hi)
{
	/* Any two bytes of the window and the image are at most reach apart. */
	size_t image = image_hi - image_lo;
	size_t half = reach > image ? (reach - image) / 2 : 0;
	*lo = image_lo > half ? image_lo - half : 0;
	*hi = image_hi + half;
	uintptr_t top = em_user_va_top();
	if (*hi > top || *hi < image_hi)
		*hi = top;
}

int em_unreserve(void *addr, size_t len)
{
	/* Unmapping a whole mapping of ours fails only transiently (the kernel
	 * short of memory for its bookkeeping): one retry, then report. */
	int rc = em_os_unmap(addr, len);
	return rc ? em_os_unmap(addr, len) : 0;
}

/* Address space, inaccessible, near hint (0: wherever the kernel likes). */
static int reserve(uintptr_t hint, size_t span, void **out)
{
	return em_os_map(out, (void *)hint, span, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, NULL);
}

/*
 * The C library's heap grows up from the program break, which lies just
 * above the program, inside the windows of code and data that must reach
 * it.  A mapping there stops the heap's growth: malloc then takes its
 * memory in separate mappings for the rest of the process, even once the
 * mapping is gone.  So the HEAP_ROOM above the break is placed in only
 * when the rest of a window is full.
 */
#define HEAP_ROOM ((uintptr_t)256 << 20)

struct room {
	uintptr_t lo, hi;
};

static struct room heap_room(void)
{
	uintptr_t end = em_os_heap_end();
	return (struct room){ end, end > UINTPTR_MAX - HEAP_ROOM ? UINTPTR_MAX : end + HEAP_ROOM };
}

static bool in_room(uintptr_t addr, size_t span, struct room r)
{
	return addr < r.hi && addr + span > r.lo;
}

/* Slots are chunk-aligned, or aligned more when the window asks. */
static size_t slot_of(const struct em_window *w)
{
	return w->align > EM_CHUNK ? w->align : EM_CHUNK;
}

/* The slots k < n whose span at lo + k * slot overlaps r: [*from, *to). */
static void slots_in(struct room r, uintptr_t lo, size_t span, size_t slot, uintptr_t n, uintptr_t *from,
		     uintptr_t *to)
{
	*from = *to = 0;
	if (r.hi <= r.lo || r.hi <= lo)
		return;
	uintptr_t below = (r.hi - lo - 1) / slot + 1; /* k < below: the slot starts below r.hi */
	uintptr_t past = r.lo >= lo + span ? (r.lo - lo - span) / slot + 1 : 0; /* k >= past: ends above r.lo */
	*to = below < n ? below : n;
	*from = past < *to ? past : *to;
}

/*
 * Reserve span bytes at one of the slots k < n at lo + k * slot, k outside
 * [skip_from, skip_to).  The first probe is drawn among those slots alone:
 * drawn among all and moved past the skipped ones, it would fall on the
 * slot just after them once in every few placements.
 */
static int reserve_in_slots(uintptr_t lo, uintptr_t n, size_t span, size_t slot, uintptr_t skip_from,
			    uintptr_t skip_to, void **out)
{
	uintptr_t outside = n - (skip_to - skip_from);
	if (!outside)
		return -ENOMEM;
	uintptr_t first = em_os_random() % outside;
	first += first < skip_from ? 0 : skip_to - skip_from;
	uintptr_t probes = 0;
	for (uintptr_t i = 0; i < n && probes < MAX_PROBES; i++) {
		uintptr_t k = (first + i) % n;
		if (k >= skip_from && k < skip_to)
			continue;
		probes++;
		int rc = reserve(lo + k * slot, span, out);
		if (rc != -EEXIST && rc != -ENOMEM && rc != -EPERM)
			return rc;
	}
	return -ENOMEM;
}

/* Reserve span bytes, slot-aligned, wholly inside [lo, hi): first outside
 * the heap's room, then in the slots that overlap it. */
static int reserve_inside(uintptr_t lo, uintptr_t hi, size_t span, size_t slot, void **out)
{
	if (lo > UINTPTR_MAX - slot)
		return -ENOMEM; /* no aligned slot starts this high */
	lo = align_up(lo < slot ? slot : lo, slot);
	if (hi <= lo || hi - lo < span)
		return -ENOMEM;
	uintptr_t n = (hi - lo - span) / slot + 1, from, to;
	slots_in(heap_room(), lo, span, slot, n, &from, &to);
	int rc = reserve_in_slots(lo, n, span, slot, from, to, out);
	if (rc != -ENOMEM || from == to)
		return rc;
	return reserve_in_slots(lo + from * slot, to - from, span, slot, 0, 0, out);
}

/*
 * Linux 6.7 and later put an anonymous mapping of whole 2 MiB pages at a
 * 2 MiB boundary by themselves: one call, where trimming a larger one
 * takes three.  A kernel that did not align a chunk is not asked again.
 */
static atomic_bool kernel_aligns_chunks = true;

/* 1 with *out chunk-aligned, 0 with nothing reserved, or a negative errno. */
static int reserve_kernel_aligned(size_t span, void **out)
{
	if (!atomic_load_explicit(&kernel_aligns_chunks, memory_order_relaxed))
		return 0;
	void *raw;
	int rc = reserve(0, span, &raw);
	if (rc)
		return rc;
	if ((uintptr_t)raw % EM_CHUNK == 0) {
		*out = raw;
		return 1;
	}
	atomic_store_explicit(&kernel_aligns_chunks, false, memory_order_relaxed);
	rc = em_unreserve(raw, span);
	return rc ? rc : 0;
}

/* Reserve anywhere the kernel likes, slot-aligned. */
static int reserve_anywhere(size_t span, size_t slot, void **out)
{
	int rc = slot == EM_CHUNK ? reserve_kernel_aligned(span, out) : 0;
	if (rc)
		return rc < 0 ? rc : 0;
	void *raw;
	rc = reserve(0, span + slot, &raw);
	if (rc)
		return rc;
	uintptr_t start = (uintptr_t)raw, aligned = align_up(start, slot);
	size_t head = aligned - start, tail = slot - head;
	if ((head && (rc = em_unreserve(raw, head))) ||
	    (tail && (rc = em_unreserve((void *)(aligned + span), tail)))) {
		em_unreserve(raw, span + slot); /* whatever of it is left */
		return rc;
	}
	*out = (void *)aligned;
	return 0;
}

static void clip(uintptr_t *lo, uintptr_t *hi, const struct em_window *w)
{
	if (w->lo > *lo)
		*lo = w->lo;
	if (w->hi < *hi)
		*hi = w->hi;
}

int em_place(const struct execmem_range *range, const struct em_window *window,
	     size_t span, void **out)
{
	bool anywhere = range->flags & EXECMEM_RANGE_ANYWHERE;
	size_t slot = slot_of(window);
	if (anywhere && window->lo == 0 && window->hi == UINTPTR_MAX)
		return reserve_anywhere(span, slot, out);
	uintptr_t lo = anywhere ? 0 : range->start, hi = anywhere ? UINTPTR_MAX : range->end;
	clip(&lo, &hi, window);
	int rc = reserve_inside(lo, hi, span, slot, out);
	if (rc != -ENOMEM || anywhere || range->fallback_start >= range->fallback_end)
		return rc;
	lo = range->fallback_start;
	hi = range->fallback_end;
	clip(&lo, &hi, window);
	return reserve_inside(lo, hi, span, slot, out);
}

#if defined(__SANITIZE_THREAD__)
#define RANDOM_ALIASES 0 /* ThreadSanitizer allows mappings only in its own windows */
#else
#define RANDOM_ALIASES 1
#endif

int em_place_random(size_t span, uintptr_t avoid, void **out)
{
	/* Stay off the lowest 4 GiB and the top eighth (stack, vdso). */
	uintptr_t top = em_user_va_top();
	uintptr_t lo = (uintptr_t)1 << 32, hi = top - top / 8;
	struct room heap = heap_room();
	for (int i = 0; RANDOM_ALIASES && hi > lo + span && i < ALIAS_TRIES; i++) {
		uintptr_t addr = lo + (em_os_random() % ((hi - lo - span) / EM_CHUNK)) * EM_CHUNK;
		if (addr + span + EM_CHUNK > avoid && avoid + span + EM_CHUNK > addr)
			continue; /* would touch the executable view */
		if (in_room(addr, span, heap))
			continue;
		int rc = reserve(addr, span, out);
		if (rc != -EEXIST && rc != -ENOMEM && rc != -EPERM)
			return rc;
	}
	/* A small or crowded address space: let the kernel choose. */
	return reserve_anywhere(span, EM_CHUNK, out);
}
