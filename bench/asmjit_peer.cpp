// asmjit_peer.cpp - asmjit's JitAllocator as an allocator of `execmem bench`.
//
// Two configurations are compared, each set up as a careful user would for
// a JIT that makes many programs (blocks of 2 MiB, the size that measured
// best here among 64 KiB, 256 KiB, 1 MiB and 2 MiB; docs/benchmarks.md):
//   asmjit-rwx        one RWX mapping per block, nothing refilled on release
//   asmjit-dual-fill  dual mapping, unused memory filled with the trap
//                     instruction: the same safety as execmem (never W+X,
//                     nothing stale left executable)
// EXECMEM_BENCH_ASMJIT_BLOCK (bytes, or with a k/m suffix) and
// EXECMEM_BENCH_ASMJIT_POOLS=1 (kUseMultiplePools) override the
// configuration, to measure the alternatives; the report prints what was used.
#include <asmjit/core.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "bench_alloc.h"

namespace {

using asmjit::JitAllocatorOptions;

constexpr uint32_t kBlockSize = 2u << 20;

#if defined(__x86_64__)
constexpr uint32_t kTrapPattern = 0xCCCCCCCCu; // int3
#elif defined(__aarch64__)
constexpr uint32_t kTrapPattern = 0xD4200000u; // brk #0
#else
constexpr uint32_t kTrapPattern = 0x00100073u; // ebreak
#endif

struct Peer {
	asmjit::JitAllocator allocator;
	const char *mode;
	char config[256];

	Peer(const asmjit::JitAllocator::CreateParams *params, const char *m) : allocator(params), mode(m)
	{
		config[0] = '\0';
	}
};

uint32_t block_size_from_env()
{
	const char *text = std::getenv("EXECMEM_BENCH_ASMJIT_BLOCK");
	if (!text || !*text)
		return kBlockSize;
	char *end = nullptr;
	unsigned long v = std::strtoul(text, &end, 10);
	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	return static_cast<uint32_t>(v);
}

void describe(Peer *peer, JitAllocatorOptions options)
{
	static const struct {
		JitAllocatorOptions bit;
		const char *name;
	} names[] = {
		{ JitAllocatorOptions::kUseDualMapping, "kUseDualMapping" },
		{ JitAllocatorOptions::kUseMultiplePools, "kUseMultiplePools" },
		{ JitAllocatorOptions::kFillUnusedMemory, "kFillUnusedMemory" },
		{ JitAllocatorOptions::kImmediateRelease, "kImmediateRelease" },
		{ JitAllocatorOptions::kCustomFillPattern, "kCustomFillPattern" },
	};
	char opts[160] = "";
	for (const auto &n : names) {
		if ((options & n.bit) == JitAllocatorOptions::kNone)
			continue;
		std::snprintf(opts + std::strlen(opts), sizeof(opts) - std::strlen(opts), "%s%s",
			      opts[0] ? "|" : "", n.name);
	}
	const asmjit::JitAllocator &a = peer->allocator;
	std::snprintf(peer->config, sizeof(peer->config),
		      "JitAllocator blockSize=%u KiB granularity=%u options=%s fillPattern=%#x",
		      a.blockSize() >> 10, a.granularity(), opts[0] ? opts : "kNone", a.fillPattern());
}

int open_with(void **self, JitAllocatorOptions options, const char *mode, char *why, size_t whylen)
{
	asmjit::JitAllocator::CreateParams params{};
	const char *pools = std::getenv("EXECMEM_BENCH_ASMJIT_POOLS");
	if (pools && !std::strcmp(pools, "1"))
		options |= JitAllocatorOptions::kUseMultiplePools;
	params.options = options;
	params.blockSize = block_size_from_env();
	params.fillPattern = kTrapPattern;
	Peer *peer = new (std::nothrow) Peer(&params, mode);
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
	describe(peer, options);
	*self = peer;
	return 0;
}

int open_rwx(void **self, char *why, size_t whylen)
{
	return open_with(self, JitAllocatorOptions::kNone, "RWX blocks", why, whylen);
}

int open_dual_fill(void **self, char *why, size_t whylen)
{
	return open_with(self,
			 JitAllocatorOptions::kUseDualMapping | JitAllocatorOptions::kFillUnusedMemory |
				 JitAllocatorOptions::kCustomFillPattern,
			 "dual mapping + trap fill", why, whylen);
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

const char *peer_mode(void *self)
{
	return static_cast<Peer *>(self)->mode;
}

const char *peer_config(void *self)
{
	return static_cast<Peer *>(self)->config;
}

void peer_close(void *self)
{
	delete static_cast<Peer *>(self);
}

} // namespace

extern "C" {

const struct bench_allocator bench_asmjit_rwx = {
	"asmjit-rwx", BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER,
	open_rwx, peer_alloc, peer_write, peer_release, peer_os_calls, peer_mode, peer_close, peer_config,
};

const struct bench_allocator bench_asmjit_dual_fill = {
	"asmjit-dual-fill", BENCH_CAN_EXECUTE | BENCH_THREAD_SAFE | BENCH_PEER,
	open_dual_fill, peer_alloc, peer_write, peer_release, peer_os_calls, peer_mode, peer_close, peer_config,
};

} // extern "C"
