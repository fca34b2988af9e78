/*
 * jit_unwind.h - x86-64 code without a frame pointer that calls the
 * function in %rdi from a 0x28-byte frame, and the call frame information
 * that lets unwinders step over that frame (without it they take the word
 * at the stack pointer for the return address, which it is not).
 */
#ifndef JIT_UNWIND_H
#define JIT_UNWIND_H

#include <stdint.h>
#include <string.h>

/* sub $0x28,%rsp; call *%rdi; add $0x28,%rsp; ret */
static const uint8_t framed_call[] = { 0x48, 0x83, 0xec, 0x28, 0xff, 0xd7,
				       0x48, 0x83, 0xc4, 0x28, 0xc3 };

enum { FRAMED_CALL_EH_FRAME_SIZE = 60 };

/* One CIE, one FDE for framed_call at code, the terminator.  Addresses are
 * absolute: JIT code and the heap may lie too far apart for the 32-bit
 * pc-relative form compilers use. */
static inline void framed_call_eh_frame(uint8_t eh[FRAMED_CALL_EH_FRAME_SIZE], const void *code)
{
	static const uint8_t cie[24] = {
		20, 0, 0, 0, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 16, 1,
		0x00,        /* DW_EH_PE_absptr */
		0x0c, 7, 8,  /* DW_CFA_def_cfa rsp+8 */
		0x90, 1,     /* DW_CFA_offset rip at cfa-8 */
		0, 0,
	};
	static const uint8_t fde_tail[8] = {
		0,                /* no augmentation data */
		0x44, 0x0e, 0x30, /* 4 bytes in, after the sub: cfa rsp+0x30 */
		0x46, 0x0e, 0x08, /* 6 bytes on, after the add: cfa rsp+8 */
		0,
	};
	uint32_t fde_len = 28, cie_pointer = 28;
	uint64_t pc_begin = (uintptr_t)code, range = sizeof framed_call;
	memcpy(eh, cie, sizeof cie);
	memcpy(eh + 24, &fde_len, 4);
	memcpy(eh + 28, &cie_pointer, 4);
	memcpy(eh + 32, &pc_begin, 8);
	memcpy(eh + 40, &range, 8);
	memcpy(eh + 48, fde_tail, sizeof fde_tail);
	memset(eh + 56, 0, 4);
}

#endif
