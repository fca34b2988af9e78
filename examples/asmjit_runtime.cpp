// asmjit_runtime - asmjit code on execmem: the usual JitRuntime pattern,
// with execmem::AsmjitRuntime in place of asmjit::JitRuntime.  The
// function calls a host function (a direct call: the runtime places code
// near the program) and reads a table through an absolute address that
// embedLabel() put in its data section (the final address, in both modes).
#include <execmem/asmjit.hpp>
#include <asmjit/x86.h>

#include <cstdio>

using namespace asmjit;

extern "C" int host_square(int x)
{
	return x * x;
}

int main()
{
	execmem::AsmjitRuntime rt(nullptr, EXECMEM_CODE_NEAR);

	CodeHolder code;
	code.init(rt.environment());
	Section *data = nullptr;
	code.newSection(&data, ".data", SIZE_MAX, SectionFlags::kNone, 8);
	x86::Assembler a(&code);
	Label table = a.newLabel(), table_address = a.newLabel();
	// return host_square(table[0]) + table[1];
	a.push(x86::rbx);
	a.mov(x86::rbx, x86::ptr(table_address)); // the absolute address of table
	a.mov(x86::edi, x86::dword_ptr(x86::rbx));
	a.call(imm(reinterpret_cast<void *>(host_square)));
	a.add(x86::eax, x86::dword_ptr(x86::rbx, 4));
	a.pop(x86::rbx);
	a.ret();
	a.section(data);
	a.bind(table);
	a.embedInt32(6);
	a.embedInt32(-1);
	a.bind(table_address);
	a.embedLabel(table);

	int (*fn)(void) = nullptr;
	Error err = rt.add(&fn, &code);
	if (err) {
		std::fprintf(stderr, "rt.add: %s\n", DebugUtils::errorAsString(err));
		return 1;
	}
	int answer = fn();
	std::printf("asmjit function at %p returned %d\n", reinterpret_cast<void *>(fn), answer);
	return rt.release(fn) == kErrorOk && answer == 35 ? 0 : 1;
}
