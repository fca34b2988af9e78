/*
 * patch.c - execmem_patch() and execmem_patch_batch(): live patching of
 * execmem's own code, on top of em_poke_batch(), which would also take
 * host text: these entry points refuse any site outside a live code
 * allocation first.
 */
#include "execmem/patch.h"
#include "poke_int.h"

#include <stdlib.h>

static int check_site(const struct execmem_patch_site *s)
{
	if (!s->addr || !s->bytes || s->len == 0 || s->len > EXECMEM_PATCH_MAX)
		return -EINVAL;
	struct em_chunk *c = em_addrmap_get(s->addr);
	if (!c || !c->pool->code)
		return -EINVAL;
	return em_check_range(c, (uintptr_t)s->addr, s->len);
}

int execmem_patch_batch(const struct execmem_patch_site *sites, size_t n)
{
	if (n == 0)
		return 0;
	if (!sites || n > SIZE_MAX / sizeof(struct em_poke_site))
		return -EINVAL;
	struct em_poke_site *pokes = malloc(n * sizeof *pokes);
	if (!pokes)
		return -ENOMEM;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = check_site(&sites[i]);
		pokes[i] = (struct em_poke_site){ sites[i].addr, sites[i].bytes, sites[i].len, NULL };
	}
	if (!rc)
		rc = em_poke_batch(pokes, n);
	free(pokes);
	return rc;
}

int execmem_patch(void *addr, const void *bytes, size_t len)
{
	struct execmem_patch_site site = { addr, bytes, len };
	return execmem_patch_batch(&site, 1);
}
