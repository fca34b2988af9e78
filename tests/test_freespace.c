/*
 * test_freespace - the free-space tracker alone, against a byte-per-granule
 * model, with no mmap at all.
 */
#include "freespace.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#define GRANULES 1000

static void basics(void)
{
	struct em_freespace fs;
	void *storage = malloc(em_fs_storage_size(GRANULES));
	em_fs_init(&fs, GRANULES, storage);
	CHECK_EQ(em_fs_alloc(&fs, 10, 1, 0, GRANULES), 0);
	CHECK_EQ(em_fs_alloc(&fs, 5, 1, 0, GRANULES), 10);
	CHECK_EQ(em_fs_size(&fs, 0), 10);
	CHECK_EQ(em_fs_size(&fs, 10), 5);
	CHECK_EQ(em_fs_size(&fs, 3), 0);        /* interior */
	uint32_t n = 0;
	CHECK_EQ(em_fs_find(&fs, 3, &n), 0);
	CHECK_EQ(n, 10);
	CHECK_EQ(em_fs_find(&fs, 14, &n), 10);
	CHECK_EQ(n, 5);
	CHECK_EQ(em_fs_find(&fs, 15, &n), -1);  /* free */
	CHECK_EQ(em_fs_size(&fs, 3), 0);        /* interior: not an allocation */
	em_fs_free(&fs, 0, 10);
	CHECK_EQ(em_fs_size(&fs, 0), 0);        /* freed: a second free is refused */
	CHECK_EQ(fs.free, GRANULES - 5);
	/* aligned and windowed allocations */
	long a = em_fs_alloc(&fs, 3, 16, 0, GRANULES);
	CHECK(a >= 0 && a % 16 == 0);
	long w = em_fs_alloc(&fs, 4, 1, 500, 504);
	CHECK_EQ(w, 500);
	CHECK_EQ(em_fs_alloc(&fs, 4, 1, 500, 504), -1);  /* window full */
	CHECK_EQ(em_fs_alloc(&fs, GRANULES, 1, 0, GRANULES), -1);
	CHECK_EQ(em_fs_alloc(&fs, 0, 1, 0, GRANULES), -1);
	/* freeing the newest allocation hands its place to the next one */
	long newest = em_fs_alloc(&fs, 2, 1, 0, GRANULES);
	CHECK(newest >= 0);
	em_fs_free(&fs, (uint32_t)newest, 2);
	CHECK_EQ(em_fs_alloc(&fs, 2, 1, 0, GRANULES), newest);
	em_fs_free(&fs, (uint32_t)newest, 2);
	/* flags */
	em_fs_set_flag(&fs, EM_FS_SEALED, 500, 1);
	CHECK_EQ(em_fs_flags(&fs, 500), 1u << EM_FS_SEALED);
	CHECK_EQ(em_fs_size(&fs, 500), 4);
	em_fs_free(&fs, 500, 4);
	CHECK_EQ(em_fs_flags(&fs, 500), 0);
	free(storage);
}

/* The gap an alignment skips stays free and is filled first. */
static void alignment_gap(void)
{
	struct em_freespace fs;
	void *storage = malloc(em_fs_storage_size(GRANULES));
	em_fs_init(&fs, GRANULES, storage);
	CHECK_EQ(em_fs_alloc(&fs, 1, 1, 0, GRANULES), 0);
	CHECK_EQ(em_fs_alloc(&fs, 2, 64, 0, GRANULES), 64);
	CHECK_EQ(fs.free, GRANULES - 3);
	CHECK_EQ(em_fs_alloc(&fs, 2, 64, 0, GRANULES), 128);
	CHECK_EQ(em_fs_alloc(&fs, 1, 1, 0, GRANULES), 66); /* the gap right before 128 */
	CHECK_EQ(em_fs_alloc(&fs, 1, 1, 0, GRANULES), 67);
	CHECK_EQ(em_fs_alloc(&fs, 60, 1, 0, GRANULES), 68); /* the rest of that gap */
	CHECK_EQ(em_fs_alloc(&fs, 1, 1, 1, 64), 1);        /* the first gap is free too */
	free(storage);
}

/* Random alloc/free against a model that owns each granule by allocation id. */
static void against_model(unsigned seed)
{
	struct em_freespace fs;
	void *storage = malloc(em_fs_storage_size(GRANULES));
	em_fs_init(&fs, GRANULES, storage);
	int owner[GRANULES];
	long starts[GRANULES];
	int nlive = 0, bad = 0;
	memset(owner, 0, sizeof owner);
	srand(seed);
	for (int step = 0; step < 20000; step++) {
		if (nlive && (rand() % 2)) {
			int k = rand() % nlive;
			long s = starts[k];
			uint32_t n = em_fs_size(&fs, (uint32_t)s);
			for (uint32_t i = 0; i < n; i++)
				bad += owner[s + i] != (int)s + 1, owner[s + i] = 0;
			bad += n == 0;
			em_fs_free(&fs, (uint32_t)s, n);
			starts[k] = starts[--nlive];
		} else {
			uint32_t n = 1 + (uint32_t)(rand() % 40), align = 1u << (rand() % 4);
			long s = em_fs_alloc(&fs, n, align, 0, GRANULES);
			if (s < 0)
				continue;
			bad += s % align != 0;
			for (uint32_t i = 0; i < n; i++) {
				bad += owner[s + i] != 0;
				owner[s + i] = (int)s + 1;
				uint32_t found = 0;
				bad += em_fs_find(&fs, (uint32_t)(s + i), &found) != s || found != n;
			}
			starts[nlive++] = s;
		}
	}
	uint32_t model_free = 0, run = 0, longest = 0;
	for (int i = 0; i < GRANULES; i++) {
		model_free += owner[i] == 0;
		run = owner[i] == 0 ? run + 1 : 0;
		longest = run > longest ? run : longest;
	}
	/* max_run is an upper bound, so an allocation that fits always succeeds */
	CHECK(fs.max_run >= longest);
	CHECK_EQ(bad, 0);
	CHECK_EQ(fs.free, model_free);
	CHECK(!longest || em_fs_alloc(&fs, longest, 1, 0, GRANULES) >= 0);
	free(storage);
}

int main(void)
{
	basics();
	alignment_gap();
	for (unsigned seed = 1; seed <= 5; seed++)
		against_model(seed);
	return tu_finish("test_freespace");
}
