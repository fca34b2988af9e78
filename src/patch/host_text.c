/*
 * host_text.c - changing the text of the program and its libraries, which
 * is never made writable.  Each page to change is copied, as it is now,
 * into a fresh memfd, the new bytes are written into that copy, and the
 * copy is mapped read + execute, private, with MAP_FIXED over the page:
 * the kernel swaps the page for every thread at once, and no mapping of
 * the process is ever writable and executable (it works where
 * prctl(PR_SET_MDWE) refuses any such mapping).  The memfd is sealed
 * against writes before it is mapped and closed after: nothing can change
 * the new page behind the mapping.  A page changed again is copied from
 * what it holds by then, the last copy.
 */
#include "poke_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int em_host_text_check(uintptr_t addr, size_t len)
{
	for (uintptr_t at = addr; at < addr + len;) {
		uintptr_t start, end;
		int prot;
		bool shared;
		int rc = em_os_mapping_at(at, &start, &end, &prot, &shared);
		if (rc == -ENOMEM)
			return -EFAULT;
		if (rc)
			return rc;
		if (prot != (PROT_READ | PROT_EXEC) || shared)
			return -EFAULT;
		at = end;
	}
	return 0;
}

/* Maps a sealed memfd copy of page (size bytes, holding content) over it. */
static int replace_page(uintptr_t page, const uint8_t *content, size_t size)
{
	struct em_fd f;
	int rc = em_os_memfd("execmem:text", &f);
	if (rc)
		return rc;
	if (!(rc = em_os_ftruncate(&f, size)) && !(rc = em_os_write_file(&f, content, size)) &&
	    !(rc = em_os_seal_size(&f)) && !(rc = em_os_seal_writes(&f)))
		rc = em_os_map_text_over((void *)page, size, &f);
	em_os_close(&f);
	return rc;
}

/* Puts into copy (the page at page) the parts of pieces[*next...] that lie
 * in it; *next moves past the pieces that end in it. */
static void apply_pieces(uint8_t *copy, uintptr_t page, size_t size, const struct em_piece *pieces,
			 size_t n, size_t *next)
{
	for (size_t i = *next; i < n && pieces[i].addr < page + size; i++) {
		uintptr_t lo = pieces[i].addr > page ? pieces[i].addr : page;
		uintptr_t hi = pieces[i].addr + pieces[i].len;
		if (hi > page + size)
			hi = page + size;
		else if (i == *next)
			++*next;
		memcpy(copy + (lo - page), pieces[i].bytes + (lo - pieces[i].addr), hi - lo);
	}
}

int em_host_text_write(const struct em_piece *pieces, size_t n)
{
	size_t size = (size_t)em_os_page_size();
	uint8_t *copy = malloc(size);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	uintptr_t done = 0; /* the last page replaced, plus one page */
	for (size_t next = 0; next < n && !rc;) {
		uintptr_t page = pieces[next].addr & ~(uintptr_t)(size - 1);
		if (page < done)
			page = done; /* the piece began in the page before */
		memcpy(copy, (const void *)page, size);
		apply_pieces(copy, page, size, pieces, n, &next);
		rc = replace_page(page, copy, size);
		done = page + size;
	}
	free(copy);
	return rc;
}
