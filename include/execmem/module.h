/*
 * execmem/module.h - load ELF relocatable objects (.o) and static archives
 * (.a) into typed execmem memory: a user-space insmod.
 *
 * OVERVIEW
 *   A module is linked from one or more inputs, as a static linker links a
 *   program: relocatable objects are linked whole; of a static archive, only
 *   the members that define a symbol still undefined (searched again until
 *   nothing changes, as if all archives were one `ld --start-group`), or
 *   every member with EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE.  Its sections go to
 *   typed memory:
 *     executable sections                       EXECMEM_CODE_NEAR
 *     read-only data, .init_array/.fini_array   EXECMEM_RODATA
 *     writable data, .bss, COMMON symbols       EXECMEM_DATA
 *     .data..ro_after_init                      EXECMEM_RO_AFTER_INIT,
 *                                               sealed after the constructors
 *   Sections of one type are packed together into blocks of up to 512 KiB
 *   (a bigger section gets a block of its own), one execmem allocation each,
 *   so small modules share execmem's 2 MiB chunks and reloading reuses warm
 *   memory.  Sections are copied in and relocated through execmem write
 *   windows (execmem_write_begin()/execmem_write_end()), so no page is ever
 *   writable and executable during a load, and code becomes executable only
 *   once it is complete.
 *
 *   Branches to targets out of reach (host functions, libc) go through PLT
 *   stubs at the end of the module's code; GOT-relative references use GOT
 *   entries at the end of its read-only data.  Other PC-relative references
 *   to imports (PIE code reading libc's stdin, aarch64 ADRP to data) decide
 *   the placement: the module lies where all of them reach; on x86-64 an
 *   address taken with lea or a pointer loaded with mov that is out of reach
 *   goes through a GOT entry or a load stub instead.  When no placement
 *   reaches them all, the load fails naming the symbols (docs/modules.md,
 *   "Placement").  Objects built with -fno-pic that use 32-bit absolute
 *   addresses (R_X86_64_32/32S) are placed in the low 2 GiB of the address
 *   space.
 *
 * SYMBOL RESOLUTION
 *   An undefined symbol is looked up, in order, in: the module itself (its
 *   objects and the archive members they pull in); the resolver callback of
 *   the options, if any; the exported symbols of modules loaded earlier
 *   (global symbols with default visibility); the loader's C runtime pieces
 *   (below); the host process through dlsym(RTLD_DEFAULT) (unless
 *   EXECMEM_MODULE_NO_HOST_SYMBOLS).  A module that takes a symbol of an
 *   earlier module depends on it: the earlier module cannot be unloaded
 *   first.  An unresolved weak reference becomes 0.  Host symbols are only
 *   visible when the host program exports them (link with -rdynamic, or
 *   CMake's ENABLE_EXPORTS).
 *
 * SUPPORTED
 *   ELF64 little-endian ET_REL objects for x86-64 and aarch64 from gcc and
 *   clang (-O0..-O3, -fno-pic, -fPIC, -fPIE, ld -r); GNU and BSD archives.
 *   x86-64 relocations: NONE 64 PC32 PLT32 32 32S 16 PC16 8 PC8 PC64
 *   GOTPCREL GOTPCRELX REX_GOTPCRELX GOTPCREL64 GOTOFF64 GOTPC32 GOTPC64.
 *   aarch64 relocations: NONE ABS64 ABS32 ABS16 PREL64 PREL32 PREL16 CALL26
 *   JUMP26 CONDBR19 TSTBR14 ADR_PREL_PG_HI21(_NC) ADR_PREL_LO21
 *   ADD_ABS_LO12_NC LDST8/16/32/64/128_ABS_LO12_NC ADR_GOT_PAGE
 *   LD64_GOT_LO12_NC MOVW_UABS_G0..G3(_NC).
 *   Constructors: .init_array (with priorities), .ctors; destructors:
 *   .fini_array, .dtors, then what the module registered with atexit() or
 *   __cxa_atexit() (C++ static destructors), as dlclose() does.
 *   C++: each object's .eh_frame is registered with the unwinder
 *   (execmem/unwind.h), so exceptions cross module code; of each COMDAT
 *   group one copy is used: the first of the load, or the host's or an
 *   earlier module's when those define all its exported symbols.
 *
 * C RUNTIME PIECES
 *   glibc gives programs and shared libraries atexit(), at_quick_exit() and
 *   pthread_atfork() from libc_nonshared.a, linked into each of them, so the
 *   process has no copy to resolve against.  The loader links its own copy
 *   into every module that calls them (taken like an archive member, after
 *   the inputs), bound to the module's own __dso_handle; a module's
 *   __cxa_atexit(), __cxa_at_quick_exit() and __register_atfork() with its
 *   own handle are kept by the loader, and __stack_chk_fail_local is the C library's
 *   __stack_chk_fail.  At unload, after the .fini_array/.dtors functions (the
 *   order dlclose() has), the functions the module registered with atexit()
 *   or __cxa_atexit() run, last registered first; its at_quick_exit()
 *   functions are dropped and its fork handlers removed.  A module still
 *   loaded when the process exits has its atexit() functions run by exit(),
 *   as a shared library's are.
 *
 * NOT SUPPORTED (the load fails and says what and where)
 *   Thread-local storage (a module's own thread-local variables: glibc
 *   gives static TLS and TLS module IDs only to what its dynamic linker
 *   loads), IFUNC symbols, SHT_REL relocation sections, relocation types
 *   not listed above, thin archives, big-endian or 32-bit objects, LTO
 *   bytecode.
 *
 * ERRORS
 *   Functions return 0 or a negative errno value.  execmem_module_last_error()
 *   then gives a sentence naming the file, section, symbol and relocation
 *   concerned.  A failed load leaves nothing behind: no memory, no
 *   dependency, no registered symbol.
 *
 * THREADS
 *   Every function may be called from any thread; loads and unloads are
 *   serialised only where they touch the list of loaded modules.  A module
 *   must not be unloaded while another thread uses it or its code.
 */
#ifndef EXECMEM_MODULE_H
#define EXECMEM_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include "execmem.h"

#ifdef __cplusplus
extern "C" {
#endif

struct execmem_module;

/*
 * Resolver callback: return the address of symbol name, or NULL to let the
 * default lookup continue.  Called during execmem_module_load*() from the
 * loading thread, without any execmem lock held.
 */
typedef void *(*execmem_module_resolver)(const char *name, void *context);

/* Bits of struct execmem_module_options.flags. */
#define EXECMEM_MODULE_NO_HOST_SYMBOLS 0x1 /* never look symbols up in the host with dlsym() */
#define EXECMEM_MODULE_NO_EXPORT       0x2 /* do not offer this module's symbols to later modules */
#define EXECMEM_MODULE_LINK_ONLY       0x4 /* place and relocate, but run no constructor or
					    * destructor; objects of another architecture are
					    * accepted (for tests and fuzzing) */

/*
 * Check callback: called once the module is linked (its symbols can be
 * looked up with execmem_module_symbol() and execmem_module_foreach_symbol())
 * and before any of its constructors runs.  Return 0 to go on, or a
 * negative errno value to fail the load with it: nothing of the module has
 * run then.  Called from the loading thread without any execmem lock held;
 * it must not unload the module.
 */
typedef int (*execmem_module_check)(const struct execmem_module *module, void *context);

struct execmem_module_options {
	struct execmem_arena *arena;      /* NULL: the default arena; otherwise a live
					   * arena, which must outlive the module */
	execmem_module_resolver resolver; /* NULL: none */
	void *resolver_context;
	const char *name;                 /* module name; NULL: the first input's name */
	unsigned flags;                   /* EXECMEM_MODULE_* */
	execmem_module_check check;       /* NULL: none */
	void *check_context;
	const char *const *require;       /* NULL, or a NULL-terminated list of symbols
					   * that pull archive members in as if something
					   * referenced them (ld -u) */
};

/* execmem_module_options_init - fill *options with the defaults (all zero). */
EXECMEM_API void execmem_module_options_init(struct execmem_module_options *options);

/* Where the bytes of one input of execmem_module_load() come from. */
enum execmem_module_input_kind {
	EXECMEM_MODULE_INPUT_FILE,   /* path */
	EXECMEM_MODULE_INPUT_BUFFER, /* data, size */
	EXECMEM_MODULE_INPUT_FD,     /* fd */
};

/* Bits of struct execmem_module_input.flags. */
#define EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE 0x1 /* link every member of this archive,
						* needed or not (ld --whole-archive) */

/* One object or archive to link into a module. */
struct execmem_module_input {
	enum execmem_module_input_kind kind;
	const char *path;        /* INPUT_FILE: the file to read */
	const void *data;        /* INPUT_BUFFER: the image, not kept after the call */
	size_t size;             /* INPUT_BUFFER: its size in bytes */
	int fd;                  /* INPUT_FD: an open descriptor, read from offset 0 and
				  * left open */
	const char *name;        /* in messages and the section map; NULL: path, or
				  * "<buffer>" / "<fd N>" */
	unsigned flags;          /* EXECMEM_MODULE_INPUT_* */
};

/*
 * execmem_module_load - link the inputs into one module and load it.
 *   inputs   ninputs objects and archives.  Objects are linked whole; an
 *            archive contributes the members that define a symbol some
 *            linked object references and nothing defines yet (strongly:
 *            a weak reference pulls nothing in), found through its symbol
 *            index when it has one ("/" or "/SYM64/"), else through the
 *            members' symbol tables, searched over all archives again until
 *            no member is added (so the order of archives does not matter);
 *            every member with EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE.
 *   options  NULL for the defaults.
 *   out      receives the module on success, is set to NULL on failure.
 * Constructors have run and .data..ro_after_init is sealed when it returns.
 * Returns 0, or
 *   -EINVAL   NULL inputs or out, ninputs 0, an input with an unknown kind
 *             or flags, a NULL path or data; bad options (options->arena
 *             destroyed)
 *   -EBADF    an INPUT_FD input whose fd is not an open descriptor
 *   -ENOEXEC  not an ELF relocatable object or archive, malformed input,
 *             another architecture (without EXECMEM_MODULE_LINK_ONLY),
 *             inputs for different architectures, an archive of which no
 *             member is needed and nothing else to link
 *   -ENOTSUP  a feature the loader does not support (TLS, IFUNC, a
 *             relocation type, SHT_REL, LTO bytecode, thin archives)
 *   -ENOENT   an undefined symbol that nothing defines
 *   -EEXIST   a symbol defined twice inside the module
 *   -ERANGE   a relocation whose value does not fit (target out of reach)
 *   -EFBIG    more than 256 MiB to load
 *   -ENOMEM   no memory, or no address within reach
 *   the error options->check returned;
 *   an error of open()/fstat()/mmap()/read() for a file or descriptor
 *   (-ENOENT, -EACCES, -EISDIR, ...).
 * execmem_module_last_error() names the input concerned.
 * Thread-safety: safe.
 */
EXECMEM_API int execmem_module_load(const struct execmem_module_input *inputs, size_t ninputs,
				    const struct execmem_module_options *options,
				    struct execmem_module **out);

/*
 * execmem_module_load_file - load the object or archive at path (one input
 * of execmem_module_load(); every member of an archive is linked, as
 * EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE does).
 *   options  NULL for the defaults.
 *   out      receives the module on success, is set to NULL on failure.
 * Constructors have run and .data..ro_after_init is sealed when it returns.
 * Returns 0, or
 *   -EINVAL   NULL path or out, bad options (options->arena destroyed)
 *   -ENOEXEC  not an ELF relocatable object or archive, malformed input,
 *             another architecture (without EXECMEM_MODULE_LINK_ONLY)
 *   -ENOTSUP  a feature the loader does not support (TLS, IFUNC, a
 *             relocation type, SHT_REL, LTO bytecode, thin archives)
 *   -ENOENT   an undefined symbol that nothing defines
 *   -EEXIST   a symbol defined twice inside the module
 *   -ERANGE   a relocation whose value does not fit (target out of reach),
 *             or PC-relative references no placement can all reach
 *   -EFBIG    more than 256 MiB to load
 *   -ENOMEM   no memory, or no address within reach
 *   an error of open()/fstat()/mmap() for the file (-ENOENT, -EACCES,
 *   -EISDIR, ...).
 * Thread-safety: safe.
 */
EXECMEM_API int execmem_module_load_file(const char *path,
					 const struct execmem_module_options *options,
					 struct execmem_module **out);

/*
 * execmem_module_load_buffer - like execmem_module_load_file() for an
 * object or archive image of size bytes at data.  The buffer is not kept:
 * the caller may free it once the call returns.  name names the module in
 * messages (NULL: "<buffer>") unless options->name is set.
 * Returns as execmem_module_load_file().  Thread-safety: safe.
 */
EXECMEM_API int execmem_module_load_buffer(const void *data, size_t size, const char *name,
					   const struct execmem_module_options *options,
					   struct execmem_module **out);

/*
 * execmem_module_load_fd - like execmem_module_load_file() for the object or
 * archive open at fd (a regular file or memfd is mapped, anything else such
 * as a pipe is read to its end).  fd is read from offset 0 of a file, and
 * left open.  name names the module in messages (NULL: "<fd N>") unless
 * options->name is set.
 * Returns as execmem_module_load_file(), and -EBADF for a descriptor that
 * is not open.  Thread-safety: safe.
 */
EXECMEM_API int execmem_module_load_fd(int fd, const char *name,
				       const struct execmem_module_options *options,
				       struct execmem_module **out);

/*
 * execmem_module_unload - run the destructors of module (in reverse order of
 * the constructors), free all its memory (code is refilled with trap
 * instructions) and drop its references to the modules it used.
 * Returns 0, -EINVAL for NULL, or -EBUSY when another loaded module still
 * uses one of its symbols (nothing is done then; execmem_module_last_error()
 * names that module).
 * Thread-safety: safe, but no thread may run the module's code meanwhile.
 * Unload a module before destroying the arena it was loaded into: the
 * module's memory goes with the arena, and its destructors with it.
 */
EXECMEM_API int execmem_module_unload(struct execmem_module *module);

/*
 * execmem_module_symbol - address of the global (or weak) symbol name that
 * module defines, or NULL (module or name NULL, or no such symbol).
 * Thread-safety: safe while the module is loaded.
 */
EXECMEM_API void *execmem_module_symbol(const struct execmem_module *module, const char *name);

/* execmem_module_name - the module's name (never NULL for a loaded module). */
EXECMEM_API const char *execmem_module_name(const struct execmem_module *module);

/* One symbol a module defines, as passed to execmem_module_foreach_symbol(). */
struct execmem_module_symbol_info {
	const char *name;
	void *address;
	size_t size;
	enum execmem_type type;  /* memory type of the section that holds it */
	int is_function;         /* STT_FUNC */
	int is_exported;         /* offered to later modules */
};

/*
 * execmem_module_foreach_symbol - call fn for every global or weak symbol the
 * module defines, in the order of the object's symbol table, until fn
 * returns non-zero.  Returns 0, fn's non-zero value, or -EINVAL.
 * Thread-safety: safe while the module is loaded.
 */
EXECMEM_API int execmem_module_foreach_symbol(const struct execmem_module *module,
					      int (*fn)(const struct execmem_module_symbol_info *info,
							void *context),
					      void *context);

/* Where one loaded section went, as passed to execmem_module_foreach_section(). */
struct execmem_module_section_info {
	const char *name;         /* e.g. ".text.hot", "<plt>", "<got>", "<common>", "<stubs>" */
	const char *object;       /* member or file name it came from */
	void *address;
	size_t size;
	enum execmem_type type;
};

/*
 * execmem_module_foreach_section - call fn for every loaded section (and the
 * PLT, GOT and COMMON areas the loader made) until fn returns non-zero.
 * Returns 0, fn's non-zero value, or -EINVAL.
 * Thread-safety: safe while the module is loaded.
 */
EXECMEM_API int execmem_module_foreach_section(const struct execmem_module *module,
					       int (*fn)(const struct execmem_module_section_info *info,
							 void *context),
					       void *context);

/* The stages of a load, in the order they run (copy, added later, runs
 * inside relocate, whose time leaves it out), for execmem_module_load_times(). */
enum execmem_module_stage {
	EXECMEM_MODULE_STAGE_READ,     /* map or read the inputs, and unmap them at the end */
	EXECMEM_MODULE_STAGE_PARSE,    /* parse and check each object linked */
	EXECMEM_MODULE_STAGE_SELECT,   /* pick the archive members (their parsing aside) */
	EXECMEM_MODULE_STAGE_LAYOUT,   /* sections into blocks, symbols, relocation scan */
	EXECMEM_MODULE_STAGE_RESOLVE,  /* look the imports up */
	EXECMEM_MODULE_STAGE_PLACE,    /* allocate the blocks within reach */
	EXECMEM_MODULE_STAGE_RELOCATE, /* relocate the sections (their copying aside) */
	EXECMEM_MODULE_STAGE_PUBLISH,  /* close the windows, constructors, seal, tools */
	EXECMEM_MODULE_STAGE_COPY,     /* copy the sections' bytes into the module */
	EXECMEM_MODULE_STAGES
};

/* Counters of one module, from execmem_module_stats(). */
struct execmem_module_stats {
	size_t objects;            /* objects linked (archive members) */
	size_t sections;           /* sections loaded */
	size_t relocations;        /* relocations applied */
	size_t plt_stubs;          /* PLT stubs made */
	size_t got_entries;        /* GOT entries made */
	size_t bytes[EXECMEM_TYPE_MAX]; /* bytes allocated, by memory type */
	int low32;                 /* placed in the low 2 GiB for 32-bit absolute relocations */
};

/* execmem_module_stats - fill *out.  Returns 0 or -EINVAL. */
EXECMEM_API int execmem_module_stats(const struct execmem_module *module,
				     struct execmem_module_stats *out);

/*
 * execmem_module_load_times - how long each stage of the module's load took,
 * in wall-clock nanoseconds: ns[stage] for the first count stages of enum
 * execmem_module_stage (a count above EXECMEM_MODULE_STAGES is cut to it;
 * the stages of a later version beyond count are left out).  Measured with
 * one clock read at the end of each stage and two around the parsing of each
 * object and the copying of each run of sections (about 128 KiB).  Returns
 * the number of stages filled, or -EINVAL (NULL module, or
 * NULL ns with a non-zero count).
 * Thread-safety: safe while the module is loaded.
 */
EXECMEM_API int execmem_module_load_times(const struct execmem_module *module, uint64_t *ns,
					  size_t count);

/*
 * execmem_module_last_error - a sentence saying why the calling thread's last
 * failed module call failed, or "".  Valid until the thread's next module call.
 */
EXECMEM_API const char *execmem_module_last_error(void);

/* execmem_module_type_name - "code", "code_near", "data", "rodata", "ro_after_init". */
EXECMEM_API const char *execmem_module_type_name(enum execmem_type type);

#ifdef __cplusplus
}
#endif
#endif
