/*
 * crt.c - the C runtime pieces a module needs and the process lacks.
 *
 * glibc gives atexit(), at_quick_exit() and pthread_atfork() to programs and
 * shared libraries through libc_nonshared.a: each gets its own copy, which
 * registers with its own __dso_handle, so that dlclose() can run (or drop)
 * what that object registered.  The loader does the same: the object
 * compiled from crt_nonshared.c is embedded below and linked into the
 * modules that call these functions (select.c takes it like an archive
 * member), and each module gets its own __dso_handle (layout.c).
 *
 * Registrations with a module's handle stay here instead of reaching the C
 * library, so that none outlives its module: mod_crt_finalize() runs the
 * module's atexit()/__cxa_atexit() functions at unload, last registered
 * first, and drops its at_quick_exit() functions and fork handlers.  One handler of the
 * loader's own, registered with the C library at the first registration,
 * runs those of modules still loaded at exit() (or quick_exit()), as it
 * would a shared library's.  Registrations with any other handle go to the
 * C library unchanged.
 *
 * One mutex guards the handles and the exit registrations; it is never
 * held while a registered function runs, since that function may register
 * more.  Fork handlers have a mutex of their own (see below).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "crt.h"

#ifndef MOD_CRT_OBJECT_PATH
#error "MOD_CRT_OBJECT_PATH: the object compiled from crt_nonshared.c (sources.cmake)"
#endif

/* The object, as built for this machine by sources.cmake.  The labels are
 * hidden symbols, not local ones: a reference to a local label becomes one
 * to its section plus an offset, which a GOT entry cannot hold. */
__asm__(".pushsection .rodata\n"
	".balign 16\n"
	".globl mod_crt_object_start, mod_crt_object_end\n"
	".hidden mod_crt_object_start, mod_crt_object_end\n"
	"mod_crt_object_start:\n"
	".incbin \"" MOD_CRT_OBJECT_PATH "\"\n"
	"mod_crt_object_end:\n"
	".popsection\n");
MOD_HIDDEN extern const uint8_t mod_crt_object_start[] __asm__("mod_crt_object_start");
MOD_HIDDEN extern const uint8_t mod_crt_object_end[] __asm__("mod_crt_object_end");

const uint8_t *mod_crt_object(size_t *size)
{
	*size = (size_t)(mod_crt_object_end - mod_crt_object_start);
	return mod_crt_object_start;
}

/* The C library's (glibc, musl). */
extern int __cxa_atexit(void (*fn)(void *), void *arg, void *dso_handle);
extern int __cxa_at_quick_exit(void (*fn)(void), void *dso_handle) __attribute__((weak));
extern void __stack_chk_fail(void) __attribute__((noreturn));

struct registration {
	struct registration *next;      /* older */
	void (*fn)(void *);
	void *arg;
	uintptr_t dso_handle;
	int quick;                      /* at_quick_exit(): run by quick_exit() only */
};

static pthread_mutex_t crt_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct execmem_module *attached;       /* modules with a handle */
static struct registration *registrations;    /* newest first */

void mod_crt_attach(struct execmem_module *module)
{
	pthread_mutex_lock(&crt_mutex);
	module->crt_next = attached;
	attached = module;
	pthread_mutex_unlock(&crt_mutex);
}

/* With the mutex held. */
static int is_module_handle(uintptr_t handle)
{
	for (const struct execmem_module *m = attached; m; m = m->crt_next)
		if (m->dso_handle == handle)
			return 1;
	return 0;
}

/*
 * Unlink and return the newest registration that matches: of handle (0:
 * any), quick ones or not.  With the mutex held.
 */
static struct registration *take_newest(uintptr_t handle, int quick)
{
	for (struct registration **p = &registrations; *p; p = &(*p)->next) {
		struct registration *r = *p;
		if ((handle == 0 || r->dso_handle == handle) && r->quick == quick) {
			*p = r->next;
			return r;
		}
	}
	return NULL;
}

/* Run, newest first, the registrations that match, including those that
 * the functions run make meanwhile. */
static void run_registrations(uintptr_t handle, int quick)
{
	for (;;) {
		pthread_mutex_lock(&crt_mutex);
		struct registration *r = take_newest(handle, quick);
		pthread_mutex_unlock(&crt_mutex);
		if (!r)
			return;
		r->fn(r->arg);
		free(r);
	}
}

static void run_at_exit(void)
{
	run_registrations(0, 0);
}

static void run_at_quick_exit(void)
{
	run_registrations(0, 1);
}

static int exit_hook_status = -1, quick_hook_status = -1;

static void hook_exit(void)
{
	exit_hook_status = atexit(run_at_exit);
}

static void hook_quick_exit(void)
{
	quick_hook_status = at_quick_exit(run_at_quick_exit);
}

/* Keep a registration of a module's; 0, or -1 when out of memory. */
static int keep(void (*fn)(void *), void *arg, uintptr_t handle, int quick)
{
	static pthread_once_t exit_once = PTHREAD_ONCE_INIT, quick_once = PTHREAD_ONCE_INIT;
	pthread_once(quick ? &quick_once : &exit_once, quick ? hook_quick_exit : hook_exit);
	if ((quick ? quick_hook_status : exit_hook_status) != 0)
		return -1;
	struct registration *r = malloc(sizeof(*r));
	if (!r)
		return -1;
	*r = (struct registration){ NULL, fn, arg, handle, quick };
	pthread_mutex_lock(&crt_mutex);
	r->next = registrations;
	registrations = r;
	pthread_mutex_unlock(&crt_mutex);
	return 0;
}

static int owned_by_module(void *dso_handle)
{
	pthread_mutex_lock(&crt_mutex);
	int owned = dso_handle && is_module_handle((uintptr_t)dso_handle);
	pthread_mutex_unlock(&crt_mutex);
	return owned;
}

/* __cxa_atexit() as modules see it. */
static int module_cxa_atexit(void (*fn)(void *), void *arg, void *dso_handle)
{
	if (!owned_by_module(dso_handle))
		return __cxa_atexit(fn, arg, dso_handle);
	return keep(fn, arg, (uintptr_t)dso_handle, 0);
}

/* Called with one argument, which a function without parameters ignores. */
static int module_cxa_at_quick_exit(void (*fn)(void), void *dso_handle)
{
	if (!owned_by_module(dso_handle))
		return __cxa_at_quick_exit ? __cxa_at_quick_exit(fn, dso_handle) : -1;
	return keep((void (*)(void *))fn, NULL, (uintptr_t)dso_handle, 1);
}

/*
 * Fork handlers of modules, in registration order.  fork_mutex is held from
 * the prepare handlers to the parent's and the child's, so that an unload
 * waits for a fork under way instead of freeing code it is about to run.
 */
struct fork_handlers {
	void (*prepare)(void), (*parent)(void), (*child)(void);
	uintptr_t dso_handle;
};

static pthread_mutex_t fork_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct fork_handlers *fork_handlers;
static size_t nfork_handlers, fork_handlers_capacity;

static void prepare_fork(void)
{
	pthread_mutex_lock(&fork_mutex);
	for (size_t i = nfork_handlers; i-- > 0;)     /* last registered first */
		if (fork_handlers[i].prepare)
			fork_handlers[i].prepare();
}

static void after_fork(int in_child)
{
	for (size_t i = 0; i < nfork_handlers; i++) {
		void (*fn)(void) = in_child ? fork_handlers[i].child : fork_handlers[i].parent;
		if (fn)
			fn();
	}
	pthread_mutex_unlock(&fork_mutex);
}

static void parent_after_fork(void)
{
	after_fork(0);
}

static void child_after_fork(void)
{
	after_fork(1);
}

static int fork_hook_status = -1;

static void hook_fork(void)
{
	fork_hook_status = pthread_atfork(prepare_fork, parent_after_fork, child_after_fork);
}

/* __register_atfork() as modules see it (pthread_atfork() calls it); a
 * handler may not itself register fork handlers while a fork runs it. */
static int module_register_atfork(void (*prepare)(void), void (*parent)(void),
				  void (*child)(void), void *dso_handle)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (!owned_by_module(dso_handle))
		return pthread_atfork(prepare, parent, child);
	pthread_once(&once, hook_fork);
	if (fork_hook_status != 0)
		return fork_hook_status;
	pthread_mutex_lock(&fork_mutex);
	struct fork_handlers *n = mod_grow(fork_handlers, nfork_handlers, &fork_handlers_capacity,
					   sizeof(*n), 8);
	if (n) {
		fork_handlers = n;
		n[nfork_handlers++] = (struct fork_handlers){ prepare, parent, child,
							      (uintptr_t)dso_handle };
	}
	pthread_mutex_unlock(&fork_mutex);
	return n ? 0 : ENOMEM;
}

static void drop_fork_handlers(uintptr_t handle)
{
	pthread_mutex_lock(&fork_mutex);
	size_t kept = 0;
	for (size_t i = 0; i < nfork_handlers; i++)
		if (fork_handlers[i].dso_handle != handle)
			fork_handlers[kept++] = fork_handlers[i];
	nfork_handlers = kept;
	pthread_mutex_unlock(&fork_mutex);
}

uintptr_t mod_crt_symbol(const char *name)
{
	static const struct {
		const char *name;
		void *address;
	} symbols[] = {
		{ "__cxa_atexit", (void *)module_cxa_atexit },
		{ "__cxa_at_quick_exit", (void *)module_cxa_at_quick_exit },
		{ "__register_atfork", (void *)module_register_atfork },
		/* What libc_nonshared.a's does: the C library's, by a local name. */
		{ "__stack_chk_fail_local", (void *)__stack_chk_fail },
	};
	for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++)
		if (strcmp(symbols[i].name, name) == 0)
			return (uintptr_t)symbols[i].address;
	return 0;
}

/* Forget the module's handle and drop whatever it registered, unrun. */
static void forget(struct execmem_module *module)
{
	pthread_mutex_lock(&crt_mutex);
	for (struct execmem_module **p = &attached; *p; p = &(*p)->crt_next)
		if (*p == module) {
			*p = module->crt_next;
			break;
		}
	for (int quick = 0; quick < 2; quick++)
		for (struct registration *r; (r = take_newest(module->dso_handle, quick));)
			free(r);
	pthread_mutex_unlock(&crt_mutex);
	module->crt_next = NULL;
	drop_fork_handlers(module->dso_handle);
}

void mod_crt_finalize(struct execmem_module *module)
{
	if (!module->dso_handle)
		return;
	run_registrations(module->dso_handle, 0);
	forget(module);
}

void mod_crt_detach(struct execmem_module *module)
{
	if (module->dso_handle)
		forget(module);
}
