/*
 * procfs.h - what /proc says about this process's memory: W+X mappings,
 * the proportional set size and huge pages of the mappings that hold given
 * addresses, and page-fault counts.
 */
#ifndef EXECMEM_TOOLS_PROCFS_H
#define EXECMEM_TOOLS_PROCFS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Count mappings of this process that are writable and executable at once
 * (execmem_audit()), leaving out those it recognises as the memory of a
 * tool running the process (valgrind's translations).  The first one found
 * is described in first (may be NULL).  Returns the count, or a negative
 * errno when /proc cannot be read.
 */
int procfs_count_wx(char *first, size_t firstlen);

/*
 * Proportional set size, in bytes, of every mapping that contains one of
 * the n addresses in addrs (sorted ascending), together with every other
 * mapping of the same file or memfd, so that the two views of a
 * dual-mapped page count once in total.  Returns 0 or a negative errno.
 */
int procfs_pss_of(const uintptr_t *addrs, size_t n, size_t *pss_bytes);

/* What procfs_usage_of() finds. */
struct procfs_usage {
	size_t pss;             /* as procfs_pss_of() */
	size_t huge;            /* bytes of the mappings holding an address (not
				 * their other views) mapped with 2 MiB pages:
				 * AnonHugePages + ShmemPmdMapped + FilePmdMapped */
};

/* procfs_pss_of(), and the huge page bytes of the same mappings.
 * Returns 0 or a negative errno. */
int procfs_usage_of(const uintptr_t *addrs, size_t n, struct procfs_usage *out);

/* Minor + major page faults of the calling process so far. */
uint64_t procfs_page_faults(void);

#endif
