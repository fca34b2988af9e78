/*
 * llvm_mcjit - MCJIT on execmem memory through the LLVM C API's memory
 * manager callbacks (LLVMCreateSimpleMCJITMemoryManager).
 *
 * RuntimeDyld, MCJIT's linker, copies each section into the memory the
 * callbacks return and applies relocations there: it writes and links at
 * one address.  An arena made with params.write = EXECMEM_WRITE_IN_PLACE
 * gives such memory: a write window opened on an allocation of that arena
 * is the allocation itself, writable and not executable until the window
 * closes.  So: allocate and open the window in the section callbacks, close
 * every window in the finalize callback (which publishes the code), free in
 * the destroy callback.  The example checks the result, that no mapping is
 * writable and executable, and that every allocation was freed.
 */
#include <execmem.h>

#include <llvm-c/Core.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/IRReader.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm/Config/llvm-config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* LLVM 15 made pointers opaque: "ptr" where LLVM 14 names the pointee. */
#if LLVM_VERSION_MAJOR >= 15
#define PTR(pointee) "ptr"
#else
#define PTR(pointee) pointee "*"
#endif

static const char program[] =
	"@fmt = private constant [33 x i8] c\"JIT code: host_scale(%ld) = %ld\\0A\\00\"\n"
	"@calls = global i64 0\n"
	"declare i32 @printf(" PTR("i8") ", ...)\n"
	"declare i64 @host_scale(i64)\n"
	"define i64 @jit_main(i64 %x) {\n"
	"  %y = call i64 @host_scale(i64 %x)\n"
	"  %f = getelementptr inbounds [33 x i8], " PTR("[33 x i8]") " @fmt, i64 0, i64 0\n"
	"  call i32 (" PTR("i8") ", ...) @printf(" PTR("i8") " %f, i64 %x, i64 %y)\n"
	"  %n = load i64, " PTR("i64") " @calls\n"
	"  %n1 = add i64 %n, 1\n"
	"  store i64 %n1, " PTR("i64") " @calls\n"
	"  %r = add i64 %y, %n1\n"
	"  ret i64 %r\n"
	"}\n";

static long host_scale(long x)
{
	return x * 10;
}

/* What the callbacks share: every allocation, and whether its window is open. */
struct section {
	void *memory;
	bool open;
};

struct jit_memory {
	struct execmem_arena *arena;
	struct section *sections;
	size_t count, capacity;
};

static uint8_t *allocate(struct jit_memory *m, enum execmem_type type, uintptr_t size,
			 unsigned alignment)
{
	if (m->count == m->capacity) {
		size_t capacity = m->capacity ? 2 * m->capacity : 16;
		struct section *s = realloc(m->sections, capacity * sizeof(*s));
		if (!s)
			return NULL;
		m->sections = s;
		m->capacity = capacity;
	}
	/* execmem has no empty allocation; an empty section gets a byte. */
	void *memory = execmem_arena_alloc_aligned(m->arena, type, size ? size : 1, alignment);
	if (!memory)
		return NULL;
	/* In place: the window is the allocation itself. */
	if (execmem_write_begin(memory) != memory) {
		execmem_free(memory);
		return NULL;
	}
	m->sections[m->count++] = (struct section){ memory, true };
	return memory;
}

static uint8_t *allocate_code(void *opaque, uintptr_t size, unsigned alignment, unsigned id,
			      const char *name)
{
	(void)id;
	(void)name;
	/* CODE_NEAR: within 32-bit reach of the data sections and of this
	 * program, should the code be compiled for the small code model. */
	return allocate(opaque, EXECMEM_CODE_NEAR, size, alignment);
}

static uint8_t *allocate_data(void *opaque, uintptr_t size, unsigned alignment, unsigned id,
			      const char *name, LLVMBool read_only)
{
	(void)id;
	(void)name;
	return allocate(opaque, read_only ? EXECMEM_RODATA : EXECMEM_DATA, size, alignment);
}

/* Close every open window: the sections become what they are meant to be (RX, R, RW). */
static LLVMBool finalize(void *opaque, char **error)
{
	struct jit_memory *m = opaque;
	int rc = 0;
	for (size_t i = 0; i < m->count; i++) {
		if (!m->sections[i].open)
			continue;
		m->sections[i].open = false;
		int err = execmem_write_end(m->sections[i].memory);
		rc = rc ? rc : err;
	}
	if (rc && error) {
		char text[128];
		snprintf(text, sizeof(text), "execmem_write_end: %s", strerror(-rc));
		*error = strdup(text);
	}
	return rc != 0;
}

static void destroy(void *opaque)
{
	struct jit_memory *m = opaque;
	for (size_t i = 0; i < m->count; i++) {
		if (m->sections[i].open)
			execmem_write_end(m->sections[i].memory);
		execmem_free(m->sections[i].memory);
	}
	free(m->sections);
	m->sections = NULL;
	m->count = m->capacity = 0;
}

/* W+X mappings of this process (execmem_audit(), which knows a tool's own). */
static int count_wx_mappings(void)
{
	struct execmem_audit_report report;
	return execmem_audit(0, NULL, NULL, &report) ? -1 : (int)report.wx;
}

static LLVMModuleRef parse(LLVMContextRef context)
{
	LLVMMemoryBufferRef buffer =
		LLVMCreateMemoryBufferWithMemoryRangeCopy(program, strlen(program), "program");
	LLVMModuleRef module = NULL;
	char *message = NULL;
	if (LLVMParseIRInContext(context, buffer, &module, &message)) {
		fprintf(stderr, "llvm_mcjit: %s\n", message);
		LLVMDisposeMessage(message);
		return NULL;
	}
	return module;
}

/* JIT the program, call it, check it; the engine (and its memory) is disposed. */
static int run(struct jit_memory *memory, LLVMContextRef context)
{
	LLVMModuleRef module = parse(context);
	if (!module)
		return 1;
	struct LLVMMCJITCompilerOptions options;
	LLVMInitializeMCJITCompilerOptions(&options, sizeof(options));
	options.MCJMM = LLVMCreateSimpleMCJITMemoryManager(memory, allocate_code, allocate_data,
							   finalize, destroy);
	LLVMExecutionEngineRef engine;
	char *message = NULL;
	if (LLVMCreateMCJITCompilerForModule(&engine, module, &options, sizeof(options), &message)) {
		fprintf(stderr, "llvm_mcjit: %s\n", message);
		LLVMDisposeMessage(message);
		return 1;
	}
	long (*jit_main)(long) = (long (*)(long))LLVMGetFunctionAddress(engine, "jit_main");
	long first = jit_main ? jit_main(4) : -1, second = jit_main ? jit_main(4) : -1;
	int wx = count_wx_mappings();
	printf("jit_main at %p returned %ld then %ld; %d W+X mappings\n", (void *)jit_main, first,
	       second, wx);
	LLVMDisposeExecutionEngine(engine); /* calls destroy() */
	return first == 41 && second == 42 && wx == 0 ? 0 : 1;
}

int main(void)
{
	struct execmem_params params;
	execmem_params_init(&params);
	params.write = EXECMEM_WRITE_IN_PLACE;
	struct jit_memory memory = { .arena = execmem_arena_create(&params) };
	if (!memory.arena) {
		fprintf(stderr, "llvm_mcjit: execmem_arena_create: %s (%s)\n", strerror(errno),
			execmem_last_error());
		return 1;
	}
	LLVMLinkInMCJIT();
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
	LLVMAddSymbol("host_scale", (void *)host_scale);

	LLVMContextRef context = LLVMContextCreate();
	int rc = run(&memory, context);
	LLVMContextDispose(context);

	struct execmem_stats stats;
	execmem_arena_stats(memory.arena, &stats);
	printf("%s mode, %zu allocations left\n", execmem_mode_name(stats.mode), stats.live_allocations);
	if (stats.live_allocations != 0)
		rc = 1;
	execmem_arena_destroy(memory.arena);
	return rc;
}
