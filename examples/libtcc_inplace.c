/*
 * libtcc_inplace - C compiled at run time by libtcc into execmem memory.
 *
 * tcc_relocate(s, ptr) copies the program into ptr and links it for ptr,
 * so the memory it gets must be writable at the address the code will run
 * at: an in-place arena (params.write = EXECMEM_WRITE_IN_PLACE), whose
 * write window is the allocation itself.  This libtcc then mprotect()s
 * the text it wrote read-write-executable: execmem cannot refuse that on
 * private memory, but the window's end finds the W+X pages, makes them
 * read-execute again and says so with -EPERM (see docs/integrations.md).
 * The whole image ends read-only, so the program keeps what it writes in
 * memory the host hands it (here an EXECMEM_DATA counter).
 */
#include <errno.h>
#include <execmem.h>
#include <libtcc.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char program[] =
	"int host_scale(int);\n"
	"extern int calls;\n"
	"static const int offsets[3] = { 100, 200, 300 };\n"
	"int compute(int i) { calls++; return host_scale(i) + offsets[i % 3]; }\n";

static int host_scale(int x)
{
	return 10 * x;
}

static void report(void *opaque, const char *message)
{
	(void)opaque;
	fprintf(stderr, "tcc: %s\n", message);
}

/* Compile and link the program into an in-place arena; NULL on failure. */
static void *compile_into(TCCState *s, struct execmem_arena *arena, int *calls)
{
	tcc_set_error_func(s, NULL, report);
	tcc_set_options(s, "-nostdlib"); /* no libc or libtcc1: the host gives what it calls */
	tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
	if (tcc_compile_string(s, program) || tcc_add_symbol(s, "host_scale", host_scale) ||
	    tcc_add_symbol(s, "calls", calls))
		return NULL;
	int size = tcc_relocate(s, NULL); /* the size it needs */
	void *image = size > 0 ? execmem_arena_alloc(arena, EXECMEM_CODE, (size_t)size) : NULL;
	if (!image || execmem_write_begin(image) != image)
		return NULL;
	int linked = tcc_relocate(s, image);
	int end = execmem_write_end(image);
	if (end == -EPERM)
		printf("execmem: tcc_relocate() left W+X pages; found and made read-execute again\n");
	else if (end)
		return NULL;
	return linked == 0 ? image : NULL;
}

int main(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.write = EXECMEM_WRITE_IN_PLACE;
	struct execmem_arena *arena = execmem_arena_create(&params);
	int *calls = arena ? execmem_arena_alloc(arena, EXECMEM_DATA, sizeof *calls) : NULL;
	TCCState *s = tcc_new();
	if (!calls || !s || !compile_into(s, arena, calls)) {
		fprintf(stderr, "libtcc_inplace: %s\n", calls ? "compiling failed" : strerror(errno));
		return 1;
	}
	int (*compute)(int) = (int (*)(int))tcc_get_symbol(s, "compute");
	int sum = 0;
	for (int i = 0; i < 6; i++)
		sum += compute(i);
	struct execmem_stats st;
	execmem_arena_stats(arena, &st);
	bool right = sum == 10 * 15 + 2 * 600 && *calls == 6;
	printf("compute(0..5) = %d in %d calls (%s); W+X holes found: %zu\n", sum, *calls,
	       right ? "right" : "WRONG", st.wx_holes);
	tcc_delete(s);
	execmem_arena_destroy(arena);
	return right ? 0 : 1;
}
