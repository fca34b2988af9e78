/*
 * perf.c - the perf outputs: the perf map (/tmp/perf-<pid>.map, one
 * "START SIZE name" line per name) and the jitdump (jit-<pid>.dump, a
 * CODE_LOAD record with the code bytes per name or rewrite).  Each record
 * is built in memory and written with one write().  Called under the names
 * lock of names.c, which serialises every record.
 *
 * Code never moves in execmem (a fork copies chunks in place), so no
 * CODE_MOVE record is ever due; a freed range's old records are superseded
 * by the next CODE_LOAD at its address, which is how perf reads them.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "execmem.h"
#include "observe.h"
#include "os.h"

#define JITDUMP_MAGIC 0x4A695444u
#define JITDUMP_VERSION 1u

enum jit_record { JIT_CODE_LOAD = 0, JIT_CODE_MOVE = 1, JIT_CODE_DEBUG_INFO = 2, JIT_CODE_CLOSE = 3 };

struct jitdump_header {
	uint32_t magic, version, total_size, elf_mach, pad1, pid;
	uint64_t timestamp, flags;
};

struct record_prefix {
	uint32_t id, total_size;
	uint64_t timestamp;
};

struct code_load {
	struct record_prefix prefix;
	uint32_t pid, tid;
	uint64_t vma, code_addr, code_size, code_index;
	/* then the name, terminated, and the code bytes */
};

#if defined(__x86_64__)
#define JIT_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define JIT_ELF_MACHINE EM_AARCH64
#else
#define JIT_ELF_MACHINE EM_RISCV
#endif

static struct {
	int map_fd;           /* -1 when off */
	struct em_fd dump;    /* fd -1 when off */
	void *marker;         /* the dump's executable mapping */
	uint64_t code_index;
	uint32_t pid;
} out = { .map_fd = -1, .dump = { .fd = -1 } };

atomic_bool em_observe_rewrites;

static _Thread_local uint32_t my_tid;

/* perf record -k 1 stamps samples with CLOCK_MONOTONIC. */
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int write_all(int fd, const void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);
		if (n < 0 && errno != EINTR)
			return -errno;
		done += n > 0 ? (size_t)n : 0;
	}
	return 0;
}

unsigned em_perf_outputs_from_env(void)
{
	const char *v = getenv("EXECMEM_PERF");
	unsigned flags = 0;
	char word[16];
	for (const char *p = v; p && *p;) {
		size_t len = strcspn(p, ",");
		snprintf(word, sizeof word, "%.*s", (int)len, p);
		flags |= strcmp(word, "map") == 0 ? EXECMEM_PERF_MAP :
			 strcmp(word, "jitdump") == 0 ? EXECMEM_PERF_JITDUMP : 0;
		p += len + (p[len] == ',');
	}
	return flags;
}

/* ------------------------------------------------------------- perf map */

static int open_map(void)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
	out.map_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	return out.map_fd < 0 ? -errno : 0;
}

static void map_named(const struct em_name *n)
{
	char line[4096];
	int len = snprintf(line, sizeof line, "%lx %lx %s\n", (unsigned long)n->range.start,
			   (unsigned long)(n->range.end - n->range.start), n->name);
	if (len >= (int)sizeof line) {
		len = (int)sizeof line - 1;
		line[len - 1] = '\n';
	}
	write_all(out.map_fd, line, (size_t)len);
}

/* -------------------------------------------------------------- jitdump */

/* mkdir -p of the directory the dump goes in. */
static int make_dirs(char *path)
{
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		int rc = mkdir(path, 0755) && errno != EEXIST ? -errno : 0;
		*p = c;
		if (rc || !c)
			return rc;
	}
}

static int dump_dir(char *dir, size_t size)
{
	const char *given = getenv("JITDUMPDIR"), *home = getenv("HOME");
	if (given && *given)
		snprintf(dir, size, "%s", given);
	else if (home && *home)
		snprintf(dir, size, "%s/.debug/jit", home);
	else
		return -ENOENT;
	return make_dirs(dir);
}

/* perf record learns of the dump from an executable mapping of it. */
static int open_dump(void)
{
	char dir[3072], path[4096];
	int rc = dump_dir(dir, sizeof dir);
	if (rc)
		return rc;
	out.pid = (uint32_t)getpid();
	snprintf(path, sizeof path, "%s/jit-%u.dump", dir, out.pid);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	struct jitdump_header h = { JITDUMP_MAGIC, JITDUMP_VERSION, sizeof h, JIT_ELF_MACHINE, 0,
				    out.pid, now_ns(), 0 };
	rc = write_all(fd, &h, sizeof h);
	if (!rc)
		rc = em_os_adopt_fd(fd, &out.dump);
	if (!rc)
		rc = em_os_map(&out.marker, NULL, (size_t)em_os_page_size(), PROT_READ | PROT_EXEC,
			       MAP_PRIVATE, &out.dump);
	if (rc) {
		close(fd);
		out.dump.fd = -1;
		unlink(path);
	}
	return rc;
}

static void release_dump(void)
{
	em_os_unmap(out.marker, (size_t)em_os_page_size());
	em_os_close(&out.dump);
	out.dump.fd = -1;
}

static void close_dump(void)
{
	struct record_prefix close_record = { JIT_CODE_CLOSE, sizeof close_record, now_ns() };
	write_all(out.dump.fd, &close_record, sizeof close_record);
	release_dump();
}

static void release_map(void)
{
	close(out.map_fd);
	out.map_fd = -1;
}

/* The bytes are read from the view the code runs from. */
static void dump_named(const struct em_name *n)
{
	size_t name_len = strlen(n->name) + 1, code_len = n->range.end - n->range.start;
	size_t total = sizeof(struct code_load) + name_len + code_len;
	uint8_t *record = malloc(total);
	if (!record || total > UINT32_MAX) {
		free(record);
		return;
	}
	if (!my_tid)
		my_tid = (uint32_t)gettid();
	struct code_load head = { { JIT_CODE_LOAD, (uint32_t)total, now_ns() }, out.pid, my_tid,
				  n->range.start, n->range.start, code_len, out.code_index++ };
	memcpy(record, &head, sizeof head);
	memcpy(record + sizeof head, n->name, name_len);
	memcpy(record + sizeof head + name_len, (const void *)n->range.start, code_len);
	write_all(out.dump.fd, record, total);
	free(record);
}

/* ---------------------------------------------------------------- both */

void em_perf_named(const struct em_name *n)
{
	if (out.map_fd >= 0)
		map_named(n);
	if (out.dump.fd >= 0)
		dump_named(n);
}

void em_perf_rewritten(const struct em_name *n)
{
	if (out.dump.fd >= 0)
		dump_named(n);
}

static int switch_output(bool on, bool is_on, int (*open_it)(void))
{
	return on && !is_on ? open_it() : 0;
}

int em_perf_set_outputs(unsigned flags, const struct em_name *names, size_t count)
{
	bool map_was = out.map_fd >= 0, dump_was = out.dump.fd >= 0;
	if (map_was && !(flags & EXECMEM_PERF_MAP))
		release_map();
	if (dump_was && !(flags & EXECMEM_PERF_JITDUMP))
		close_dump();
	int rc = switch_output(flags & EXECMEM_PERF_MAP, map_was, open_map);
	int rc2 = switch_output(flags & EXECMEM_PERF_JITDUMP, dump_was, open_dump);
	atomic_store(&em_observe_rewrites, out.dump.fd >= 0);
	/* Names given before an output opened go into it now. */
	for (size_t i = 0; i < count; i++) {
		if (!map_was && out.map_fd >= 0)
			map_named(&names[i]);
		if (!dump_was && out.dump.fd >= 0)
			dump_named(&names[i]);
	}
	return rc ? rc : rc2;
}

/* A child of fork() leaves its parent's files alone: it writes files of its
 * own pid, which start with every name it inherited. */
void em_perf_after_fork(const struct em_name *names, size_t count)
{
	unsigned flags = 0;
	if (out.map_fd >= 0) {
		flags |= EXECMEM_PERF_MAP;
		release_map();
	}
	if (out.dump.fd >= 0) {
		flags |= EXECMEM_PERF_JITDUMP;
		release_dump();
	}
	my_tid = 0;
	em_perf_set_outputs(flags, names, count);
}
