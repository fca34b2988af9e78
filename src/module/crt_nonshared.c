/*
 * crt_nonshared.c - the functions glibc keeps in libc_nonshared.a, which the
 * static linker copies into every program and shared library, so that each
 * registers with its own __dso_handle.  Not part of libexecmem: this file
 * is compiled on its own into a relocatable object that libexecmem embeds
 * (crt.c) and links into each module that calls one of these functions;
 * every module then has its own copy, bound to its own __dso_handle.
 * __cxa_atexit, __cxa_at_quick_exit and __register_atfork resolve to the
 * loader's (crt.c).
 * Everything is hidden: a module's copy is never offered to other modules.
 */
#define CRT_LOCAL __attribute__((visibility("hidden")))

typedef void (*crt_function)(void);

/* Defined by the loader for each module that refers to it. */
extern char __dso_handle CRT_LOCAL;

int __cxa_atexit(void (*fn)(void *), void *arg, void *dso_handle);
int __cxa_at_quick_exit(crt_function fn, void *dso_handle);

CRT_LOCAL int atexit(crt_function fn);
CRT_LOCAL int at_quick_exit(crt_function fn);

/* A function without parameters may be called with one, in the C ABIs of
 * the machines the loader supports: this is what the C library does too. */
int atexit(crt_function fn)
{
	return __cxa_atexit((void (*)(void *))fn, 0, &__dso_handle);
}

int at_quick_exit(crt_function fn)
{
	return __cxa_at_quick_exit(fn, &__dso_handle);
}

int __register_atfork(crt_function prepare, crt_function parent, crt_function child,
		      void *dso_handle);

CRT_LOCAL int __pthread_atfork(crt_function prepare, crt_function parent, crt_function child);
CRT_LOCAL int pthread_atfork(crt_function prepare, crt_function parent, crt_function child)
	__attribute__((weak, alias("__pthread_atfork")));

int __pthread_atfork(crt_function prepare, crt_function parent, crt_function child)
{
	return __register_atfork(prepare, parent, child, &__dso_handle);
}
