/*
 * names.c - names of code ranges: a table sorted by address (names never
 * overlap), dropped when their memory goes (hooks.c), rewrites announced
 * to the perf outputs, and the batches of names registered with a
 * debugger.
 *
 * One mutex guards the table, the batches, the perf outputs and the
 * unwind ranges of unwind.c (see em_observe_lock() in observe.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "observe.h"

enum { BATCH_NAMES = 64 };

/* Up to BATCH_NAMES names registered as one symbol file. */
struct em_name_batch {
	struct em_name_batch *next, *prev;
	struct em_symbol syms[BATCH_NAMES];
	size_t count;
	struct em_gdb_entry *entry;
	bool dirty;
};

atomic_bool em_observe_armed;

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static struct em_range_table names = { .item_size = sizeof(struct em_name) };
static struct em_name_batch *batches;
static bool gdb_on;

/* ------------------------------------------------------------- batches */

static struct em_name_batch *batch_with_room(void)
{
	for (struct em_name_batch *b = batches; b; b = b->next)
		if (b->count < BATCH_NAMES)
			return b;
	struct em_name_batch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->next = batches;
	if (batches)
		batches->prev = b;
	batches = b;
	return b;
}

static void batch_add(struct em_name *n)
{
	struct em_name_batch *b = batch_with_room();
	if (!b)
		return; /* the debugger misses this name; the program goes on */
	b->syms[b->count++] = (struct em_symbol){ n->range.start, n->range.end - n->range.start,
						  n->name };
	b->dirty = true;
	n->batch = b;
}

static void batch_remove(struct em_name *n)
{
	struct em_name_batch *b = n->batch;
	for (size_t i = 0; i < b->count; i++)
		if (b->syms[i].start == n->range.start) {
			b->syms[i] = b->syms[--b->count];
			break;
		}
	b->dirty = true;
	n->batch = NULL;
}

static void batch_free(struct em_name_batch *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		batches = b->next;
	if (b->next)
		b->next->prev = b->prev;
	free(b);
}

/* Give the debugger a new symbol file for every batch that changed. */
static void batches_publish(void)
{
	for (struct em_name_batch *b = batches, *next; b; b = next) {
		next = b->next;
		if (!b->dirty)
			continue;
		b->dirty = false;
		em_gdb_unregister(b->entry);
		b->entry = NULL;
		if (!b->count) {
			batch_free(b);
			continue;
		}
		size_t size;
		void *file = em_symfile_build(b->syms, b->count, NULL, &size);
		if (file)
			b->entry = em_gdb_register(file, size);
	}
}

static void set_gdb(bool on)
{
	if (on == gdb_on)
		return;
	gdb_on = on;
	for (size_t i = 0; i < names.count; i++) {
		struct em_name *n = em_range_at(&names, i);
		if (on && !n->perf_only)
			batch_add(n);
		else if (!on && n->batch)
			batch_remove(n);
	}
	batches_publish();
}

/* --------------------------------------------------------------- table */

/* The names of one em_names_for_perf() batch, in one allocation that the
 * last of them frees (a module names thousands of functions at once). */
struct em_name_block {
	size_t refs;              /* names of the table in it */
	char bytes[];
};

static void drop_name(void *item)
{
	struct em_name *n = item;
	if (n->batch)
		batch_remove(n);
	if (!n->block)
		free(n->name);
	else if (--n->block->refs == 0)
		free(n->block);
}

static size_t drop_overlapping(uintptr_t lo, uintptr_t hi)
{
	return em_range_drop(&names, lo, hi, drop_name);
}

static int insert_name(size_t at, uintptr_t start, size_t len, const char *name)
{
	char *copy = strdup(name);
	struct em_name *n = copy ? em_range_insert(&names, at) : NULL;
	if (!n) {
		free(copy);
		return -ENOMEM;
	}
	*n = (struct em_name){ { start, start + len }, copy, NULL, NULL, false };
	em_perf_named(n);
	if (gdb_on)
		batch_add(n);
	return 0;
}

/* --------------------------------------------------------- environment */

static bool tracer_attached(void)
{
	return em_os_tracer_pid() > 0;
}

static void before_fork(void)
{
	pthread_mutex_lock(&names_lock);
}

static void in_parent(void)
{
	pthread_mutex_unlock(&names_lock);
}

static void in_child(void)
{
	em_perf_after_fork(names.items, names.count);
	pthread_mutex_unlock(&names_lock);
}

static void read_environment(void)
{
	const char *gdb = getenv("EXECMEM_GDB");
	/* Without the handlers a child would write into its parent's files. */
	pthread_atfork(before_fork, in_parent, in_child);
	pthread_mutex_lock(&names_lock);
	em_perf_set_outputs(em_perf_outputs_from_env(), names.items, names.count);
	set_gdb((gdb && strcmp(gdb, "1") == 0) || tracer_attached());
	pthread_mutex_unlock(&names_lock);
}

static void lock_names(void)
{
	pthread_once(&env_once, read_environment);
	pthread_mutex_lock(&names_lock);
}

/* ------------------------------------------------------------- naming */

static int check_named_range(void *addr, size_t len)
{
	struct em_chunk *c = em_addrmap_get(addr);
	if (!c || !len)
		return -EINVAL;
	/* Sealed data and code under an open window may be named all the same. */
	int rc = em_check_range(c, (uintptr_t)addr, len);
	return rc == -EPERM || rc == -EBUSY ? 0 : rc;
}

int execmem_set_name(void *addr, size_t len, const char *name)
{
	if (name && !*name)
		return -EINVAL;
	uintptr_t start = (uintptr_t)addr;
	lock_names();
	/* Checked under the lock: a free that ends after the check drops the
	 * name in its hook, which waits for the lock. */
	int rc = check_named_range(addr, len);
	if (!rc) {
		size_t at = drop_overlapping(start, start + len);
		if (name)
			rc = insert_name(at, start, len, name);
		batches_publish();
	}
	atomic_store(&em_observe_armed, true);
	pthread_mutex_unlock(&names_lock);
	return rc;
}

/* ------------------------------------------------- names of a module */

/* Sort by start address: a radix sort over the offsets from the lowest,
 * one byte a pass and only as many passes as the span needs, stable, so
 * linear whatever the order a module's symbol tables give. */
static int sort_by_start(struct em_symbol *syms, size_t count)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (size_t i = 0; i < count; i++) {
		lo = syms[i].start < lo ? syms[i].start : lo;
		hi = syms[i].start > hi ? syms[i].start : hi;
	}
	struct em_symbol *tmp = count > 1 ? malloc(count * sizeof *tmp) : NULL;
	if (count > 1 && !tmp)
		return -ENOMEM;
	struct em_symbol *from = syms, *to = tmp;
	for (unsigned shift = 0; count > 1 && shift < 64 && (hi - lo) >> shift; shift += 8) {
		size_t at[257] = { 0 };
		for (size_t i = 0; i < count; i++)
			at[((from[i].start - lo) >> shift & 0xff) + 1]++;
		for (int d = 0; d < 256; d++)
			at[d + 1] += at[d];
		for (size_t i = 0; i < count; i++)
			to[at[(from[i].start - lo) >> shift & 0xff]++] = from[i];
		struct em_symbol *sorted = to;   /* the next pass sorts back */
		to = from;
		from = sorted;
	}
	if (from != syms)
		memcpy(syms, from, count * sizeof *syms);
	free(tmp);
	return 0;
}

/* The owner that holds [start, start + size), from owner *o on (both
 * lists sorted), or -1. */
static int owned(const struct em_range *owners, size_t nowners, size_t *o,
		 const struct em_symbol *s)
{
	while (*o < nowners && owners[*o].end <= s->start)
		++*o;
	if (*o == nowners || s->start < owners[*o].start || s->size > owners[*o].end - s->start)
		return -1;
	return 0;
}

static int check_owners(const struct em_range *owners, size_t nowners)
{
	for (size_t i = 0; i < nowners; i++) {
		if (i && owners[i].start < owners[i - 1].end)
			return -EINVAL;
		int rc = check_named_range((void *)owners[i].start,
					   owners[i].end - owners[i].start);
		if (rc)
			return rc;
	}
	return 0;
}

static int has_name(const struct em_symbol *s)
{
	return s->name && *s->name && s->size;
}

/* Room for the names of syms, or NULL when out of memory. */
static struct em_name_block *name_block(const struct em_symbol *syms, size_t count)
{
	size_t bytes = 0;
	for (size_t i = 0; i < count; i++)
		bytes += has_name(&syms[i]) ? strlen(syms[i].name) + 1 : 0;
	struct em_name_block *b = malloc(sizeof *b + bytes);
	if (b)
		b->refs = 0;
	return b;
}

/* The names to insert, each overlapping no other and inside an owner:
 * *kept of them, their strings in block. */
static void make_names(const struct em_symbol *syms, size_t count, const struct em_range *owners,
		       size_t nowners, struct em_name_block *block, struct em_name *out,
		       size_t *kept)
{
	size_t o = 0;
	uintptr_t end = 0;
	char *cursor = block->bytes;
	*kept = 0;
	for (size_t i = 0; i < count; i++) {
		const struct em_symbol *s = &syms[i];
		if (!has_name(s) || owned(owners, nowners, &o, s) || (*kept && s->start < end))
			continue;
		size_t len = strlen(s->name) + 1;
		char *copy = memcpy(cursor, s->name, len);
		cursor += len;
		end = s->start + s->size;
		out[(*kept)++] = (struct em_name){ { s->start, end }, copy, block, NULL, true };
	}
	block->refs = *kept;
}

int em_names_for_perf(struct em_symbol *syms, size_t count, const struct em_range *owners,
		      size_t nowners)
{
	struct em_name *made = malloc((count ? count : 1) * sizeof *made);
	struct em_name_block *block = made ? name_block(syms, count) : NULL;
	size_t kept = 0;
	int rc = block ? sort_by_start(syms, count) : -ENOMEM;
	if (!rc)
		make_names(syms, count, owners, nowners, block, made, &kept);
	lock_names();
	if (!rc)
		rc = check_owners(owners, nowners);
	for (size_t i = 0; !rc && i < nowners; i++)
		drop_overlapping(owners[i].start, owners[i].end);
	if (!rc && em_range_merge(&names, made, kept))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < kept; i++)
		em_perf_named(&made[i]);
	if (!rc) {
		batches_publish();
		atomic_store(&em_observe_armed, true);
	}
	pthread_mutex_unlock(&names_lock);
	if (rc || !kept)
		free(block);    /* no name of the table is in it */
	free(made);
	return rc;
}

int execmem_get_name(const void *addr, char *buf, size_t size)
{
	if (!buf || !size)
		return -EINVAL;
	lock_names();
	const struct em_name *n = em_range_containing(&names, (uintptr_t)addr);
	int rc = n ? (int)strlen(n->name) : -ENOENT;
	if (n)
		snprintf(buf, size, "%s", n->name);
	pthread_mutex_unlock(&names_lock);
	return rc;
}

/* --------------------------------------------------------------- hooks */

void em_observe_lock(void)
{
	lock_names();
}

void em_observe_unlock(void)
{
	pthread_mutex_unlock(&names_lock);
}

void em_names_drop(uintptr_t addr, size_t len)
{
	drop_overlapping(addr, addr + len);
	batches_publish();
}

void em_observe_written(uintptr_t addr, size_t len)
{
	lock_names();
	struct em_name *n;
	for (size_t i = em_range_first_after(&names, addr);
	     (n = em_range_at(&names, i)) && n->range.start < addr + len; i++)
		em_perf_rewritten(n);
	pthread_mutex_unlock(&names_lock);
}

/* ------------------------------------------------------------- switches */

int execmem_perf_enable(unsigned flags)
{
	if (flags & ~(unsigned)(EXECMEM_PERF_MAP | EXECMEM_PERF_JITDUMP))
		return -EINVAL;
	lock_names();
	int rc = em_perf_set_outputs(flags, names.items, names.count);
	pthread_mutex_unlock(&names_lock);
	return rc;
}

int execmem_gdb_enable(int enable)
{
	lock_names();
	set_gdb(enable != 0);
	pthread_mutex_unlock(&names_lock);
	return 0;
}
