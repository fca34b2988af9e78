/* hook_subjects.h - the table each build of hook_subjects.c exports. */
#ifndef EXECMEM_TEST_HOOK_SUBJECTS_H
#define EXECMEM_TEST_HOOK_SUBJECTS_H

/* Its optimised build may be too short for the entry jump. */
#define HOOK_SUBJECT_MAY_BE_SHORT 1

struct hook_subject {
	const char *name;
	long (*fn)(long);
	int flags;
};

/* One table per build, ending with a NULL name. */
#define HOOK_SUBJECT_BUILDS(X)                                                       \
	X(_gcc_O0) X(_gcc_O1) X(_gcc_O2) X(_gcc_O3) X(_gcc_O2_cet)                     \
	X(_clang_O0) X(_clang_O1) X(_clang_O2) X(_clang_O3) X(_clang_O2_cet)

#define HOOK_SUBJECT_DECLARE(tag) extern const struct hook_subject hook_subjects##tag[];
HOOK_SUBJECT_BUILDS(HOOK_SUBJECT_DECLARE)

#endif
