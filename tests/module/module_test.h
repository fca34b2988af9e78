/*
 * module_test.h - what the files of test_module share: the run's compiler
 * and directories, checks, and helpers that build and load modules.
 */
#ifndef EXECMEM_TEST_MODULE_H
#define EXECMEM_TEST_MODULE_H

#include <stddef.h>
#include <stdio.h>
#include "execmem/module.h"

extern const char *cc, *cflags, *srcdir, *workdir;
#include "module_check.h"

extern int failures;


/* Events modules report through host_log(), in order. */
extern int events[16], nevents;
void host_log(int event);

/* Host symbols for statically linked test binaries (see test_module.c). */
void *static_host_resolver(const char *name, void *context);

void path_in_work(char *out, size_t len, const char *name);
/* system() of the formatted command; its status, with a message when not 0. */
int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Compile SRCDIR/modules/name.c into WORKDIR/name.o; 0 or -1. */
int compile_with(const char *compiler, const char *flags, const char *name);
int compile(const char *name);
/* Load WORKDIR/name (expect_error: a failure is not a failed check). */
struct execmem_module *load(const char *name, int expect_error);
void *sym(struct execmem_module *m, const char *name);
size_t live_allocations(void);

/* test_link.c */
void run_link_tests(void);
void run_real_archive_tests(void);

#endif
