/*
 * trace_thunk.h - the entry/exit thunks of `execmem trace`: JIT code that
 * stands in for a function, counts its calls and the time they take, and
 * runs the function itself through a pointer slot.
 *
 * A thunk is made for one function and one struct trace_counters.  Called
 * in place of the function, it reads a tick counter, calls
 * counters->original with every argument register untouched (integer,
 * vector, the varargs count in al on x86-64, the indirect result register
 * x8 on aarch64) and the first TRACE_STACK_ARG_BYTES of the caller's stack
 * arguments copied, then adds 1 to calls and the ticks it took to ticks
 * with atomic additions (no lock), and returns whatever the function
 * returned (integer, vector and x87 return registers untouched).  Each call
 * keeps its entry time in its own stack frame, so recursion and threads
 * are counted right; the time of a call includes the calls it makes.
 */
#ifndef EXECMEM_TOOLS_TRACE_THUNK_H
#define EXECMEM_TOOLS_TRACE_THUNK_H

#include <stdint.h>

/* Stack-passed arguments beyond this many bytes are not seen by the function. */
#define TRACE_STACK_ARG_BYTES 128

/* One traced function; the thunk reads and adds to it through its address. */
struct trace_counters {
	void *original;  /* what the thunk calls: the traced function's own code */
	uint64_t calls;  /* completed calls; read with __atomic_load_n */
	uint64_t ticks;  /* their total time in trace_ticks() units */
} __attribute__((aligned(64)));  /* a cache line per function: threads of different functions do not share it */

/*
 * trace_thunk_create - JIT a thunk for counters, placed within a rel32 jump
 * of near when near is not NULL and execmem has room there (anywhere
 * otherwise).  counters must outlive the thunk; counters->original may be
 * set before or after, but before the thunk is first called.
 * Returns the thunk's entry, or NULL with errno ENOTSUP (an architecture
 * without a thunk generator: x86-64 and aarch64 have one) or the error of
 * execmem_alloc() / execmem_write().  Thread-safe.
 */
void *trace_thunk_create(struct trace_counters *counters, const void *near);

/* Free a thunk no thread can be running any more; 0 or execmem_free()'s error. */
int trace_thunk_destroy(void *thunk);

/* The tick counter the thunks read (TSC on x86-64, the virtual counter on aarch64). */
uint64_t trace_ticks(void);

/*
 * Converting ticks to nanoseconds: trace_clock_start() notes the tick
 * counter and CLOCK_MONOTONIC together; trace_clock_ns_per_tick() compares
 * them again (waiting until at least 2 ms separate the two readings, for a
 * precise ratio) on x86-64, and reads the counter's frequency register on
 * aarch64.
 */
struct trace_clock {
	uint64_t ticks, ns;
};
void trace_clock_start(struct trace_clock *clock);
double trace_clock_ns_per_tick(const struct trace_clock *since);

#endif
