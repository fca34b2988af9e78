/*
 * test_observe.c - names and the files tools read, checked by readers of
 * their own: the name table (ranges inside one allocation, replacement,
 * death on free), the perf map lines, the jitdump records (header,
 * CODE_LOAD with the code bytes, a new CODE_LOAD after a rewrite,
 * CODE_CLOSE), the GDB JIT descriptor's symbol files, and call frame
 * information given to the C++ unwinder.
 */
#include <elf.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <unwind.h>

#include "execmem.h"
#include "execmem/module.h"
#include "jit_unwind.h"
#include "test_util.h"

struct jit_entry {
	struct jit_entry *next, *prev;
	const char *symfile;
	uint64_t size;
};
extern struct {
	uint32_t version, action;
	struct jit_entry *relevant, *first;
} __jit_debug_descriptor;

static char dump_dir[] = "/tmp/execmem-observe-XXXXXX";

static void *alloc_code(int32_t value, size_t *len)
{
	uint8_t buf[64];
	*len = tu_emit_return(buf, value);
	void *p = execmem_alloc(EXECMEM_CODE, 256);
	if (p && execmem_write(p, buf, *len))
		return NULL;
	return p;
}

static int name_is(const void *addr, const char *want)
{
	char buf[64];
	int rc = execmem_get_name(addr, buf, sizeof buf);
	return want ? rc == (int)strlen(want) && strcmp(buf, want) == 0 : rc == -ENOENT;
}

static void test_names(void)
{
	size_t len;
	uint8_t *p = alloc_code(1, &len);
	CHECK(p != NULL);
	CHECK_EQ(execmem_set_name(p, 32, "first"), 0);
	CHECK_EQ(execmem_set_name(p + 64, 32, "second"), 0);
	CHECK(name_is(p + 31, "first"));
	CHECK(name_is(p + 32, NULL));
	CHECK(name_is(p + 64, "second"));
	/* A name replaces those it overlaps; NULL only removes. */
	CHECK_EQ(execmem_set_name(p + 16, 64, "both"), 0);
	CHECK(name_is(p, NULL));
	CHECK(name_is(p + 79, "both"));
	CHECK_EQ(execmem_set_name(p + 16, 64, NULL), 0);
	CHECK(name_is(p + 16, NULL));
	/* Ranges outside one live allocation are refused. */
	CHECK_EQ(execmem_set_name(p, 4096, "too long"), -EINVAL);
	CHECK_EQ(execmem_set_name(p, 0, "empty"), -EINVAL);
	CHECK_EQ(execmem_set_name(p, 8, ""), -EINVAL);
	int local;
	CHECK_EQ(execmem_set_name(&local, 4, "stack"), -EINVAL);
	/* Names die with the allocation. */
	CHECK_EQ(execmem_set_name(p, 8, "doomed"), 0);
	CHECK_EQ(execmem_free(p), 0);
	CHECK(name_is(p, NULL));
	struct execmem_arena *arena = execmem_arena_create(NULL);
	uint8_t *q = arena ? execmem_arena_alloc(arena, EXECMEM_CODE, 64) : NULL;
	CHECK(q != NULL && execmem_set_name(q, 64, "in arena") == 0);
	CHECK(execmem_arena_destroy(arena) == 0 && name_is(q, NULL));
}

static char *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	char *data = f ? malloc(1 << 20) : NULL;
	*size = data ? fread(data, 1, 1 << 20, f) : 0;
	if (f)
		fclose(f);
	return data;
}

static int map_has(const char *map, const void *addr, size_t len, const char *name)
{
	char line[128];
	snprintf(line, sizeof line, "%lx %lx %s\n", (unsigned long)(uintptr_t)addr,
		 (unsigned long)len, name);
	return strstr(map, line) != NULL;
}

struct load_seen {
	int loads, closes, header_ok;
	uint8_t last_code[64];
};

/* Walks the records; notes CODE_LOADs of name at addr and the CODE_CLOSE. */
static struct load_seen read_dump(const uint8_t *d, size_t size, const void *addr,
				  const char *name)
{
	struct load_seen s = { 0 };
	uint32_t h[6];
	memcpy(h, d, sizeof h);
	s.header_ok = size >= 40 && h[0] == 0x4A695444 && h[1] == 1 && h[2] == 40 &&
		      h[3] == EM_X86_64 && h[5] == (uint32_t)getpid();
	for (size_t at = 40; at + 16 <= size;) {
		uint32_t id, total;
		memcpy(&id, d + at, 4);
		memcpy(&total, d + at + 4, 4);
		if (total < 16 || total > size - at)
			break;
		uint64_t vma, code_size;
		memcpy(&vma, d + at + 24, 8);
		memcpy(&code_size, d + at + 40, 8);
		const char *rname = (const char *)d + at + 56;
		if (id == 0 && vma == (uintptr_t)addr && strcmp(rname, name) == 0 &&
		    code_size <= sizeof s.last_code) {
			s.loads++;
			memcpy(s.last_code, rname + strlen(rname) + 1, code_size);
		}
		s.closes += id == 3;
		at += total;
	}
	return s;
}

static void test_perf_files(void)
{
	char map_path[64], dump_path[128];
	snprintf(map_path, sizeof map_path, "/tmp/perf-%d.map", (int)getpid());
	snprintf(dump_path, sizeof dump_path, "%s/sub/jit-%d.dump", dump_dir, (int)getpid());
	size_t len;
	uint8_t *early = alloc_code(5, &len);
	CHECK_EQ(execmem_set_name(early, len, "named_before"), 0);
	CHECK_EQ(execmem_perf_enable(EXECMEM_PERF_MAP | EXECMEM_PERF_JITDUMP), 0);
	CHECK_EQ(execmem_perf_enable(0x80), -EINVAL);
	uint8_t *p = alloc_code(6, &len);
	CHECK_EQ(execmem_set_name(p, len, "jit_six"), 0);
	uint8_t seven[64];
	size_t len7 = tu_emit_return(seven, 7);
	CHECK_EQ(execmem_write(p, seven, len7), 0);
	CHECK_EQ(execmem_perf_enable(0), 0);

	size_t size;
	char *map = read_file(map_path, &size);
	CHECK(map && (map[size < (1 << 20) ? size : 0] = 0, 1));
	CHECK(map && map_has(map, early, len, "named_before"));
	CHECK(map && map_has(map, p, len, "jit_six"));
	/* The rewrite changed no name nor range: one line, not two. */
	CHECK(map && strstr(strstr(map, "jit_six") + 1, "jit_six") == NULL);
	free(map);
	uint8_t *dump = (uint8_t *)read_file(dump_path, &size);
	CHECK(dump != NULL);
	if (dump) {
		struct load_seen s = read_dump(dump, size, p, "jit_six");
		CHECK(s.header_ok);
		CHECK_EQ(s.loads, 2);
		CHECK(memcmp(s.last_code, seven, len7) == 0);
		CHECK_EQ(s.closes, 1);
		CHECK_EQ(read_dump(dump, size, early, "named_before").loads, 1);
	}
	free(dump);
	CHECK(execmem_free(early) == 0 && execmem_free(p) == 0);
	unlink(map_path);
	unlink(dump_path);
}

static int file_has(const char *path, const char *text)
{
	size_t size;
	char *data = read_file(path, &size);
	int found = data && size < (1 << 20) && (data[size] = 0, strstr(data, text) != NULL);
	free(data);
	return found;
}

/* A child of fork() writes files of its own, starting with the names it
 * inherited, and leaves its parent's alone. */
static void test_perf_fork(void)
{
	char parent_map[64], child_map[64], child_dump[128];
	size_t len;
	uint8_t *p = alloc_code(3, &len);
	CHECK_EQ(execmem_perf_enable(EXECMEM_PERF_MAP | EXECMEM_PERF_JITDUMP), 0);
	CHECK_EQ(execmem_set_name(p, len, "before_fork"), 0);
	pid_t child = fork();
	if (child == 0) {
		uint8_t *q = alloc_code(4, &len);
		_exit(q && execmem_set_name(q, len, "in_child") == 0 ? 0 : 1);
	}
	int status = -1;
	CHECK(child > 0 && waitpid(child, &status, 0) == child && status == 0);
	CHECK_EQ(execmem_perf_enable(0), 0);
	snprintf(parent_map, sizeof parent_map, "/tmp/perf-%d.map", (int)getpid());
	snprintf(child_map, sizeof child_map, "/tmp/perf-%d.map", (int)child);
	snprintf(child_dump, sizeof child_dump, "%s/sub/jit-%d.dump", dump_dir, (int)child);
	CHECK(file_has(parent_map, "before_fork"));
	CHECK(!file_has(parent_map, "in_child"));
	CHECK(file_has(child_map, "before_fork") && file_has(child_map, "in_child"));
	size_t size;
	uint8_t *dump = (uint8_t *)read_file(child_dump, &size);
	CHECK(dump && read_dump(dump, size, p, "before_fork").loads == 1);
	free(dump);
	CHECK_EQ(execmem_free(p), 0);
	char parent_dump[128];
	snprintf(parent_dump, sizeof parent_dump, "%s/sub/jit-%d.dump", dump_dir, (int)getpid());
	unlink(parent_map);
	unlink(child_map);
	unlink(child_dump);
	unlink(parent_dump);
}

enum { RACERS = 4, ROUNDS = 300 };

/* Each thread names, rewrites, reads back and frees code of its own while
 * the others do the same: every name read back is the thread's own (the
 * free of another thread that had the same address before must not drop
 * it). */
static void *race(void *arg)
{
	long id = (long)arg, wrong = 0;
	uint8_t code[64];
	for (int i = 0; i < ROUNDS; i++) {
		char name[32], back[32];
		size_t len = tu_emit_return(code, i);
		uint8_t *p = execmem_alloc(EXECMEM_CODE, 128);
		snprintf(name, sizeof name, "racer_%ld_%d", id, i);
		wrong += !p || execmem_write(p, code, len) || execmem_set_name(p, len, name) ||
			 execmem_write(p, code, len) ||
			 execmem_get_name(p, back, sizeof back) != (int)strlen(name) ||
			 strcmp(back, name) || execmem_free(p);
	}
	return (void *)wrong;
}

static void test_threads(void)
{
	char map_path[64], dump_path[128];
	pthread_t threads[RACERS];
	CHECK_EQ(execmem_perf_enable(EXECMEM_PERF_MAP | EXECMEM_PERF_JITDUMP), 0);
	CHECK_EQ(execmem_gdb_enable(1), 0);
	for (long i = 0; i < RACERS; i++)
		CHECK_EQ(pthread_create(&threads[i], NULL, race, (void *)i), 0);
	for (int i = 0; i < RACERS; i++) {
		void *wrong = (void *)1;
		pthread_join(threads[i], &wrong);
		CHECK(wrong == NULL);
	}
	CHECK_EQ(execmem_gdb_enable(0), 0);
	CHECK_EQ(execmem_perf_enable(0), 0);
	snprintf(map_path, sizeof map_path, "/tmp/perf-%d.map", (int)getpid());
	snprintf(dump_path, sizeof dump_path, "%s/sub/jit-%d.dump", dump_dir, (int)getpid());
	CHECK(file_has(map_path, "racer_3_299"));
	unlink(map_path);
	unlink(dump_path);
}

/* Whether a registered symbol file holds a function symbol name at addr. */
static int registered(const void *addr, const char *name)
{
	for (struct jit_entry *e = __jit_debug_descriptor.first; e; e = e->next) {
		const Elf64_Ehdr *eh = (const Elf64_Ehdr *)e->symfile;
		const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->symfile + eh->e_shoff);
		for (unsigned i = 0; i < eh->e_shnum; i++) {
			if (sh[i].sh_type != SHT_SYMTAB)
				continue;
			const Elf64_Sym *sym = (const Elf64_Sym *)(e->symfile + sh[i].sh_offset);
			const char *str = e->symfile + sh[sh[i].sh_link].sh_offset;
			for (size_t k = 1; k < sh[i].sh_size / sizeof *sym; k++)
				if (strcmp(str + sym[k].st_name, name) == 0 &&
				    sh[sym[k].st_shndx].sh_addr + sym[k].st_value == (uintptr_t)addr)
					return 1;
		}
	}
	return 0;
}

/* Whether a registered symbol file has a section at addr. */
static int registered_range(const void *addr)
{
	for (struct jit_entry *e = __jit_debug_descriptor.first; e; e = e->next) {
		const Elf64_Ehdr *eh = (const Elf64_Ehdr *)e->symfile;
		const Elf64_Shdr *sh = (const Elf64_Shdr *)(e->symfile + eh->e_shoff);
		for (unsigned i = 1; i < eh->e_shnum; i++)
			if (sh[i].sh_addr == (uintptr_t)addr)
				return 1;
	}
	return 0;
}

static void test_gdb_descriptor(void)
{
	CHECK_EQ(__jit_debug_descriptor.version, 1);
	size_t len;
	uint8_t *p = alloc_code(8, &len);
	CHECK_EQ(execmem_set_name(p, 16, "gdb_a"), 0);
	CHECK(!registered(p, "gdb_a"));
	CHECK_EQ(execmem_gdb_enable(1), 0);
	CHECK(registered(p, "gdb_a"));
	CHECK_EQ(execmem_set_name(p + 64, 16, "gdb_b"), 0);
	CHECK(registered(p + 64, "gdb_b") && registered(p, "gdb_a"));
	/* 100 names take two symbol files, not one each. */
	uint8_t *many[100];
	for (int i = 0; i < 100; i++) {
		char name[16];
		many[i] = alloc_code(i, &len);
		snprintf(name, sizeof name, "many_%d", i);
		CHECK(many[i] && execmem_set_name(many[i], len, name) == 0);
	}
	int files = 0;
	for (struct jit_entry *e = __jit_debug_descriptor.first; e; e = e->next)
		files++;
	CHECK_EQ(files, 2);
	CHECK(registered(many[99], "many_99"));
	CHECK_EQ(execmem_free(p), 0);
	CHECK(!registered(p, "gdb_a") && !registered(p + 64, "gdb_b"));
	for (int i = 0; i < 100; i++)
		execmem_free(many[i]);
	CHECK(__jit_debug_descriptor.first == NULL);
	CHECK_EQ(execmem_gdb_enable(0), 0);
}

int main(int argc, char **argv);

struct walk {
	const void *jit;
	int through_jit, reached_main;
};

static _Unwind_Reason_Code step(struct _Unwind_Context *context, void *arg)
{
	struct walk *w = arg;
	void *fn = _Unwind_FindEnclosingFunction((void *)_Unwind_GetIP(context));
	w->through_jit |= fn == w->jit;
	w->reached_main |= fn == (void *)(uintptr_t)main;
	return _URC_NO_REASON;
}

static struct walk walk;

static void walk_stack(void)
{
	_Unwind_Backtrace(step, &walk);
}

static void test_unwind(void)
{
	static uint8_t eh[FRAMED_CALL_EH_FRAME_SIZE];
	uint8_t *code = execmem_alloc(EXECMEM_CODE, 64);
	CHECK(code && execmem_write(code, framed_call, sizeof framed_call) == 0);
	framed_call_eh_frame(eh, code);
	CHECK_EQ(execmem_set_unwind(code, sizeof framed_call, eh, sizeof eh - 4), -EINVAL);
	CHECK_EQ(execmem_set_unwind(code, 0, eh, sizeof eh), -EINVAL);
	CHECK_EQ(execmem_set_unwind(eh, 4, eh, sizeof eh), -EINVAL);
	CHECK_EQ(execmem_set_unwind(code, sizeof framed_call, eh, sizeof eh), 0);
	walk = (struct walk){ code, 0, 0 };
	((void (*)(void (*)(void)))(uintptr_t)code)(walk_stack);
	CHECK(walk.through_jit && walk.reached_main);
	CHECK(registered_range(code));
	CHECK(_Unwind_FindEnclosingFunction(code + 6) == code);
	CHECK_EQ(execmem_free(code), 0);
	CHECK(_Unwind_FindEnclosingFunction(code + 6) == NULL);
	CHECK(!registered_range(code));
}

/* A module is registered with its symbols at their load addresses, its
 * functions are named, and both go when it is unloaded. */
static void test_module(const char *path)
{
	struct execmem_module *m = NULL;
	CHECK_EQ(execmem_module_load_file(path, NULL, &m), 0);
	void *f = m ? execmem_module_symbol(m, "f") : NULL;
	CHECK(f != NULL);
	CHECK(registered(f, "f"));
	CHECK(name_is(f, "f"));
	CHECK_EQ(execmem_module_unload(m), 0);
	CHECK(!registered(f, "f"));
	CHECK(name_is(f, NULL));
}

int main(int argc, char **argv)
{
	/* The environment must not decide for this test. */
	unsetenv("EXECMEM_PERF");
	unsetenv("EXECMEM_GDB");
	if (!mkdtemp(dump_dir))
		return 1;
	char sub[64];
	snprintf(sub, sizeof sub, "%s/sub", dump_dir);
	setenv("JITDUMPDIR", sub, 1);
	test_names();
	test_perf_files();
	test_perf_fork();
	test_gdb_descriptor();
	test_unwind();
	test_threads();
	if (argc > 1)
		test_module(argv[1]);
	rmdir(sub);
	rmdir(dump_dir);
	return tu_finish("test_observe");
}
