/*
 * execmem.h - typed, placed, never-W+X executable memory for programs that
 * make machine code at run time.
 *
 * OVERVIEW
 *   execmem hands out memory for generated code and its data.  Every
 *   allocation has a type (enum execmem_type) that fixes where the memory may
 *   lie and how it is protected.  Small allocations of every type are packed
 *   at a fine granularity (64 bytes by default) into shared 2 MiB chunks that
 *   are backed by huge pages where the kernel allows.  Memory where nothing
 *   lives holds the architecture's trap instruction.  No page is ever
 *   writable and executable at the same time: code bytes are put in place
 *   only through execmem_write() or a write window (execmem_write_begin() /
 *   execmem_write_end()), which also make the instruction cache coherent.
 *
 * MODES
 *   EXECMEM_MODE_DUAL      each chunk is a sealed memfd mapped twice: read +
 *                          execute where code runs and read + write at an
 *                          unrelated, randomised address.  Steady-state
 *                          allocation, write and free make no system call.
 *   EXECMEM_MODE_MPROTECT  one private mapping, toggled RW <-> RX by
 *                          mprotect() under a lock for every write.  Used
 *                          when memfd or a shared executable mapping is
 *                          refused (hardened kernels, SELinux) or when asked
 *                          for.  A page is non-executable only while
 *                          execmem_write(), execmem_invalidate(),
 *                          execmem_write_end() or execmem_free() copies into
 *                          it, a few microseconds for small code; write
 *                          windows are copies in ordinary memory and leave
 *                          the pages executable.  The copying thread blocks
 *                          its signals meanwhile (all but SIGSEGV, SIGBUS,
 *                          SIGILL, SIGFPE, SIGTRAP and SIGSYS, which its own
 *                          faults raise), so none of its signal handlers runs
 *                          code of the page.  Other threads that execute code
 *                          on the page then wait in a SIGSEGV handler that
 *                          execmem installs for this mode, and continue.  A
 *                          SIGSEGV handler the program installs later must
 *                          pass the faults it does not recognise to the
 *                          handler it replaced (the old action of
 *                          sigaction()); if it does not, such a thread runs
 *                          the program's handler instead, on an access
 *                          fault (SEGV_ACCERR) at an address of live code: a
 *                          handler that returns makes the thread retry, and
 *                          fault, until the page is executable again, then
 *                          go on; one that treats the fault as a crash ends
 *                          the process.
 *   The default arena takes its mode from the environment variable
 *   EXECMEM_MODE ("dual", "mprotect" or "auto", the default: dual, falling
 *   back to mprotect when the kernel refuses, and mprotect from the start
 *   under a debugger or valgrind: see enum execmem_mode_reason).
 *
 * ERRORS
 *   Allocation functions return NULL and set errno:
 *     EINVAL   a bad type, size, target, reach or arena (NULL or
 *              destroyed); also when the default arena could not be set up
 *              on its first use
 *     ENOMEM   no memory for execmem's own records; no free address inside
 *              the type's range (or its fallback) and the asked reach; or
 *              the kernel refused a mapping for want of memory (also
 *              RLIMIT_AS and vm.max_map_count)
 *     EPERM, EACCES
 *              the kernel or a security policy (SELinux, seccomp, the
 *              memfd_noexec setting) refused executable memory.  In dual
 *              mode that is a chunk's memfd, its seals or its shared
 *              executable view, and reaches the caller only when the mode
 *              is forced (EXECMEM_MODE_DUAL, or EXECMEM_MODE=dual for the
 *              default arena): an automatic arena switches to mprotect
 *              mode for good instead.  In mprotect mode
 *              (forced, or after that switch) it is making a private
 *              mapping executable, and always reaches the caller.
 *     EMFILE, ENFILE
 *              no file descriptor left for a chunk's memfd: dual mode only,
 *              and only when forced (an automatic arena makes that chunk
 *              in mprotect mode and tries dual mapping again for the next)
 *     ENOSYS, EINVAL, EOPNOTSUPP, ENODEV
 *              the kernel lacks memfd_create(), its flags or sealing (or a
 *              filter hides them): as EPERM, they reach the caller only in
 *              forced dual mode
 *     other    any other error of the system calls that make a chunk
 *              (mmap, mprotect, munmap of a reservation's slack,
 *              memfd_create, ftruncate, fcntl, and sigaction for the fault
 *              guard of mprotect mode), passed through unchanged
 *   Every other function returns 0 or a negative errno value.
 *   execmem_last_error() gives a sentence explaining the last configuration
 *   or placement failure of the calling thread.
 *
 * THREADS
 *   Every function may be called from any thread at any time, except where
 *   its description says otherwise.  Work on different allocations proceeds
 *   in parallel: allocation and free use per-thread shards, copies are made
 *   outside any allocator lock.
 *
 * PUBLISHING CODE TO OTHER THREADS
 *   execmem_write() and execmem_write_end() make the instruction cache of the
 *   whole machine coherent with the bytes written.  Before another thread
 *   jumps to freshly written code it must see the code's address through a
 *   release/acquire pair (an atomic store/load, a mutex, a queue).
 *   - x86-64: nothing more is needed.
 *   - aarch64: the other thread must also execute a context synchronisation
 *     (ISB) after it acquires the address, or the writer calls
 *     execmem_sync_cores() once after a batch of writes and before
 *     publishing the batch.  Rewriting code that other threads may be
 *     running at that moment always needs execmem_sync_cores().
 *   - riscv64: the writes flush the instruction caches of all harts (the
 *     riscv_flush_icache system call); execmem_sync_cores() is needed only
 *     when rewriting code other threads may be running.
 *
 * FORK
 *   After fork() neither process can change the other's code.  In dual mode
 *   the child gives every chunk memory of its own while the parent waits
 *   (one copy of the live chunks per fork).  The copy needs no extra memory
 *   or address space: a new memfd mapped over the old views in place or,
 *   with no descriptor to be had, private memory (the chunk is then in
 *   mprotect mode).  If the child's copy cannot be confirmed (it died, or a
 *   fork handler of the program closed or replaced execmem's descriptors),
 *   the parent copies its own chunks as well.  If neither copy can be had,
 *   the chunk is detached in that process: its code keeps running, writes,
 *   invalidations and write windows on it fail with -EIO, frees succeed, and
 *   nothing new is placed in it.  execmem never closes, reads, writes or
 *   maps a descriptor whose number has come to name another file.  Code
 *   allocated before the fork keeps running in both processes.  Not
 *   covered: a write window of dual mode open across fork() (its bytes may
 *   be written while the chunk is copied, and the copy may move the memory
 *   the window's pointer shows: close windows before forking); fork() from
 *   a signal handler that interrupted an execmem call (it waits forever for
 *   that call to finish); children created with raw clone(2), which skips
 *   pthread_atfork() handlers.  fork() handlers of the program must not
 *   call execmem.
 */
#ifndef EXECMEM_H
#define EXECMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
/* execmem_stats() names its struct too: fine in C, a -Wshadow warning in C++. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#endif

#if defined(__GNUC__)
#define EXECMEM_API __attribute__((visibility("default")))
#else
#define EXECMEM_API
#endif

#define EXECMEM_VERSION_MAJOR 0
#define EXECMEM_VERSION_MINOR 1
#define EXECMEM_VERSION_PATCH 0

struct execmem_arena;

/* Size of the chunks that small allocations share (and their alignment). */
#define EXECMEM_CHUNK_SIZE ((size_t)2 << 20)

/* The largest alignment execmem_alloc_aligned() accepts. */
#define EXECMEM_ALIGN_MAX ((size_t)1 << 30)

enum execmem_type {
	EXECMEM_CODE,          /* generated code, placed anywhere the architecture allows */
	EXECMEM_CODE_NEAR,     /* code that must reach the host program's image with direct branches */
	EXECMEM_DATA,          /* read-write data within PC-relative reach of CODE_NEAR */
	EXECMEM_RODATA,        /* read-only data, filled through execmem_write() */
	EXECMEM_RO_AFTER_INIT, /* plainly writable until execmem_seal(), read-only after */
	EXECMEM_TYPE_MAX
};

enum execmem_mode {
	EXECMEM_MODE_AUTO,     /* dual, falling back to mprotect when refused */
	EXECMEM_MODE_DUAL,     /* memfd mapped twice: RX (or R) view + RW alias */
	EXECMEM_MODE_MPROTECT  /* one mapping toggled RW <-> RX for each write */
};

/* How code and rodata bytes are put in place (struct execmem_params.write). */
enum execmem_write {
	EXECMEM_WRITE_DEFAULT,  /* as the mode does it (dual mode: through the RW alias) */
	EXECMEM_WRITE_IN_PLACE  /* at the address the bytes are used from: a write
				 * window's pointer is the allocation itself */
};

/* Bits of struct execmem_range.protection (same values as PROT_*). */
#define EXECMEM_PROT_READ  0x1
#define EXECMEM_PROT_WRITE 0x2
#define EXECMEM_PROT_EXEC  0x4

/* Bits of struct execmem_range.flags. */
#define EXECMEM_RANGE_SET       0x1 /* entry is given; an unset entry inherits EXECMEM_CODE's */
#define EXECMEM_RANGE_ANYWHERE  0x2 /* no address constraint: start/end ignored */

/*
 * Where memory of one type may lie and how it is protected.  Allocations
 * lie inside [start, end), or, when that range is full, inside
 * [fallback_start, fallback_end) if the fallback is not empty.  protection is the protection of the view that
 * code runs from or data is read from; it never holds both WRITE and EXEC.
 * alignment is the minimum alignment of every allocation of the type (a
 * power of two; 0 means the arena's granularity).
 */
struct execmem_range {
	uintptr_t start, end;
	uintptr_t fallback_start, fallback_end;
	unsigned protection;
	size_t alignment;
	unsigned flags;
};

/*
 * Parameters of an arena.  Fill with execmem_params_init(), then change what
 * you need.
 *   granularity      allocation unit, a power of two from 16 to 4096 (default 64)
 *   retained_chunks  wholly free chunks kept for reuse before chunks are
 *                    returned to the system (default 8)
 *   mode             see MODES
 *   ranges           NULL for the architecture's table computed around the
 *                    image, or EXECMEM_TYPE_MAX entries; entries without
 *                    EXECMEM_RANGE_SET inherit EXECMEM_CODE's
 *   image_start/end  the image that CODE_NEAR code must reach; 0/0 means the
 *                    main program, found automatically
 *   write            EXECMEM_WRITE_DEFAULT, or EXECMEM_WRITE_IN_PLACE for
 *                    emitters that write and link code at one address, the
 *                    address it runs at (linkers that relocate into the
 *                    memory they are given, memory-manager callbacks that
 *                    return one pointer per section).  Such an arena
 *                    works in mprotect mode (mode AUTO or MPROTECT;
 *                    DUAL is refused with EINVAL, and EXECMEM_MODE, read
 *                    only for a default arena never configured, does not
 *                    apply).  Its code and rodata allocations take whole
 *                    pages, and execmem_write_begin() returns the
 *                    allocation's own address: its pages are read-write
 *                    and not executable until execmem_write_end() makes
 *                    them executable (read-only for RODATA) again and
 *                    publishes the bytes.  Its code must not run while the
 *                    window is open (another thread that runs it waits until
 *                    the window closes; the thread holding the window would
 *                    wait for good).  execmem_write() works as in mprotect
 *                    mode.
 */
struct execmem_params {
	size_t granularity;
	size_t retained_chunks;
	enum execmem_mode mode;
	const struct execmem_range *ranges;
	uintptr_t image_start, image_end;
	enum execmem_write write;
};

/* Counters of the system calls made through execmem's OS layer. */
enum execmem_os_call {
	EXECMEM_OS_MEMFD,
	EXECMEM_OS_FTRUNCATE,
	EXECMEM_OS_FCNTL,
	EXECMEM_OS_MMAP,
	EXECMEM_OS_MUNMAP,
	EXECMEM_OS_MPROTECT,
	EXECMEM_OS_MADVISE,
	EXECMEM_OS_MEMBARRIER,
	EXECMEM_OS_FLUSH_ICACHE,
	EXECMEM_OS_OTHER,      /* close, pwrite, sigaction, ... */
	EXECMEM_OS_SIGNAL,     /* signals sent to threads of the process (live patching) */
	EXECMEM_OS_THREADS,    /* listings of the process's threads (live patching) */
	EXECMEM_OS_CALL_MAX
};

/*
 * Why an arena runs in the mode it does (struct execmem_stats.mode_reason).
 * An "auto" arena starts in dual mode unless a tool that watches the
 * process needs the other: a debugger writes its software breakpoints into
 * the code's page, which dual mode maps read-only and shared, so they never
 * fire; valgrind translates code and is best served by one private mapping
 * it watches itself.  Both are looked for once, when the arena is made (a
 * debugger attached later is not seen: see docs/tools.md).
 */
enum execmem_mode_reason {
	EXECMEM_REASON_ASKED,    /* the parameters or EXECMEM_MODE forced this mode */
	EXECMEM_REASON_DEFAULT,  /* "auto", and nothing stood against dual mode */
	EXECMEM_REASON_REFUSED,  /* "auto": the kernel or a policy refused dual mapping */
	EXECMEM_REASON_DEBUGGER, /* "auto": a debugger (TracerPid) was attached at creation */
	EXECMEM_REASON_VALGRIND  /* "auto": the process runs under valgrind */
};

struct execmem_stats {
	enum execmem_mode mode;          /* mode new chunks are made in (never AUTO) */
	enum execmem_mode_reason mode_reason; /* why (see enum execmem_mode_reason) */
	/* 1 when execmem's anonymous mappings (mprotect mode, data) carry their
	 * names in /proc/PID/maps ("[anon:execmem:code]", ...), 0 when the
	 * kernel cannot name them (no CONFIG_ANON_VMA_NAME), -1 before the
	 * process made one.  memfds are always named after their type. */
	int named_mappings;
	size_t bytes_reserved;           /* bytes of chunks and large mappings (one view) */
	size_t bytes_in_use;             /* sum of execmem_usable_size() of live allocations */
	size_t live_allocations;
	size_t chunks;                   /* 2 MiB chunks, including retained ones */
	size_t retained_chunks;          /* wholly free chunks kept for reuse */
	size_t large_mappings;           /* allocations with a mapping of their own */
	size_t bytes_huge;               /* bytes the kernel confirmed are in 2 MiB pages */
	uint64_t os_calls[EXECMEM_OS_CALL_MAX]; /* process-wide, since start */
	uint64_t os_calls_total;
	size_t wx_holes;                 /* writable+executable mappings of the arena's
					  * memory found by execmem_write_end() */
};

/*
 * execmem_alloc - allocate memory of a type from the default arena.
 * Code types come filled with trap instructions, data types with zeros.
 * Returns the address (aligned to the granularity and the type's alignment),
 * or NULL with errno EINVAL (bad type, size 0 or too large), ENOMEM (no
 * memory or no address in the type's range), or an error of the OS when a
 * new chunk cannot be made (EPERM, EACCES, EMFILE, ENFILE, ENOSYS, ...:
 * see ERRORS for when each happens).
 */
EXECMEM_API void *execmem_alloc(enum execmem_type type, size_t size);

/*
 * execmem_alloc_near - like execmem_alloc(), but every byte of the result
 * lies within reach bytes of target (|byte - target| <= reach), and inside
 * the type's range (or its fallback) when the type has one.  Such
 * allocations share chunks with other allocations that lie within reach.
 * Returns NULL with errno EINVAL for a bad type or size, a NULL target or a
 * reach smaller than the size; ENOMEM when no address within reach is free
 * (or no memory); or an OS error as execmem_alloc().
 */
EXECMEM_API void *execmem_alloc_near(enum execmem_type type, size_t size,
				     const void *target, size_t reach);

/*
 * execmem_alloc_aligned - like execmem_alloc(), but the result is a
 * multiple of alignment, a power of two from 1 to EXECMEM_ALIGN_MAX (1 GiB)
 * (alignments below the granularity give what execmem_alloc() gives).
 * Allocations of up to 1 MiB with an alignment up to EXECMEM_CHUNK_SIZE are
 * packed into the shared chunks like any other: the free bytes the alignment
 * skips stay free, and the next allocations of the chunk fill them first.
 * Larger allocations, and any allocation aligned above EXECMEM_CHUNK_SIZE,
 * get a mapping of their own placed at the alignment (execmem_usable_size()
 * is then the size rounded up to the page size).  The result lies in the
 * type's range (or its fallback) as with execmem_alloc(); there is no near
 * variant: CODE_NEAR and DATA already lie within reach of the image, and an
 * alignment beyond a chunk can rarely be had within a short reach.  In dual
 * mode the writable address of a window (execmem_write_begin()) has the same
 * alignment up to EXECMEM_CHUNK_SIZE; in mprotect mode up to a page.
 * Returns NULL with errno EINVAL (an alignment of 0, not a power of two or
 * above EXECMEM_ALIGN_MAX; or as execmem_alloc()), ENOMEM (as
 * execmem_alloc(), also when no aligned address is free), or an OS error as
 * execmem_alloc().  Thread-safe, as every allocation function.
 */
EXECMEM_API void *execmem_alloc_aligned(enum execmem_type type, size_t size, size_t alignment);

/*
 * execmem_free - return an allocation of any arena.  Code memory is refilled
 * with trap instructions, data memory with zeros, before it can be reused.
 * Returns 0 (also for NULL); -EINVAL for a pointer that is not the start
 * of a live allocation (unknown, interior, already freed); -EBUSY while a
 * write window is open on it; or, in mprotect mode, the OS error that kept
 * the memory from being refilled.  The allocation is untouched and still
 * live after any error.
 */
EXECMEM_API int execmem_free(void *addr);

/*
 * execmem_write - copy len bytes from src to dst, where [dst, dst + len) lies
 * inside one live allocation, then make the instruction cache coherent.
 * The copy is made as memmove() makes it: src may overlap dst, for instance
 * lie in the same allocation to move code inside it.
 * Returns 0, -EINVAL when the range is not inside one live allocation or src
 * is NULL with len > 0 (nothing is written), -EPERM for a sealed
 * RO_AFTER_INIT allocation, -EBUSY while a write window is open on the
 * allocation (nothing is written; write through the window instead), -EIO
 * in a chunk detached after fork (see FORK), or an error of the OS layer in
 * mprotect mode.
 * Writes to distinct allocations may run concurrently; a write must not
 * race with a window being opened or closed on its allocation.
 */
EXECMEM_API int execmem_write(void *dst, const void *src, size_t len);

/*
 * execmem_invalidate - fill [dst, dst + len), inside one live allocation,
 * with trap instructions (zeros for data types).  Errors as execmem_write().
 */
EXECMEM_API int execmem_invalidate(void *dst, size_t len);

/*
 * execmem_write_begin - open a write window on the allocation that starts at
 * addr and return a writable pointer to its first byte (valid for
 * execmem_usable_size(addr) bytes) until execmem_write_end(addr).  The
 * window holds the allocation's bytes; the code written there is meant to
 * run at addr, so compute addresses (branches, PC-relative references) from
 * addr and put only the bytes through the returned pointer.  For DATA and
 * unsealed RO_AFTER_INIT memory the pointer is addr itself.  For code and
 * rodata it is the RW alias in dual mode, where bytes written show at addr
 * at once; in mprotect mode it is a copy in ordinary memory, aligned as addr
 * is up to a page, whose bytes reach addr when the window closes.  Until
 * then what addr holds is unspecified; read back through the window.  The
 * pages stay executable in both modes, so the caller may run other code of
 * the same pages (and write other allocations) while the window is open.
 * While it is open, execmem_write(), execmem_invalidate() and execmem_free()
 * of the allocation fail with -EBUSY.  In an arena with
 * EXECMEM_WRITE_IN_PLACE the pointer is addr itself for every type, and
 * the allocation's own pages are not executable until the window closes
 * (see struct execmem_params).
 * Returns NULL with errno EINVAL (not the start of a live allocation),
 * EBUSY (a window is already open on it), EPERM (sealed), ENOMEM (no memory
 * for the copy, mprotect mode), EIO (a chunk detached after fork, see FORK)
 * or an OS error.
 */
EXECMEM_API void *execmem_write_begin(void *addr);

/*
 * execmem_write_end - close the window opened on addr, whose pointer must not
 * be used any more, and publish its bytes as execmem_write() does (in
 * mprotect mode the copy is put in place the same way, then freed).
 * Before that it looks for a W+X hole: a mapping of the allocation's chunk
 * (its executable view or, in dual mode, its RW alias) that someone made
 * writable and executable with mprotect() behind execmem's back (one read
 * of /proc/self/maps; see docs/integrations.md for what execmem prevents
 * and what it can only detect).  A hole found is counted in
 * execmem_stats.wx_holes, the chunk's protections are put back (data
 * memory is left as found), and the call returns -EPERM even though the
 * bytes were published.
 * Returns 0, -EPERM for a W+X hole found, -EINVAL when no window is open on
 * addr, or an OS error in mprotect mode.  The window is closed even when an
 * error is returned (the allocation may then still hold its bytes from
 * before the window).
 */
EXECMEM_API int execmem_write_end(void *addr);

/*
 * execmem_seal - make an EXECMEM_RO_AFTER_INIT allocation read-only for good
 * (it becomes writable again only once freed and reallocated).  Sealing
 * changes page protections, so RO_AFTER_INIT allocations take whole pages.
 * Returns 0, -EINVAL for another type or a pointer that is not a live
 * allocation, -EALREADY if already sealed, or an OS error.
 */
EXECMEM_API int execmem_seal(void *addr);

/*
 * execmem_usable_size - bytes usable at addr, the start of a live
 * allocation: its size rounded up to the arena's granularity for
 * allocations of up to 1 MiB (EXECMEM_CHUNK_SIZE / 2); rounded up to the
 * page size for larger ones, which get a mapping of their own, and for
 * EXECMEM_RO_AFTER_INIT allocations of any size, which own whole pages.
 * 0 for memory execmem does not own or that is not the start of a live
 * allocation.
 */
EXECMEM_API size_t execmem_usable_size(const void *addr);

/*
 * execmem_sync_cores - make every thread of the process execute a context
 * synchronising instruction (membarrier SYNC_CORE) on architectures that
 * need it for cross-modified code (aarch64, riscv64); a no-op returning 0 on
 * x86-64.  Call it once after a batch of writes, not after each.
 * Returns 0 or -ENOSYS/-EPERM when the kernel does not offer it.
 */
EXECMEM_API int execmem_sync_cores(void);

/*
 * execmem_stats - fill *out for the default arena (OS call counts are
 * process-wide).  Returns 0 or -EINVAL for NULL.
 */
EXECMEM_API int execmem_stats(struct execmem_stats *out);

/* execmem_params_init - fill *params with the defaults. */
EXECMEM_API void execmem_params_init(struct execmem_params *params);

/*
 * execmem_configure - set the parameters of the default arena.  Only before
 * its first use.  Returns 0, -EINVAL for parameters that make no sense
 * (execmem_last_error() says which), -EBUSY after the default arena has been
 * used.
 */
EXECMEM_API int execmem_configure(const struct execmem_params *params);

/*
 * execmem_get_ranges - copy the range table in force for arena (NULL: the
 * default arena) into out[EXECMEM_TYPE_MAX].  Returns 0, or -EINVAL for a
 * NULL out, a destroyed arena or a default arena that cannot be set up.
 */
EXECMEM_API int execmem_get_ranges(struct execmem_arena *arena,
				   struct execmem_range out[EXECMEM_TYPE_MAX]);

/*
 * execmem_arena_create - make an independent allocator (NULL: defaults) and
 * return its handle.  Besides the arena's memory, which
 * execmem_arena_destroy() frees, every arena ever made costs its handle
 * (16 bytes and the C library's overhead) for the rest of the process: a
 * handle is never freed nor handed out again, so that a destroyed arena's
 * handle stays safely dead (see execmem_arena_destroy()).
 * Returns NULL with errno EINVAL (bad parameters; see execmem_last_error())
 * or ENOMEM.
 */
EXECMEM_API struct execmem_arena *execmem_arena_create(const struct execmem_params *params);

/*
 * execmem_arena_alloc - execmem_alloc() from a given arena.  Errors as
 * execmem_alloc(), and EINVAL for a NULL or destroyed arena.
 */
EXECMEM_API void *execmem_arena_alloc(struct execmem_arena *arena,
				      enum execmem_type type, size_t size);

/*
 * execmem_arena_alloc_near - execmem_alloc_near() from a given arena.
 * Errors as execmem_alloc_near(), and EINVAL for a NULL or destroyed arena.
 */
EXECMEM_API void *execmem_arena_alloc_near(struct execmem_arena *arena,
					   enum execmem_type type, size_t size,
					   const void *target, size_t reach);

/*
 * execmem_arena_alloc_aligned - execmem_alloc_aligned() from a given arena.
 * Errors as execmem_alloc_aligned(), and EINVAL for a NULL or destroyed
 * arena.
 */
EXECMEM_API void *execmem_arena_alloc_aligned(struct execmem_arena *arena,
					      enum execmem_type type, size_t size,
					      size_t alignment);

/*
 * execmem_arena_stats - execmem_stats() of a given arena.  Returns 0, or
 * -EINVAL for a NULL out or a NULL or destroyed arena.
 */
EXECMEM_API int execmem_arena_stats(struct execmem_arena *arena,
				    struct execmem_stats *out);

/*
 * execmem_arena_destroy - free all memory of the arena at once.  Its
 * allocations become invalid: until their addresses are handed out again,
 * execmem_free(), execmem_write() and the other calls on them return
 * -EINVAL (execmem_usable_size() 0).  The handle stays dead for good:
 * every later call that takes it (execmem_arena_alloc(),
 * execmem_arena_alloc_near(), execmem_arena_stats(), execmem_get_ranges(),
 * execmem_arena_destroy(), a module load with it as options.arena) fails
 * with EINVAL, and no later execmem_arena_create() returns it.
 * Returns 0, or -EINVAL for NULL or an arena already destroyed.  The
 * default arena has no handle and lives as long as the process.
 * Thread-safety: no call on this arena or on one of its allocations may be
 * under way in another thread when destroy starts, and none may start
 * before it returns (such a call may use memory being freed; execmem does
 * not detect it).  Calls that start after destroy returned fail as said
 * above.  Two destroys of the same arena may race: one returns 0, the
 * other -EINVAL.
 */
EXECMEM_API int execmem_arena_destroy(struct execmem_arena *arena);

/* ---------------------------------------------------------------- audit */

/* One line of /proc/PID/maps, with what smaps and execmem add to it. */
struct execmem_mapping {
	uintptr_t start, end;
	unsigned prot;             /* EXECMEM_PROT_* bits */
	int shared;                /* MAP_SHARED ('s'); 0 for a private mapping */
	uint64_t offset;           /* offset of start in the file */
	uint64_t dev, inode;       /* the file or memfd (dev: major << 32 | minor); 0, 0 when anonymous */
	size_t anonymous;          /* bytes of anonymous (copied-on-write) pages, smaps "Anonymous:" */
	int execmem;               /* made by execmem: by its name, or its address when auditing itself */
	int tool;                  /* memory of the tool that runs the process (valgrind's own, see below) */
	char name[256];            /* path, "/memfd:NAME (deleted)", "[anon:NAME]", "[stack]", ... or "" */
};

enum execmem_finding_kind {
	EXECMEM_FINDING_WX,            /* one mapping writable and executable at once */
	EXECMEM_FINDING_DUAL_MAPPED,   /* a page of one file (or memfd) shared writable in one
	                                  mapping and executable in another: code can be changed
	                                  behind the executable view */
	EXECMEM_FINDING_EXECMEM_ALIAS, /* the same made by execmem: a dual-mode chunk and its RW alias,
	                                  by design (the alias lies at a random address) */
	EXECMEM_FINDING_PATCHED_TEXT   /* anonymous pages inside a read + execute file mapping: its
	                                  text was made writable (mprotect) and changed, or a debugger
	                                  put breakpoints there */
};

struct execmem_finding {
	enum execmem_finding_kind kind;
	struct execmem_mapping mapping; /* the W+X, the writable, or the patched mapping */
	struct execmem_mapping other;   /* the executable mapping of a pair; zeros otherwise */
	size_t bytes;                   /* WX: the mapping's size; pairs: bytes of the file mapped
	                                   both ways; PATCHED_TEXT: its anonymous bytes */
};

/* The memory-deny-write-execute state of a process (PR_GET_MDWE). */
enum execmem_mdwe {
	EXECMEM_MDWE_UNKNOWN,          /* another process: /proc does not show it */
	EXECMEM_MDWE_UNSUPPORTED,      /* the kernel has no MDWE (PR_GET_MDWE refused) */
	EXECMEM_MDWE_OFF,
	EXECMEM_MDWE_REFUSE_EXEC_GAIN  /* no mapping may become W+X or gain execute permission */
};

struct execmem_audit_report {
	int pid;                   /* the process audited (the caller's own for pid 0) */
	size_t mappings;
	/* Findings by kind; the tool's own mappings are not counted here. */
	size_t wx, dual_mapped, execmem_aliases, patched_text;
	size_t tool_wx;            /* W+X mappings recognised as the tool's own */
	enum execmem_mdwe mdwe;
	unsigned long mdwe_flags;  /* PR_GET_MDWE's bits when known, else 0 */
};

/* Called once per finding; a non-zero return stops the audit, which returns it. */
typedef int (*execmem_audit_fn)(const struct execmem_finding *finding, void *ctx);

/*
 * execmem_audit - look for W^X hazards in process pid (0: the caller) and
 * call fn(finding, ctx) (fn may be NULL) for each, in address order:
 * mappings writable and executable at once; pairs of mappings of the same
 * file or memfd page (same device and inode, overlapping offsets) where one
 * is shared and writable and the other executable, whoever made them, told
 * apart when both are execmem's own (EXECMEM_FINDING_EXECMEM_ALIAS, by
 * design) from the others (EXECMEM_FINDING_DUAL_MAPPED); read + execute
 * file mappings holding anonymous pages (patched text).  Mappings are
 * execmem's by their names ("/memfd:execmem:TYPE", "[anon:execmem:TYPE]")
 * and, when auditing the caller, by address.  Under valgrind's memcheck,
 * auditing the caller, the W+X mappings the program cannot address are
 * valgrind's own (its translations): they are reported with tool set and
 * counted in tool_wx, not in wx.  The report (may be NULL) receives the
 * counts and the MDWE state.
 * Reads /proc/PID/maps and smaps, which need the right to read the process's memory
 * maps (the same user, or CAP_SYS_PTRACE).
 * Returns 0; the non-zero value fn returned; -EINVAL for a negative pid;
 * -ESRCH when there is no such process; -EACCES or -EPERM when its maps
 * may not be read; -ENOMEM; or another error of reading /proc.
 * Thread-safety: may be called from any thread; the other threads of an
 * audited process go on changing its mappings meanwhile, so the report is
 * a snapshot taken while it changes.
 */
EXECMEM_API int execmem_audit(int pid, execmem_audit_fn fn, void *ctx,
			      struct execmem_audit_report *report);

/* execmem_finding_kind_name - "wx", "dual-mapped", "execmem-alias",
 * "patched-text", or "unknown". */
EXECMEM_API const char *execmem_finding_kind_name(enum execmem_finding_kind kind);

/* execmem_mdwe_name - "unknown", "unsupported", "off", "refuse-exec-gain". */
EXECMEM_API const char *execmem_mdwe_name(enum execmem_mdwe mdwe);

/* execmem_mode_reason_name - "asked", "default", "refused", "debugger",
 * "valgrind", or "unknown" for a value outside the enum. */
EXECMEM_API const char *execmem_mode_reason_name(enum execmem_mode_reason reason);

/* execmem_mode_name - "dual", "mprotect" or "auto". */
EXECMEM_API const char *execmem_mode_name(enum execmem_mode mode);

/* execmem_last_error - why the calling thread's last failed call failed, or "". */
EXECMEM_API const char *execmem_last_error(void);

/*
 * NAMING CODE FOR TOOLS
 *   Names tell profilers and debuggers what the bytes of an allocation are
 *   (see docs/tools.md).  They cost nothing until the first name is set.
 */

/*
 * execmem_set_name - call the bytes [addr, addr + len), which lie inside
 * one live allocation, name (copied).  Several ranges of one allocation may
 * carry names of their own (a JIT packing functions together); a name
 * replaces every name it overlaps, and name NULL only removes them.
 * Names die with their allocation (free, arena destroy).  A name is
 * written to the perf outputs that are enabled (execmem_perf_enable()) and
 * registered with a debugger through the GDB JIT interface when that is
 * enabled (execmem_gdb_enable()).
 * Returns 0; -EINVAL when the range is empty or not inside one live
 * allocation, or name is ""; -ENOMEM.  Thread-safe.
 */
EXECMEM_API int execmem_set_name(void *addr, size_t len, const char *name);

/*
 * execmem_get_name - copy into buf (size bytes, truncated and terminated)
 * the name of the byte at addr.  Returns the name's length, -ENOENT when
 * the byte has no name, -EINVAL for a NULL buf or size 0.  Thread-safe.
 */
EXECMEM_API int execmem_get_name(const void *addr, char *buf, size_t size);

/*
 * execmem_set_unwind - describe how to unwind the frames of the code in
 * [addr, addr + len), inside one live allocation, to the process's
 * unwinder (C++ exceptions, backtrace(): execmem_unwind_register() of
 * execmem/unwind.h) and to a debugger.  eh_frame holds size bytes of call
 * frame information in .eh_frame format (CIEs and FDEs, then a 4-byte zero
 * terminator) and must stay at that address, unchanged, as long as it is
 * registered: pc-relative encodings in it are relative to where it lies,
 * and the unwinder reads it in place.  It replaces the information of any
 * range it overlaps; eh_frame NULL only removes that.  It is withdrawn
 * from both when the allocation is freed; free the eh_frame bytes only
 * after that.  Registration with the debugger does not wait for
 * execmem_gdb_enable().  A process without an unwinder to register with
 * (see execmem_unwind_register()) gives the information to the debugger
 * only.
 * Returns 0; -EINVAL when the range is empty or not inside one live
 * allocation, or the bytes are not entries ending with their terminator;
 * -EEXIST when eh_frame is registered already for other code (directly or
 * for another range); -ENOMEM.  Thread-safe.
 */
EXECMEM_API int execmem_set_unwind(void *addr, size_t len, const void *eh_frame, size_t size);

/* Flags of execmem_perf_enable(). */
#define EXECMEM_PERF_MAP     0x1 /* /tmp/perf-<pid>.map: "START SIZE name" lines */
#define EXECMEM_PERF_JITDUMP 0x2 /* jit-<pid>.dump for perf inject --jit */

/*
 * execmem_perf_enable - write exactly the perf outputs of flags from now
 * on (0 closes them all: the jitdump gets its CODE_CLOSE record).  Names set
 * before are written at once.  The jitdump lies in $JITDUMPDIR, else
 * ~/.debug/jit/ (made if missing); the file is mapped executable once, which
 * is how perf record finds it.  Without a call the environment decides at
 * the first name: EXECMEM_PERF=map, jitdump or map,jitdump.  Each name
 * costs one write() per enabled output; each rewrite of a named range
 * (execmem_write(), execmem_write_end()) one write() to the jitdump, with
 * the new bytes.  A child of fork() writes files of its own pid, starting
 * with the names it inherited.
 * Returns 0; -EINVAL for unknown flags; or the error of opening, creating
 * or mapping a file (the output is then not enabled).  Thread-safe.
 */
EXECMEM_API int execmem_perf_enable(unsigned flags);

/*
 * execmem_gdb_enable - register every named range with a debugger through
 * the GDB JIT interface (__jit_debug_register_code), in-memory ELF symbol
 * files of up to 64 names each, from now on (enable 0 unregisters them).
 * Enabled by itself at the first name when a debugger is attached
 * (TracerPid) or EXECMEM_GDB=1.  Modules are registered with their debug
 * information whatever this says.  Returns 0 (names for which no memory
 * could be had stay unknown to the debugger).  Thread-safe.
 */
EXECMEM_API int execmem_gdb_enable(int enable);

#ifdef __cplusplus
}
#pragma GCC diagnostic pop
#endif
#endif
