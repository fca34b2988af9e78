/*
 * test_audit.c - execmem_audit() on the calling process, in the mode under
 * test: execmem's own mappings are never W+X nor a foreign dual mapping;
 * in dual mode every code chunk shows as an execmem alias pair whose
 * executable side holds the code; a W+X mapping the test makes is found
 * and counted; a callback's non-zero return stops the audit and is
 * returned; bad and absent pids are refused.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rtest.h"

struct seen {
	const void *code, *wx;
	bool code_alias, wx_found, foreign;
	size_t calls;
};

static bool holds(const struct execmem_mapping *m, const void *addr)
{
	return (uintptr_t)addr >= m->start && (uintptr_t)addr < m->end;
}

static int look(const struct execmem_finding *f, void *ctx)
{
	struct seen *s = ctx;
	s->calls++;
	if (f->kind == EXECMEM_FINDING_EXECMEM_ALIAS)
		s->code_alias |= holds(&f->other, s->code) && f->mapping.execmem && f->other.execmem &&
				 (f->mapping.prot & EXECMEM_PROT_WRITE) && f->mapping.shared;
	if (f->kind == EXECMEM_FINDING_WX)
		s->wx_found |= holds(&f->mapping, s->wx) && !f->mapping.execmem && !f->mapping.tool;
	if (f->kind != EXECMEM_FINDING_EXECMEM_ALIAS && (f->mapping.execmem || f->other.execmem))
		s->foreign = true;
	return 0;
}

static int stop_at_first(const struct execmem_finding *f, void *ctx)
{
	(void)f;
	++*(int *)ctx;
	return 12345;
}

int main(void)
{
	enum execmem_mode mode = rt_mode_under_test();
	struct seen s = { 0 };
	struct execmem_audit_report r;
	s.code = rt_new_program(NULL, 64, 7);
	RT_CHECK(s.code, "no code");

	RT_CHECK(execmem_audit(0, look, &s, &r) == 0, "audit failed");
	RT_CHECK(r.pid == getpid() && r.mappings > 0, "pid %d, %zu mappings", r.pid, r.mappings);
	RT_CHECK(r.wx == 0 && r.dual_mapped == 0, "%zu W+X, %zu dual-mapped with only execmem's code",
		 r.wx, r.dual_mapped);
	RT_CHECK(!s.foreign, "one of execmem's mappings is reported as a hazard");
	if (mode == EXECMEM_MODE_DUAL)
		RT_CHECK(s.code_alias && r.execmem_aliases >= 1, "no alias pair holds the code");
	else
		RT_CHECK(!s.code_alias && r.execmem_aliases == 0, "%zu alias pairs in mprotect mode",
			 r.execmem_aliases);
	RT_CHECK(r.mdwe != EXECMEM_MDWE_UNKNOWN, "the caller's MDWE state is %s",
		 execmem_mdwe_name(r.mdwe));

	long page = sysconf(_SC_PAGESIZE);
	s.wx = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	RT_CHECK(s.wx != MAP_FAILED, "no W+X mapping: %s", strerror(errno));
	if (s.wx != MAP_FAILED) {
		RT_CHECK(execmem_audit(0, look, &s, &r) == 0 && s.wx_found && r.wx == 1,
			 "the W+X mapping: found %d, counted %zu", s.wx_found, r.wx);
		int calls = 0;
		RT_CHECK(execmem_audit(0, stop_at_first, &calls, NULL) == 12345 && calls == 1,
			 "the callback's stop: %d calls", calls);
		munmap((void *)s.wx, (size_t)page);
	}

	RT_CHECK(execmem_audit(-1, NULL, NULL, &r) == -EINVAL, "pid -1 accepted");
	RT_CHECK(execmem_audit(INT_MAX, NULL, NULL, &r) == -ESRCH, "pid INT_MAX found");
	RT_CHECK(execmem_free((void *)s.code) == 0, "free refused");
	return rt_finish("audit");
}
