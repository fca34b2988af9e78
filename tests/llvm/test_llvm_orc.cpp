/*
 * test_llvm_orc - LLJIT on execmem::JITLinkMemoryManager, in the mode that
 * EXECMEM_MODE names: 1,000 modules of one small function each (code, a
 * writable global, a call into this program) are JITted, called, and freed
 * by removing their resource trackers, after which execmem holds nothing
 * any more; a global aligned to 4096 bytes lies at such an address; the
 * eh-frame of JIT code is registered at the code's final address while it
 * lives and gone after; no mapping was left writable and executable, and
 * execmem found none at the ends of the write windows.  Also: the small
 * code model with CODE_NEAR and with EXECMEM_CODE code (see
 * test_small_code_model()), and a manager on an arena of its own.
 */
#include <execmem/llvm.hpp>

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

using namespace llvm;
using namespace llvm::orc;

/* Modules JITted, freed and checked: a tenth under valgrind, where LLVM's
 * own work for 1,000 takes minutes. */
static int functions()
{
	return RUNNING_ON_VALGRIND ? 100 : 1000;
}

static int failures;

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				     #cond);                                                  \
			failures++;                                                       \
		}                                                                         \
	} while (0)

#define CHECK_OK(expr)                                                                    \
	do {                                                                              \
		if (Error err_ = (expr)) {                                                \
			std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,    \
				     toString(std::move(err_)).c_str());                      \
			failures++;                                                       \
		}                                                                         \
	} while (0)

extern "C" long test_host_add(long a, long b)
{
	return a + b;
}

/* The unwinder's lookup of the frame description covering pc (libgcc's). */
struct dwarf_eh_bases {
	void *tbase, *dbase, *func;
};
extern "C" const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);

#if LLVM_VERSION_MAJOR >= 15
#define PTR(pointee) "ptr"
#else
#define PTR(pointee) pointee "*"
#endif

/* f<i>(x) = x * (i + 1) + g<i>, with g<i> = i through test_host_add(). */
static std::string small_function(int i)
{
	std::string n = std::to_string(i);
	return "@g" + n + " = global i64 " + n + "\n"
	       "declare i64 @test_host_add(i64, i64)\n"
	       "define i64 @f" + n + "(i64 %x) uwtable {\n"
	       "  %m = mul i64 %x, " + std::to_string(i + 1) + "\n"
	       "  %g = load i64, " PTR("i64") " @g" + n + "\n"
	       "  %r = call i64 @test_host_add(i64 %m, i64 %g)\n"
	       "  ret i64 %r\n"
	       "}\n";
}

static const char page_aligned[] =
	"@page = global [2 x i64] [i64 5, i64 6], align 4096\n"
	"define " PTR("[2 x i64]") " @page_of() {\n"
	"  ret " PTR("[2 x i64]") " @page\n"
	"}\n";

static Error add_ir(LLJIT &jit, ResourceTrackerSP tracker, const std::string &ir)
{
	auto context = std::make_unique<LLVMContext>();
	SMDiagnostic diagnostic;
	auto module = parseIR(MemoryBufferRef(ir, "test"), diagnostic, *context);
	if (!module)
		return make_error<StringError>(diagnostic.getMessage(), inconvertibleErrorCode());
	return jit.addIRModule(std::move(tracker), ThreadSafeModule(std::move(module), std::move(context)));
}

template <typename Fn> static Fn lookup(LLJIT &jit, const std::string &name)
{
	auto symbol = jit.lookup(name);
	if (!symbol) {
		std::fprintf(stderr, "lookup %s: %s\n", name.c_str(), toString(symbol.takeError()).c_str());
		failures++;
		return nullptr;
	}
#if LLVM_VERSION_MAJOR >= 15
	return symbol->toPtr<Fn>();
#else
	return reinterpret_cast<Fn>(symbol->getAddress());
#endif
}

static struct execmem_stats stats_now()
{
	struct execmem_stats s;
	std::memset(&s, 0, sizeof s);
	CHECK(execmem_stats(&s) == 0);
	return s;
}

/* W+X mappings of this process, the tool's own (valgrind's) left out. */
static bool has_wx_mapping()
{
	struct execmem_audit_report report;
	int rc = execmem_audit(0, nullptr, nullptr, &report);
	if (rc || report.wx)
		std::fprintf(stderr, "audit: %d, %zu W+X mappings\n", rc, report.wx);
	return rc || report.wx;
}

static void test_many_small_functions(LLJIT &jit)
{
	struct execmem_stats before = stats_now();
	std::vector<ResourceTrackerSP> trackers;
	const int count = functions();
	for (int i = 0; i < count; i++) {
		trackers.push_back(jit.getMainJITDylib().createResourceTracker());
		CHECK_OK(add_ir(jit, trackers.back(), small_function(i)));
	}
	void *first = nullptr;
	int wrong = 0;
	for (int i = 0; i < count; i++) {
		auto fn = lookup<long (*)(long)>(jit, "f" + std::to_string(i));
		if (!fn)
			break;
		wrong += fn(3) != 3L * (i + 1) + i;
		if (!first)
			first = reinterpret_cast<void *>(fn);
	}
	CHECK(wrong == 0);
	struct execmem_stats live = stats_now();
	/* At least code and data of each module, packed into few chunks. */
	CHECK(live.live_allocations >= before.live_allocations + 2 * count);
	CHECK(live.chunks <= before.chunks + 16);
	struct dwarf_eh_bases bases;
	CHECK(first && _Unwind_Find_FDE(static_cast<char *>(first) + 1, &bases));
	CHECK(!has_wx_mapping());

	for (auto &tracker : trackers)
		CHECK_OK(tracker->remove());
	struct execmem_stats after = stats_now();
	CHECK(after.live_allocations == before.live_allocations);
	CHECK(after.bytes_in_use == before.bytes_in_use);
	CHECK(after.wx_holes == 0);
	CHECK(!first || !_Unwind_Find_FDE(static_cast<char *>(first) + 1, &bases));
}

/*
 * The global's bytes must be where its (aligned) address is.  A small
 * module stays live meanwhile, so that free data memory does not start at
 * a page by chance.
 */
static void test_page_aligned_global(LLJIT &jit)
{
	auto small = jit.getMainJITDylib().createResourceTracker();
	CHECK_OK(add_ir(jit, small, small_function(0)));
	CHECK(lookup<long (*)(long)>(jit, "f0"));
	auto tracker = jit.getMainJITDylib().createResourceTracker();
	CHECK_OK(add_ir(jit, tracker, page_aligned));
	auto page_of = lookup<long *(*)()>(jit, "page_of");
	if (page_of) {
		long *page = page_of();
		CHECK(reinterpret_cast<uintptr_t>(page) % 4096 == 0);
		CHECK(page[0] == 5 && page[1] == 6);
	}
	CHECK_OK(tracker->remove());
	CHECK_OK(small->remove());
}

/*
 * An LLJIT linking into memory, finding symbols of this program; or NULL.
 * LLJIT compiles for x86-64's large code model (64-bit absolute addresses)
 * unless asked for the small one (32-bit PC-relative references).
 */
static std::unique_ptr<LLJIT> make_jit(execmem::JITLinkMemoryManager &memory, bool small_code_model)
{
	auto machine = JITTargetMachineBuilder::detectHost();
	if (!machine) {
		std::fprintf(stderr, "host: %s\n", toString(machine.takeError()).c_str());
		return nullptr;
	}
	if (small_code_model)
		machine->setCodeModel(CodeModel::Small);
	auto jit = LLJITBuilder()
		.setJITTargetMachineBuilder(std::move(*machine))
		.setObjectLinkingLayerCreator([&](ExecutionSession &session, const Triple &) {
			return execmem::object_linking_layer(session, memory);
		})
		.create();
	if (!jit) {
		std::fprintf(stderr, "LLJIT: %s\n", toString(jit.takeError()).c_str());
		return nullptr;
	}
	auto process = DynamicLibrarySearchGenerator::GetForCurrentProcess(
		(*jit)->getDataLayout().getGlobalPrefix());
	if (!process) {
		std::fprintf(stderr, "process symbols: %s\n", toString(process.takeError()).c_str());
		return nullptr;
	}
	(*jit)->getMainJITDylib().addGenerator(std::move(*process));
	return std::move(*jit);
}

/*
 * The small code model: code refers to its data, GOT and eh-frame with
 * 32-bit PC-relative offsets.  With CODE_NEAR (the default) they always
 * reach.  With Options::code_type = EXECMEM_CODE, code that refers to
 * nothing else runs wherever it lies, and code that refers to its data
 * either links (both happen to lie within reach) and computes right, or
 * fails with JITLink's out-of-range error: never silently wrong.  A failed
 * link gives its memory back as well.
 */
static void test_small_code_model(execmem_type code_type)
{
	struct execmem_stats before = stats_now();
	execmem::JITLinkMemoryManager::Options options;
	options.code_type = code_type;
	execmem::JITLinkMemoryManager memory(options);
	auto jit = make_jit(memory, true);
	CHECK(jit);
	if (!jit)
		return;
	/* Link errors reach the session's reporter; the lookup fails with less. */
	std::string reported;
	jit->getExecutionSession().setErrorReporter(
		[&](Error err) { reported += toString(std::move(err)); });
	auto tracker = jit->getMainJITDylib().createResourceTracker();
	CHECK_OK(add_ir(*jit, tracker, "define i64 @pure(i64 %x) nounwind {\n"
					"  %m = mul i64 %x, 7\n"
					"  %r = add i64 %m, 1\n"
					"  ret i64 %r\n"
					"}\n"));
	auto pure = lookup<long (*)(long)>(*jit, "pure");
	CHECK(pure && pure(3) == 22);
	CHECK_OK(add_ir(*jit, tracker, small_function(5)));
	auto with_data = jit->lookup("f5");
	if (with_data) {
#if LLVM_VERSION_MAJOR >= 15
		auto f5 = with_data->toPtr<long (*)(long)>();
#else
		auto f5 = reinterpret_cast<long (*)(long)>(with_data->getAddress());
#endif
		CHECK(f5(3) == 3 * 6 + 5);
	} else {
		consumeError(with_data.takeError());
		std::printf("small code model, code type %d: %s\n", code_type, reported.c_str());
		CHECK(code_type == EXECMEM_CODE && reported.find("out of range") != std::string::npos);
	}
	CHECK_OK(tracker->remove());
	CHECK(stats_now().live_allocations == before.live_allocations);
}

/* Options::arena: the graph's memory comes from that arena, and goes back. */
static void test_own_arena(const char *mode)
{
	struct execmem_params params;
	execmem_params_init(&params);
	if (mode)
		params.mode = std::strcmp(mode, "dual") == 0 ? EXECMEM_MODE_DUAL : EXECMEM_MODE_MPROTECT;
	execmem_arena *arena = execmem_arena_create(&params);
	CHECK(arena);
	if (!arena)
		return;
	struct execmem_stats stats, default_before = stats_now();
	{
		execmem::JITLinkMemoryManager::Options options;
		options.arena = arena;
		execmem::JITLinkMemoryManager memory(options);
		auto jit = make_jit(memory, false);
		CHECK(jit);
		if (jit) {
			auto tracker = jit->getMainJITDylib().createResourceTracker();
			CHECK_OK(add_ir(*jit, tracker, small_function(7)));
			auto f7 = lookup<long (*)(long)>(*jit, "f7");
			CHECK(f7 && f7(3) == 3 * 8 + 7);
			CHECK(execmem_arena_stats(arena, &stats) == 0 && stats.live_allocations >= 2);
			CHECK(stats_now().live_allocations == default_before.live_allocations);
			CHECK_OK(tracker->remove());
		}
	}
	CHECK(execmem_arena_stats(arena, &stats) == 0 && stats.live_allocations == 0);
	CHECK(execmem_arena_destroy(arena) == 0);
}

int main()
{
	InitializeNativeTarget();
	InitializeNativeTargetAsmPrinter();
	const char *mode = std::getenv("EXECMEM_MODE");
	execmem::JITLinkMemoryManager memory;
	auto jit = make_jit(memory, false);
	if (!jit)
		return 1;
	test_many_small_functions(*jit);
	test_page_aligned_global(*jit);
	test_small_code_model(EXECMEM_CODE_NEAR);
	test_small_code_model(EXECMEM_CODE);
	test_own_arena(mode);
	if (mode)
		CHECK(std::strcmp(execmem_mode_name(stats_now().mode), mode) == 0);
	std::printf("%s: %s mode, %d failure(s)\n", failures ? "FAIL" : "ok",
		    execmem_mode_name(stats_now().mode), failures);
	return failures ? 1 : 0;
}
