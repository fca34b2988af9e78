/*
 * audit_target.c - a process for `execmem audit PID` to look at.  It makes
 * one hazard on purpose, prints "ready ADDR [ADDR]" (the mappings made),
 * then waits for its standard input to close:
 *   wx        an anonymous mapping writable and executable at once
 *   dualmap   a memfd page mapped shared read-write and read-execute
 *   patch     a page of its own text made writable, changed, made
 *             read-execute again (it then holds an anonymous copy)
 *   execmem   code from execmem's default arena (in dual mode: a chunk and
 *             its RW alias, which the audit reports as execmem's)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "execmem.h"

/* The text the "patch" flavour changes: a page of its own. */
static __attribute__((noinline, used, aligned(4096))) int patched_function(void)
{
	return 1;
}

static int make_wx(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	printf("ready %p\n", p);
	return 0;
}

static int make_dualmap(void)
{
	int fd = memfd_create("audit-target", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 4096) != 0)
		return 1;
	void *rw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	void *rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
	if (rw == MAP_FAILED || rx == MAP_FAILED)
		return 1;
	printf("ready %p %p\n", rw, rx);
	return 0;
}

/* ThreadSanitizer keeps no shadow of program text: its check of the
 * store would fault. */
__attribute__((no_sanitize("thread"))) static int make_patch(void)
{
	uintptr_t page = (uintptr_t)&patched_function & ~(uintptr_t)4095;
	/* Writable and executable for the moment of the patch: code after the
	 * function on the same page may be running. */
	if (mprotect((void *)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
		return 1;
	volatile uint8_t *text = (volatile uint8_t *)(page + 4095);
	*text = *text;
	if (mprotect((void *)page, 4096, PROT_READ | PROT_EXEC) != 0)
		return 1;
	printf("ready %#lx\n", (unsigned long)page);
	return 0;
}

static int make_execmem(void)
{
	void *code = execmem_alloc(EXECMEM_CODE, 64);
	if (!code)
		return 1;
	printf("ready %p\n", code);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*make)(void);
	} flavours[] = { { "wx", make_wx }, { "dualmap", make_dualmap }, { "patch", make_patch },
			 { "execmem", make_execmem } };
	for (size_t i = 0; argc == 2 && i < sizeof flavours / sizeof flavours[0]; i++) {
		if (strcmp(argv[1], flavours[i].name))
			continue;
		if (flavours[i].make()) {
			perror("audit_target");
			return 1;
		}
		fflush(stdout);
		char byte;
		while (read(STDIN_FILENO, &byte, 1) > 0)
			;
		return 0;
	}
	fprintf(stderr, "usage: audit_target wx|dualmap|patch|execmem\n");
	return 2;
}
