/*
 * freespace.c - bitmap free-space tracker (see freespace.h).
 */
#include "freespace.h"

#include <string.h>

#define WORD_BITS 64u

_Static_assert(EM_FS_FLAG0 + EM_FS_FLAGS <= EM_FS_LANES, "the flags fit in a group");

static uint32_t words_for(uint32_t bits)
{
	return (bits + WORD_BITS - 1) / WORD_BITS;
}

/* Word w of the bitmap in `lane`. */
static uint64_t *word(const struct em_freespace *fs, unsigned lane, uint32_t w)
{
	return &fs->groups[(size_t)w * EM_FS_LANES + lane];
}

/* Bitmap words are read by the lock-free lookups: access them atomically. */
static uint64_t load(const uint64_t *w)
{
	return __atomic_load_n(w, __ATOMIC_RELAXED);
}

static void store(uint64_t *w, uint64_t value)
{
	__atomic_store_n(w, value, __ATOMIC_RELAXED);
}

/* Bits [0, bit] of a word. */
static uint64_t up_to(uint32_t bit)
{
	return bit == WORD_BITS - 1 ? ~0ULL : (2ULL << bit) - 1;
}

static int test_bit(const struct em_freespace *fs, unsigned lane, uint32_t i)
{
	return (int)((load(word(fs, lane, i / WORD_BITS)) >> (i % WORD_BITS)) & 1);
}

static void put_bit(struct em_freespace *fs, unsigned lane, uint32_t i, int on)
{
	uint64_t *w = word(fs, lane, i / WORD_BITS);
	uint64_t bit = 1ULL << (i % WORD_BITS);
	store(w, on ? (load(w) | bit) : (load(w) & ~bit));
}

/* Bits [shift, shift + n) of a word, for shift + n <= 64. */
static uint64_t run_mask(uint32_t shift, uint32_t n)
{
	return (n == WORD_BITS ? ~0ULL : ((1ULL << n) - 1)) << shift;
}

/* Whether [index, index + n) lies in one word. */
static int in_one_word(uint32_t index, uint32_t n)
{
	return index % WORD_BITS + n <= WORD_BITS;
}

/* Set (on) or clear the bits [from, from + n). */
static void put_run(struct em_freespace *fs, unsigned lane, uint32_t from, uint32_t n, int on)
{
	while (n) {
		uint32_t shift = from % WORD_BITS;
		uint32_t take = WORD_BITS - shift < n ? WORD_BITS - shift : n;
		uint64_t mask = run_mask(shift, take);
		uint64_t *w = word(fs, lane, from / WORD_BITS);
		store(w, on ? (load(w) | mask) : (load(w) & ~mask));
		from += take;
		n -= take;
	}
}

/*
 * First index in [from, limit) whose bit equals `want`, or limit.  Words
 * are inverted when looking for zeros, so one scan serves both.
 */
static uint32_t next_bit(const struct em_freespace *fs, unsigned lane, uint32_t from,
			 uint32_t limit, int want)
{
	uint64_t flip = want ? 0 : ~0ULL;
	while (from < limit) {
		uint64_t w = (load(word(fs, lane, from / WORD_BITS)) ^ flip) >> (from % WORD_BITS);
		if (w) {
			uint32_t at = from + (uint32_t)__builtin_ctzll(w);
			return at < limit ? at : limit;
		}
		from = (from / WORD_BITS + 1) * WORD_BITS;
	}
	return limit;
}

/* Last set bit in [floor, index], or -1. */
static long prev_set_bit(const struct em_freespace *fs, unsigned lane, uint32_t index,
			 uint32_t floor)
{
	long w = index / WORD_BITS;
	uint64_t bits = load(word(fs, lane, (uint32_t)w)) & up_to(index % WORD_BITS);
	for (;;) {
		if (bits) {
			long at = w * (long)WORD_BITS + 63 - __builtin_clzll(bits);
			return at >= (long)floor ? at : -1;
		}
		if (--w < (long)(floor / WORD_BITS))
			return -1;
		bits = load(word(fs, lane, (uint32_t)w));
	}
}

size_t em_fs_storage_size(uint32_t granules)
{
	return (size_t)words_for(granules) * sizeof(uint64_t) * EM_FS_LANES;
}

void em_fs_init(struct em_freespace *fs, uint32_t granules, void *storage)
{
	memset(storage, 0, em_fs_storage_size(granules));
	fs->granules = granules;
	fs->free = granules;
	fs->cursor = 0;
	fs->max_run = granules;
	fs->groups = storage;
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
		pos = next_bit(fs, EM_FS_USED, pos, hi, 0);
		uint32_t aligned = (pos + align - 1) & ~(align - 1);
		if (aligned >= hi || hi - aligned < n) {
			if (hi - pos > *longest)
				*longest = hi - pos; /* the last run counts too */
			return -1;
		}
		/* Look no further than the run needs: free space is usually vast. */
		uint32_t taken = next_bit(fs, EM_FS_USED, pos, aligned + n, 1);
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
	if (floor == first || test_bit(fs, EM_FS_USED, first - 1))
		return first + n;
	long used = prev_set_bit(fs, EM_FS_USED, first - 1, floor);
	return used < 0 ? floor : (uint32_t)used + 1;
}

/* start and end before used: a concurrent em_fs_find never sees used
 * granules without the boundaries that delimit them. */
static void mark_allocation(struct em_freespace *fs, uint32_t first, uint32_t n)
{
	if (!in_one_word(first, n)) {
		put_bit(fs, EM_FS_START, first, 1);
		put_bit(fs, EM_FS_END, first + n - 1, 1);
		put_run(fs, EM_FS_USED, first, n, 1);
		return;
	}
	uint64_t *group = word(fs, 0, first / WORD_BITS);
	uint32_t shift = first % WORD_BITS;
	store(&group[EM_FS_START], load(&group[EM_FS_START]) | 1ULL << shift);
	store(&group[EM_FS_END], load(&group[EM_FS_END]) | 1ULL << (shift + n - 1));
	store(&group[EM_FS_USED], load(&group[EM_FS_USED]) | run_mask(shift, n));
}

/*
 * Whether the run a search from the cursor would find first starts at the
 * cursor itself, inside one word: the usual case of next fit, decided
 * with one load.
 */
static int fits_at_cursor(const struct em_freespace *fs, uint32_t n, uint32_t align,
			  uint32_t lo, uint32_t hi)
{
	uint32_t at = fs->cursor;
	if (at < lo || at >= hi || hi - at < n || (at & (align - 1)) || !in_one_word(at, n))
		return 0;
	return !(load(word(fs, EM_FS_USED, at / WORD_BITS)) & run_mask(at % WORD_BITS, n));
}

long em_fs_alloc(struct em_freespace *fs, uint32_t n, uint32_t align, uint32_t lo, uint32_t hi)
{
	if (hi > fs->granules)
		hi = fs->granules;
	if (n == 0 || n > fs->free || n > fs->max_run || lo >= hi || hi - lo < n)
		return -1;
	uint32_t longest = 0;
	long at = fits_at_cursor(fs, n, align, lo, hi) ? (long)fs->cursor : -1;
	if (at < 0 && fs->cursor > lo && fs->cursor < hi)
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
	mark_allocation(fs, first, n);
	fs->free -= n;
	fs->cursor = cursor_after(fs, first, n, align);
	return at;
}

/* Granules from first (a start) to the end bit at or after it; 0 if none. */
static uint32_t extent(const struct em_freespace *fs, uint32_t first)
{
	uint32_t last = next_bit(fs, EM_FS_END, first, fs->granules, 1);
	return last < fs->granules ? last - first + 1 : 0;
}

uint32_t em_fs_size(const struct em_freespace *fs, uint32_t index)
{
	if (index >= fs->granules)
		return 0;
	const uint64_t *group = word(fs, 0, index / WORD_BITS);
	uint64_t bit = 1ULL << (index % WORD_BITS);
	if (!(load(&group[EM_FS_START]) & load(&group[EM_FS_USED]) & bit))
		return 0;
	return extent(fs, index);
}

long em_fs_find(const struct em_freespace *fs, uint32_t index, uint32_t *granules)
{
	if (index >= fs->granules)
		return -1;
	const uint64_t *group = word(fs, 0, index / WORD_BITS);
	uint64_t used = load(&group[EM_FS_USED]);
	if (!((used >> (index % WORD_BITS)) & 1))
		return -1;
	/* Usually the allocation starts in the same group (often at index). */
	uint64_t starts = load(&group[EM_FS_START]) & up_to(index % WORD_BITS);
	long first;
	if (starts) {
		unsigned bit = 63u - (unsigned)__builtin_clzll(starts);
		if (!((used >> bit) & 1))
			return -1;
		first = (long)(index - index % WORD_BITS + bit);
	} else {
		first = prev_set_bit(fs, EM_FS_START, index, 0);
		if (first < 0 || !test_bit(fs, EM_FS_USED, (uint32_t)first))
			return -1;
	}
	uint32_t size = extent(fs, (uint32_t)first);
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
	long used_before = prev_set_bit(fs, EM_FS_USED, index, lo);
	uint32_t start = used_before < 0 ? lo : (uint32_t)used_before + 1;
	uint32_t end = next_bit(fs, EM_FS_USED, index + n, hi, 1);
	if (end - start > fs->max_run)
		fs->max_run = fs->free;
}

/* Clear an allocation's bits, in the order em_fs_find expects (used first). */
static void clear_allocation(struct em_freespace *fs, uint32_t index, uint32_t n)
{
	put_run(fs, EM_FS_USED, index, n, 0);
	put_bit(fs, EM_FS_START, index, 0);
	put_bit(fs, EM_FS_END, index + n - 1, 0);
	for (unsigned i = 0; i < EM_FS_FLAGS; i++)
		put_bit(fs, EM_FS_FLAG0 + i, index, 0);
}

/* The same for an allocation inside one group: each word once. */
static void clear_small_allocation(struct em_freespace *fs, uint32_t index, uint32_t n)
{
	uint64_t *group = word(fs, 0, index / WORD_BITS);
	uint32_t shift = index % WORD_BITS;
	uint64_t first = 1ULL << shift, last = 1ULL << (shift + n - 1);
	store(&group[EM_FS_USED], load(&group[EM_FS_USED]) & ~run_mask(shift, n));
	store(&group[EM_FS_START], load(&group[EM_FS_START]) & ~first);
	store(&group[EM_FS_END], load(&group[EM_FS_END]) & ~last);
	for (unsigned i = 0; i < EM_FS_FLAGS; i++)
		if (load(&group[EM_FS_FLAG0 + i]) & first)
			store(&group[EM_FS_FLAG0 + i], load(&group[EM_FS_FLAG0 + i]) & ~first);
}

void em_fs_free(struct em_freespace *fs, uint32_t index, uint32_t n)
{
	if (in_one_word(index, n))
		clear_small_allocation(fs, index, n);
	else
		clear_allocation(fs, index, n);
	fs->free += n;
	/* Freeing the newest allocation hands its place to the next one: a
	 * program freed soon after it was made is rewritten in cache-warm memory. */
	if (fs->cursor == index + n)
		fs->cursor = index;
	/* An emptied chunk is refilled from its start, as the memory written
	 * most recently (still in cache) is: a batch freed and allocated again
	 * lands where the last one was instead of in lines not touched for
	 * longest. */
	if (fs->free == fs->granules)
		fs->cursor = 0;
	raise_max_run(fs, index, n);
}

unsigned em_fs_flags(const struct em_freespace *fs, uint32_t index)
{
	if (index >= fs->granules)
		return 0;
	const uint64_t *group = word(fs, 0, index / WORD_BITS);
	unsigned flags = 0;
	for (unsigned i = 0; i < EM_FS_FLAGS; i++)
		flags |= (unsigned)((load(&group[EM_FS_FLAG0 + i]) >> (index % WORD_BITS)) & 1) << i;
	return flags;
}

void em_fs_set_flag(struct em_freespace *fs, enum em_fs_flag flag, uint32_t index, int on)
{
	put_bit(fs, EM_FS_FLAG0 + flag, index, on);
}
