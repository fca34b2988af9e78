/*
 * bench_llvm.h - JITting many small functions with LLVM's ORC, with ORC's
 * own in-process memory manager and with execmem's (bench/llvm_peer.cpp).
 */
#ifndef EXECMEM_TOOLS_BENCH_LLVM_H
#define EXECMEM_TOOLS_BENCH_LLVM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { LLVM_PEERS = 2 };

struct llvm_figure { double median, min, max; };

struct llvm_peer_result {
	const char *name;        /* "orc-default", "orc-execmem" */
	char config[192];        /* how the peer is set up, in a few words */
	struct llvm_figure jit_ms;   /* add, compile, link, call every function */
	struct llvm_figure code_kib; /* Pss of the mappings holding the functions */
	int wx_mappings;         /* most W+X mappings seen while the code was live */
	size_t wrong_results;
};

/*
 * JIT functions small functions, each in a module of its own, repeats
 * times with each peer (alternating, after one warm-up each), calling each
 * and freeing them all after each repetition.  Returns 0 or -errno and a
 * reason in why.
 */
int bench_llvm(int functions, int repeats, struct llvm_peer_result out[LLVM_PEERS], char *why,
	       size_t whylen);

#ifdef __cplusplus
}
#endif
#endif
