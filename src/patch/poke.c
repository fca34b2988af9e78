/*
 * poke.c - em_poke_batch(): the protocol that changes instructions other
 * threads may be running.  For every site that needs it:
 *
 *   1. the site's first bytes become a trap (trap.c makes a thread that
 *      executes it wait, then go back to the site's start);   sync
 *   2. wait until no other thread's PC lies inside the site past its
 *      first bytes (census.c), so none is in the middle of the old bytes;
 *   3. the rest of the site takes its new bytes;                sync
 *   4. the first bytes take theirs;                             sync
 *
 * A thread that reaches a site meanwhile meets the old bytes, the trap, or
 * the new bytes, each time from its start: never part of each.  Sites the
 * architecture can change with one store (poke_int.h's direct()) skip to
 * step 4.  Every step is done for all the batch's sites before the next,
 * so a batch costs three synchronisations whatever its size.  "sync" is
 * membarrier(SYNC_CORE), or where the kernel lacks it a census round whose
 * handler serialises each thread.  A thread that stays inside a site makes
 * the batch give up after a bounded wait: the first bytes are given back
 * and nothing has changed (-EBUSY).
 *
 * Sites in execmem code are written with execmem_write(), through the
 * mode's own path (the alias, or a page toggled while the fault guard
 * parks the threads that run it); sites elsewhere are host text
 * (host_text.c), every page a step changes replaced once.
 */
#include "poke_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How many censuses find a thread inside a site before the batch gives up,
 * and the pause after each (doubling from 50 us, at most 10 ms). */
enum { BUSY_RETRIES = 40 };

struct site_plan {
	uintptr_t addr;
	const uint8_t *bytes;
	size_t len;
	uintptr_t detour; /* see em_poke_site */
	bool host;       /* host text, else execmem code */
	bool trapped;    /* takes the trap protocol, else one direct store */
	uint8_t old[16];
};

static pthread_mutex_t poke_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* fork() waits for the batch under way: a child would inherit its traps
 * with no thread of its own to take them out, and the locks held. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&poke_lock);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&poke_lock);
}

/* After execmem's own fork handlers and the census's, so that fork() waits
 * for a batch (which takes the census lock, and whose writes go through
 * execmem's write gate) before either: prepare handlers run in the reverse
 * order of their registration. */
static void watch_forks(void)
{
	em_census_watch_forks();
	pthread_atfork(fork_prepare, fork_done, fork_done);
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = ((const struct site_plan *)a)->addr, y = ((const struct site_plan *)b)->addr;
	return x < y ? -1 : x > y;
}

/* The site's shape: length, alignment, at most two pages. */
static bool shape_ok(const struct em_poke_site *s)
{
	uintptr_t addr = (uintptr_t)s->addr, page = (uintptr_t)em_os_page_size();
	size_t align = em_poke_arch.align;
	return s->addr && s->bytes && s->len >= em_poke_arch.trap_len &&
	       s->len <= em_poke_arch.max_len && addr % align == 0 && s->len % align == 0 &&
	       addr + s->len > addr &&
	       ((addr + s->len - 1) & ~(page - 1)) - (addr & ~(page - 1)) <= page;
}

/* Where the site lies: live execmem code, or executable host text. */
static int locate(struct site_plan *p)
{
	struct em_chunk *c = em_addrmap_get((void *)p->addr);
	if (c)
		return c->pool->code ? em_check_range(c, p->addr, p->len) : -EINVAL;
	p->host = true;
	return em_host_text_check(p->addr, p->len);
}

static int plan_sites(const struct em_poke_site *sites, size_t n, struct site_plan *plan)
{
	for (size_t i = 0; i < n; i++) {
		if (!shape_ok(&sites[i]))
			return -EINVAL;
		plan[i] = (struct site_plan){ .addr = (uintptr_t)sites[i].addr, .bytes = sites[i].bytes,
					     .len = sites[i].len, .detour = (uintptr_t)sites[i].detour };
	}
	qsort(plan, n, sizeof *plan, by_address);
	for (size_t i = 0; i < n; i++) {
		if (i && plan[i - 1].addr + plan[i - 1].len > plan[i].addr)
			return -EINVAL; /* overlapping sites */
		int rc = locate(&plan[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Reads each site's bytes as they are, under the lock: what the trap
 * protocol and a retreat give back. */
static size_t read_old(struct site_plan *plan, size_t n)
{
	size_t trapped = 0;
	for (size_t i = 0; i < n; i++) {
		memcpy(plan[i].old, (const void *)plan[i].addr, plan[i].len);
		plan[i].trapped = !em_poke_arch.direct(plan[i].old, plan[i].bytes, plan[i].len);
		trapped += plan[i].trapped;
	}
	return trapped;
}

/* The writes of one step. */
enum step { STEP_TRAP, STEP_TAIL, STEP_FIRST, STEP_RETREAT };

static struct em_piece piece_of(const struct site_plan *p, enum step step)
{
	size_t head = em_poke_arch.trap_len;
	switch (step) {
	case STEP_TRAP:
		return (struct em_piece){ p->addr, em_poke_arch.trap, head };
	case STEP_TAIL:
		return (struct em_piece){ p->addr + head, p->bytes + head, p->len - head };
	case STEP_FIRST:
		return (struct em_piece){ p->addr, p->bytes, p->trapped ? head : p->len };
	default: /* the old bytes back, tail and first bytes: no thread is inside */
		return (struct em_piece){ p->addr, p->old, p->len };
	}
}

static bool in_step(const struct site_plan *p, enum step step)
{
	if (step == STEP_FIRST)
		return true;
	return p->trapped && (step != STEP_TAIL || p->len > em_poke_arch.trap_len);
}

/* Makes the writes of a step: execmem code piece by piece, host text page
 * by page.  pieces has room for n. */
static int write_step(const struct site_plan *plan, size_t n, enum step step,
		      struct em_piece *pieces)
{
	size_t host = 0;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		if (!in_step(&plan[i], step))
			continue;
		struct em_piece piece = piece_of(&plan[i], step);
		if (plan[i].host)
			pieces[host++] = piece;
		else
			rc = execmem_write((void *)piece.addr, piece.bytes, piece.len);
	}
	return rc ? rc : host ? em_host_text_write(pieces, host) : 0;
}

/* membarrier(SYNC_CORE), else (missing, refused, or failed) a census round. */
static int sync_cores(void)
{
	return em_os_sync_core() ? em_census_sync() : 0;
}

static void pause_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

/* Waits, a bounded time, until no thread is past the first bytes of a
 * trapped site.  ranges has room for n. */
static int wait_outside(const struct site_plan *plan, size_t n, struct em_pc_range *ranges)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		if (plan[i].trapped && plan[i].len > em_poke_arch.trap_len)
			ranges[count++] = (struct em_pc_range){ plan[i].addr + em_poke_arch.trap_len,
								plan[i].addr + plan[i].len };
	if (!count)
		return 0;
	int rc = 0;
	for (long attempt = 0, us = 50; attempt < BUSY_RETRIES; attempt++) {
		if ((rc = em_threads_outside(ranges, count)) != -EBUSY)
			return rc;
		pause_us(us);
		us = us < 10000 ? us * 2 : 10000;
	}
	return rc;
}

/* Steps 1 to 3; on failure the traps are taken back out. */
static int trap_and_fill(struct site_plan *plan, size_t n, struct em_piece *pieces,
			 struct em_pc_range *ranges)
{
	int rc = write_step(plan, n, STEP_TRAP, pieces);
	if (!rc)
		rc = sync_cores();
	if (!rc)
		rc = wait_outside(plan, n, ranges);
	if (!rc && !(rc = write_step(plan, n, STEP_TAIL, pieces)))
		rc = sync_cores();
	if (rc) {
		/* The old bytes back, tried twice.  Should both fail, the traps
		 * left behind are no longer listed and their bytes stay, which
		 * trap.c passes on to the program's SIGTRAP action. */
		if (!write_step(plan, n, STEP_RETREAT, pieces) ||
		    !write_step(plan, n, STEP_RETREAT, pieces))
			sync_cores();
	}
	return rc;
}

/* Step 4, tried twice: an OS failure that persists leaves the batch partly
 * applied, and the traps of the sites not reached in place, no longer
 * listed: a thread that reaches one goes to the program's SIGTRAP action. */
static int finish(const struct site_plan *plan, size_t n, struct em_piece *pieces)
{
	int rc = write_step(plan, n, STEP_FIRST, pieces);
	if (rc)
		rc = write_step(plan, n, STEP_FIRST, pieces);
	return rc ? rc : sync_cores();
}

static int apply(struct site_plan *plan, size_t n, size_t trapped)
{
	struct em_piece *pieces = malloc(n * sizeof *pieces);
	struct em_pc_range *ranges = malloc(n * sizeof *ranges);
	struct em_trap_site *sites = malloc(n * sizeof *sites);
	int rc = pieces && ranges && sites ? 0 : -ENOMEM;
	size_t listed = 0;
	for (size_t i = 0; !rc && i < n; i++)
		if (plan[i].trapped)
			sites[listed++] = (struct em_trap_site){ plan[i].addr, plan[i].detour };
	bool listing = !rc && trapped;
	if (listing && (rc = em_traps_begin(sites, listed)))
		listing = false;
	if (!rc && trapped)
		rc = trap_and_fill(plan, n, pieces, ranges);
	if (!rc)
		rc = finish(plan, n, pieces);
	if (listing)
		em_traps_end();
	free(sites);
	free(ranges);
	free(pieces);
	return rc;
}

int em_poke_batch(const struct em_poke_site *sites, size_t n)
{
	if (n == 0)
		return 0;
	if (!sites || n > SIZE_MAX / sizeof(struct site_plan))
		return -EINVAL;
	struct site_plan *plan = malloc(n * sizeof *plan);
	if (!plan)
		return -ENOMEM;
	int rc = plan_sites(sites, n, plan);
	if (!rc) {
		pthread_once(&fork_once, watch_forks);
		pthread_mutex_lock(&poke_lock);
		rc = apply(plan, n, read_old(plan, n));
		pthread_mutex_unlock(&poke_lock);
	}
	free(plan);
	return rc;
}
