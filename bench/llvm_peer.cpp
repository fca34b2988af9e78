// llvm_peer.cpp - the LLVM pair of `execmem bench`: ORC's LLJIT linking
// with JITLink into memory of its own in-process memory manager (one
// page-aligned mapping per link graph, its pages' protections changed at
// finalization), against the same JIT linking into execmem through
// execmem::JITLinkMemoryManager.  Only the memory manager differs.
//
// One repetition JITs N functions, each in a module with a resource tracker
// of its own (what a JIT that compiles a function at a time does): add the
// module, look the function up (which compiles and links it), call it.
// Then the Pss of the mappings that hold the functions is read, and the
// trackers are removed (not timed).  Nothing is printed on stdout.
#include <execmem/llvm.hpp>

#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/IRReader/IRReader.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "bench_llvm.h"
extern "C" {
#include "procfs.h"
}

using namespace llvm;
using namespace llvm::orc;

namespace {

struct Sample {
	double ms, kib;
};

double now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

std::string function_ir(int i)
{
	std::string n = std::to_string(i);
	return "define i64 @f" + n + "(i64 %x) nounwind {\n"
	       "  %m = mul i64 %x, " + std::to_string(i + 1) + "\n"
	       "  %r = add i64 %m, " + n + "\n"
	       "  ret i64 %r\n"
	       "}\n";
}

// memory == nullptr: the session's own (ORC's default in-process) manager.
Expected<std::unique_ptr<LLJIT>> make_jit(jitlink::JITLinkMemoryManager *memory)
{
	return LLJITBuilder()
		.setObjectLinkingLayerCreator([memory](ExecutionSession &session, const Triple &)
						      -> Expected<std::unique_ptr<ObjectLayer>> {
			if (memory)
				return std::make_unique<ObjectLinkingLayer>(session, *memory);
			return std::make_unique<ObjectLinkingLayer>(session);
		})
		.create();
}

Error add_function(LLJIT &jit, ResourceTrackerSP tracker, int i)
{
	auto context = std::make_unique<LLVMContext>();
	SMDiagnostic diagnostic;
	std::string ir = function_ir(i);
	auto module = parseIR(MemoryBufferRef(ir, "bench"), diagnostic, *context);
	if (!module)
		return make_error<StringError>(diagnostic.getMessage(), inconvertibleErrorCode());
	return jit.addIRModule(std::move(tracker), ThreadSafeModule(std::move(module), std::move(context)));
}

Expected<uintptr_t> lookup(LLJIT &jit, int i)
{
	auto symbol = jit.lookup("f" + std::to_string(i));
	if (!symbol)
		return symbol.takeError();
#if LLVM_VERSION_MAJOR >= 15
	return symbol->getValue();
#else
	return symbol->getAddress();
#endif
}

Error repetition(jitlink::JITLinkMemoryManager *memory, int functions, Sample &sample,
		 llvm_peer_result &out)
{
	auto jit = make_jit(memory);
	if (!jit)
		return jit.takeError();
	std::vector<ResourceTrackerSP> trackers;
	std::vector<uintptr_t> addresses;
	double t0 = now_ms();
	for (int i = 0; i < functions; i++) {
		trackers.push_back((*jit)->getMainJITDylib().createResourceTracker());
		if (Error err = add_function(**jit, trackers.back(), i))
			return err;
		auto address = lookup(**jit, i);
		if (!address)
			return address.takeError();
		out.wrong_results += reinterpret_cast<long (*)(long)>(*address)(3) != 3L * (i + 1) + i;
		addresses.push_back(*address);
	}
	sample.ms = now_ms() - t0;
	std::sort(addresses.begin(), addresses.end());
	size_t pss = 0;
	if (int err = procfs_pss_of(addresses.data(), addresses.size(), &pss))
		return errorCodeToError(std::error_code(-err, std::generic_category()));
	sample.kib = pss / 1024.0;
	out.wx_mappings = std::max(out.wx_mappings, procfs_count_wx(nullptr, 0));
	for (auto &tracker : trackers)
		if (Error err = tracker->remove())
			return err;
	return Error::success();
}

llvm_figure summarise(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return { median, v.front(), v.back() };
}

} // namespace

extern "C" int bench_llvm(int functions, int repeats, struct llvm_peer_result out[LLVM_PEERS], char *why,
			  size_t whylen)
{
	if (functions < 1 || repeats < 1 || !out || !why || !whylen)
		return -EINVAL;
	why[0] = '\0';
	InitializeNativeTarget();
	InitializeNativeTargetAsmPrinter();
	execmem::JITLinkMemoryManager execmem_memory;
	jitlink::JITLinkMemoryManager *memories[LLVM_PEERS] = { nullptr, &execmem_memory };
	struct execmem_stats stats;
	execmem_stats(&stats);
	out[0] = llvm_peer_result{ "orc-default", {}, {}, {}, 0, 0 };
	out[1] = llvm_peer_result{ "orc-execmem", {}, {}, {}, 0, 0 };
	std::snprintf(out[0].config, sizeof(out[0].config),
		      "LLVM %s LLJIT + JITLink, jitlink::InProcessMemoryManager (mapping per graph, "
		      "mprotect at finalize)", LLVM_VERSION_STRING);
	std::snprintf(out[1].config, sizeof(out[1].config),
		      "LLVM %s LLJIT + JITLink, execmem::JITLinkMemoryManager (%s mode, code CODE_NEAR)",
		      LLVM_VERSION_STRING, execmem_mode_name(stats.mode));

	std::vector<double> ms[LLVM_PEERS], kib[LLVM_PEERS];
	for (int r = -1; r < repeats; r++) {
		for (int p = 0; p < LLVM_PEERS; p++) {
			Sample sample{};
			// The warm-up (r == -1) is a tenth of the size and not counted.
			int count = r < 0 ? std::max(1, functions / 10) : functions;
			if (Error err = repetition(memories[p], count, sample, out[p])) {
				std::snprintf(why, whylen, "%s: %s", out[p].name, toString(std::move(err)).c_str());
				return -EIO;
			}
			if (r >= 0) {
				ms[p].push_back(sample.ms);
				kib[p].push_back(sample.kib);
			}
		}
	}
	for (int p = 0; p < LLVM_PEERS; p++) {
		out[p].jit_ms = summarise(ms[p]);
		out[p].code_kib = summarise(kib[p]);
	}
	return 0;
}
