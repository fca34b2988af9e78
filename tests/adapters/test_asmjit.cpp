// test_asmjit - asmjit's own usage pattern (Assembler + CodeHolder +
// rt.add(), rt.release()) on execmem::AsmjitRuntime, in dual and mprotect
// mode: 1,000 functions, among them one that jumps through an absolute
// address embedded with embedLabel() and one that calls a host function.
#include <execmem/asmjit.hpp>
#include <asmjit/x86.h>

#include <cstdio>

using namespace asmjit;

static int failed;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			failed++;                                                    \
			std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                    \
	} while (0)

typedef int (*Fn)(void);

extern "C" int host_triple(int x)
{
	return 3 * x;
}

// `return value;`, as any asmjit user writes it.
static Fn add_constant(JitRuntime &rt, int value)
{
	CodeHolder code;
	code.init(rt.environment());
	x86::Assembler a(&code);
	a.mov(x86::eax, value);
	a.ret();
	Fn fn = nullptr;
	return rt.add(&fn, &code) == kErrorOk ? fn : nullptr;
}

// Jumps to its second half through an absolute address in a data section:
// it runs only if that address is where the code runs.
static Fn add_embedded_jump(JitRuntime &rt, int value)
{
	CodeHolder code;
	code.init(rt.environment());
	Section *data = nullptr;
	code.newSection(&data, ".data", SIZE_MAX, SectionFlags::kNone, 8);
	x86::Assembler a(&code);
	Label target = a.newLabel(), slot = a.newLabel();
	a.mov(x86::rax, x86::ptr(slot));
	a.jmp(x86::rax);
	a.int3();
	a.bind(target);
	a.mov(x86::eax, value);
	a.ret();
	a.section(data);
	a.bind(slot);
	a.embedLabel(target);
	Fn fn = nullptr;
	return rt.add(&fn, &code) == kErrorOk ? fn : nullptr;
}

// Calls host_triple(value); *direct tells whether the call is direct.
static Fn add_host_call(JitRuntime &rt, int value, bool *direct)
{
	CodeHolder code;
	code.init(rt.environment());
	x86::Assembler a(&code);
	a.sub(x86::rsp, 8);
	a.mov(x86::edi, value);
	size_t call_at = a.offset();
	a.call(imm(reinterpret_cast<void *>(host_triple)));
	a.add(x86::rsp, 8);
	a.ret();
	Fn fn = nullptr;
	if (rt.add(&fn, &code) != kErrorOk)
		return nullptr;
	// asmjit emits an indirect call through its address table, FF 15, and
	// turns it into a direct one, E8 rel32 (after a REX prefix), when
	// the host lies within reach of the final address.
	const uint8_t *at = reinterpret_cast<const uint8_t *>(fn) + call_at;
	*direct = at[0] == 0xE8 || (at[0] == 0x40 && at[1] == 0xE8);
	return fn;
}

static void many_functions(execmem_mode mode)
{
	enum { N = 1000 };
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = mode;
	execmem_arena *arena = execmem_arena_create(&params);
	CHECK(arena != nullptr);
	execmem::AsmjitRuntime rt(arena);
	static Fn fns[N];
	for (int i = 0; i < N; i++)
		fns[i] = i == 500 ? add_embedded_jump(rt, i * 7) : add_constant(rt, i * 7);
	int wrong = 0;
	for (int i = 0; i < N; i++)
		wrong += !fns[i] || fns[i]() != i * 7;
	CHECK(wrong == 0);
	struct execmem_stats st;
	execmem_arena_stats(arena, &st);
	CHECK(st.mode == mode);
	CHECK(st.live_allocations == N);
	CHECK(st.chunks == 1); // packed: 1,000 small functions share one chunk
	for (int i = 0; i < N; i++)
		CHECK(rt.release(fns[i]) == kErrorOk);
	CHECK(rt.release(fns[0]) == kErrorInvalidArgument);
	execmem_arena_stats(arena, &st);
	CHECK(st.live_allocations == 0);

	execmem::AsmjitRuntime near_rt(arena, EXECMEM_CODE_NEAR);
	bool direct = false;
	Fn call = add_host_call(near_rt, 14, &direct);
	CHECK(call && call() == 42);
	CHECK(direct);
	CHECK(!call || near_rt.release(call) == kErrorOk);
	CHECK(execmem_arena_destroy(arena) == 0);
}

int main()
{
	many_functions(EXECMEM_MODE_DUAL);
	many_functions(EXECMEM_MODE_MPROTECT);
	// The default arena, as `AsmjitRuntime rt;` gives it.
	execmem::AsmjitRuntime rt;
	Fn fn = add_constant(rt, 5);
	CHECK(fn && fn() == 5 && rt.release(fn) == kErrorOk);
	std::printf("test_asmjit: %s\n", failed ? "FAILED" : "passed");
	return failed != 0;
}
