/*
 * test_prologues.c - the relocator on real prologues: every function of
 * hook_subjects.c, as gcc and clang build it at -O0..-O3 and with branch
 * protection, has its first instructions moved into an execmem trampoline
 * near it, which is then called: it must compute what the function does.
 * Functions too short for the jump must be refused as such.
 */
#include "hook_subjects.h"
#include "patch/reloc.h"
#include "rtest.h"

#include <errno.h>
#include <string.h>

#if defined(__x86_64__)
/* jmp rel32, and the absolute form used when nothing is within reach */
static const size_t entry_lengths[] = { 5, 14 };
#define TRAMP_REACH ((size_t)1 << 30)
#elif defined(__aarch64__)
/* B, and ADRP + BR */
static const size_t entry_lengths[] = { 4, 8 };
#define TRAMP_REACH ((size_t)64 << 20)
#endif

struct build {
	const char *tag;
	const struct hook_subject *subjects;
};

#define HOOK_SUBJECT_ENTRY(tag) { #tag, hook_subjects##tag },
static const struct build builds[] = { HOOK_SUBJECT_BUILDS(HOOK_SUBJECT_ENTRY) };

static const long inputs[] = { 0, 1, 2, 3, 7, -4, 100 };

static unsigned relocated, refused_short, refused_other;

/* Relocates the first need bytes of s into a fresh trampoline and compares
 * the trampoline's results with the function's own. */
static void check_subject(const struct build *b, const struct hook_subject *s, size_t need,
			  bool strict)
{
	uint8_t *tramp = execmem_alloc_near(EXECMEM_CODE, EM_RELOC_MAX_OUT, (void *)s->fn,
					    TRAMP_REACH);
	RT_CHECK(tramp != NULL, "no trampoline near %s%s", s->name, b->tag);
	if (!tramp)
		return;
	uint8_t out[EM_RELOC_MAX_OUT];
	struct em_reloc_result res;
	int rc = em_reloc_window((const uint8_t *)s->fn, EM_RELOC_MAX_WINDOW, (uintptr_t)s->fn,
				 need, (uintptr_t)tramp, out, sizeof out, &res);
	if (rc == -ENOEXEC && strstr(execmem_last_error(), "too short")) {
		refused_short++;
		RT_CHECK(!strict || (s->flags & HOOK_SUBJECT_MAY_BE_SHORT),
			 "%s%s (%zu bytes) refused: %s", s->name, b->tag, need, execmem_last_error());
	} else if (rc) {
		refused_other++;
		printf("refused %s%s (%zu bytes): %s\n", s->name, b->tag, need, execmem_last_error());
		RT_CHECK(!strict, "%s%s (%zu bytes): %d %s", s->name, b->tag, need, rc,
			 execmem_last_error());
		RT_CHECK(rc == -ENOEXEC || rc == -ERANGE, "%s%s: unexpected %d", s->name, b->tag, rc);
		RT_CHECK(execmem_last_error()[0] != '\0', "%s%s: no reason given", s->name, b->tag);
	} else {
		relocated++;
		RT_CHECK(res.displaced >= need && res.displaced <= EM_RELOC_MAX_WINDOW,
			 "%s%s displaced %zu", s->name, b->tag, res.displaced);
		RT_CHECK(execmem_write(tramp, out, res.len) == 0, "write: %s", execmem_last_error());
		long (*moved)(long) = (long (*)(long))(uintptr_t)tramp;
		for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
			long want = s->fn(inputs[i]), got = moved(inputs[i]);
			RT_CHECK(got == want, "%s%s (%zu bytes)(%ld) = %ld, expected %ld", s->name,
				 b->tag, need, inputs[i], got, want);
		}
	}
	execmem_free(tramp);
}

static const struct hook_subject *find(const struct build *b, const char *name)
{
	for (const struct hook_subject *s = b->subjects; s->name; s++)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

int main(void)
{
	for (size_t i = 0; i < sizeof builds / sizeof builds[0]; i++)
		for (const struct hook_subject *s = builds[i].subjects; s->name; s++)
			for (size_t n = 0; n < sizeof entry_lengths / sizeof entry_lengths[0]; n++)
				check_subject(&builds[i], s, entry_lengths[n], n == 0);
	/* -O2 makes the identity function a move and a return: too short. */
	RT_CHECK(refused_short > 0, "no prologue was found too short");
	const struct hook_subject *identity = find(&builds[2], "identity");
	uint8_t out[EM_RELOC_MAX_OUT];
	struct em_reloc_result res;
	RT_CHECK(em_reloc_window((const uint8_t *)identity->fn, EM_RELOC_MAX_WINDOW,
				 (uintptr_t)identity->fn, entry_lengths[1], (uintptr_t)identity->fn,
				 out, sizeof out, &res) == -ENOEXEC,
		 "the -O2 identity function was relocated for a %zu-byte jump", entry_lengths[1]);
	printf("%u windows relocated and run, %u refused as too short, %u refused otherwise\n",
	       relocated, refused_short, refused_other);
	return rt_finish("test_prologues");
}
