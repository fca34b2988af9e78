// execmem/asmjit.hpp - an asmjit runtime whose code lives in execmem memory.
//
// execmem::AsmjitRuntime is an asmjit::JitRuntime: code written for
// JitRuntime (Assembler + CodeHolder + rt.add(&fn, &code), rt.release(fn))
// runs unchanged.  add() relocates the code to its final, executable
// address (so absolute addresses of labels, embedLabel() and address
// tables point where the code runs, in dual mode as well, never at the
// RW alias), then copies it in with execmem_write(), which publishes it.
// With EXECMEM_CODE_NEAR the code lies within direct-branch reach of the
// host program, so asmjit calls host functions with direct calls instead
// of going through an address table.
//
// Header-only; needs asmjit's headers and library (the 2022 interface,
// asmjit::JitRuntime::_add/_release) and execmem.
//
// Thread-safety: add() and release() may be called from any thread at any
// time, as execmem's functions (asmjit's CodeHolder itself is not shared
// between threads).
#ifndef EXECMEM_ASMJIT_HPP
#define EXECMEM_ASMJIT_HPP

#include <asmjit/core.h>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "execmem.h"

namespace execmem {

class AsmjitRuntime : public asmjit::JitRuntime {
public:
	// Code goes to `arena` (nullptr: the default arena) with `type`
	// (EXECMEM_CODE, or EXECMEM_CODE_NEAR for code calling the host).
	explicit AsmjitRuntime(execmem_arena *arena = nullptr,
			       execmem_type type = EXECMEM_CODE) noexcept
		: _arena(arena), _type(type) {}

	execmem_arena *arena() const noexcept { return _arena; }
	execmem_type type() const noexcept { return _type; }

	// Places the code of `code` in execmem memory and stores its address
	// in *dst.  Returns kErrorOk; kErrorNoCodeGenerated for empty code;
	// kErrorOutOfMemory or kErrorInvalidArgument when execmem refuses the
	// allocation (errno says why); kErrorInvalidState when the write
	// fails; or asmjit's error of flattening, linking or relocating.
	asmjit::Error _add(void **dst, asmjit::CodeHolder *code) noexcept override
	{
		*dst = nullptr;
		ASMJIT_PROPAGATE(code->flatten());
		ASMJIT_PROPAGATE(code->resolveUnresolvedLinks());
		size_t estimated = code->codeSize();
		if (estimated == 0)
			return asmjit::DebugUtils::errored(asmjit::kErrorNoCodeGenerated);
		void *exec = allocate(estimated, alignment_of(*code));
		if (!exec)
			return asmjit::DebugUtils::errored(errno == ENOMEM ? asmjit::kErrorOutOfMemory
									    : asmjit::kErrorInvalidArgument);
		// The final address, never a writable one: what the code embeds
		// must point where it runs.
		asmjit::Error err = code->relocateToBase(reinterpret_cast<uintptr_t>(exec));
		if (!err)
			err = copy_in(exec, *code);
		if (err) {
			execmem_free(exec);
			return err;
		}
		*dst = exec;
		return asmjit::kErrorOk;
	}

	// Frees code added by add().  kErrorInvalidArgument for anything else.
	asmjit::Error _release(void *p) noexcept override
	{
		return execmem_free(p) == 0 ? asmjit::kErrorOk
					    : asmjit::DebugUtils::errored(asmjit::kErrorInvalidArgument);
	}

private:
	static size_t alignment_of(const asmjit::CodeHolder &code) noexcept
	{
		size_t align = 1;
		for (const asmjit::Section *section : code.sections())
			if (section->alignment() > align)
				align = section->alignment();
		return align;
	}

	void *allocate(size_t size, size_t align) noexcept
	{
		return _arena ? execmem_arena_alloc_aligned(_arena, _type, size, align)
			      : execmem_alloc_aligned(_type, size, align);
	}

	// The flattened sections, gaps and bss zeroed, through one write.
	static asmjit::Error copy_in(void *exec, const asmjit::CodeHolder &code) noexcept
	{
		size_t size = code.codeSize();
		uint8_t small[4096];
		uint8_t *image = size <= sizeof small ? small : static_cast<uint8_t *>(std::malloc(size));
		if (!image)
			return asmjit::DebugUtils::errored(asmjit::kErrorOutOfMemory);
		std::memset(image, 0, size);
		for (const asmjit::Section *section : code.sections())
			std::memcpy(image + section->offset(), section->data(), section->bufferSize());
		int rc = execmem_write(exec, image, size);
		if (image != small)
			std::free(image);
		return rc == 0 ? asmjit::kErrorOk : asmjit::DebugUtils::errored(asmjit::kErrorInvalidState);
	}

	execmem_arena *_arena;
	execmem_type _type;
};

} // namespace execmem

#endif
