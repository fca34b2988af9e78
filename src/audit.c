/*
 * audit.c - execmem_audit(): the W^X hazards of a process, as its
 * /proc/PID/maps and smaps show them.  One pass reads every mapping; the findings
 * come from comparing them: W+X mappings, shared writable and executable
 * views of one file page, and file text holding anonymous (patched) pages.
 */
#include "internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifdef EXECMEM_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#endif

#ifndef PR_GET_MDWE
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1UL
#endif

struct mapping_list {
	struct execmem_mapping *v;
	size_t n, cap;
};

static int push_mapping(struct mapping_list *list, const struct execmem_mapping *m)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 256;
		struct execmem_mapping *v = realloc(list->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		list->v = v;
		list->cap = cap;
	}
	list->v[list->n++] = *m;
	return 0;
}

/* A smaps header line: "start-end perms offset major:minor inode   name". */
static bool parse_header(const char *line, struct execmem_mapping *m)
{
	char perms[5];
	unsigned major, minor;
	int name_at = 0;
	memset(m, 0, sizeof *m);
	if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %" SCNx64 " %x:%x %" SCNu64 " %n", &m->start,
		   &m->end, perms, &m->offset, &major, &minor, &m->inode, &name_at) < 7 || !name_at)
		return false;
	m->prot = (perms[0] == 'r' ? EXECMEM_PROT_READ : 0) | (perms[1] == 'w' ? EXECMEM_PROT_WRITE : 0) |
		  (perms[2] == 'x' ? EXECMEM_PROT_EXEC : 0);
	m->shared = perms[3] == 's';
	m->dev = (uint64_t)major << 32 | minor;
	snprintf(m->name, sizeof m->name, "%.*s", (int)strcspn(line + name_at, "\n"), line + name_at);
	return true;
}

static FILE *open_proc(int pid, const char *file, int *err)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
	FILE *f = fopen(path, "re");
	*err = f ? 0 : errno == ENOENT ? -ESRCH : -errno;
	return f;
}

/* Where smaps is in the list: the mapping its last header matched, if any. */
struct cursor {
	size_t at;
	bool matched;
};

/* Calls line_fn on each line of /proc/PID/file; 0 or a negative errno. */
static int each_line(int pid, const char *file, struct mapping_list *list,
		     int (*line_fn)(const char *line, struct mapping_list *list, struct cursor *c))
{
	int err;
	FILE *f = open_proc(pid, file, &err);
	if (!f)
		return err;
	char *line = NULL;
	size_t cap = 0;
	struct cursor c = { 0, false };
	errno = 0;
	while (!err && getline(&line, &cap, f) > 0)
		err = line_fn(line, list, &c);
	if (!err && ferror(f))
		err = errno ? -errno : -EIO;
	free(line);
	fclose(f);
	return err;
}

static int maps_line(const char *line, struct mapping_list *list, struct cursor *c)
{
	struct execmem_mapping m;
	(void)c;
	return parse_header(line, &m) ? push_mapping(list, &m) : 0;
}

/* smaps repeats the maps lines, each followed by "Key: value kB" lines:
 * only the bounds and "Anonymous:" are read, cheaply (smaps is long). */
static int smaps_line(const char *line, struct mapping_list *list, struct cursor *c)
{
	char *end = (char *)line;
	/* A header is "start-end ...": "Anonymous:" begins with a hex digit too. */
	uintptr_t start = isxdigit((unsigned char)line[0]) ? (uintptr_t)strtoull(line, &end, 16) : 0;
	if (end != line && *end == '-') {
		uintptr_t stop = (uintptr_t)strtoull(end + 1, NULL, 16);
		while (c->at < list->n && list->v[c->at].start < start)
			c->at++;
		c->matched = c->at < list->n && list->v[c->at].start == start &&
			     list->v[c->at].end == stop;
	} else if (c->matched && !strncmp(line, "Anonymous:", 10)) {
		list->v[c->at].anonymous = (size_t)strtoull(line + 10, NULL, 10) * 1024;
	}
	return 0;
}

/*
 * The mappings come from maps and their anonymous bytes from smaps,
 * matched by address: an emulator that shows its guest's maps may leave
 * smaps its own (qemu-user does), whose mappings then match none.
 */
static int read_mappings(int pid, struct mapping_list *list)
{
	int err = each_line(pid, "maps", list, maps_line);
	/* A process that exits while it is read leaves its maps empty. */
	if (!err && list->n == 0)
		err = -ESRCH;
	return err ? err : each_line(pid, "smaps", list, smaps_line);
}

static bool named_execmem(const char *name)
{
	return !strncmp(name, "/memfd:execmem:", 15) || !strncmp(name, "[anon:execmem:", 14);
}

/* Under memcheck, memory the program cannot address is valgrind's own. */
static bool valgrind_owns(const struct execmem_mapping *m)
{
#ifdef EXECMEM_HAVE_VALGRIND_H
	/* On a CPU valgrind does not run on, the requests expand to nothing. */
	unsigned char vbits = 0;
	(void)m;
	(void)vbits;
	return RUNNING_ON_VALGRIND && VALGRIND_GET_VBITS((void *)m->start, &vbits, 1) == 3;
#else
	(void)m;
	return false;
#endif
}

static bool is_wx(const struct execmem_mapping *m)
{
	return (m->prot & EXECMEM_PROT_WRITE) && (m->prot & EXECMEM_PROT_EXEC);
}

static void recognise(struct execmem_mapping *m, bool self)
{
	m->execmem = named_execmem(m->name) || (self && em_addrmap_get((void *)m->start));
	m->tool = self && is_wx(m) && valgrind_owns(m);
}

/* Bytes of the file that w and x both map, when w writes what x executes. */
static size_t dual_overlap(const struct execmem_mapping *w, const struct execmem_mapping *x)
{
	if (w == x || !w->shared || !(w->prot & EXECMEM_PROT_WRITE) || !(x->prot & EXECMEM_PROT_EXEC) ||
	    !w->inode || w->inode != x->inode || w->dev != x->dev)
		return 0;
	uint64_t lo = w->offset > x->offset ? w->offset : x->offset;
	uint64_t w_end = w->offset + (w->end - w->start), x_end = x->offset + (x->end - x->start);
	uint64_t hi = w_end < x_end ? w_end : x_end;
	return hi > lo ? (size_t)(hi - lo) : 0;
}

struct audit {
	const struct mapping_list *list;
	execmem_audit_fn fn;
	void *ctx;
	struct execmem_audit_report *report;
};

static int found(struct audit *au, enum execmem_finding_kind kind, const struct execmem_mapping *m,
		 const struct execmem_mapping *other, size_t bytes)
{
	struct execmem_finding f = { .kind = kind, .mapping = *m, .bytes = bytes };
	if (other)
		f.other = *other;
	struct execmem_audit_report *r = au->report;
	if (kind == EXECMEM_FINDING_WX)
		++*(m->tool ? &r->tool_wx : &r->wx);
	else if (kind == EXECMEM_FINDING_DUAL_MAPPED)
		r->dual_mapped++;
	else if (kind == EXECMEM_FINDING_EXECMEM_ALIAS)
		r->execmem_aliases++;
	else
		r->patched_text++;
	return au->fn ? au->fn(&f, au->ctx) : 0;
}

static int audit_mapping(struct audit *au, const struct execmem_mapping *m)
{
	int rc = 0;
	if (is_wx(m))
		rc = found(au, EXECMEM_FINDING_WX, m, NULL, m->end - m->start);
	for (size_t i = 0; !rc && m->shared && i < au->list->n; i++) {
		const struct execmem_mapping *x = &au->list->v[i];
		size_t both = dual_overlap(m, x);
		bool ours = m->execmem && x->execmem;
		if (both)
			rc = found(au, ours ? EXECMEM_FINDING_EXECMEM_ALIAS : EXECMEM_FINDING_DUAL_MAPPED, m,
				   x, both);
	}
	bool text = (m->prot & EXECMEM_PROT_EXEC) && !(m->prot & EXECMEM_PROT_WRITE) && m->inode &&
		    !m->shared;
	if (!rc && text && m->anonymous)
		rc = found(au, EXECMEM_FINDING_PATCHED_TEXT, m, NULL, m->anonymous);
	return rc;
}

static void read_mdwe(struct execmem_audit_report *r, bool self)
{
	if (!self) {
		r->mdwe = EXECMEM_MDWE_UNKNOWN;
		return;
	}
	int flags = prctl(PR_GET_MDWE, 0UL, 0UL, 0UL, 0UL);
	if (flags < 0) {
		r->mdwe = EXECMEM_MDWE_UNSUPPORTED;
		return;
	}
	r->mdwe_flags = (unsigned long)flags;
	r->mdwe = flags & PR_MDWE_REFUSE_EXEC_GAIN ? EXECMEM_MDWE_REFUSE_EXEC_GAIN : EXECMEM_MDWE_OFF;
}

int execmem_audit(int pid, execmem_audit_fn fn, void *ctx, struct execmem_audit_report *report)
{
	if (pid < 0)
		return -EINVAL;
	struct execmem_audit_report local;
	struct execmem_audit_report *r = report ? report : &local;
	bool self = pid == 0 || pid == getpid();
	memset(r, 0, sizeof *r);
	r->pid = self ? getpid() : pid;
	struct mapping_list list = { 0 };
	int rc = read_mappings(r->pid, &list);
	for (size_t i = 0; !rc && i < list.n; i++)
		recognise(&list.v[i], self);
	struct audit au = { &list, fn, ctx, r };
	for (size_t i = 0; !rc && i < list.n; i++)
		rc = audit_mapping(&au, &list.v[i]);
	r->mappings = list.n;
	read_mdwe(r, self);
	free(list.v);
	return rc;
}

const char *execmem_finding_kind_name(enum execmem_finding_kind kind)
{
	switch (kind) {
	case EXECMEM_FINDING_WX:
		return "wx";
	case EXECMEM_FINDING_DUAL_MAPPED:
		return "dual-mapped";
	case EXECMEM_FINDING_EXECMEM_ALIAS:
		return "execmem-alias";
	case EXECMEM_FINDING_PATCHED_TEXT:
		return "patched-text";
	}
	return "unknown";
}

const char *execmem_mdwe_name(enum execmem_mdwe mdwe)
{
	switch (mdwe) {
	case EXECMEM_MDWE_UNKNOWN:
		return "unknown";
	case EXECMEM_MDWE_UNSUPPORTED:
		return "unsupported";
	case EXECMEM_MDWE_OFF:
		return "off";
	case EXECMEM_MDWE_REFUSE_EXEC_GAIN:
		return "refuse-exec-gain";
	}
	return "unknown";
}
