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
	uint64_t *used, *start, *end;
	uint64_t *flags[EM_FS_FLAGS];
};

/* Bytes of bitmap storage em_fs_init() needs for `granules` granules. */
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

int em_fs_flag(const struct em_freespace *fs, enum em_fs_flag flag, uint32_t index);
void em_fs_set_flag(struct em_freespace *fs, enum em_fs_flag flag, uint32_t index, int on);

#endif
