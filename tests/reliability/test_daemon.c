/*
 * test_daemon.c - execmem in a program that treats descriptors the way
 * daemons do.  (a) pthread_atfork() handlers registered before execmem's
 * (so they run before execmem's in the child and in the parent) close every
 * descriptor from 3 up and open fresh files, which take the lowest numbers:
 * the parent's rewrite right after the fork must still not reach the child,
 * and execmem must neither close nor write the files the handlers opened.
 * (b) close_range(3, ~0) once chunks exist, (c) /dev/null dup2()ed over
 * every descriptor from 3 up: allocation, writes, calls, frees and fork keep
 * working and execmem leaves the program's descriptors alone.  The listings
 * of open descriptors and the files' sizes tell.  Dual mode is where
 * execmem uses descriptors after a fork (a first write copies a chunk to a
 * new memfd); the mode comes from EXECMEM_MODE.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rtest.h"

enum { FRESH_FILES = 3, MAX_FD = 256, LISTING = 8192, CHILD_SECONDS = 10, OTHER_PROGRAMS = 3 };
/* A handler that works slowly (logging, reconnecting) after closing. */
#define HANDLER_WORK_NS 20000000L

static enum execmem_mode mode;
static char temp_dir[64];

/* ---- descriptors ---- */

/* "fd -> target" for every open descriptor, in order (async-signal-safe). */
static void list_fds(char out[LISTING])
{
	size_t used = 0;
	out[0] = '\0';
	for (int fd = 0; fd < MAX_FD; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		char link[32], target[256];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
		int wrote = snprintf(out + used, LISTING - used, "%d->%s\n", fd, target);
		if (wrote < 0 || (size_t)wrote >= LISTING - used)
			break;
		used += (size_t)wrote;
	}
}

static void close_from_3(void)
{
	if (close_range(3, ~0U, 0) != 0)
		for (int fd = 3; fd < MAX_FD; fd++)
			close(fd);
}

/* Opens FRESH_FILES empty files named prefix-N in the temporary directory. */
static void open_fresh(const char *prefix, int fds[FRESH_FILES])
{
	for (int i = 0; i < FRESH_FILES; i++) {
		char path[128];
		snprintf(path, sizeof path, "%s/%s-%d", temp_dir, prefix, i);
		fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	}
}

/* Whether the files are still open, as themselves, and empty; says why not. */
static bool files_untouched(const int fds[FRESH_FILES], const char *prefix, const char *who)
{
	bool ok = true;
	for (int i = 0; i < FRESH_FILES; i++) {
		char link[32], target[256], expected[128];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fds[i]);
		snprintf(expected, sizeof expected, "%s/%s-%d", temp_dir, prefix, i);
		ssize_t n = fds[i] < 0 ? -1 : readlink(link, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
		struct stat st;
		if (n < 0 || strcmp(target, expected) != 0) {
			fprintf(stderr, "FAIL %s: its file %s (fd %d) was closed or replaced\n", who, expected, fds[i]);
			ok = false;
		} else if (fstat(fds[i], &st) != 0 || st.st_size != 0) {
			fprintf(stderr, "FAIL %s: %lld bytes were written into its file %s (fd %d)\n", who,
				(long long)st.st_size, expected, fds[i]);
			ok = false;
		}
	}
	return ok;
}

static void close_fresh(int fds[FRESH_FILES])
{
	for (int i = 0; i < FRESH_FILES; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ---- programs ---- */

struct program {
	void *code;
	uint32_t value;
};

static bool write_value(struct program *p, uint32_t value)
{
	if (!rt_write_program(p->code, value))
		return false;
	p->value = value;
	return true;
}

static bool returns(const struct program *p)
{
	return rt_program_returns(mode, p->code, p->value);
}

/* A program made, written, run and freed now. */
static bool fresh_program_works(uint32_t value)
{
	struct program p = { execmem_alloc(EXECMEM_CODE, 100), 0 };
	bool ok = p.code && write_value(&p, value) && returns(&p);
	return execmem_free(p.code) == 0 && ok;
}

/*
 * The watched program is large and made first, so that a child gives its
 * chunk a copy of its own last of all (after the others): a parent that
 * does not wait for the child rewrites it before the child took its copy.
 */
struct programs {
	struct program watched, others[OTHER_PROGRAMS];
};

static bool make_programs(struct programs *ps)
{
	ps->watched = (struct program){ execmem_alloc(EXECMEM_CODE, EXECMEM_CHUNK_SIZE), 0 };
	bool ok = ps->watched.code && write_value(&ps->watched, 0xd0d0);
	for (int i = 0; i < OTHER_PROGRAMS; i++) {
		struct program *p = &ps->others[i];
		*p = (struct program){ execmem_alloc(EXECMEM_CODE, EXECMEM_CHUNK_SIZE - 4096), 0 };
		ok = p->code && write_value(p, 0xe0e0u + (uint32_t)i) && ok;
	}
	return ok;
}

static void free_programs(struct programs *ps)
{
	RT_CHECK(execmem_free(ps->watched.code) == 0, "free of the watched program");
	for (int i = 0; i < OTHER_PROGRAMS; i++)
		RT_CHECK(execmem_free(ps->others[i].code) == 0, "free of program %d", i);
}

/* ---- hostile fork handlers, registered before execmem's ---- */

static bool hostile_child, hostile_parent;
static int child_files[FRESH_FILES], parent_files[FRESH_FILES];
static char child_listing[LISTING], parent_listing[LISTING];

static void slow_work(void)
{
	struct timespec ts = { 0, HANDLER_WORK_NS };
	nanosleep(&ts, NULL);
}

/* What a daemon's fork handler does: every descriptor closed, fresh files opened. */
static void sanitise_descriptors(const char *prefix, int files[FRESH_FILES], char listing[LISTING])
{
	close_from_3();
	open_fresh(prefix, files);
	list_fds(listing);
}

static void parent_handler(void)
{
	if (hostile_parent)
		sanitise_descriptors("parent", parent_files, parent_listing);
}

static void child_handler(void)
{
	if (!hostile_child)
		return;
	sanitise_descriptors("child", child_files, child_listing);
	slow_work();
}

/* ---- the fork itself ---- */

enum { CHILD_SAW_PARENT = 1, CHILD_INHERITED = 2, CHILD_FILES = 4, CHILD_FDS = 8, CHILD_ALLOC = 16 };

static int child_after_fork(struct programs *ps, uint32_t watched_at_fork, const char *expected_fds)
{
	int bad = 0;
	struct program at_fork = { ps->watched.code, watched_at_fork };
	if (!returns(&at_fork))
		bad |= CHILD_SAW_PARENT;
	for (int i = 0; i < OTHER_PROGRAMS; i++)
		if (!returns(&ps->others[i]))
			bad |= CHILD_INHERITED;
	if (hostile_child && !files_untouched(child_files, "child", "child"))
		bad |= CHILD_FILES;
	char now[LISTING];
	list_fds(now);
	if (strcmp(now, expected_fds) != 0) {
		fprintf(stderr, "FAIL child: descriptors changed after its handlers ran:\n%s---- now:\n%s",
			expected_fds, now);
		bad |= CHILD_FDS;
	}
	if (!write_value(&ps->others[0], 0xc1c1) || !returns(&ps->others[0]) || !fresh_program_works(0xc2c2))
		bad |= CHILD_ALLOC;
	return bad;
}

/* Forks; the parent rewrites the watched program at once, then checks
 * that the child saw none of it and that nothing of the child reached it. */
static void fork_and_check(struct programs *ps, const char *round)
{
	char before[LISTING];
	list_fds(before);
	uint32_t at_fork = ps->watched.value;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_after_fork(ps, at_fork, hostile_child ? child_listing : before));
	RT_CHECK(pid > 0, "%s: fork: %s", round, strerror(errno));
	RT_CHECK(write_value(&ps->watched, at_fork + 1), "%s: parent rewrite after fork", round);
	int status = rt_wait_child(pid, CHILD_SECONDS);
	RT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "%s: child status %#x (exit bits: 1 saw the parent's rewrite made after the fork, 2 inherited"
		 " code wrong, 4 its handler's files closed or written, 8 descriptors changed, 16 allocation;"
		 " a signal: crashed, 9: hung)", round, status);
	RT_CHECK(returns(&ps->watched), "%s: parent lost its rewrite", round);
	for (int i = 0; i < OTHER_PROGRAMS; i++)
		RT_CHECK(returns(&ps->others[i]), "%s: program %d of the parent changed (the child's"
			 " rewrite reached it?)", round, i);
	if (hostile_parent) {
		RT_CHECK(files_untouched(parent_files, "parent", "parent"), "%s: parent's files", round);
		char now[LISTING];
		list_fds(now);
		RT_CHECK(strcmp(now, parent_listing) == 0, "%s: parent's descriptors changed after its"
			 " handler ran:\n%s---- now:\n%s", round, parent_listing, now);
	} else {
		char now[LISTING];
		list_fds(now);
		RT_CHECK(strcmp(now, before) == 0, "%s: descriptors changed by the fork", round);
	}
}

static void round_hostile_handlers(bool in_child, bool in_parent, const char *round)
{
	struct programs ps;
	RT_CHECK(make_programs(&ps), "%s: programs: errno %d", round, errno);
	hostile_child = in_child;
	hostile_parent = in_parent;
	fork_and_check(&ps, round);
	hostile_child = hostile_parent = false;
	if (in_parent)
		close_fresh(parent_files);
	free_programs(&ps);
}

/* (b) and (c): the descriptors change under execmem, then work goes on. */
static void round_after(void (*change)(void), const char *round)
{
	struct programs ps;
	RT_CHECK(make_programs(&ps), "%s: programs: errno %d", round, errno);
	change();
	int files[FRESH_FILES];
	open_fresh("own", files);
	char before[LISTING];
	list_fds(before);
	RT_CHECK(fresh_program_works(0xb0b0) && write_value(&ps.others[1], 0xb1b1) && returns(&ps.others[1]),
		 "%s: allocation, write, call or free", round);
	fork_and_check(&ps, round);
	free_programs(&ps);
	RT_CHECK(fresh_program_works(0xb2b2), "%s: allocation after fork", round);
	char after[LISTING];
	list_fds(after);
	RT_CHECK(strcmp(before, after) == 0, "%s: descriptors changed:\n%s---- now:\n%s", round, before, after);
	RT_CHECK(files_untouched(files, "own", "process"), "%s: its files", round);
	close_fresh(files);
}

static void dup_null_over_all(void)
{
	int null = open("/dev/null", O_RDWR);
	int highest = 2;
	for (int fd = 3; fd < MAX_FD; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			highest = fd;
	for (int fd = 3; fd <= highest; fd++)
		if (fd != null)
			dup2(null, fd);
}

/* No shell to run rm on the emulated machine: remove the files one by one. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	/* Before execmem's first use, so these handlers run before its own. */
	RT_CHECK(pthread_atfork(NULL, parent_handler, child_handler) == 0, "pthread_atfork");
	mode = rt_mode_from_env();
	signal(SIGPIPE, SIG_IGN);
	snprintf(temp_dir, sizeof temp_dir, "/tmp/execmem-daemon-XXXXXX");
	RT_CHECK(mkdtemp(temp_dir), "mkdtemp: %s", strerror(errno));
	printf("daemon: hostile descriptors, default arena in %s mode\n", execmem_mode_name(mode));
	round_hostile_handlers(true, false, "child handler closes and reopens descriptors");
	round_hostile_handlers(false, true, "parent handler closes and reopens descriptors");
	round_after(close_from_3, "close_range(3, ~0) after chunks exist");
	round_after(dup_null_over_all, "/dev/null over every descriptor from 3");
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping is left");
	RT_CHECK(nftw(temp_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS) == 0, "removing %s: %s",
		 temp_dir, strerror(errno));
	return rt_finish("daemon");
}
