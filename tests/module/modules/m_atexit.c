/* Module: the C runtime pieces glibc keeps in libc_nonshared.a. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

void host_log(int event);
int __cxa_atexit(void (*fn)(void *), void *arg, void *dso_handle);
void __stack_chk_fail_local(void);   /* in libc_nonshared.a only */
extern char __dso_handle;

static int forks_seen;

static void first(void)
{
	host_log(11);
}

static void late(void)
{
	host_log(12);
}

static void with_arg(void *arg)
{
	host_log((int)(long)arg);
}

static void quick(void)
{
	host_log(20);
}

static void exit_42(void)
{
	_exit(42);
}

static void exit_43(void)
{
	_exit(43);
}

static void in_child(void)
{
	forks_seen++;
}

__attribute__((constructor)) static void setup(void)
{
	atexit(first);
	__cxa_atexit(with_arg, (void *)13L, &__dso_handle);
	at_quick_exit(quick);
	pthread_atfork(NULL, NULL, in_child);
}

__attribute__((destructor)) static void finish(void)
{
	host_log(10);
}

int atexit_late(void)
{
	return atexit(late);
}

/* exit() then ends the process with 42 */
int atexit_arm_exit(void)
{
	return atexit(exit_42);
}

/* quick_exit() then ends the process with 43 */
int atexit_arm_quick_exit(void)
{
	return at_quick_exit(exit_43);
}

int atexit_forks_seen(void)
{
	return forks_seen;
}

/* Linking this at all needs __stack_chk_fail_local. */
void *atexit_stack_chk_fail_local(void)
{
	return (void *)__stack_chk_fail_local;
}
