/*
 * cmd_load.c - `execmem load`: link objects, archives and -l libraries into
 * one module with execmem's module loader, list its symbols, show where its
 * sections went, call one of its functions with integer arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "execmem/module.h"
#include "load_libs.h"

#define MAX_CALL_ARGS 6

static void usage_load(FILE *out)
{
	fprintf(out,
		"usage: execmem load [OPTIONS] FILE.o|FILE.a|-l NAME ... [--call SYMBOL [INT ARGS...]]\n"
		"  Links the objects and archives into one module, as the static linker\n"
		"  would, and loads it into execmem memory: code near the program, data and\n"
		"  read-only data near the code, .data..ro_after_init sealed after the\n"
		"  constructors.  Objects are linked whole; of an archive, the members that\n"
		"  define a symbol still undefined (all archives are searched again until\n"
		"  nothing is added).  Other undefined symbols come from the program, the\n"
		"  C library and the -l libraries.\n"
		"  --whole-archive     link every member of the archives that follow\n"
		"  --no-whole-archive  back to linking only the members needed\n"
		"  -l NAME, -lNAME     in each -L directory, then /lib/<multiarch>, /usr/lib/...:\n"
		"                      libNAME.so (opened with dlopen, its symbols used), or\n"
		"                      libNAME.a (linked like an archive), or libNAME.so.N;\n"
		"                      -l :FILE for an exact file name\n"
		"  -L DIR, -LDIR       search DIR first for every -l, wherever it is\n"
		"  -u SYMBOL           link the archive member that defines SYMBOL\n"
		"  --list              the symbols it defines: address, memory type, size, name\n"
		"  --maps              where each section went (and the PLT, GOT and COMMON areas)\n"
		"  --call SYMBOL ...   call the function SYMBOL with up to %d integer arguments\n"
		"                      (long) and print the result; checked before any\n"
		"                      constructor runs, and pulls in its archive member\n"
		"Exit status: 0 success, 2 usage (also: --call of a symbol that is not a\n"
		"function of the module), 3 the module could not be loaded.\n",
		MAX_CALL_ARGS);
}

struct load_request {
	struct execmem_module_input *inputs;
	const char **libraries;     /* per input: NAME of -l NAME, or NULL */
	size_t ninputs;
	char **owned;               /* archive paths found for -l */
	size_t nowned;
	const char **require;       /* -u and --call, NULL-terminated */
	size_t nrequire;
	struct load_libs libs;
	const char *call;
	long args[MAX_CALL_ARGS];
	int nargs;
	int list, maps, whole_archive;
	int library_missing;        /* a -l library was not found or not opened */
	char refusal[512];          /* why --call was refused */
};

static int parse_long(const char *text, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 0);
	if (errno || end == text || *end) {
		fprintf(stderr, "execmem load: '%s' is not an integer\n", text);
		return -1;
	}
	*out = v;
	return 0;
}

/* Grow an array of item_size items by one; NULL (with a message) when out of memory. */
static void *append(void *items, size_t count, size_t item_size)
{
	void *n = realloc(items, (count + 1) * item_size);
	if (!n)
		fprintf(stderr, "execmem load: out of memory\n");
	return n;
}

static int add_required(struct load_request *req, const char *symbol)
{
	const char **n = append(req->require, req->nrequire + 1, sizeof(*n));
	if (!n)
		return -1;
	req->require = n;
	n[req->nrequire++] = symbol;
	n[req->nrequire] = NULL;
	return 0;
}

/* An object or archive; library is the NAME of -l NAME, found later. */
static int add_input(struct load_request *req, const char *path, const char *library)
{
	struct execmem_module_input *n = append(req->inputs, req->ninputs, sizeof(*n));
	if (n)
		req->inputs = n;
	const char **l = n ? append(req->libraries, req->ninputs, sizeof(*l)) : NULL;
	if (!l)
		return -1;
	req->libraries = l;
	l[req->ninputs] = library;
	n[req->ninputs++] = (struct execmem_module_input){
		.kind = EXECMEM_MODULE_INPUT_FILE, .path = path,
		.flags = req->whole_archive ? EXECMEM_MODULE_INPUT_WHOLE_ARCHIVE : 0,
	};
	return 0;
}

/* The -l libraries, once every -L is known (they serve every -l, wherever
 * they are, as with ld): a shared library is opened and leaves the inputs,
 * an archive takes the place of its -l. */
static int find_libraries(struct load_request *req)
{
	size_t kept = 0;
	for (size_t i = 0; i < req->ninputs; i++) {
		char *archive = NULL;
		if (req->libraries[i]) {
			if (load_libs_add(&req->libs, req->libraries[i], &archive)) {
				req->library_missing = 1;
				return -1;
			}
			if (!archive)
				continue;
			char **n = append(req->owned, req->nowned, sizeof(*n));
			if (!n) {
				free(archive);
				return -1;
			}
			req->owned = n;
			n[req->nowned++] = archive;
			req->inputs[i].path = archive;
		}
		req->inputs[kept++] = req->inputs[i];
	}
	req->ninputs = kept;
	return 0;
}

static int add_dir(struct load_request *req, const char *dir)
{
	const char **n = append(req->libs.dirs, req->libs.ndirs, sizeof(*n));
	if (!n)
		return -1;
	req->libs.dirs = n;
	n[req->libs.ndirs++] = dir;
	return 0;
}

/* An argument of --call: anything but an option (a negative number is one). */
static int is_argument(const char *a)
{
	return a[0] != '-' || (a[1] >= '0' && a[1] <= '9');
}

/* Integer arguments after --call SYMBOL: everything up to the next option. */
static int parse_call(struct load_request *req, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "execmem load: --call needs a symbol\n");
		return -1;
	}
	req->call = argv[++*i];
	while (*i + 1 < argc && is_argument(argv[*i + 1])) {
		if (req->nargs == MAX_CALL_ARGS) {
			fprintf(stderr, "execmem load: at most %d arguments\n", MAX_CALL_ARGS);
			return -1;
		}
		if (parse_long(argv[++*i], &req->args[req->nargs++]))
			return -1;
	}
	return add_required(req, req->call);
}

/* The value of an option given as "-X VALUE" or "-XVALUE"; NULL if missing. */
static const char *option_value(int argc, char **argv, int *i)
{
	if (argv[*i][2])
		return argv[*i] + 2;
	if (*i + 1 < argc)
		return argv[++*i];
	fprintf(stderr, "execmem load: %s needs a value\n", argv[*i]);
	return NULL;
}

static int parse_option(struct load_request *req, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *value;
	if (!strcmp(a, "--list"))
		req->list = 1;
	else if (!strcmp(a, "--maps"))
		req->maps = 1;
	else if (!strcmp(a, "--whole-archive"))
		req->whole_archive = 1;
	else if (!strcmp(a, "--no-whole-archive"))
		req->whole_archive = 0;
	else if (!strcmp(a, "--call"))
		return parse_call(req, argc, argv, i);
	else if (!strncmp(a, "-l", 2))
		return (value = option_value(argc, argv, i)) ? add_input(req, NULL, value) : -1;
	else if (!strncmp(a, "-L", 2))
		return (value = option_value(argc, argv, i)) ? add_dir(req, value) : -1;
	else if (!strncmp(a, "-u", 2))
		return (value = option_value(argc, argv, i)) ? add_required(req, value) : -1;
	else {
		fprintf(stderr, "execmem load: unknown option %s\n", a);
		return -1;
	}
	return 0;
}

/* Options apply in order, as the linker's do (--whole-archive to the
 * archives after it), but -L to every -l. */
static int parse_args(struct load_request *req, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		int err = argv[i][0] == '-' && argv[i][1] ? parse_option(req, argc, argv, &i)
							  : add_input(req, argv[i], NULL);
		if (err)
			return -1;
	}
	if (find_libraries(req))
		return -1;
	if (!req->ninputs) {
		fprintf(stderr, "execmem load: no object or archive to link\n");
		return -1;
	}
	return 0;
}

static void free_request(struct load_request *req)
{
	load_libs_close(&req->libs);
	for (size_t i = 0; i < req->nowned; i++)
		free(req->owned[i]);
	free(req->owned);
	free(req->inputs);
	free(req->libraries);
	free(req->require);
}

static int print_symbol(const struct execmem_module_symbol_info *s, void *ctx)
{
	(void)ctx;
	printf("%18p  %-13s %-4s %8zu  %s%s\n", s->address, execmem_module_type_name(s->type),
	       s->is_function ? "func" : "data", s->size, s->name,
	       s->is_exported ? "" : "  (hidden)");
	return 0;
}

static int print_section(const struct execmem_module_section_info *s, void *ctx)
{
	(void)ctx;
	printf("%18p-%-18p  %-13s %8zu  %-24s %s\n", s->address,
	       (void *)((char *)s->address + s->size), execmem_module_type_name(s->type), s->size,
	       s->name, s->object);
	return 0;
}

static void print_summary(const struct execmem_module *m)
{
	struct execmem_module_stats st;
	execmem_module_stats(m, &st);
	printf("loaded %s: %zu object%s, %zu sections, %zu relocations, %zu PLT stubs, "
	       "%zu GOT entries%s\n", execmem_module_name(m), st.objects, st.objects == 1 ? "" : "s",
	       st.sections, st.relocations, st.plt_stubs, st.got_entries,
	       st.low32 ? ", placed below 2 GiB (-fno-pic)" : "");
}

struct found_symbol {
	const char *name;
	int found;
	struct execmem_module_symbol_info info;
};

static int find_symbol(const struct execmem_module_symbol_info *s, void *ctx)
{
	struct found_symbol *f = ctx;
	if (strcmp(s->name, f->name) != 0)
		return 0;
	f->found = 1;
	f->info = *s;
	return 1;
}

/* Check callback: --call names a function of the module, or nothing runs. */
static int check_call(const struct execmem_module *m, void *context)
{
	struct load_request *req = context;
	struct found_symbol f = { .name = req->call };

	execmem_module_foreach_symbol(m, find_symbol, &f);
	int code = f.info.type == EXECMEM_CODE || f.info.type == EXECMEM_CODE_NEAR;
	if (!f.found)
		snprintf(req->refusal, sizeof(req->refusal), "the module does not define '%s'",
			 req->call);
	else if (!f.info.is_function && !code)
		snprintf(req->refusal, sizeof(req->refusal), "'%s' is data (%zu bytes of %s "
			 "memory), not a function", req->call, f.info.size,
			 execmem_module_type_name(f.info.type));
	else
		return 0;
	return f.found ? -EINVAL : -ENOENT;
}

typedef long (*int_fn)(long, long, long, long, long, long);

static int call_symbol(const struct execmem_module *m, const struct load_request *req)
{
	/* Unused argument registers are harmless to a function with fewer
	 * parameters in the calling conventions of x86-64 and aarch64. */
	int_fn fn = (int_fn)execmem_module_symbol(m, req->call);
	const long *a = req->args;
	long result = fn(a[0], a[1], a[2], a[3], a[4], a[5]);
	printf("%s(", req->call);
	for (int i = 0; i < req->nargs; i++)
		printf("%s%ld", i ? ", " : "", a[i]);
	printf(") = %ld\n", result);
	return EXIT_OK;
}

static int load_and_run(struct load_request *req)
{
	struct execmem_module_options opt;
	struct execmem_module *m = NULL;

	execmem_module_options_init(&opt);
	opt.resolver = load_libs_resolve;
	opt.resolver_context = &req->libs;
	opt.require = req->require;
	if (req->call) {
		opt.check = check_call;
		opt.check_context = req;
	}
	int err = execmem_module_load(req->inputs, req->ninputs, &opt, &m);
	if (err && req->refusal[0]) {
		fprintf(stderr, "execmem load: --call %s refused, nothing was run: %s\n", req->call,
			req->refusal);
		return EXIT_USAGE;
	}
	if (err) {
		fprintf(stderr, "execmem load: %s\n", execmem_module_last_error());
		return EXIT_SYSTEM;
	}
	print_summary(m);
	if (req->maps) {
		printf("%-37s  %-13s %8s  %-24s %s\n", "address range", "type", "size", "section",
		       "object");
		execmem_module_foreach_section(m, print_section, NULL);
	}
	if (req->list) {
		printf("%18s  %-13s %-4s %8s  %s\n", "address", "type", "kind", "size", "symbol");
		execmem_module_foreach_symbol(m, print_symbol, NULL);
	}
	int rc = req->call ? call_symbol(m, req) : EXIT_OK;
	fflush(stdout);
	err = execmem_module_unload(m);
	if (err) {
		fprintf(stderr, "execmem load: unload: %s\n", execmem_module_last_error());
		return EXIT_SYSTEM;
	}
	return rc;
}

int cmd_load(int argc, char **argv)
{
	struct load_request req;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage_load(stdout);
			return EXIT_OK;
		}
	}
	memset(&req, 0, sizeof(req));
	int rc = EXIT_SYSTEM;
	if (parse_args(&req, argc, argv) == 0) {
		rc = load_and_run(&req);
	} else if (!req.library_missing) {
		usage_load(stderr);
		rc = EXIT_USAGE;
	}
	free_request(&req);
	return rc;
}
