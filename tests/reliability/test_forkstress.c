/*
 * test_forkstress.c - a forked child must never be able to change its
 * parent's code, nor see code the parent writes after the fork, whatever
 * the parent's threads were doing at the fork.  Threads make and free large
 * allocations (a mapping of their own each) and small ones continuously,
 * publishing each one in a board shared with the children; the main thread
 * forks again and again.  Each child, for a while: checks that nothing the
 * parent wrote after the fork shows in its memory (and says which memfds of
 * execmem it shares with the parent), writes values of its own
 * into every program it can name (the parent's long-lived ones and every
 * address on the board) with execmem_write(), and overwrites every writable
 * execmem mapping it has.  The parent checks, while its threads hold their
 * programs and after each child exits, that all of them are intact.
 * The mode comes from EXECMEM_MODE (mprotect mode has nothing shared).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtest.h"

enum { CHURNERS = 2, RING = 8, LONG_LIVED = 8, FORKS = 30, TSAN_FORKS = 8, CHILD_MS = 30,
       CHILD_STEP_MS = 2, CHILD_ATTACK_MS = 6,
       CHILD_SECONDS = 10, MAX_REGIONS = 4096 };

static enum execmem_mode mode;

/* ---- the board: programs of the parent, readable by its children ---- */

struct slot {
	atomic_uint seq; /* odd while the entry changes */
	_Atomic uintptr_t addr;
	_Atomic uint32_t value;
	atomic_int epoch; /* forks made before the program was written */
};

struct board {
	atomic_int epoch;
	atomic_bool stop;
	struct slot slots[CHURNERS][RING];
};

static struct board *board;
static atomic_ulong churn_errors, churn_rounds, changed_while_held;

static void publish(struct slot *s, void *code, uint32_t value, int epoch)
{
	atomic_fetch_add(&s->seq, 1);
	atomic_store(&s->addr, (uintptr_t)code);
	atomic_store(&s->value, value);
	atomic_store(&s->epoch, epoch);
	atomic_fetch_add(&s->seq, 1);
}

/* A consistent copy of the entry, or false while it changes. */
static bool read_slot(struct slot *s, uintptr_t *addr, uint32_t *value, int *epoch)
{
	unsigned before = atomic_load(&s->seq);
	*addr = atomic_load(&s->addr);
	*value = atomic_load(&s->value);
	*epoch = atomic_load(&s->epoch);
	return !(before & 1) && atomic_load(&s->seq) == before && *addr;
}

static bool holds(const void *code, uint32_t value)
{
	uint8_t bytes[RT_PROGRAM_MAX];
	size_t len = rt_emit_return(bytes, value);
	return memcmp(code, bytes, len) == 0;
}

/* Bytes first, so that vandalised code is reported, not run. */
static bool intact(const void *code, uint32_t value)
{
	return holds(code, value) && rt_program_returns(mode, code, value);
}

/* ---- the parent's churning threads ---- */

struct held {
	void *code;
	uint32_t value;
	bool written;
};

static void churn_error(const char *what, const void *code)
{
	if (atomic_fetch_add(&churn_errors, 1) < 5)
		fprintf(stderr, "FAIL parent thread: %s (%p)\n", what, code);
}

static void drop(struct held *h)
{
	if (!h->code)
		return;
	if (h->written && !intact(h->code, h->value)) {
		atomic_fetch_add(&changed_while_held, 1);
		churn_error("a program changed while held (a child wrote it)", h->code);
	}
	if (execmem_free(h->code) != 0)
		churn_error("free", h->code);
	h->code = NULL;
}

static void *churn(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	uint64_t seed = 77 + me;
	struct held ring[RING] = { { 0 } };
	for (unsigned n = 0; !atomic_load(&board->stop); n++) {
		struct held *h = &ring[n % RING];
		drop(h);
		int epoch = atomic_load(&board->epoch);
		bool large = n % 2 == 0;
		size_t size = large ? EXECMEM_CHUNK_SIZE / 2 + 4096 + rt_random(&seed) % EXECMEM_CHUNK_SIZE
				    : 64 + rt_random(&seed) % 4096;
		h->value = (uint32_t)(me << 28 | (n & 0x0fffffffu));
		h->code = execmem_alloc(EXECMEM_CODE, size);
		if (!h->code) {
			churn_error("allocation", NULL);
			continue;
		}
		if (!(h->written = rt_write_program(h->code, h->value)))
			churn_error("write", h->code);
		publish(&board->slots[me][n % RING], h->code, h->value, epoch);
		atomic_fetch_add(&churn_rounds, 1);
	}
	for (int i = 0; i < RING; i++)
		drop(&ring[i]);
	return NULL;
}

/* ---- the child ---- */

struct region {
	uintptr_t start, end;
	unsigned long inode; /* of the memfd; 0 for other mappings */
	bool readable_execmem, writable_execmem;
};

static int read_regions(const char *path, struct region *out, int max)
{
	FILE *maps = fopen(path, "r");
	if (!maps)
		return 0;
	char line[512];
	int n = 0;
	while (n < max && fgets(line, sizeof line, maps)) {
		uintptr_t start, end;
		unsigned long inode;
		char perms[8];
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %lu", &start, &end, perms, &inode) != 4)
			continue;
		bool execmem = strstr(line, "/memfd:execmem:") != NULL;
		out[n++] = (struct region){ start, end, execmem ? inode : 0, execmem && perms[0] == 'r',
					    execmem && perms[1] == 'w' };
	}
	fclose(maps);
	return n;
}

/* Whether addr lies in execmem memory the child can read (not, say, in
 * its heap, which may hold the address since the fork). */
static bool readable_execmem(const struct region *r, int n, uintptr_t addr)
{
	for (int i = 0; i < n; i++)
		if (addr >= r[i].start && addr + RT_PROGRAM_MAX <= r[i].end)
			return r[i].readable_execmem;
	return false;
}

enum { CHILD_OK, CHILD_SAW_PARENT_REWRITE = 1, CHILD_SAW_PARENT_PROGRAM = 2 };

/*
 * Says when the child maps a memfd of execmem that its parent maps too:
 * what explains a failure below.  Not a failure by itself: a chunk the
 * parent was unmapping at the fork holds nothing either process runs.
 */
static void note_memfd_shared_with_parent(const struct region *mine, int n)
{
	static struct region parents[MAX_REGIONS];
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)getppid());
	int m = read_regions(path, parents, MAX_REGIONS);
	for (int i = 0; i < n; i++) {
		for (int j = 0; mine[i].inode && j < m; j++) {
			if (parents[j].inode == mine[i].inode) {
				fprintf(stderr, "NOTE child: its %s mapping at %#lx is memfd %lu, mapped by"
					" the parent too\n", mine[i].writable_execmem ? "writable" : "readable",
					(unsigned long)mine[i].start, mine[i].inode);
				return;
			}
		}
	}
}

/* Exit status bits: what the child saw of the parent's later writes (the
 * program the parent rewrote, and those on the board written after it). */
static int child_seen(const struct region *r, int n, int fork_epoch, const struct held *rewrite)
{
	int seen = 0;
	if (holds(rewrite->code, rewrite->value))
		seen |= CHILD_SAW_PARENT_REWRITE;
	for (int t = 0; t < CHURNERS; t++) {
		for (int i = 0; i < RING; i++) {
			uintptr_t addr;
			uint32_t value;
			int epoch;
			if (!read_slot(&board->slots[t][i], &addr, &value, &epoch) || epoch < fork_epoch ||
			    !readable_execmem(r, n, addr))
				continue;
			if (holds((void *)addr, value))
				seen |= CHILD_SAW_PARENT_PROGRAM;
		}
	}
	return seen;
}

/* Everything a hostile child can do to code it knows of. */
static void vandalise(const struct region *r, int n, struct held *lived, unsigned fork_no)
{
	for (int i = 1; i < LONG_LIVED; i++)
		rt_write_program(lived[i].code, 0xc0de0000u | fork_no);
	for (int t = 0; t < CHURNERS; t++) {
		for (int i = 0; i < RING; i++) {
			uintptr_t addr;
			uint32_t value;
			int epoch;
			if (read_slot(&board->slots[t][i], &addr, &value, &epoch))
				rt_write_program((void *)addr, 0xc0de0000u | fork_no);
		}
	}
	for (int i = 0; i < n; i++)
		if (r[i].writable_execmem)
			memset((void *)r[i].start, 0xcc, r[i].end - r[i].start);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int child(struct held *lived, unsigned fork_no, int fork_epoch)
{
	/* The parent rewrites lived[0] right after the fork. */
	struct held parents = { lived[0].code, lived[0].value + 1, true };
	static struct region regions[MAX_REGIONS];
	int n = read_regions("/proc/self/maps", regions, MAX_REGIONS);
	note_memfd_shared_with_parent(regions, n);
	int seen = 0;
	for (int ms = 0; ms < CHILD_MS; ms += CHILD_STEP_MS) {
		seen |= child_seen(regions, n, fork_epoch, &parents);
		if (ms % CHILD_ATTACK_MS == 0)
			vandalise(regions, n, lived, fork_no);
		sleep_ms(CHILD_STEP_MS);
	}
	return seen;
}

/* ---- the parent ---- */

static void fork_once(struct held *lived, unsigned fork_no)
{
	fflush(NULL);
	int epoch = atomic_load(&board->epoch) + 1;
	pid_t pid = fork();
	if (pid == 0)
		_exit(child(lived, fork_no, epoch));
	atomic_store(&board->epoch, epoch);
	uint32_t new_value = lived[0].value + 1;
	RT_CHECK(rt_write_program(lived[0].code, new_value), "parent rewrite after fork");
	lived[0].value = new_value;
	int status = rt_wait_child(pid, CHILD_SECONDS);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK,
		 "fork %u: child status %#x (exit bits: 1 saw the parent's rewrite, 2 saw a program the"
		 " parent wrote after the fork; a signal: crashed, 9: hung)", fork_no, status);
	for (int i = 0; i < LONG_LIVED; i++)
		RT_CHECK(intact(lived[i].code, lived[i].value),
			 "fork %u: long-lived program %d (%p) changed: the child wrote the parent's code",
			 fork_no, i, lived[i].code);
}

int main(void)
{
	mode = rt_mode_from_env();
	if (rt_fork_isolation_unsupported(mode))
		return RT_SKIP;
	rt_can_run_rewritten_code(mode);
	signal(SIGPIPE, SIG_IGN);
	int forks = rt_under_tsan() ? TSAN_FORKS : FORKS;
	printf("forkstress: %d forks while %d threads churn, %s mode\n", forks, CHURNERS,
	       execmem_mode_name(mode));
	board = mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	RT_CHECK(board != MAP_FAILED, "shared board");
	if (board == MAP_FAILED)
		return rt_finish("forkstress");
	struct held lived[LONG_LIVED];
	for (int i = 0; i < LONG_LIVED; i++) {
		lived[i].value = 0x100u + (uint32_t)i;
		size_t size = i % 3 == 2 ? EXECMEM_CHUNK_SIZE : 64 + (size_t)i * 200;
		lived[i].code = rt_new_program(NULL, size, lived[i].value);
		RT_CHECK(lived[i].code, "long-lived program %d: errno %d", i, errno);
		if (!lived[i].code)
			return rt_finish("forkstress");
	}
	pthread_t threads[CHURNERS];
	for (uintptr_t i = 0; i < CHURNERS; i++)
		RT_CHECK(pthread_create(&threads[i], NULL, churn, (void *)i) == 0, "thread");
	for (int i = 0; i < forks; i++)
		fork_once(lived, (unsigned)i);
	atomic_store(&board->stop, true);
	for (int i = 0; i < CHURNERS; i++)
		pthread_join(threads[i], NULL);
	RT_CHECK(atomic_load(&changed_while_held) == 0, "%lu programs of the parent's threads were"
		 " changed by a child", atomic_load(&changed_while_held));
	RT_CHECK(atomic_load(&churn_errors) == atomic_load(&changed_while_held),
		 "%lu failed calls in the parent's threads",
		 atomic_load(&churn_errors) - atomic_load(&changed_while_held));
	for (int i = 0; i < LONG_LIVED; i++)
		RT_CHECK(execmem_free(lived[i].code) == 0, "free of long-lived program %d", i);
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	printf("forkstress: %lu allocations by the threads\n", atomic_load(&churn_rounds));
	return rt_finish("forkstress");
}
