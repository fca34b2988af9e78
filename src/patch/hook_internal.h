/*
 * hook_internal.h - what hooks and probes share (hook.c): a trampoline near
 * the target whose relay either jumps to a replacement (execmem_hook()) or
 * runs a handler (execmem_probe(), probe.c), then the displaced
 * instructions; one table of patched targets under one lock.
 */
#ifndef EXECMEM_PATCH_HOOK_INTERNAL_H
#define EXECMEM_PATCH_HOOK_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest relay: a probe's register-saving stub. */
#define EM_RELAY_MAX 512

struct em_relay {
	/* Writes the relay that will run at at into out (EM_RELAY_MAX bytes);
	 * returns its length.  inflight is the trampoline's counter of threads
	 * between the relay's call and its return (probes' handlers). */
	size_t (*emit)(const struct em_relay *relay, uintptr_t at, atomic_long *inflight,
		       uint8_t *out);
	void *arg;      /* replacement, or probe */
	/* A probe's relay: it falls through into the displaced instructions
	 * and counts its handler calls in inflight, which freeing waits for. */
	bool is_probe;
	const char *op; /* "execmem_hook", "execmem_probe": messages */
};

/* Patches target to jump to a new trampoline built with relay; *original
 * receives the relocated instructions' address.  Errors as execmem_hook(). */
int em_hook_install(void *target, const struct em_relay *relay, void **original);

/* Restores the bytes of target, hooked (is_probe false) or probed; errors
 * as execmem_unhook().  op names the caller. */
int em_hook_remove(void *target, bool is_probe, const char *op);

#endif
