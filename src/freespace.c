/*
 * freespace.c - bitmap free-space tracker (see freespace.h).
 */
#include "freespace.h"

#include <string.h>

#define WORD_BITS 64u

static uint32_t words_for(uint32_t bits)
{
	return (bits + WORD_BITS - 1) / WORD_BITS;
}

/* Bitmap words are read by the lock-free lookups: access them atomically. */
static uint64_t load(const uint64_t *word)
{
	return __atomic_load_n(word, __ATOMIC_RELAXED);
}

static void store(uint64_t *word, uint64_t value)
{
	__atomic_store_n(word, value, __ATOMIC_RELAXED);
}

static int test_bit(const uint64_t *map, uint32_t i)
{
	return (int)((load(&map[i / WORD_BITS]) >> (i % WORD_BITS)) & 1);
}

static void put_bit(uint64_t *map, uint32_t i, int on)
{
	uint64_t w = load(&map[i / WORD_BITS]);
	uint64_t bit = 1ULL << (i % WORD_BITS);
	store(&map[i / WORD_BITS], on ? (w | bit) : (w & ~bit));
}

/* Set (on) or clear the bits [from, from + n). */
static void put_run(uint64_t *map, uint32_t from, uint32_t n, int on)
{
	while (n) {
		uint32_t shift = from % WORD_BITS;
		uint32_t take = WORD_BITS - shift < n ? WORD_BITS - shift : n;
		uint64_t mask = (take == WORD_BITS ? ~0ULL : ((1ULL << take) - 1)) << shift;
		uint64_t *w = &map[from / WORD_BITS];
		store(w, on ? (load(w) | mask) : (load(w) & ~mask));
		from += take;
		n -= take;
	}
}

/*
 * First index in [from, limit) whose bit equals `want`, or limit.  Words
 * are inverted when looking for zeros, so one scan serves both.
 */
static uint32_t next_bit(const uint64_t *map, uint32_t from, uint32_t limit, int want)
{
	uint64_t flip = want ? 0 : ~0ULL;
	while (from < limit) {
		uint64_t w = (load(&map[from / WORD_BITS]) ^ flip) >> (from % WORD_BITS);
		if (w) {
			uint32_t at = from + (uint32_t)__builtin_ctzll(w);
			return at < limit ? at : limit;
		}
		from = (from / WORD_BITS + 1) * WORD_BITS;
	}
	return limit;
}

/* Last set bit in [floor, index], or -1. */
static long prev_set_bit(const uint64_t *map, uint32_t index, uint32_t floor)
{
	long word = index / WORD_BITS;
	uint32_t keep = index % WORD_BITS;
	uint64_t w = load(&map[word]) & (keep == WORD_BITS - 1 ? ~0ULL : ((2ULL << keep) - 1));
	for (;;) {
		if (w) {
			long at = word * (long)WORD_BITS + 63 - __builtin_clzll(w);
			return at >= (long)floor ? at : -1;
		}
		if (--word < (long)(floor / WORD_BITS))
			return -1;
		w = load(&map[word]);
	}
}

size_t em_fs_storage_size(uint32_t granules)
{
	return (size_t)words_for(granules) * sizeof(uint64_t) * (3 + EM_FS_FLAGS);
}

void em_fs_init(struct em_freespace *fs, uint32_t granules, void *storage)
{
	uint32_t words = words_for(granules);
	memset(storage, 0, em_fs_storage_size(granules));
	fs->granules = granules;
	fs->free = granules;
	fs->cursor = 0;
	fs->max_run = granules;
	fs->used = storage;
	fs->start = fs->used + words;
	fs->end = fs->start + words;
	for (int i = 0; i < EM_FS_FLAGS; i++)
		fs->flags[i] = fs->end + words * (uint32_t)(i + 1);
}

/*
 * First fit of an aligned run of n free granules inside [lo, hi).  On
 * failure *longest is the longest free run seen.
 */
static long search(const struct em_freespace *fs, uint32_t n, uint32_t align,
		   uint32_t lo, uint32_t hi, uint32_t *longest)
{
	uint32_t pos = lo;
	while (pos < hi) {
		pos = next_bit(fs->used, pos, hi, 0);
		uint32_t aligned = (pos + align - 1) & ~(align - 1);
		if (aligned >= hi || hi - aligned < n) {
			if (hi - pos > *longest)
				*longest = hi - pos; /* the last run counts too */
			return -1;
		}
		/* Look no further than the run needs: free space is usually vast. */
		uint32_t taken = next_bit(fs->used, pos, aligned + n, 1);
		if (taken == aligned + n)
			return aligned;
		if (taken - pos > *longest)
			*longest = taken - pos;
		pos = taken;
	}
	return -1;
}

/*
 * Where the next search starts after [first, first + n) was taken: just
 * past it, unless the alignment skipped free granules right before it.
 * The cursor then stays at that gap, so that the next allocations fill it
 * instead of leaving it for the wrap-around.
 */
static uint32_t cursor_after(const struct em_freespace *fs, uint32_t first, uint32_t n,
			     uint32_t align)
{
	uint32_t floor = first - (first < align - 1 ? first : align - 1);
	if (floor == first || test_bit(fs->used, first - 1))
		return first + n;
	long used = prev_set_bit(fs->used, first - 1, floor);
	return used < 0 ? floor : (uint32_t)used + 1;
}

long em_fs_alloc(struct em_freespace *fs, uint32_t n, uint32_t align, uint32_t lo, uint32_t hi)
{
	if (hi > fs->granules)
		hi = fs->granules;
	if (n == 0 || n > fs->free || n > fs->max_run || lo >= hi || hi - lo < n)
		return -1;
	uint32_t longest = 0;
	long at = -1;
	if (fs->cursor > lo && fs->cursor < hi)
		at = search(fs, n, align, fs->cursor, hi, &longest);
	if (at < 0) {
		longest = 0;
		at = search(fs, n, align, lo, hi, &longest);
	}
	if (at < 0) {
		/* A whole, unaligned scan saw every run: now the bound is exact. */
		if (lo == 0 && hi == fs->granules && align == 1)
			fs->max_run = longest;
		return -1;
	}
	uint32_t first = (uint32_t)at;
	/* start and end before used: a concurrent em_fs_find never sees used
	 * granules without the boundaries that delimit them. */
	put_bit(fs->start, first, 1);
	put_bit(fs->end, first + n - 1, 1);
	put_run(fs->used, first, n, 1);
	fs->free -= n;
	fs->cursor = cursor_after(fs, first, n, align);
	return at;
}

uint32_t em_fs_size(const struct em_freespace *fs, uint32_t index)
{
	if (index >= fs->granules || !test_bit(fs->start, index) || !test_bit(fs->used, index))
		return 0;
	uint32_t last = next_bit(fs->end, index, fs->granules, 1);
	return last < fs->granules ? last - index + 1 : 0;
}

long em_fs_find(const struct em_freespace *fs, uint32_t index, uint32_t *granules)
{
	if (index >= fs->granules || !test_bit(fs->used, index))
		return -1;
	long first = prev_set_bit(fs->start, index, 0);
	if (first < 0)
		return -1;
	uint32_t size = em_fs_size(fs, (uint32_t)first);
	if (!size || index >= (uint32_t)first + size)
		return -1;
	*granules = size;
	return first;
}

/*
 * The freed granules [index, index + n) may have merged with free
 * neighbours into a run longer than max_run.  Looking max_run + 1 granules
 * each way is enough to tell; then the bound becomes the free total, and
 * the next failed search makes it exact again.
 */
static void raise_max_run(struct em_freespace *fs, uint32_t index, uint32_t n)
{
	if (fs->max_run >= fs->free)
		return;
	uint32_t reach = fs->max_run + 1;
	uint32_t lo = index > reach ? index - reach : 0;
	uint32_t hi = fs->granules - (index + n) > reach ? index + n + reach : fs->granules;
	long used_before = prev_set_bit(fs->used, index, lo);
	uint32_t start = used_before < 0 ? lo : (uint32_t)used_before + 1;
	uint32_t end = next_bit(fs->used, index + n, hi, 1);
	if (end - start > fs->max_run)
		fs->max_run = fs->free;
}

void em_fs_free(struct em_freespace *fs, uint32_t index, uint32_t n)
{
	put_run(fs->used, index, n, 0);
	put_bit(fs->start, index, 0);
	put_bit(fs->end, index + n - 1, 0);
	for (int i = 0; i < EM_FS_FLAGS; i++)
		put_bit(fs->flags[i], index, 0);
	fs->free += n;
	/* Freeing the newest allocation hands its place to the next one: a
	 * program freed soon after it was made is rewritten in cache-warm memory. */
	if (fs->cursor == index + n)
		fs->cursor = index;
	raise_max_run(fs, index, n);
}

int em_fs_flag(const struct em_freespace *fs, enum em_fs_flag flag, uint32_t index)
{
	return index < fs->granules && test_bit(fs->flags[flag], index);
}

void em_fs_set_flag(struct em_freespace *fs, enum em_fs_flag flag, uint32_t index, int on)
{
	put_bit(fs->flags[flag], index, on);
}
