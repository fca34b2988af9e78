/*
 * execmem/llvm.hpp - execmem as the memory of LLVM's JITLink, for ORC
 * (LLJIT, ObjectLinkingLayer).  Header only; link the program with execmem
 * and LLVM (built and tested against LLVM 14; the interface changes of
 * later versions known to it, where the memory flags moved and were
 * renamed, are followed by #if on LLVM_VERSION_MAJOR, untested).
 *
 *   execmem::JITLinkMemoryManager memory;
 *   auto jit = llvm::orc::LLJITBuilder()
 *       .setObjectLinkingLayerCreator([&](llvm::orc::ExecutionSession &es, const llvm::Triple &) {
 *           return execmem::object_linking_layer(es, memory);
 *       }).create();
 *
 * (execmem::object_linking_layer() is an ObjectLinkingLayer on the manager
 * that also registers eh-frames; examples/llvm_orc.cpp is the whole program.)
 *
 * Each segment of a link graph gets an allocation of its own, typed by its
 * protection: executable segments EXECMEM_CODE_NEAR (Options::code_type),
 * read-only ones EXECMEM_RODATA, writable ones EXECMEM_DATA; each is aligned
 * as its most aligned block asks (execmem_alloc_aligned()).  JITLink
 * computes every address from the segment's final address (where the code
 * runs) and puts the bytes through a write window on it (execmem_write_begin():
 * the writable alias in dual mode, a copy in mprotect mode), so the graph is
 * never writable and executable at once.  finalize() closes the windows,
 * which publishes the bytes, then runs the graph's finalize actions (what
 * ORC's platforms and plugins ask to run in the JIT's process once the
 * memory is in place, such as registering eh-frames) and frees the
 * segments that live only until then; deallocate() runs the dealloc
 * actions and frees the rest.
 *
 * Reach: LLJIT compiles x86-64 code for the large code model unless told
 * otherwise (64-bit absolute addresses, which reach anywhere).  Code of the
 * small code model (JITTargetMachineBuilder::setCodeModel(CodeModel::Small):
 * shorter code, direct calls) refers to its rodata, GOT, data and eh-frame
 * with 32-bit PC-relative offsets.  CODE_NEAR, RODATA and DATA lie in one
 * window of that reach around the program's image, so those references and
 * calls into the program always fit.  With code_type EXECMEM_CODE the code
 * may lie anywhere, and JITLink then fails such a link with an "out of
 * range" error (given to the session's error reporter).
 *
 * Thread-safety: allocate(), finalize() and deallocate() may run in any
 * threads at once (the manager holds no state of its own besides its
 * options).  Errors reach JITLink as llvm::Error with the errno value as
 * error code (an allocation's with execmem_last_error()'s explanation).
 */
#ifndef EXECMEM_LLVM_HPP
#define EXECMEM_LLVM_HPP

/* C++ sees execmem_stats() as hiding the struct's implicit constructor. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include <execmem.h>
#pragma GCC diagnostic pop

#include <llvm/Config/llvm-config.h>
#include <llvm/ExecutionEngine/JITLink/EHFrameSupport.h>
#include <llvm/ExecutionEngine/JITLink/JITLink.h>
#include <llvm/ExecutionEngine/JITLink/JITLinkMemoryManager.h>
#include <llvm/ExecutionEngine/Orc/ObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/Orc/Shared/AllocationActions.h>
#include <llvm/Support/Error.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace execmem {

class JITLinkMemoryManager final : public llvm::jitlink::JITLinkMemoryManager {
public:
	struct Options {
		execmem_arena *arena = nullptr;             /* nullptr: the default arena */
		execmem_type code_type = EXECMEM_CODE_NEAR; /* or EXECMEM_CODE */
	};

	JITLinkMemoryManager() = default;
	explicit JITLinkMemoryManager(Options options) : options_(options) {}

	void allocate(const llvm::jitlink::JITLinkDylib *, llvm::jitlink::LinkGraph &graph,
		      OnAllocatedFunction on_allocated) override
	{
		auto in_flight = std::make_unique<InFlight>(graph);
		llvm::jitlink::BasicLayout layout(graph);
		for (auto &group_and_segment : layout.segments()) {
			if (llvm::Error err = place(group_and_segment.first, group_and_segment.second,
						    *in_flight)) {
				on_allocated(std::move(err));
				return;
			}
		}
		if (llvm::Error err = layout.apply()) {
			on_allocated(std::move(err));
			return;
		}
		on_allocated(std::unique_ptr<llvm::jitlink::JITLinkMemoryManager::InFlightAlloc>(
			std::move(in_flight)));
	}
	using llvm::jitlink::JITLinkMemoryManager::allocate;

	void deallocate(std::vector<FinalizedAlloc> allocs, OnDeallocatedFunction on_deallocated) override
	{
		llvm::Error all = llvm::Error::success();
		for (auto &alloc : allocs) {
			std::unique_ptr<Finalized> done(alloc.release().toPtr<Finalized *>());
			all = llvm::joinErrors(std::move(all),
					       llvm::orc::shared::runDeallocActions(done->dealloc_actions));
			all = llvm::joinErrors(std::move(all), free_all(done->memory));
		}
		on_deallocated(std::move(all));
	}
	using llvm::jitlink::JITLinkMemoryManager::deallocate;

private:
#if LLVM_VERSION_MAJOR >= 16
	using MemProt = llvm::orc::MemProt;
	using AllocGroup = llvm::orc::AllocGroup;
#else
	using MemProt = llvm::jitlink::MemProt;
	using AllocGroup = llvm::jitlink::AllocGroup;
#endif

	/* Segments that JITLink needs only until the finalize actions have run. */
	static bool until_finalized(const AllocGroup &group)
	{
#if LLVM_VERSION_MAJOR >= 18
		return group.getMemLifetime() == llvm::orc::MemLifetime::Finalize;
#elif LLVM_VERSION_MAJOR >= 17
		return group.getMemLifetimePolicy() == llvm::orc::MemLifetimePolicy::Finalize;
#elif LLVM_VERSION_MAJOR >= 16
		return group.getMemDeallocPolicy() == llvm::orc::MemDeallocPolicy::Finalize;
#else
		return group.getMemDeallocPolicy() == llvm::jitlink::MemDeallocPolicy::Finalize;
#endif
	}

	static bool has(MemProt prot, MemProt bit)
	{
		return static_cast<unsigned>(prot) & static_cast<unsigned>(bit);
	}

	static llvm::Error failure(int err, const std::string &what, const char *why = nullptr)
	{
		return llvm::make_error<llvm::StringError>(
			"execmem: " + what + ": " + (why && *why ? why : std::strerror(err)),
			std::error_code(err, std::generic_category()));
	}

	static llvm::Error free_all(const std::vector<void *> &memory)
	{
		llvm::Error all = llvm::Error::success();
		for (void *p : memory)
			if (int rc = execmem_free(p))
				all = llvm::joinErrors(std::move(all), failure(-rc, "free"));
		return all;
	}

	struct Finalized {
		std::vector<void *> memory;
		std::vector<llvm::orc::shared::WrapperFunctionCall> dealloc_actions;
	};

	/* The segments of one graph between allocate() and finalize()/abandon(). */
	class InFlight final : public llvm::jitlink::JITLinkMemoryManager::InFlightAlloc {
	public:
		explicit InFlight(llvm::jitlink::LinkGraph &graph) : graph_(graph) {}
		~InFlight() override { llvm::consumeError(release()); }

		void add(void *final_address, bool until_finalized)
		{
			(until_finalized ? until_finalized_ : standard_).push_back(final_address);
			windows_.push_back(final_address);
		}

		void finalize(OnFinalizedFunction on_finalized) override
		{
			if (llvm::Error err = close_windows()) {
				on_finalized(std::move(err));
				return;
			}
			auto dealloc_actions = llvm::orc::shared::runFinalizeActions(graph_.allocActions());
			if (!dealloc_actions) {
				on_finalized(dealloc_actions.takeError());
				return;
			}
			llvm::Error err = free_all(until_finalized_);
			until_finalized_.clear();
			if (err) {
				llvm::consumeError(llvm::orc::shared::runDeallocActions(*dealloc_actions));
				on_finalized(std::move(err));
				return;
			}
			auto *done = new Finalized{ std::move(standard_), std::move(*dealloc_actions) };
			standard_.clear();
			on_finalized(FinalizedAlloc(llvm::orc::ExecutorAddr::fromPtr(done)));
		}

		void abandon(OnAbandonedFunction on_abandoned) override { on_abandoned(release()); }

	private:
		/* Publish every segment; a failed one is still closed (see execmem_write_end()). */
		llvm::Error close_windows()
		{
			llvm::Error all = llvm::Error::success();
			for (void *p : windows_)
				if (int rc = execmem_write_end(p))
					all = llvm::joinErrors(std::move(all), failure(-rc, "publishing a segment"));
			windows_.clear();
			return all;
		}

		/* Whatever is still held: the windows, then the memory. */
		llvm::Error release()
		{
			llvm::Error all = close_windows();
			all = llvm::joinErrors(std::move(all), free_all(standard_));
			all = llvm::joinErrors(std::move(all), free_all(until_finalized_));
			standard_.clear();
			until_finalized_.clear();
			return all;
		}

		llvm::jitlink::LinkGraph &graph_;
		std::vector<void *> standard_, until_finalized_, windows_;
	};

	execmem_type type_of(MemProt prot) const
	{
		if (has(prot, MemProt::Exec))
			return options_.code_type;
		return has(prot, MemProt::Write) ? EXECMEM_DATA : EXECMEM_RODATA;
	}

	void *alloc(execmem_type type, size_t size, size_t alignment) const
	{
		if (options_.arena)
			return execmem_arena_alloc_aligned(options_.arena, type, size, alignment);
		return execmem_alloc_aligned(type, size, alignment);
	}

	/* Give one segment its final address and a writable view of it. */
	llvm::Error place(const AllocGroup &group, llvm::jitlink::BasicLayout::Segment &segment,
			  InFlight &in_flight) const
	{
		MemProt prot = group.getMemProt();
		if (has(prot, MemProt::Exec) && has(prot, MemProt::Write))
			return failure(EPERM, "a segment asks to be writable and executable");
		size_t size = segment.ContentSize + segment.ZeroFillSize;
		if (size == 0)
			return llvm::Error::success();
		void *final_address = alloc(type_of(prot), size, segment.Alignment.value());
		if (!final_address)
			return failure(errno, "allocating a segment of " + std::to_string(size) + " bytes",
				       execmem_last_error());
		auto *working = static_cast<char *>(execmem_write_begin(final_address));
		if (!working) {
			int err = errno;
			execmem_free(final_address);
			return failure(err, "opening a write window");
		}
		in_flight.add(final_address, until_finalized(group));
		/* Code comes filled with traps: zero-fill blocks need their zeros. */
		std::memset(working + segment.ContentSize, 0, segment.ZeroFillSize);
		segment.Addr = llvm::orc::ExecutorAddr::fromPtr(final_address);
		segment.WorkingMem = working;
		return llvm::Error::success();
	}

	Options options_;
};

/*
 * object_linking_layer - ORC's object linking layer on memory, with every
 * link graph's eh-frame registered with this process's unwinder (so that
 * exceptions and backtraces cross JIT code): the layer
 * LLJITBuilder::setObjectLinkingLayerCreator() asks for.  memory must
 * outlive the layer.  Returns the layer; fails only as LLVM's constructors do.
 */
inline llvm::Expected<std::unique_ptr<llvm::orc::ObjectLayer>>
object_linking_layer(llvm::orc::ExecutionSession &session,
		     llvm::jitlink::JITLinkMemoryManager &memory)
{
	auto layer = std::make_unique<llvm::orc::ObjectLinkingLayer>(session, memory);
	layer->addPlugin(std::make_unique<llvm::orc::EHFrameRegistrationPlugin>(
		session, std::make_unique<llvm::jitlink::InProcessEHFrameRegistrar>()));
	return std::unique_ptr<llvm::orc::ObjectLayer>(std::move(layer));
}

} // namespace execmem

#endif
