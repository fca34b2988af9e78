/*
 * os_linux.c - the thin OS layer: the only file that calls mmap, memfd,
 * madvise, mprotect, membarrier and friends.  Each call is counted and can
 * be made to fail on demand, so that tests reach every error path.
 */
#include "os.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static _Atomic uint64_t call_counts[EXECMEM_OS_CALL_MAX];

/* Fault injection state; armed only by tests. */
static _Atomic int fail_call = -1;
static _Atomic uint64_t fail_countdown;
static _Atomic int fail_errno;
static _Atomic int fail_sticky;
static _Atomic uint64_t failures_injected;

static int should_fail(enum execmem_os_call call)
{
	if (atomic_load_explicit(&fail_call, memory_order_relaxed) != (int)call)
		return 0;
	uint64_t left = atomic_load(&fail_countdown);
	while (left > 1) {
		if (atomic_compare_exchange_weak(&fail_countdown, &left, left - 1))
			return 0;
	}
	if (left == 0)
		return 0;
	if (!atomic_load(&fail_sticky))
		atomic_store(&fail_countdown, 0);
	atomic_fetch_add(&failures_injected, 1);
	return atomic_load(&fail_errno);
}

/* Counts the call; returns the injected -errno, or 0 to go ahead. */
static int enter(enum execmem_os_call call)
{
	atomic_fetch_add_explicit(&call_counts[call], 1, memory_order_relaxed);
	int err = should_fail(call);
	return err ? -err : 0;
}

static int result(long rc)
{
	return rc < 0 ? -errno : (int)rc;
}

static int identify(int fd, struct em_fd *out)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	out->fd = fd;
	out->dev = st.st_dev;
	out->ino = st.st_ino;
	return 0;
}

/* The descriptor that was opened, or -EBADF when its number now names another file. */
static int owned(const struct em_fd *f)
{
	struct stat st;
	bool same = f->fd >= 0 && fstat(f->fd, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino;
	return same ? f->fd : -EBADF;
}

int em_os_memfd(const char *name, struct em_fd *out)
{
	int rc = enter(EXECMEM_OS_MEMFD);
	if (rc)
		return rc;
	/* MFD_EXEC says we mean to execute it (newer kernels warn otherwise);
	 * older kernels do not know the flag and refuse it with EINVAL. */
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if ((rc = identify(fd, out)))
		close(fd);
	return rc;
}

int em_os_adopt_fd(int fd, struct em_fd *out)
{
	return identify(fd, out);
}

int em_os_ftruncate(const struct em_fd *f, size_t size)
{
	int rc = enter(EXECMEM_OS_FTRUNCATE);
	int fd = rc ? rc : owned(f);
	return fd < 0 ? fd : result(ftruncate(fd, (off_t)size));
}

int em_os_seal_size(const struct em_fd *f)
{
	int rc = enter(EXECMEM_OS_FCNTL);
	int fd = rc ? rc : owned(f);
	return fd < 0 ? fd : result(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
}

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int em_os_seal_writes(const struct em_fd *f)
{
	int rc = enter(EXECMEM_OS_FCNTL);
	int fd = rc ? rc : owned(f);
	if (fd < 0)
		return fd;
	/* Kernels before 5.1 do not know the seal: the last seal alone then. */
	rc = result(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL));
	return rc == -EINVAL ? result(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL)) : rc;
}

int em_os_write_file(const struct em_fd *f, const void *buf, size_t len)
{
	int rc = enter(EXECMEM_OS_OTHER);
	int fd = rc ? rc : owned(f);
	if (fd < 0)
		return fd;
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)done);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n > 0 ? (size_t)n : 0;
	}
	return 0;
}

/* One pwritev of the pattern repeated from offset `at` (any phase) on;
 * returns the bytes written or -errno. */
static ssize_t write_pattern_from(int fd, const uint8_t *pattern, size_t pattern_len, size_t at,
				  size_t len)
{
	struct iovec iov[256];
	int n = 0;
	for (size_t pos = at; pos < len && n < (int)(sizeof iov / sizeof iov[0]); n++) {
		size_t phase = pos % pattern_len;
		size_t take = pattern_len - phase < len - pos ? pattern_len - phase : len - pos;
		iov[n] = (struct iovec){ (void *)(pattern + phase), take };
		pos += take;
	}
	ssize_t done = pwritev(fd, iov, n, (off_t)at);
	return done < 0 ? -errno : done;
}

int em_os_fill_file(const struct em_fd *f, const void *pattern, size_t pattern_len, size_t from,
		    size_t len)
{
	int rc = enter(EXECMEM_OS_OTHER);
	int fd = rc ? rc : owned(f);
	if (fd < 0)
		return fd;
	if (!pattern)
		return result(fallocate(fd, 0, (off_t)from, (off_t)(len - from)));
	for (size_t done = from; done < len;) {
		ssize_t n = write_pattern_from(fd, pattern, pattern_len, done, len);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			return n ? (int)n : -EIO;
		done += (size_t)n;
	}
	return 0;
}

int em_os_close(const struct em_fd *f)
{
	atomic_fetch_add_explicit(&call_counts[EXECMEM_OS_OTHER], 1, memory_order_relaxed);
	int fd = owned(f);
	return fd < 0 ? fd : result(close(fd));
}

int em_os_map(void **out, void *hint, size_t len, int prot, int flags, const struct em_fd *f)
{
	int rc = enter(EXECMEM_OS_MMAP);
	int fd = rc ? rc : f ? owned(f) : -1;
	if (rc || (f && fd < 0))
		return rc ? rc : fd;
	if (hint && !(flags & MAP_FIXED))
		flags |= MAP_FIXED_NOREPLACE;
	void *p = mmap(hint, len, prot, flags, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (hint && p != hint) {
		/* A kernel without MAP_FIXED_NOREPLACE took the hint as a hint. */
		munmap(p, len);
		return -EEXIST;
	}
	*out = p;
	return 0;
}

int em_os_map_text_over(void *addr, size_t len, const struct em_fd *f)
{
	int rc = enter(EXECMEM_OS_MMAP);
	int fd = rc ? rc : owned(f);
	if (fd < 0)
		return fd;
	long p = syscall(SYS_mmap, addr, len, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0);
	return p == -1 ? -errno : 0;
}

int em_os_move(void *from, void *to, size_t len)
{
	int rc = enter(EXECMEM_OS_MMAP);
	if (rc)
		return rc;
	return mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED ? -errno : 0;
}

int em_os_unmap(void *addr, size_t len)
{
	int rc = enter(EXECMEM_OS_MUNMAP);
	return rc ? rc : result(munmap(addr, len));
}

int em_os_protect(void *addr, size_t len, int prot)
{
	int rc = enter(EXECMEM_OS_MPROTECT);
	return rc ? rc : result(mprotect(addr, len, prot));
}

int em_os_advise(void *addr, size_t len, int advice)
{
	int rc = enter(EXECMEM_OS_MADVISE);
	return rc ? rc : result(madvise(addr, len, advice));
}

int em_os_membarrier(int cmd)
{
	int rc = enter(EXECMEM_OS_MEMBARRIER);
	return rc ? rc : result(syscall(__NR_membarrier, cmd, 0, 0));
}

int em_os_sync_core(void)
{
	static atomic_bool registered;
	if (!atomic_load_explicit(&registered, memory_order_acquire)) {
		int rc = em_os_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE);
		if (rc)
			return rc;
		atomic_store_explicit(&registered, true, memory_order_release);
	}
	return em_os_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE);
}

int em_os_flush_icache(void *start, void *end)
{
	int rc = enter(EXECMEM_OS_FLUSH_ICACHE);
	if (rc)
		return rc;
#if defined(__riscv) && defined(__NR_riscv_flush_icache)
	return result(syscall(__NR_riscv_flush_icache, start, end, 0UL));
#else
	(void)start;
	(void)end;
	return -ENOSYS;
#endif
}

int em_os_install_handler(int sig, void (*handler)(int, siginfo_t *, void *),
			  struct sigaction *previous)
{
	int rc = enter(EXECMEM_OS_OTHER);
	if (rc)
		return rc;
	struct sigaction sa = { 0 };
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	return result(sigaction(sig, &sa, previous));
}

int em_os_install_fault_handler(void (*handler)(int, siginfo_t *, void *),
				struct sigaction *previous)
{
	return em_os_install_handler(SIGSEGV, handler, previous);
}

int em_os_signal_thread(pid_t tid, int sig, uintptr_t value)
{
	int rc = enter(EXECMEM_OS_SIGNAL);
	if (rc)
		return rc;
	siginfo_t info;
	memset(&info, 0, sizeof info);
	info.si_signo = sig;
	info.si_code = SI_QUEUE;
	info.si_pid = getpid();
	info.si_uid = getuid();
	info.si_value.sival_ptr = (void *)value;
	return result(syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, sig, &info));
}

int em_os_list_threads(pid_t *tids, size_t cap)
{
	int rc = enter(EXECMEM_OS_THREADS);
	if (rc)
		return rc;
	DIR *dir = opendir("/proc/self/task");
	if (!dir)
		return -errno;
	size_t count = 0;
	for (struct dirent *e; (e = readdir(dir));) {
		long tid = strtol(e->d_name, NULL, 10);
		if (tid <= 0)
			continue;
		if (count < cap)
			tids[count] = (pid_t)tid;
		count++;
	}
	closedir(dir);
	return count > INT_MAX ? -EOVERFLOW : (int)count;
}

int em_os_thread_blocked_pc(pid_t tid, uintptr_t *pc)
{
	int rc = enter(EXECMEM_OS_THREADS);
	if (rc)
		return rc;
	char path[64], text[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, text, sizeof text - 1);
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc)
		return rc;
	text[n] = '\0';
	/* "running", or "NR ARGS... SP PC" / "-1 SP PC": the last field. */
	const char *last = strrchr(text, ' ');
	if (!strncmp(text, "running", 7) || !last)
		return -EAGAIN;
	*pc = (uintptr_t)strtoull(last + 1, NULL, 16);
	return 0;
}

pid_t em_os_thread_id(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* A fault of the thread's own (a bad source of a copy, a system call that
 * seccomp traps) must still reach the program: blocked, the kernel would
 * kill the process instead. */
static const int own_fault_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS };

void em_os_block_signals(sigset_t *saved)
{
	atomic_fetch_add_explicit(&call_counts[EXECMEM_OS_OTHER], 1, memory_order_relaxed);
	sigset_t blocked;
	sigfillset(&blocked);
	for (size_t i = 0; i < sizeof own_fault_signals / sizeof own_fault_signals[0]; i++)
		sigdelset(&blocked, own_fault_signals[i]);
	pthread_sigmask(SIG_BLOCK, &blocked, saved);
}

void em_os_restore_signals(const sigset_t *saved)
{
	atomic_fetch_add_explicit(&call_counts[EXECMEM_OS_OTHER], 1, memory_order_relaxed);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* -1 until the first naming, then whether the kernel names anonymous
 * mappings (it refuses with EINVAL without CONFIG_ANON_VMA_NAME). */
static atomic_int anon_names = -1;

int em_os_name_mapping(void *addr, size_t len, const char *name)
{
	atomic_fetch_add_explicit(&call_counts[EXECMEM_OS_OTHER], 1, memory_order_relaxed);
	int rc = result(prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, len, name));
	if (rc == 0 || rc == -EINVAL)
		atomic_store_explicit(&anon_names, rc == 0, memory_order_relaxed);
	return rc == -EINVAL ? -EOPNOTSUPP : rc;
}

int em_os_names_mappings(void)
{
	return atomic_load_explicit(&anon_names, memory_order_relaxed);
}

int em_os_tracer_pid(void)
{
	atomic_fetch_add_explicit(&call_counts[EXECMEM_OS_OTHER], 1, memory_order_relaxed);
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* TracerPid comes early: its first kilobyte is enough. */
	char text[1024];
	ssize_t n = read(fd, text, sizeof text - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err;
	text[n] = '\0';
	static const char key[] = "\nTracerPid:";
	const char *field = strstr(text, key);
	if (!field)
		return -ENOENT;
	/* strtol(), not sscanf(): the first sscanf() of a process costs more
	 * than reading the file (15 us against 14). */
	const char *digits = field + sizeof key - 1;
	char *end;
	long pid = strtol(digits, &end, 10);
	return end > digits && pid >= 0 && pid <= INT_MAX ? (int)pid : -ENOENT;
}

long em_os_page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

int em_os_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

uint64_t em_os_random(void)
{
	uint64_t value;
	if (getrandom(&value, sizeof value, GRND_NONBLOCK) == (ssize_t)sizeof value)
		return value;
	/* No entropy yet (early boot): still vary between processes. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	value = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ ((uint64_t)getpid() << 16);
	return value * 0x9e3779b97f4a7c15ULL;
}

uintptr_t em_os_heap_end(void)
{
	/* The kernel's answer, not sbrk(0): while glibc has not learnt the
	 * break yet, sbrk() stores what it reads without a lock, and racing
	 * malloc's first sbrk() in another thread it can store a stale break,
	 * below the heap malloc then extends. */
	atomic_fetch_add_explicit(&call_counts[EXECMEM_OS_OTHER], 1, memory_order_relaxed);
	long brk = syscall(SYS_brk, 0);
	return brk < 0 ? 0 : (uintptr_t)brk;
}

void em_os_counts(uint64_t out[EXECMEM_OS_CALL_MAX])
{
	for (int i = 0; i < EXECMEM_OS_CALL_MAX; i++)
		out[i] = atomic_load_explicit(&call_counts[i], memory_order_relaxed);
}

void em_os_fail_nth(enum execmem_os_call call, uint64_t nth, int err, int sticky)
{
	atomic_store(&fail_call, -1);
	atomic_store(&fail_countdown, nth);
	atomic_store(&fail_errno, err);
	atomic_store(&fail_sticky, sticky);
	atomic_store(&failures_injected, 0);
	atomic_store(&fail_call, (int)call);
}

void em_os_fail_clear(void)
{
	atomic_store(&fail_call, -1);
	atomic_store(&fail_countdown, 0);
}

uint64_t em_os_failures(void)
{
	return atomic_load(&failures_injected);
}

/* ------------------------------------------------ /proc/self/maps */

struct maps_reader {
	int fd;
	char buf[4096];
	size_t len, pos;
};

/* The next line (without its newline) into line[size]; 0 at end of file. */
static int next_line(struct maps_reader *r, char *line, size_t size)
{
	size_t n = 0;
	line[0] = '\0';
	for (;;) {
		if (r->pos == r->len) {
			ssize_t got = read(r->fd, r->buf, sizeof r->buf);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				return -errno;
			if (got == 0)
				return n > 0;
			r->len = (size_t)got;
			r->pos = 0;
		}
		char ch = r->buf[r->pos++];
		if (ch == '\n')
			return 1;
		if (n + 1 < size)
			line[n++] = ch;
		line[n] = '\0';
	}
}

/* Whether a maps line ("lo-hi rwxp ...") is writable and executable and
 * overlaps one of the ranges. */
static bool wx_line_overlaps(const char *line, const uintptr_t (*ranges)[2], int n)
{
	char *end;
	uintptr_t lo = (uintptr_t)strtoull(line, &end, 16);
	if (*end != '-')
		return false;
	uintptr_t hi = (uintptr_t)strtoull(end + 1, &end, 16);
	if (*end != ' ' || end[2] != 'w' || end[3] != 'x')
		return false;
	for (int i = 0; i < n; i++)
		if (lo < ranges[i][1] && ranges[i][0] < hi)
			return true;
	return false;
}

/* The PROCMAP_QUERY ioctl of /proc/self/maps (Linux 6.11), declared here
 * for older headers. */
struct em_procmap_query {
	uint64_t size, query_flags, query_addr;
	uint64_t vma_start, vma_end, vma_flags, vma_page_size, vma_offset, inode;
	uint32_t dev_major, dev_minor, vma_name_size, build_id_size;
	uint64_t vma_name_addr, build_id_addr;
};
#define EM_PROCMAP_QUERY _IOWR('f', 17, struct em_procmap_query)
#define EM_QUERY_WRITABLE 0x02
#define EM_QUERY_EXECUTABLE 0x04
#define EM_QUERY_COVERING_OR_NEXT 0x10

/* Whether a W+X mapping overlaps [lo, hi): 1, 0, or a negative errno
 * (-ENOTTY from kernels without the query, -ENOSYS from emulators). */
static int query_wx(int fd, uintptr_t lo, uintptr_t hi)
{
	struct em_procmap_query q = {
		.size = sizeof q,
		.query_flags = EM_QUERY_COVERING_OR_NEXT | EM_QUERY_WRITABLE | EM_QUERY_EXECUTABLE,
		.query_addr = lo,
	};
	if (ioctl(fd, EM_PROCMAP_QUERY, &q) != 0)
		return errno == ENOENT ? 0 : -errno;
	return q.vma_start < hi;
}

/* The same from the text of the file, where the query is refused. */
static int read_wx(int fd, const uintptr_t (*ranges)[2], int n)
{
	struct maps_reader r = { .fd = fd };
	char line[256];
	int found = 0, rc;
	while ((rc = next_line(&r, line, sizeof line)) > 0)
		found += wx_line_overlaps(line, ranges, n);
	return rc < 0 ? rc : found;
}

int em_os_find_wx(const uintptr_t (*ranges)[2], int n)
{
	int rc = enter(EXECMEM_OS_OTHER);
	if (rc)
		return rc;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int found = 0;
	for (int i = 0; i < n && rc >= 0; i++) {
		rc = query_wx(fd, ranges[i][0], ranges[i][1]);
		found += rc > 0;
	}
	if (rc < 0) /* no query to be had: the text says it too */
		found = rc = read_wx(fd, ranges, n);
	close(fd);
	return rc < 0 ? rc : found;
}

#define EM_QUERY_VMA_READABLE 0x01
#define EM_QUERY_VMA_SHARED 0x08

/* The mapping holding addr by the query: 0, or -ENOENT when nothing is. */
static int query_mapping(int fd, uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot,
			 bool *shared)
{
	struct em_procmap_query q = { .size = sizeof q, .query_addr = addr };
	if (ioctl(fd, EM_PROCMAP_QUERY, &q) != 0)
		return -errno;
	*start = (uintptr_t)q.vma_start;
	*end = (uintptr_t)q.vma_end;
	*prot = (q.vma_flags & EM_QUERY_VMA_READABLE ? PROT_READ : 0) |
		(q.vma_flags & EM_QUERY_WRITABLE ? PROT_WRITE : 0) |
		(q.vma_flags & EM_QUERY_EXECUTABLE ? PROT_EXEC : 0);
	*shared = q.vma_flags & EM_QUERY_VMA_SHARED;
	return 0;
}

/* The same from the text of the file: 0, or -ENOENT. */
static int read_mapping(int fd, uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot,
			bool *shared)
{
	struct maps_reader r = { .fd = fd };
	char line[256];
	int rc;
	while ((rc = next_line(&r, line, sizeof line)) > 0) {
		char *text;
		uintptr_t lo = (uintptr_t)strtoull(line, &text, 16);
		uintptr_t hi = (uintptr_t)strtoull(text + 1, &text, 16);
		if (addr < lo || addr >= hi || strlen(text) < 5)
			continue;
		*start = lo;
		*end = hi;
		*prot = (text[1] == 'r' ? PROT_READ : 0) | (text[2] == 'w' ? PROT_WRITE : 0) |
			(text[3] == 'x' ? PROT_EXEC : 0);
		*shared = text[4] == 's';
		return 0;
	}
	return rc < 0 ? rc : -ENOENT;
}

int em_os_mapping_at(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot, bool *shared)
{
	int rc = enter(EXECMEM_OS_OTHER);
	if (rc)
		return rc;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = query_mapping(fd, addr, start, end, prot, shared);
	if (rc && rc != -ENOENT) /* no query to be had: the text says it too */
		rc = read_mapping(fd, addr, start, end, prot, shared);
	close(fd);
	return rc == -ENOENT ? -ENOMEM : rc;
}
