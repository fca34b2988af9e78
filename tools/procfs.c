/*
 * procfs.c - reading /proc/self/smaps, and the W+X audit of execmem_audit().
 */
#include "procfs.h"

#include "execmem.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct wx_count {
	int count;
	char *first;
	size_t firstlen;
};

static int count_wx(const struct execmem_finding *f, void *ctx)
{
	struct wx_count *wx = ctx;
	if (f->kind != EXECMEM_FINDING_WX || f->mapping.tool)
		return 0;
	if (wx->count++ == 0 && wx->first && wx->firstlen)
		snprintf(wx->first, wx->firstlen, "%" PRIxPTR "-%" PRIxPTR " %s", f->mapping.start,
			 f->mapping.end, f->mapping.name);
	return 0;
}

int procfs_count_wx(char *first, size_t firstlen)
{
	struct wx_count wx = { 0, first, firstlen };
	if (first && firstlen)
		first[0] = '\0';
	int err = execmem_audit(0, count_wx, &wx, NULL);
	return err ? err : wx.count;
}

struct mapping {
	uintptr_t start, end;
	unsigned long dev_major, dev_minor;
	uint64_t inode;
	size_t pss, huge;
	bool wanted, holder;
};

struct mapping_list {
	struct mapping *v;
	size_t n, cap;
};

static int mapping_push(struct mapping_list *list, const struct mapping *m)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 256;
		struct mapping *v = realloc(list->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		list->v = v;
		list->cap = cap;
	}
	list->v[list->n++] = *m;
	return 0;
}

/* The lines of smaps that count memory mapped with PMD-sized pages. */
static bool is_huge_line(const char *line, size_t *kb)
{
	return sscanf(line, "AnonHugePages: %zu kB", kb) == 1 ||
	       sscanf(line, "ShmemPmdMapped: %zu kB", kb) == 1 ||
	       sscanf(line, "FilePmdMapped: %zu kB", kb) == 1;
}

/* smaps: a header line per mapping, then "Key:   value kB" lines. */
static int read_smaps(struct mapping_list *list)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char *line = NULL;
	size_t cap = 0;
	int err = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		struct mapping m = { 0 };
		size_t kb;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %*s %lx:%lx %" SCNu64,
			   &m.start, &m.end, &m.dev_major, &m.dev_minor, &m.inode) == 5) {
			if ((err = mapping_push(list, &m)))
				break;
		} else if (list->n && sscanf(line, "Pss: %zu kB", &kb) == 1) {
			list->v[list->n - 1].pss = kb * 1024;
		} else if (list->n && is_huge_line(line, &kb)) {
			list->v[list->n - 1].huge += kb * 1024;
		}
	}
	free(line);
	fclose(f);
	return err;
}

static bool same_object(const struct mapping *a, const struct mapping *b)
{
	return a->inode && a->inode == b->inode &&
	       a->dev_major == b->dev_major && a->dev_minor == b->dev_minor;
}

/* Mark the mappings that hold an address: both lists are sorted. */
static void mark_holders(struct mapping_list *list, const uintptr_t *addrs, size_t n)
{
	size_t i = 0;
	for (size_t m = 0; m < list->n && i < n; m++) {
		while (i < n && addrs[i] < list->v[m].start)
			i++;
		if (i < n && addrs[i] < list->v[m].end)
			list->v[m].wanted = list->v[m].holder = true;
		while (i < n && addrs[i] < list->v[m].end)
			i++;
	}
}

/* Other views of the same memfd or file.  Quadratic in the number of
 * wanted objects, which is small (chunks, blocks, or merged areas). */
static void mark_other_views(struct mapping_list *list)
{
	for (size_t a = 0; a < list->n; a++) {
		if (!list->v[a].wanted || !list->v[a].inode)
			continue;
		for (size_t b = 0; b < list->n; b++)
			if (!list->v[b].wanted && same_object(&list->v[a], &list->v[b]))
				list->v[b].wanted = true;
	}
}

int procfs_usage_of(const uintptr_t *addrs, size_t n, struct procfs_usage *out)
{
	struct mapping_list list = { 0 };
	int err = read_smaps(&list);

	memset(out, 0, sizeof(*out));
	if (!err) {
		mark_holders(&list, addrs, n);
		mark_other_views(&list);
		for (size_t m = 0; m < list.n; m++) {
			if (list.v[m].wanted)
				out->pss += list.v[m].pss;
			if (list.v[m].holder)
				out->huge += list.v[m].huge;
		}
	}
	free(list.v);
	return err;
}

int procfs_pss_of(const uintptr_t *addrs, size_t n, size_t *pss_bytes)
{
	struct procfs_usage u;
	int err = procfs_usage_of(addrs, n, &u);
	*pss_bytes = u.pss;
	return err;
}

uint64_t procfs_page_faults(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}
