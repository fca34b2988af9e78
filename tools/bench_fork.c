/*
 * bench_fork.c - W8: what fork() costs a process with live JIT code,
 * against the same process holding as much plain memory instead.
 *
 * For each size, each repetition measures the plain process first (an
 * anonymous RW mapping of that size, every page written), then the same
 * amount of live code of the allocator, so that the two are side by side.
 * The plain process is a helper forked before the allocator made anything,
 * so that it has none of the allocator's memory (execmem's retained chunks,
 * for one) but everything else of the process:
 *   fork_us           fork() until it returns in the parent (the child
 *                     _exits at once)
 *   fork_exec_us      fork() until the child has exec'd /bin/true (a pipe
 *                     with O_CLOEXEC reads end-of-file then)
 *   *_ratio           code over plain, from the same repetition
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_run.h"
#include "cli.h"

enum { FORK_IMAGES = 1000 }; /* images reused round-robin up to the size */

struct fork_times {
	double fork_us, exec_us;
};

static int wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* One fork; the child execs /bin/true when exec, or _exits at once. */
static int time_fork(bool exec, double *us)
{
	int fds[2];
	char c;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		if (exec)
			execl("/bin/true", "true", (char *)NULL);
		_exit(exec ? 127 : 0);
	}
	uint64_t returned = now_ns();
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return -errno;
	}
	while (read(fds[0], &c, 1) < 0 && errno == EINTR)
		;
	uint64_t execd = now_ns();
	close(fds[0]);
	*us = (double)((exec ? execd : returned) - t0) / 1e3;
	return wait_child(pid);
}

static int time_both(struct fork_times *t)
{
	int err = time_fork(false, &t->fork_us);
	return err ? err : time_fork(true, &t->exec_us);
}

static int plain_times(size_t bytes, struct fork_times *t)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	memset(p, 0x5a, bytes);
	int err = time_both(t);
	munmap(p, bytes);
	return err;
}

/* The helper's answer to a request of a size. */
struct plain_reply {
	int err;
	struct fork_times t;
};

struct plain_helper {
	pid_t pid;
	int request, reply;
};

static bool transfer(int fd, void *buf, size_t len, bool out)
{
	return (out ? write(fd, buf, len) : read(fd, buf, len)) == (ssize_t)len;
}

/* Serve sizes until the parent closes the request pipe. */
static void plain_helper_main(int request, int reply)
{
	size_t bytes;
	while (transfer(request, &bytes, sizeof(bytes), false)) {
		struct plain_reply r = { .err = plain_times(bytes, &r.t) };
		if (!transfer(reply, &r, sizeof(r), true))
			break;
	}
	_exit(0);
}

static int plain_helper_start(struct plain_helper *h)
{
	int req[2], rep[2];

	if (pipe2(req, O_CLOEXEC))
		return -errno;
	if (pipe2(rep, O_CLOEXEC)) {
		close(req[0]);
		close(req[1]);
		return -errno;
	}
	fflush(NULL);
	h->pid = fork();
	if (h->pid == 0) {
		close(req[1]);
		close(rep[0]);
		plain_helper_main(req[0], rep[1]);
	}
	close(req[0]);
	close(rep[1]);
	h->request = req[1];
	h->reply = rep[0];
	if (h->pid < 0) {
		close(h->request);
		close(h->reply);
		return -errno;
	}
	return 0;
}

static int plain_helper_ask(const struct plain_helper *h, size_t bytes, struct fork_times *t)
{
	struct plain_reply r;
	if (!transfer(h->request, &bytes, sizeof(bytes), true) || !transfer(h->reply, &r, sizeof(r), false))
		return -EPIPE;
	*t = r.t;
	return r.err;
}

static int plain_helper_stop(const struct plain_helper *h)
{
	close(h->request);
	close(h->reply);
	return wait_child(h->pid);
}

/* Load images round-robin until their rounded sizes reach bytes; *count loaded. */
static int load_up_to(const struct runner *r, const struct program_set *set, size_t bytes,
		      struct bench_block *blocks, size_t max, size_t *count)
{
	size_t live = 0, i = 0;
	int err = 0;

	for (; !err && live < bytes && i < max; i++) {
		size_t k = i % set->count;
		err = r->a->alloc(r->self, set->size[k], &blocks[i]);
		if (!err)
			err = r->a->write(r->self, &blocks[i], set->bytes + set->offset[k], set->size[k]);
		live += (set->size[k] + 63) / 64 * 64;
	}
	*count = i;
	return err;
}

static int release_loaded(const struct runner *r, const struct program_set *set,
			  struct bench_block *blocks, size_t count)
{
	int err = 0;
	for (size_t i = 0; i < count; i++) {
		int err2 = r->a->release(r->self, &blocks[i], set->size[i % set->count]);
		err = err ? err : err2;
	}
	return err;
}

static int code_times(const struct runner *r, const struct program_set *set, size_t bytes,
		      struct bench_block *blocks, size_t max, struct fork_times *t)
{
	size_t count = 0;
	int err = load_up_to(r, set, bytes, blocks, max, &count);
	if (!err)
		err = time_both(t);
	int err2 = release_loaded(r, set, blocks, count);
	return err ? err : err2;
}

/* A W8 sample whose metric names the size (fmt has one %zu). */
static void report_sized(const char *fmt, size_t mib, const char *unit, double value)
{
	char metric[48];
	snprintf(metric, sizeof(metric), fmt, mib);
	bench_report("W8", metric, unit, value);
}

static void report_fork(size_t mib, const struct fork_times *plain, const struct fork_times *code)
{
	report_sized("fork_us_%zumib", mib, "us", code->fork_us);
	report_sized("fork_us_%zumib_plain", mib, "us", plain->fork_us);
	report_sized("fork_ratio_%zumib", mib, "x", code->fork_us / plain->fork_us);
	report_sized("fork_exec_us_%zumib", mib, "us", code->exec_us);
	report_sized("fork_exec_us_%zumib_plain", mib, "us", plain->exec_us);
	report_sized("fork_exec_ratio_%zumib", mib, "x", code->exec_us / plain->exec_us);
}

int bench_workload_fork(const struct runner *r, int repeats, const struct bench_sizes *sz)
{
	struct program_set set;
	struct plain_helper helper = { .pid = -1 };
	size_t max = 0;
	for (size_t k = 0; k < 3; k++)
		max = sz->fork_mib[k] * 1024 * 1024 / 64 > max ? sz->fork_mib[k] * 1024 * 1024 / 64 : max;
	struct bench_block *blocks = calloc(max, sizeof(*blocks));
	int err = blocks ? program_set_make(&set, FORK_IMAGES, 0, 11) : -ENOMEM;
	int started = err ? err : plain_helper_start(&helper);

	err = err ? err : started;
	for (size_t k = 0; !err && k < 3 && sz->fork_mib[k]; k++) {
		size_t bytes = sz->fork_mib[k] * 1024 * 1024;
		for (int rep = 0; !err && rep < repeats; rep++) {
			struct fork_times plain, code;
			err = plain_helper_ask(&helper, bytes, &plain);
			if (!err)
				err = code_times(r, &set, bytes, blocks, max, &code);
			if (!err)
				report_fork(sz->fork_mib[k], &plain, &code);
		}
	}
	if (!started) {
		int err2 = plain_helper_stop(&helper);
		err = err ? err : err2;
	}
	if (blocks)
		program_set_free(&set);
	free(blocks);
	return err;
}
