/*
 * range_table.c - a table of disjoint address ranges sorted by address,
 * each item starting with its struct em_range; names.c and unwind.c keep
 * theirs in one.  The caller locks.
 */
#include <stdlib.h>
#include <string.h>

#include "observe.h"

static struct em_range *item(const struct em_range_table *t, size_t i)
{
	return (struct em_range *)((char *)t->items + i * t->item_size);
}

void *em_range_at(const struct em_range_table *t, size_t i)
{
	return i < t->count ? item(t, i) : NULL;
}

size_t em_range_first_after(const struct em_range_table *t, uintptr_t addr)
{
	size_t lo = 0, hi = t->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (item(t, mid)->end > addr)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void *em_range_containing(const struct em_range_table *t, uintptr_t addr)
{
	struct em_range *r = em_range_at(t, em_range_first_after(t, addr));
	return r && r->start <= addr ? r : NULL;
}

size_t em_range_drop(struct em_range_table *t, uintptr_t lo, uintptr_t hi, void (*drop)(void *))
{
	size_t first = em_range_first_after(t, lo), last = first;
	for (; last < t->count && item(t, last)->start < hi; last++)
		drop(item(t, last));
	if (last == first)
		return first;
	memmove(item(t, first), item(t, last), (t->count - last) * t->item_size);
	t->count -= last - first;
	return first;
}

void *em_range_insert(struct em_range_table *t, size_t at)
{
	if (t->count == t->capacity) {
		size_t cap = t->capacity ? t->capacity * 2 : 64;
		void *grown = realloc(t->items, cap * t->item_size);
		if (!grown)
			return NULL;
		t->items = grown;
		t->capacity = cap;
	}
	memmove(item(t, at + 1), item(t, at), (t->count - at) * t->item_size);
	t->count++;
	return item(t, at);
}

int em_range_merge(struct em_range_table *t, const void *items, size_t n)
{
	if (t->count + n > t->capacity) {
		size_t cap = t->capacity ? t->capacity : 64;
		while (cap < t->count + n)
			cap *= 2;
		void *grown = realloc(t->items, cap * t->item_size);
		if (!grown)
			return -1;
		t->items = grown;
		t->capacity = cap;
	}
	/* From the back, so that every item moves once. */
	size_t old = t->count, add = n;
	while (add) {
		const struct em_range *next = (const void *)((const char *)items +
							     (add - 1) * t->item_size);
		if (old && item(t, old - 1)->start > next->start) {
			memcpy(item(t, old + add - 1), item(t, old - 1), t->item_size);
			old--;
		} else {
			memcpy(item(t, old + add - 1), next, t->item_size);
			add--;
		}
	}
	t->count += n;
	return 0;
}
