/*
 * reloc.h - moving the first instructions of a function elsewhere: the
 * per-architecture relocators behind execmem_hook() (reloc_x86_64.c,
 * reloc_aarch64.c).  Pure functions of the bytes and addresses they are
 * given: they read and write only the buffers passed in.
 */
#ifndef EXECMEM_PATCH_RELOC_H
#define EXECMEM_PATCH_RELOC_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of a function the relocator may look at, and the most a relocated
 * window (displaced instructions plus the jump back) can take. */
#define EM_RELOC_MAX_WINDOW 32
#define EM_RELOC_MAX_OUT 256
/* The longest jump em_reloc_jump() emits. */
#define EM_RELOC_MAX_JUMP 16

struct em_reloc_result {
	size_t displaced; /* bytes of the target the window covers */
	size_t len;       /* bytes written to out */
};

/*
 * em_reloc_window - relocate the whole instructions covering the first need
 * bytes of the code at target (code holds a copy of avail bytes of it) so
 * that, placed at tramp, they behave as they did at target, followed by a
 * jump back to target + displaced unless the window ends in an
 * unconditional branch or return.  Writes at most cap bytes to out.
 * Returns 0, or with execmem_last_error() saying why:
 *   -ENOEXEC  the window cannot be moved: the function ends or pads with
 *             traps before need bytes, an instruction is not decodable or
 *             not relocatable, or one branches back into the window;
 *   -ERANGE   a PC-relative operand would not reach its target from tramp;
 *   -ENOSPC   cap is too small;
 *   -EINVAL   need is 0 or more than the architecture's window.
 */
int em_reloc_window(const uint8_t *code, size_t avail, uintptr_t target, size_t need,
		    uintptr_t tramp, uint8_t *out, size_t cap, struct em_reloc_result *res);

/*
 * em_reloc_jump - write to out (EM_RELOC_MAX_JUMP bytes) an unconditional
 * jump placed at from that goes to to, the shortest the architecture has
 * for that distance (x86-64: jmp rel32, else jmp [rip]; aarch64: B, else
 * ADRP+BR x16 when to is page aligned, else LDR x17 literal + BR x17);
 * it clobbers no register but x16/x17 on aarch64.  Returns its length.
 */
size_t em_reloc_jump(uintptr_t from, uintptr_t to, uint8_t *out);

/* The length of the jump em_reloc_jump() would emit from from to to. */
size_t em_reloc_jump_len(uintptr_t from, uintptr_t to);

/* em_reloc_window()'s refusal of a function that ends (or pads with traps)
 * after end bytes, before the need bytes of the jump: -ENOEXEC, and why. */
int em_reloc_too_short(uintptr_t target, size_t end, size_t need);

#endif
