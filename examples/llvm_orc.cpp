/*
 * llvm_orc - LLVM's LLJIT linking into execmem memory through
 * execmem::JITLinkMemoryManager: JIT a function that calls printf and a
 * function of this program, call it, and free the code again.
 *
 * The program exports its symbols (-rdynamic) so that the JIT code finds
 * host_scale() the way it finds printf: by the process's symbol table.
 */
#include <execmem/llvm.hpp>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>

#include <cstdio>

using namespace llvm;
using namespace llvm::orc;

extern "C" long host_scale(long x)
{
	return x * 10;
}

/* LLVM 15 made pointers opaque: "ptr" where LLVM 14 names the pointee. */
#if LLVM_VERSION_MAJOR >= 15
#define PTR(pointee) "ptr"
#else
#define PTR(pointee) pointee "*"
#endif

static const char program[] =
	"@fmt = private constant [33 x i8] c\"JIT code: host_scale(%ld) = %ld\\0A\\00\"\n"
	"declare i32 @printf(" PTR("i8") ", ...)\n"
	"declare i64 @host_scale(i64)\n"
	"define i64 @jit_main(i64 %x) uwtable {\n"
	"  %y = call i64 @host_scale(i64 %x)\n"
	"  %f = getelementptr inbounds [33 x i8], " PTR("[33 x i8]") " @fmt, i64 0, i64 0\n"
	"  call i32 (" PTR("i8") ", ...) @printf(" PTR("i8") " %f, i64 %x, i64 %y)\n"
	"  ret i64 %y\n"
	"}\n";

static Error run(execmem::JITLinkMemoryManager &memory)
{
	auto jit = LLJITBuilder()
		.setObjectLinkingLayerCreator([&](ExecutionSession &session, const Triple &) {
			return execmem::object_linking_layer(session, memory);
		})
		.create();
	if (!jit)
		return jit.takeError();
	auto process = DynamicLibrarySearchGenerator::GetForCurrentProcess(
		(*jit)->getDataLayout().getGlobalPrefix());
	if (!process)
		return process.takeError();
	(*jit)->getMainJITDylib().addGenerator(std::move(*process));

	auto context = std::make_unique<LLVMContext>();
	SMDiagnostic diagnostic;
	auto module = parseIR(MemoryBufferRef(program, "program"), diagnostic, *context);
	if (!module)
		return make_error<StringError>(diagnostic.getMessage(), inconvertibleErrorCode());
	auto tracker = (*jit)->getMainJITDylib().createResourceTracker();
	if (Error err = (*jit)->addIRModule(tracker, ThreadSafeModule(std::move(module), std::move(context))))
		return err;

	auto symbol = (*jit)->lookup("jit_main");
	if (!symbol)
		return symbol.takeError();
#if LLVM_VERSION_MAJOR >= 15
	auto jit_main = symbol->toPtr<long (*)(long)>();
#else
	auto jit_main = reinterpret_cast<long (*)(long)>(symbol->getAddress());
#endif
	long result = jit_main(4);
	std::printf("jit_main at %p returned %ld\n", reinterpret_cast<void *>(jit_main), result);
	if (result != 40)
		return make_error<StringError>("wrong result", inconvertibleErrorCode());
	/* Removing the tracker frees the module's code and data. */
	return tracker->remove();
}

int main()
{
	InitializeNativeTarget();
	InitializeNativeTargetAsmPrinter();
	execmem::JITLinkMemoryManager memory;
	if (Error err = run(memory)) {
		logAllUnhandledErrors(std::move(err), errs(), "llvm_orc: ");
		return 1;
	}
	struct execmem_stats stats;
	execmem_stats(&stats);
	std::printf("%s mode, %zu execmem allocations left\n", execmem_mode_name(stats.mode),
		    stats.live_allocations);
	return stats.live_allocations == 0 ? 0 : 1;
}
