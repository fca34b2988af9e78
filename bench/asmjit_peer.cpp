// asmjit_peer.cpp - asmjit's JitAllocator as an allocator of `execmem bench`.
//
// Two configurations are compared: the default (one RWX mapping per block)
// and dual mapping with unused memory filled with traps, which gives the
// same safety as execmem: never W+X, nothing stale left executable.
#include <asmjit/core.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "bench_alloc.h"

namespace {

struct Peer {
	asmjit::JitAllocator allocator;

	explicit Peer(const asmjit::JitAllocator::CreateParams *params) : allocator(params) {}
};

int open_with(void **self, asmjit::JitAllocatorOptions options, char *why, size_t whylen)
{
	asmjit::JitAllocator::CreateParams params{};
	params.options = options;
	Peer *peer = new (std::nothrow) Peer(&params);
	if (!peer) {
		std::snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	// Probe once: dual mapping needs memfd or shm, RWX needs a kernel
	// that allows it; report "unavailable" rather than fail later.
	void *rx = nullptr, *rw = nullptr;
	asmjit::Error err = peer->allocator.alloc(&rx, &rw, 64);
	if (err != asmjit::kErrorOk) {
		std::snprintf(why, whylen, "JitAllocator refused: %s", asmjit::DebugUtils::errorAsString(err));
		delete peer;
		return -ENOSYS;
	}
	peer->allocator.release(rx);
	*self = peer;
	return 0;
}

int open_rwx(void **self, char *why, size_t whylen)
{
	return open_with(self, asmjit::JitAllocatorOptions::kNone, why, whylen);
}

int open_dual_fill(void **self, char *why, size_t whylen)
{
	return open_with(self,
			 asmjit::JitAllocatorOptions::kUseDualMapping |
				 asmjit::JitAllocatorOptions::kFillUnusedMemory,
			 why, whylen);
}

int peer_alloc(void *self, size_t size, struct bench_block *out)
{
	// A JIT using asmjit gets both views here and writes through the second.
	asmjit::Error err = static_cast<Peer *>(self)->allocator.alloc(&out->code, &out->writable, size);
	return err == asmjit::kErrorOk ? 0 : -ENOMEM;
}

int peer_write(void *, const struct bench_block *block, const void *src, size_t len)
{
	std::memcpy(block->writable, src, len);
	asmjit::VirtMem::flushInstructionCache(block->code, len);
	return 0;
}

int peer_release(void *self, const struct bench_block *block, size_t)
{
	return static_cast<Peer *>(self)->allocator.release(block->code) == asmjit::kErrorOk ? 0 : -EINVAL;
}

uint64_t peer_os_calls(void *)
{
	return bench_wrapped_os_calls();
}

const char *mode_rwx(void *)
{
	return "RWX blocks (asmjit default)";
}

const char *mode_dual_fill(void *)
{
	return "dual mapping + trap fill";
}

void peer_close(void *self)
{
	delete static_cast<Peer *>(self);
}

} // namespace

extern "C" {

const struct bench_allocator bench_asmjit_rwx = {
	"asmjit-rwx", BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER,
	open_rwx, peer_alloc, peer_write, peer_release, peer_os_calls, mode_rwx, peer_close,
};

const struct bench_allocator bench_asmjit_dual_fill = {
	"asmjit-dual-fill", BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER,
	open_dual_fill, peer_alloc, peer_write, peer_release, peer_os_calls, mode_dual_fill, peer_close,
};

} // extern "C"
