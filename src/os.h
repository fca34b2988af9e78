/*
 * os.h - the only door to the kernel.  Every system call execmem makes that
 * touches memory goes through these functions, which count the calls (for
 * execmem_stats()) and can be told to fail (for the fault-injection tests).
 * All return 0 (or a descriptor) on success and a negative errno on failure.
 */
#ifndef EXECMEM_OS_H
#define EXECMEM_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include "execmem.h"

#define EM_HIDDEN __attribute__((visibility("hidden")))

/*
 * A descriptor execmem opened, with the identity it had then: another
 * thread (or a fork handler) may close the number and open something else
 * under it, so every use checks the identity first and refuses (-EBADF) a
 * descriptor that is no longer the one opened.
 */
struct em_fd {
	int fd;
	dev_t dev;
	ino_t ino;
};

EM_HIDDEN int em_os_memfd(const char *name, struct em_fd *out);
/* Record the identity of a descriptor execmem opened by other means. */
EM_HIDDEN int em_os_adopt_fd(int fd, struct em_fd *out);
EM_HIDDEN int em_os_ftruncate(const struct em_fd *f, size_t size);
/* Size seals (and no others yet). */
EM_HIDDEN int em_os_seal_size(const struct em_fd *f);
/* No new writable mapping of f, and no more seals: call once its
 * writable mapping exists.  Views mapped later can never gain write
 * permission (kernels before 5.1: only the last seal). */
EM_HIDDEN int em_os_seal_writes(const struct em_fd *f);
/* Writes all of buf at offset 0. */
EM_HIDDEN int em_os_write_file(const struct em_fd *f, const void *buf, size_t len);
/*
 * Fills [from, len) of f with pattern (pattern_len bytes) repeated from
 * offset 0, or with zeros when pattern is NULL: the kernel allocates the
 * file's pages in one system call per 4 MiB (pwritev of the pattern
 * repeated, fallocate for zeros), with no page faults.  Counted as OTHER.
 */
EM_HIDDEN int em_os_fill_file(const struct em_fd *f, const void *pattern, size_t pattern_len,
			      size_t from, size_t len);
/* Closes f only while it is still the descriptor opened; -EBADF otherwise. */
EM_HIDDEN int em_os_close(const struct em_fd *f);
/* mmap: *out receives the address.  A non-NULL hint without fixed is only
 * accepted when the kernel placed the mapping exactly there (-EEXIST
 * otherwise, nothing left mapped). */
EM_HIDDEN int em_os_map(void **out, void *hint, size_t len, int prot, int flags,
			const struct em_fd *f);
/* Maps len bytes of f at addr, read + execute and private, over what is
 * there (MAP_FIXED), by the system call itself: a sanitizer's mmap()
 * resets its shadow of the range, which it may not have for the program's
 * text.  Counted as MMAP. */
EM_HIDDEN int em_os_map_text_over(void *addr, size_t len, const struct em_fd *f);
/* Moves the mapping at from over to, replacing what is there (same length). */
EM_HIDDEN int em_os_move(void *from, void *to, size_t len);
EM_HIDDEN int em_os_unmap(void *addr, size_t len);
EM_HIDDEN int em_os_protect(void *addr, size_t len, int prot);
EM_HIDDEN int em_os_advise(void *addr, size_t len, int advice);
EM_HIDDEN int em_os_membarrier(int cmd);
/* Makes every thread of the process execute a core-serialising instruction
 * before it next runs user code (membarrier PRIVATE_EXPEDITED_SYNC_CORE,
 * registered at the first call that succeeds).  -EINVAL, -ENOSYS or
 * -EPERM where the kernel or a filter refuses it.  Counted as MEMBARRIER. */
EM_HIDDEN int em_os_sync_core(void);
EM_HIDDEN int em_os_flush_icache(void *start, void *end);
EM_HIDDEN int em_os_install_fault_handler(void (*handler)(int, siginfo_t *, void *),
					 struct sigaction *previous);
/* The same for any signal sig (SA_SIGINFO | SA_RESTART | SA_ONSTACK). */
EM_HIDDEN int em_os_install_handler(int sig, void (*handler)(int, siginfo_t *, void *),
				    struct sigaction *previous);
/* Sends sig to thread tid of this process, value in si_value.sival_ptr and
 * si_code SI_QUEUE (rt_tgsigqueueinfo); sig 0 only asks whether the thread
 * still exists.  -ESRCH once it has exited.  Counted as SIGNAL. */
EM_HIDDEN int em_os_signal_thread(pid_t tid, int sig, uintptr_t value);
/* The ids of the process's threads (/proc/self/task), up to cap of them
 * into tids; returns how many there are (more than cap: call again with
 * room for them) or a negative errno.  Counted as THREADS. */
EM_HIDDEN int em_os_list_threads(pid_t *tids, size_t cap);
/* Where thread tid of this process waits in the kernel (in a system call,
 * or for a page fault): the user program counter it resumes at, from
 * /proc/self/task/TID/syscall.  -EAGAIN while it runs.  Counted as THREADS. */
EM_HIDDEN int em_os_thread_blocked_pc(pid_t tid, uintptr_t *pc);
/* The calling thread's id. */
EM_HIDDEN pid_t em_os_thread_id(void);
/* The mapping that holds addr: its bounds and PROT_* bits (*shared: a
 * MAP_SHARED mapping).  -ENOMEM when nothing is mapped there.  One
 * PROCMAP_QUERY ioctl (Linux 6.11), else a read of /proc/self/maps;
 * counted as OTHER. */
EM_HIDDEN int em_os_mapping_at(uintptr_t addr, uintptr_t *start, uintptr_t *end, int *prot,
			       bool *shared);
/* Block in the calling thread every signal but those its own faults raise
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS); *saved receives the
 * mask to give back to em_os_restore_signals().  Counted, cannot fail. */
EM_HIDDEN void em_os_block_signals(sigset_t *saved);
EM_HIDDEN void em_os_restore_signals(const sigset_t *saved);
/* Whether mappings of the process that overlap the n ranges [lo, hi) are
 * writable and executable: how many ranges (or, where the kernel refuses
 * the query, mappings) have one, or a negative errno.  One PROCMAP_QUERY
 * ioctl of /proc/self/maps per range (Linux 6.11), else a read of the
 * whole file; counted as OTHER. */
EM_HIDDEN int em_os_find_wx(const uintptr_t (*ranges)[2], int n);
/* Names an anonymous mapping in /proc/PID/maps ("[anon:NAME]"); -EOPNOTSUPP
 * where the kernel cannot.  Counted, never made to fail. */
EM_HIDDEN int em_os_name_mapping(void *addr, size_t len, const char *name);
/* 1 when mappings get names, 0 when the kernel refused, -1 before the first. */
EM_HIDDEN int em_os_names_mappings(void);
/* The TracerPid of /proc/self/status: the pid of the debugger attached, 0
 * for none, or a negative errno.  Counted, never made to fail. */
EM_HIDDEN int em_os_tracer_pid(void);
EM_HIDDEN long em_os_page_size(void);
EM_HIDDEN int em_os_cpu_count(void);
EM_HIDDEN uint64_t em_os_random(void);
/* The program break: where the C library's heap ends and would grow.
 * Counted as OTHER, never made to fail. */
EM_HIDDEN uintptr_t em_os_heap_end(void);

/* Process-wide counters of the calls above, by kind. */
EM_HIDDEN void em_os_counts(uint64_t out[EXECMEM_OS_CALL_MAX]);

/*
 * Fault injection for tests: the nth call of kind `call` made from now on
 * fails with -err (nth >= 1); with `sticky`, every later call of that kind
 * fails too.  em_os_fail_clear() disarms; em_os_failures() counts the
 * failures injected since the last arming.
 */
EM_HIDDEN void em_os_fail_nth(enum execmem_os_call call, uint64_t nth, int err, int sticky);
EM_HIDDEN void em_os_fail_clear(void);
EM_HIDDEN uint64_t em_os_failures(void);

#endif
