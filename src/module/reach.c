/*
 * reach.c - the window of addresses a module may lie in (see reach.h).
 */
#include "reach.h"

uint64_t mod_howto_reach(const struct mod_howto *howto)
{
	if (howto->flags & (HOWTO_BRANCH | HOWTO_GOT) ||
	    (howto->value != VAL_PCREL && howto->value != VAL_PAGE_PCREL))
		return 0;
	unsigned bits;
	switch (howto->field) {
	case FIELD_S32:     bits = 32; break;
	case FIELD_S16:     bits = 16; break;
	case FIELD_S8:      bits = 8; break;
	case FIELD_A64_ADR: bits = 21; break;
	default:            return 0;
	}
	/* A page-granular field (ADRP) compares pages, not bytes: keep two
	 * pages of margin so that no rounding of either end takes it out. */
	uint64_t unit = (uint64_t)1 << howto->shift;
	uint64_t span = (uint64_t)1 << (bits - 1 + howto->shift);
	return span - (howto->shift ? 2 * unit : 1);
}

void mod_window_init(struct mod_window *w, uint64_t lo, uint64_t hi)
{
	*w = (struct mod_window){ lo, hi, 0, 0 };
}

void mod_window_narrow(struct mod_window *w, uint64_t target, uint64_t reach, uint32_t by)
{
	uint64_t lo = target > reach ? target - reach : 0;
	uint64_t hi = target < UINT64_MAX - reach ? target + reach : UINT64_MAX;
	if (lo > w->lo) {
		w->lo = lo;
		w->lo_by = by;
	}
	if (hi < w->hi) {
		w->hi = hi;
		w->hi_by = by;
	}
}

int mod_window_holds(const struct mod_window *w, uint64_t size)
{
	return w->lo <= w->hi && (size == 0 || w->hi - w->lo >= size - 1);
}
