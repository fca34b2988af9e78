/*
 * test_bad_input.c - every bad input of the bad-input table in
 * docs/reliability.md, with the result it must get.  Each row of the table
 * is one entry of `rows` below; `--markdown` prints the table, and the
 * reliability_doc_table test checks that the document holds exactly it.
 * The default arena's mode comes from EXECMEM_MODE.
 */
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "execmem/module.h"
#include "rtest.h"

static enum execmem_mode mode;

/* ---- expectations ---- */

static bool returns(int got, int want)
{
	if (got != want)
		fprintf(stderr, "    returned %d, expected %d\n", got, want);
	return got == want;
}

static bool fails_with(const void *got, int want_errno)
{
	int saved = errno;
	if (got || saved != want_errno)
		fprintf(stderr, "    returned %p errno %d, expected NULL errno %d\n", got, saved, want_errno);
	return !got && saved == want_errno;
}

/* An allocation of the default arena that the row may damage only if it fails. */
struct victim {
	void *code;
	uint32_t value;
};

static struct victim new_victim(void)
{
	static uint32_t next_value = 0x1000;
	struct victim victim = { NULL, next_value++ };
	victim.code = rt_new_program(NULL, 128, victim.value);
	RT_CHECK(victim.code, "cannot allocate a victim program: errno %d", errno);
	return victim;
}

/* The victim still returns its value, is intact, and can be freed. */
static bool victim_survives(struct victim victim)
{
	bool intact = victim.code && rt_program_returns(mode, victim.code, victim.value);
	bool freed = victim.code && execmem_free(victim.code) == 0;
	if (!intact || !freed)
		fprintf(stderr, "    the allocation next to the bad input was damaged\n");
	return intact && freed;
}

static void *freed_code(void)
{
	void *code = execmem_alloc(EXECMEM_CODE, 64);
	execmem_free(code);
	return code;
}

static void *new_sealed(void)
{
	void *data = execmem_alloc(EXECMEM_RO_AFTER_INIT, 64);
	if (data)
		execmem_seal(data);
	return data;
}

static const uint8_t payload[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static int stack_word;

/* ---- rows: free ---- */

static bool free_null(void)
{
	return returns(execmem_free(NULL), 0);
}

static bool free_interior(void)
{
	struct victim victim = new_victim();
	return returns(execmem_free((char *)victim.code + 64), -EINVAL) && victim_survives(victim);
}

static bool free_stack(void)
{
	return returns(execmem_free(&stack_word), -EINVAL);
}

static bool free_heap(void)
{
	void *heap = malloc(64);
	bool ok = returns(execmem_free(heap), -EINVAL);
	free(heap);
	return ok;
}

static bool free_twice(void)
{
	struct victim victim = new_victim();
	void *code = freed_code();
	return returns(execmem_free(code), -EINVAL) && victim_survives(victim);
}

/* The first granule after p, inside p's chunk, where no allocation starts. */
static void *unallocated_after(void *p)
{
	uintptr_t chunk_end = ((uintptr_t)p | (EXECMEM_CHUNK_SIZE - 1)) + 1;
	for (uintptr_t at = (uintptr_t)p + execmem_usable_size(p); at < chunk_end; at += 64)
		if (execmem_usable_size((void *)at) == 0)
			return (void *)at;
	return NULL;
}

static bool free_unallocated_in_chunk(void)
{
	struct victim victim = new_victim();
	void *empty = unallocated_after(victim.code);
	return empty && returns(execmem_free(empty), -EINVAL) && victim_survives(victim);
}

/* ---- rows: write and invalidate ---- */

static bool write_after_free(void)
{
	void *code = freed_code();
	struct victim victim = new_victim(); /* may reuse the freed place: then it must be valid */
	if (victim.code == code) {
		bool ok = victim_survives(victim);
		return ok && returns(execmem_write(code, payload, 8), -EINVAL);
	}
	return returns(execmem_write(code, payload, 8), -EINVAL) &&
	       rt_is_trap_filled(code, 64) && victim_survives(victim);
}

static bool write_past_end(void)
{
	struct victim victim = new_victim();
	size_t usable = execmem_usable_size(victim.code);
	return returns(execmem_write((char *)victim.code + usable - 4, payload, 8), -EINVAL) &&
	       victim_survives(victim);
}

static bool write_whole_plus_one(void)
{
	struct victim victim = new_victim();
	size_t usable = execmem_usable_size(victim.code);
	uint8_t *big = calloc(1, usable + 1);
	bool ok = returns(execmem_write(victim.code, big, usable + 1), -EINVAL);
	free(big);
	return ok && victim_survives(victim);
}

static bool write_huge_length(void)
{
	struct victim victim = new_victim();
	return returns(execmem_write(victim.code, payload, SIZE_MAX), -EINVAL) &&
	       returns(execmem_write((char *)victim.code + 8, payload, SIZE_MAX - 4), -EINVAL) &&
	       victim_survives(victim);
}

static bool write_null_source(void)
{
	struct victim victim = new_victim();
	return returns(execmem_write(victim.code, NULL, 8), -EINVAL) && victim_survives(victim);
}

static bool write_null_destination(void)
{
	return returns(execmem_write(NULL, payload, 8), -EINVAL);
}

static bool write_foreign(void)
{
	int local = 7;
	return returns(execmem_write(&local, payload, sizeof(local)), -EINVAL) && local == 7;
}

static bool invalidate_past_end(void)
{
	struct victim victim = new_victim();
	size_t usable = execmem_usable_size(victim.code);
	return returns(execmem_invalidate((char *)victim.code + 16, usable), -EINVAL) &&
	       victim_survives(victim);
}

static bool invalidate_after_free(void)
{
	return returns(execmem_invalidate(freed_code(), 16), -EINVAL);
}

static bool invalidate_interior(void)
{
	struct victim victim = new_victim();
	bool ok = returns(execmem_invalidate((char *)victim.code + 64, 64), 0) &&
		  rt_is_trap_filled((char *)victim.code + 64, 64);
	return ok && victim_survives(victim);
}

/* ---- rows: sizes and types ---- */

static bool alloc_zero(void)
{
	return fails_with(execmem_alloc(EXECMEM_CODE, 0), EINVAL);
}

static bool alloc_size_max(void)
{
	return fails_with(execmem_alloc(EXECMEM_CODE, SIZE_MAX), EINVAL) &&
	       fails_with(execmem_alloc(EXECMEM_DATA, SIZE_MAX - 63), EINVAL) &&
	       fails_with(execmem_alloc(EXECMEM_CODE, SIZE_MAX / 2 + 1), EINVAL);
}

/* An allocation of this size works: its last byte can be written and read back. */
static bool size_works(enum execmem_type type, size_t size)
{
	uint8_t *p = execmem_alloc(type, size);
	if (!p) {
		fprintf(stderr, "    size %zu: errno %d\n", size, errno);
		return false;
	}
	uint8_t byte = 0x5a;
	bool ok = execmem_usable_size(p) >= size &&
		  execmem_write(p + size - 1, &byte, 1) == 0 && p[size - 1] == byte;
	return returns(execmem_free(p), 0) && ok;
}

static bool alloc_near_chunk_size(void)
{
	static const long deltas[] = { -64, -1, 0, 1, 4096 };
	bool ok = size_works(EXECMEM_CODE, EXECMEM_CHUNK_SIZE / 2) &&
		  size_works(EXECMEM_CODE, EXECMEM_CHUNK_SIZE / 2 + 1);
	for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++)
		ok = size_works(i % 2 ? EXECMEM_DATA : EXECMEM_CODE,
				(size_t)((long)EXECMEM_CHUNK_SIZE + deltas[i])) && ok;
	return ok;
}

static bool alloc_unknown_type(void)
{
	return fails_with(execmem_alloc(EXECMEM_TYPE_MAX, 64), EINVAL) &&
	       fails_with(execmem_alloc((enum execmem_type)-1, 64), EINVAL) &&
	       fails_with(execmem_alloc((enum execmem_type)1000, 64), EINVAL);
}

/* ---- rows: placement ---- */

static bool near_null_target(void)
{
	return fails_with(execmem_alloc_near(EXECMEM_CODE, 64, NULL, 1 << 30), EINVAL);
}

static bool near_reach_zero(void)
{
	return fails_with(execmem_alloc_near(EXECMEM_CODE, 64, (void *)&stack_word, 0), EINVAL) &&
	       fails_with(execmem_alloc_near(EXECMEM_CODE, 4096, (void *)&stack_word, 4095), EINVAL);
}

static bool near_impossible(void)
{
	/* Nothing can be mapped at page 0 (mmap_min_addr), nor above user space. */
	return fails_with(execmem_alloc_near(EXECMEM_CODE, 64, (void *)64, 4096), ENOMEM) &&
	       fails_with(execmem_alloc_near(EXECMEM_DATA, 64, (void *)(UINTPTR_MAX - 4095), 8192), ENOMEM);
}

static bool aligned_bad_alignment(void)
{
	return fails_with(execmem_alloc_aligned(EXECMEM_CODE, 64, 0), EINVAL) &&
	       fails_with(execmem_alloc_aligned(EXECMEM_CODE, 64, 3), EINVAL) &&
	       fails_with(execmem_alloc_aligned(EXECMEM_CODE, 64, 4097), EINVAL) &&
	       fails_with(execmem_alloc_aligned(EXECMEM_CODE, 64, EXECMEM_ALIGN_MAX << 1), EINVAL) &&
	       fails_with(execmem_alloc_aligned(EXECMEM_CODE, 0, 64), EINVAL);
}

static bool in_place_bad_mode(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.write = EXECMEM_WRITE_IN_PLACE;
	params.mode = EXECMEM_MODE_DUAL;
	bool dual_refused = fails_with(execmem_arena_create(&params), EINVAL);
	params.mode = EXECMEM_MODE_AUTO;
	params.write = (enum execmem_write)2;
	return dual_refused && fails_with(execmem_arena_create(&params), EINVAL);
}

/* ---- rows: sealing and windows ---- */

static bool seal_wrong_type(void)
{
	void *code = execmem_alloc(EXECMEM_CODE, 64);
	void *data = execmem_alloc(EXECMEM_DATA, 64);
	bool ok = returns(execmem_seal(code), -EINVAL) && returns(execmem_seal(data), -EINVAL) &&
		  returns(execmem_seal(NULL), -EINVAL) && returns(execmem_seal(&stack_word), -EINVAL);
	return returns(execmem_free(code), 0) && returns(execmem_free(data), 0) && ok;
}

static bool seal_twice(void)
{
	void *sealed = new_sealed();
	bool ok = returns(execmem_seal(sealed), -EALREADY);
	return returns(execmem_free(sealed), 0) && ok;
}

static bool write_sealed(void)
{
	uint8_t *sealed = new_sealed();
	bool ok = returns(execmem_write(sealed, payload, 8), -EPERM) &&
		  returns(execmem_invalidate(sealed, 8), -EPERM) &&
		  fails_with(execmem_write_begin(sealed), EPERM) && sealed[0] == 0;
	return returns(execmem_free(sealed), 0) && ok;
}

static bool window_twice(void)
{
	struct victim victim = new_victim();
	bool ok = execmem_write_begin(victim.code) != NULL &&
		  fails_with(execmem_write_begin(victim.code), EBUSY) &&
		  returns(execmem_write_end(victim.code), 0) &&
		  returns(execmem_write_end(victim.code), -EINVAL);
	return ok && victim_survives(victim);
}

static bool window_bad_pointer(void)
{
	struct victim victim = new_victim();
	bool ok = fails_with(execmem_write_begin((char *)victim.code + 64), EINVAL) &&
		  fails_with(execmem_write_begin(&stack_word), EINVAL) &&
		  fails_with(execmem_write_begin(NULL), EINVAL) &&
		  returns(execmem_write_end(&stack_word), -EINVAL);
	return ok && victim_survives(victim);
}

static bool usable_size_bad(void)
{
	struct victim victim = new_victim();
	bool ok = execmem_usable_size(NULL) == 0 && execmem_usable_size(&stack_word) == 0 &&
		  execmem_usable_size((char *)victim.code + 64) == 0 &&
		  execmem_usable_size(freed_code()) == 0;
	return ok && victim_survives(victim);
}

/* ---- rows: arenas and configuration ---- */

static struct execmem_arena *new_arena(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.mode = mode;
	return execmem_arena_create(&params);
}

static bool arena_destroy_twice(void)
{
	struct execmem_arena *arena = new_arena();
	void *code = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, 64) : NULL;
	return code && returns(execmem_arena_destroy(arena), 0) &&
	       returns(execmem_arena_destroy(arena), -EINVAL) &&
	       returns(execmem_free(code), -EINVAL);
}

static bool arena_destroy_null(void)
{
	return returns(execmem_arena_destroy(NULL), -EINVAL);
}

/* An arena destroyed once its allocations p[0] (code) and p[1] (sealed
 * RO_AFTER_INIT data) were made; nothing is allocated after the destroy, so
 * no other allocation can have taken their addresses yet. */
static struct execmem_arena *destroyed_arena(void *p[2])
{
	struct execmem_arena *arena = new_arena();
	p[0] = arena ? rt_new_program(arena, 64, 0x4242) : NULL;
	p[1] = arena ? execmem_arena_alloc(arena, EXECMEM_RO_AFTER_INIT, 64) : NULL;
	bool made = p[0] && p[1] && returns(execmem_seal(p[1]), 0);
	bool destroyed = arena && returns(execmem_arena_destroy(arena), 0);
	return made && destroyed ? arena : NULL;
}

static bool alloc_from_destroyed_arena(void)
{
	struct victim victim = new_victim();
	void *p[2];
	struct execmem_arena *arena = destroyed_arena(p);
	return arena && fails_with(execmem_arena_alloc(arena, EXECMEM_CODE, 64), EINVAL) &&
	       fails_with(execmem_arena_alloc(arena, EXECMEM_DATA, 3 << 20), EINVAL) &&
	       fails_with(execmem_arena_alloc_near(arena, EXECMEM_CODE, 64, victim.code, 1 << 30), EINVAL) &&
	       victim_survives(victim);
}

static bool stats_of_destroyed_arena(void)
{
	void *p[2];
	struct execmem_arena *arena = destroyed_arena(p);
	struct execmem_stats stats;
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	return arena && returns(execmem_arena_stats(arena, &stats), -EINVAL) &&
	       returns(execmem_get_ranges(arena, ranges), -EINVAL);
}

static bool use_of_destroyed_allocation(void)
{
	struct victim victim = new_victim();
	void *p[2];
	struct execmem_arena *arena = destroyed_arena(p);
	return arena && returns(execmem_write(p[0], payload, 8), -EINVAL) &&
	       returns(execmem_invalidate(p[0], 8), -EINVAL) &&
	       fails_with(execmem_write_begin(p[0]), EINVAL) &&
	       returns(execmem_write_end(p[0]), -EINVAL) &&
	       returns(execmem_seal(p[1]), -EINVAL) &&
	       execmem_usable_size(p[0]) == 0 && execmem_usable_size(p[1]) == 0 &&
	       returns(execmem_free(p[1]), -EINVAL) && returns(execmem_free(p[0]), -EINVAL) &&
	       victim_survives(victim);
}

/* The handle of a destroyed arena stays dead once new arenas are made,
 * which may get the memory the destroyed one had. */
static bool destroyed_arena_stays_dead(void)
{
	enum { YOUNG = 4 };
	void *p[2];
	struct execmem_arena *old = destroyed_arena(p), *young[YOUNG];
	void *code[YOUNG];
	bool ok = old != NULL;
	for (int i = 0; i < YOUNG; i++) {
		young[i] = new_arena();
		code[i] = young[i] ? rt_new_program(young[i], 64, 0x5150 + i) : NULL;
		if (young[i] == old)
			fprintf(stderr, "    a new arena has the destroyed arena's handle\n");
		ok = ok && code[i] && young[i] != old;
	}
	ok = ok && returns(execmem_arena_destroy(old), -EINVAL) &&
	     fails_with(execmem_arena_alloc(old, EXECMEM_CODE, 64), EINVAL);
	for (int i = 0; i < YOUNG; i++) {
		ok = ok && rt_program_returns(mode, code[i], 0x5150 + i);
		ok = young[i] && returns(execmem_arena_destroy(young[i]), 0) && ok;
	}
	return ok && returns(execmem_arena_destroy(old), -EINVAL);
}

/* The smallest object the module loader takes: a .text of one byte. */
struct tiny_object {
	Elf64_Ehdr header;
	uint8_t text[8];
	char names[24];
	Elf64_Shdr sections[3];
};

static struct tiny_object tiny_object(void)
{
	static const char names[] = "\0.text\0.shstrtab";
	struct tiny_object o;
	memset(&o, 0, sizeof o);
	memcpy(o.header.e_ident, ELFMAG, SELFMAG);
	o.header.e_ident[EI_CLASS] = ELFCLASS64;
	o.header.e_ident[EI_DATA] = ELFDATA2LSB;
	o.header.e_ident[EI_VERSION] = EV_CURRENT;
	o.header.e_type = ET_REL;
	o.header.e_machine = EM_X86_64; /* taken on every host with EXECMEM_MODULE_LINK_ONLY */
	o.header.e_version = EV_CURRENT;
	o.header.e_ehsize = sizeof o.header;
	o.header.e_shoff = offsetof(struct tiny_object, sections);
	o.header.e_shentsize = sizeof(Elf64_Shdr);
	o.header.e_shnum = 3;
	o.header.e_shstrndx = 2;
	o.text[0] = 0xc3;
	memcpy(o.names, names, sizeof names);
	o.sections[1] = (Elf64_Shdr){ .sh_name = 1, .sh_type = SHT_PROGBITS,
				      .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
				      .sh_offset = offsetof(struct tiny_object, text),
				      .sh_size = 1, .sh_addralign = 1 };
	o.sections[2] = (Elf64_Shdr){ .sh_name = 7, .sh_type = SHT_STRTAB,
				      .sh_offset = offsetof(struct tiny_object, names),
				      .sh_size = sizeof names, .sh_addralign = 1 };
	return o;
}

/* Loads the tiny object into arena, from a buffer or from a file. */
static int load_tiny(struct execmem_arena *arena, bool from_file, struct execmem_module **module)
{
	struct tiny_object object = tiny_object();
	struct execmem_module_options options;
	execmem_module_options_init(&options);
	options.arena = arena;
	options.flags = EXECMEM_MODULE_LINK_ONLY;
	if (!from_file)
		return execmem_module_load_buffer(&object, sizeof object, "tiny", &options, module);
	char path[] = "/tmp/execmem-tiny-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	int rc = write(fd, &object, sizeof object) == (ssize_t)sizeof object
		 ? execmem_module_load_file(path, &options, module) : -EIO;
	close(fd);
	unlink(path);
	return rc;
}

static bool tiny_loads_and_unloads(struct execmem_arena *arena, bool from_file)
{
	struct execmem_module *module = NULL;
	return returns(load_tiny(arena, from_file, &module), 0) &&
	       returns(execmem_module_unload(module), 0);
}

static bool module_into_destroyed_arena(void)
{
	struct execmem_arena *arena = new_arena();
	bool loads = arena && tiny_loads_and_unloads(arena, false) && tiny_loads_and_unloads(arena, true);
	if (!arena || !returns(execmem_arena_destroy(arena), 0) || !loads)
		return false;
	/* A failed load sets *out to NULL: start from something else. */
	struct execmem_module *from_buffer = (struct execmem_module *)&stack_word;
	struct execmem_module *from_file = from_buffer;
	return returns(load_tiny(arena, false, &from_buffer), -EINVAL) && !from_buffer &&
	       returns(load_tiny(arena, true, &from_file), -EINVAL) && !from_file;
}

static struct execmem_arena *arena_with(size_t granularity, enum execmem_mode arena_mode,
					const struct execmem_range *ranges)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.granularity = granularity;
	params.mode = arena_mode;
	params.ranges = ranges;
	return execmem_arena_create(&params);
}

static bool arena_bad_params(void)
{
	return fails_with(arena_with(0, mode, NULL), EINVAL) &&
	       fails_with(arena_with(48, mode, NULL), EINVAL) &&
	       fails_with(arena_with(8192, mode, NULL), EINVAL) &&
	       fails_with(arena_with(64, (enum execmem_mode)99, NULL), EINVAL);
}

static bool arena_wx_range(void)
{
	struct execmem_range ranges[EXECMEM_TYPE_MAX];
	if (execmem_get_ranges(NULL, ranges) != 0)
		return false;
	ranges[EXECMEM_CODE].protection = EXECMEM_PROT_READ | EXECMEM_PROT_WRITE | EXECMEM_PROT_EXEC;
	return fails_with(arena_with(64, mode, ranges), EINVAL);
}

static bool stats_null(void)
{
	return returns(execmem_stats(NULL), -EINVAL);
}

static bool configure_bad(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.granularity = 3;
	return returns(execmem_configure(&params), -EINVAL);
}

static bool configure_after_use(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	return returns(execmem_configure(&params), -EBUSY);
}

struct row {
	const char *input;
	const char *call;
	const char *result;
	bool (*check)(void);
};

static const struct row rows[] = {
	{ "bad default-arena parameters", "execmem_configure(granularity 3) before use", "-EINVAL", configure_bad },
	{ "NULL pointer", "execmem_free(NULL)", "0, nothing happens", free_null },
	{ "interior pointer", "execmem_free(p + 64)", "-EINVAL; p intact and callable", free_interior },
	{ "foreign pointer (stack)", "execmem_free(&local)", "-EINVAL", free_stack },
	{ "foreign pointer (malloc)", "execmem_free(malloc(64))", "-EINVAL", free_heap },
	{ "freed pointer (double free)", "execmem_free(p) twice", "-EINVAL; other code intact", free_twice },
	{ "pointer to unallocated chunk memory", "execmem_free(next free granule)", "-EINVAL", free_unallocated_in_chunk },
	{ "write after free", "execmem_write(freed, src, 8)", "-EINVAL; memory still traps", write_after_free },
	{ "out-of-bounds write (straddles end)", "execmem_write(p + usable - 4, src, 8)", "-EINVAL, nothing written", write_past_end },
	{ "out-of-bounds write (one byte over)", "execmem_write(p, src, usable + 1)", "-EINVAL, nothing written", write_whole_plus_one },
	{ "length wrapping the address space", "execmem_write(p, src, SIZE_MAX)", "-EINVAL", write_huge_length },
	{ "NULL source", "execmem_write(p, NULL, 8)", "-EINVAL", write_null_source },
	{ "NULL destination", "execmem_write(NULL, src, 8)", "-EINVAL", write_null_destination },
	{ "foreign destination", "execmem_write(&local, src, 4)", "-EINVAL, local unchanged", write_foreign },
	{ "out-of-bounds invalidate", "execmem_invalidate(p + 16, usable)", "-EINVAL", invalidate_past_end },
	{ "invalidate after free", "execmem_invalidate(freed, 16)", "-EINVAL", invalidate_after_free },
	{ "interior invalidate (valid)", "execmem_invalidate(p + 64, 64)", "0, those bytes trap", invalidate_interior },
	{ "size 0", "execmem_alloc(CODE, 0)", "NULL, EINVAL", alloc_zero },
	{ "size SIZE_MAX and near it", "execmem_alloc(CODE, SIZE_MAX), SIZE_MAX - 63, SIZE_MAX/2 + 1", "NULL, EINVAL", alloc_size_max },
	{ "sizes near the chunk size", "execmem_alloc(t, 1 MiB, 1 MiB + 1, 2 MiB - 64 .. 2 MiB + 4096)", "success; last byte writable", alloc_near_chunk_size },
	{ "unknown type", "execmem_alloc(TYPE_MAX / -1 / 1000, 64)", "NULL, EINVAL", alloc_unknown_type },
	{ "NULL near target", "execmem_alloc_near(CODE, 64, NULL, 1 GiB)", "NULL, EINVAL", near_null_target },
	{ "reach 0 or below the size", "execmem_alloc_near(CODE, 64, t, 0)", "NULL, EINVAL", near_reach_zero },
	{ "reach impossible to meet", "execmem_alloc_near(CODE, 64, (void *)64, 4096)", "NULL, ENOMEM", near_impossible },
	{ "seal of a wrong type", "execmem_seal(code / data / NULL / &local)", "-EINVAL", seal_wrong_type },
	{ "seal twice", "execmem_seal(sealed)", "-EALREADY", seal_twice },
	{ "write to a sealed allocation", "execmem_write / invalidate / write_begin(sealed)", "-EPERM / EPERM, bytes unchanged", write_sealed },
	{ "second write window", "execmem_write_begin(p) twice, write_end twice", "NULL EBUSY; -EINVAL", window_twice },
	{ "window on a bad pointer", "execmem_write_begin(p + 64 / &local / NULL)", "NULL, EINVAL", window_bad_pointer },
	{ "usable size of a bad pointer", "execmem_usable_size(NULL / &local / p + 64 / freed)", "0", usable_size_bad },
	{ "destroy of an arena twice", "execmem_arena_destroy(a) twice, then free(its p)", "0, then -EINVAL, -EINVAL", arena_destroy_twice },
	{ "destroy of NULL", "execmem_arena_destroy(NULL)", "-EINVAL", arena_destroy_null },
	{ "allocation from a destroyed arena", "execmem_arena_alloc(a, ...), execmem_arena_alloc_near(a, ...)", "NULL, EINVAL", alloc_from_destroyed_arena },
	{ "statistics of a destroyed arena", "execmem_arena_stats(a, &s), execmem_get_ranges(a, r)", "-EINVAL", stats_of_destroyed_arena },
	{ "allocation of a destroyed arena", "execmem_write / invalidate / write_begin / write_end / seal / usable_size / free(p of a)", "-EINVAL / EINVAL / 0", use_of_destroyed_allocation },
	{ "destroyed arena once others are made", "destroy(a), 4 x create(), destroy(a), alloc(a)", "-EINVAL, NULL EINVAL; new arenas unharmed", destroyed_arena_stays_dead },
	{ "module load into a destroyed arena", "execmem_module_load_buffer / load_file(options.arena = a)", "-EINVAL; both load into a before its destroy", module_into_destroyed_arena },
	{ "bad arena parameters", "granularity 0 / 48 / 8192, mode 99", "NULL, EINVAL", arena_bad_params },
	{ "range asking for W+X", "ranges[CODE].protection = RWX", "NULL, EINVAL", arena_wx_range },
	{ "NULL stats", "execmem_stats(NULL)", "-EINVAL", stats_null },
	{ "configure after use", "execmem_configure(&params)", "-EBUSY", configure_after_use },
	{ "alignment 0, not a power of two, above the maximum", "execmem_alloc_aligned(CODE, 64, 0 / 3 / 4097 / 2 GiB), size 0", "NULL, EINVAL", aligned_bad_alignment },
	{ "in-place writing in dual mode, unknown write option", "params.write = IN_PLACE with mode DUAL / write 2", "NULL, EINVAL", in_place_bad_mode },
};

#define ROW_COUNT (sizeof(rows) / sizeof(rows[0]))

static void print_markdown(void)
{
	printf("| # | bad input | call | result |\n| --- | --- | --- | --- |\n");
	for (size_t i = 0; i < ROW_COUNT; i++)
		printf("| %zu | %s | `%s` | %s |\n", i + 1, rows[i].input, rows[i].call, rows[i].result);
}

/* The table of the document must be exactly the one printed by --markdown. */
static int check_document(const char *path)
{
	FILE *doc = fopen(path, "r");
	if (!doc) {
		perror(path);
		return 1;
	}
	size_t found = 0;
	char line[1024], want[1024];
	while (fgets(line, sizeof(line), doc)) {
		if (found == ROW_COUNT)
			break;
		const struct row *row = &rows[found];
		snprintf(want, sizeof(want), "| %zu | %s | `%s` | %s |\n", found + 1, row->input, row->call, row->result);
		if (strcmp(line, want) == 0)
			found++;
	}
	fclose(doc);
	RT_CHECK(found == ROW_COUNT, "%s holds rows 1..%zu of %zu in order; row %zu differs or is missing"
		 " (regenerate with --markdown)", path, found, ROW_COUNT, found + 1);
	return rt_finish("bad-input table");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--markdown") == 0) {
		print_markdown();
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "--check-doc") == 0)
		return check_document(argv[2]);
	mode = rt_mode_from_env();
	rt_can_run_rewritten_code(mode); /* says once, before any fork, what qemu-user cannot run */
	printf("bad inputs, default arena in %s mode\n", execmem_mode_name(mode));
	for (size_t i = 0; i < ROW_COUNT; i++) {
		bool ok = rows[i].check();
		RT_CHECK(ok, "row %zu: %s", i + 1, rows[i].input);
		printf("%s %2zu %s -> %s\n", ok ? "PASS" : "FAIL", i + 1, rows[i].input, rows[i].result);
	}
	RT_CHECK(rt_count_wx_mappings() == 0, "a W+X mapping appeared");
	return rt_finish("bad inputs");
}
