/*
 * execmem/unwind.h - tell the process's unwinder about code in execmem
 * memory, so that C++ exceptions and backtrace() cross it.
 *
 * OVERVIEW
 *   The unwinder (libgcc's, which C++ exceptions, backtrace() and
 *   pthread_cancel() use) finds the unwind tables of the program and its
 *   shared libraries by itself, but knows nothing of code generated or
 *   loaded at run time.  A JIT or loader that writes an .eh_frame table for
 *   its code (the module loader does for every module) registers it here
 *   once the table holds final addresses, and unregisters it before the
 *   code and the table go away.
 *
 * THREADS
 *   Both functions may be called from any thread.  A table must not be
 *   unregistered while another thread may be unwinding through its code.
 */
#ifndef EXECMEM_UNWIND_H
#define EXECMEM_UNWIND_H

#include <stddef.h>
#include "execmem.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * execmem_unwind_register - make the unwinder use the table eh_frame.
 *   eh_frame  an .eh_frame table of len bytes: CIEs and FDEs whose
 *             addresses are final, ending with a zero-length terminator
 *             (4 zero bytes), as linkers write it.  It must stay mapped and
 *             unchanged until execmem_unwind_unregister().
 * Returns 0, or
 *   -EINVAL   NULL eh_frame, or len bytes that are not entries ending with
 *             their terminator
 *   -EEXIST   eh_frame is registered already
 *   -ENOTSUP  the process has no unwinder to register tables with (libgcc's
 *             __register_frame() is neither linked in nor loaded: a C
 *             program that does not use libgcc_s)
 *   -ENOMEM   out of memory
 * Thread-safety: safe.
 */
EXECMEM_API int execmem_unwind_register(const void *eh_frame, size_t len);

/*
 * execmem_unwind_unregister - forget the table eh_frame registered with
 * execmem_unwind_register().
 * Returns 0, -EINVAL for NULL, or -ENOENT when eh_frame is not registered.
 * Thread-safety: safe.
 */
EXECMEM_API int execmem_unwind_unregister(const void *eh_frame);

#ifdef __cplusplus
}
#endif
#endif
