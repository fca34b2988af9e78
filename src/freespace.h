/*
 * freespace.h - free-space tracker for one chunk: a pure data structure over
 * `granules` equal units, with no system calls, unit-testable on its own.
 *
 * Three bitmaps describe the chunk: `used` marks granules of live
 * allocations, `start` and `end` mark each allocation's first and last
 * granule.  Free by index is O(size / 64); the lookups that the lock-free
 * write path makes (em_fs_find, em_fs_size) read words atomically, so they
 * may run while another thread changes other allocations of the chunk.
 * Two spare bitmaps carry per-allocation flags (open write window, sealed).
 *
 * The bitmaps are interleaved: the words of all five for 64 granules make
 * one 64-byte group, so an allocation, a free or a lookup of a small
 * allocation touches one cache line instead of one line per bitmap (whose
 * lines, 4 KiB apart, would also compete for one set of the L1 cache).
 */
#ifndef EXECMEM_FREESPACE_H
#define EXECMEM_FREESPACE_H

#include <stddef.h>
#include <stdint.h>

enum em_fs_flag { EM_FS_WINDOW, EM_FS_SEALED, EM_FS_FLAGS };

struct em_freespace {
	uint32_t granules;
	uint32_t free;      /* granules not in use */
	uint32_t cursor;    /* where the next search starts (next fit) */
	uint32_t max_run;   /* no free run is longer (exact after a failed search) */
	uint64_t *groups;   /* EM_FS_LANES words per 64 granules */
};

/* Words of a group: the three bitmaps, then the flags; padded to 64 bytes. */
enum { EM_FS_USED, EM_FS_START, EM_FS_END, EM_FS_FLAG0, EM_FS_LANES = 8 };

/* Bytes of bitmap storage em_fs_init() needs for `granules` granules (best
 * aligned to 64 bytes, so that a group is one cache line). */
size_t em_fs_storage_size(uint32_t granules);

/* Set up an empty tracker over `storage` (em_fs_storage_size() bytes). */
void em_fs_init(struct em_freespace *fs, uint32_t granules, void *storage);

/*
 * Allocate n granules whose first index is a multiple of align (a power of
 * two) and which lie inside [lo, hi).  Returns the first index, or -1.
 * The free granules an alignment skips stay free, and are where the next
 * search starts.
 */
long em_fs_alloc(struct em_freespace *fs, uint32_t n, uint32_t align, uint32_t lo, uint32_t hi);

/* Granules of the live allocation starting at index; 0 if none starts there. */
uint32_t em_fs_size(const struct em_freespace *fs, uint32_t index);

/* First index of the live allocation holding index (its size in *granules), or -1. */
long em_fs_find(const struct em_freespace *fs, uint32_t index, uint32_t *granules);

/* Free the live allocation of n granules (em_fs_size()) starting at index. */
void em_fs_free(struct em_freespace *fs, uint32_t index, uint32_t n);

/* All flags of the allocation starting at index: bit f is flag f. */
unsigned em_fs_flags(const struct em_freespace *fs, uint32_t index);
void em_fs_set_flag(struct em_freespace *fs, enum em_fs_flag flag, uint32_t index, int on);

#endif
