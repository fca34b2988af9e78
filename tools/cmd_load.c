/*
 * cmd_load.c - `execmem load`: load a relocatable object or a static archive
 * with execmem's module loader, list its symbols, show where its sections
 * went, call one of its functions with integer arguments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "execmem/module.h"

#define MAX_CALL_ARGS 6

static void usage_load(FILE *out)
{
	fprintf(out,
		"usage: execmem load FILE.o|FILE.a [--list] [--maps] [--call SYMBOL [INT ARGS...]]\n"
		"  Loads the object (all members of an archive, linked together) into execmem\n"
		"  memory: code near the program, data and read-only data near the code,\n"
		"  .data..ro_after_init sealed after the constructors.  Undefined symbols come\n"
		"  from the C library and the other libraries of this process.\n"
		"  --list            the symbols it defines: address, memory type, size, name\n"
		"  --maps            where each section went (and the PLT, GOT and COMMON areas)\n"
		"  --call SYMBOL ... call SYMBOL with up to %d integer arguments (long) and\n"
		"                    print the result\n"
		"Exit status: 0 success, 2 usage, 3 the object could not be loaded.\n",
		MAX_CALL_ARGS);
}

struct load_request {
	const char *file;
	const char *call;
	long args[MAX_CALL_ARGS];
	int nargs;
	int list, maps;
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

/* Integer arguments after --call SYMBOL: everything up to the next option. */
static int parse_call(struct load_request *req, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "execmem load: --call needs a symbol\n");
		return -1;
	}
	req->call = argv[++*i];
	while (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
		if (req->nargs == MAX_CALL_ARGS) {
			fprintf(stderr, "execmem load: at most %d arguments\n", MAX_CALL_ARGS);
			return -1;
		}
		if (parse_long(argv[++*i], &req->args[req->nargs++]))
			return -1;
	}
	return 0;
}

static int parse_args(struct load_request *req, int argc, char **argv)
{
	memset(req, 0, sizeof(*req));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--list")) {
			req->list = 1;
		} else if (!strcmp(a, "--maps")) {
			req->maps = 1;
		} else if (!strcmp(a, "--call")) {
			if (parse_call(req, argc, argv, &i))
				return -1;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "execmem load: unknown option %s\n", a);
			return -1;
		} else if (req->file) {
			fprintf(stderr, "execmem load: one file at a time\n");
			return -1;
		} else {
			req->file = a;
		}
	}
	if (!req->file) {
		fprintf(stderr, "execmem load: no file given\n");
		return -1;
	}
	return 0;
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

typedef long (*int_fn)(long, long, long, long, long, long);

static int call_symbol(const struct execmem_module *m, const struct load_request *req)
{
	void *address = execmem_module_symbol(m, req->call);
	if (!address) {
		fprintf(stderr, "execmem load: %s does not define '%s'\n", req->file, req->call);
		return EXIT_USAGE;
	}
	/* Unused argument registers are harmless to a function with fewer
	 * parameters in the calling conventions of x86-64 and aarch64. */
	int_fn fn = (int_fn)address;
	const long *a = req->args;
	long result = fn(a[0], a[1], a[2], a[3], a[4], a[5]);
	printf("%s(", req->call);
	for (int i = 0; i < req->nargs; i++)
		printf("%s%ld", i ? ", " : "", a[i]);
	printf(") = %ld\n", result);
	return EXIT_OK;
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
	if (parse_args(&req, argc, argv)) {
		usage_load(stderr);
		return EXIT_USAGE;
	}
	struct execmem_module *m = NULL;
	int err = execmem_module_load_file(req.file, NULL, &m);
	if (err) {
		fprintf(stderr, "execmem load: %s\n", execmem_module_last_error());
		return EXIT_SYSTEM;
	}
	print_summary(m);
	if (req.maps) {
		printf("%-37s  %-13s %8s  %-24s %s\n", "address range", "type", "size", "section",
		       "object");
		execmem_module_foreach_section(m, print_section, NULL);
	}
	if (req.list) {
		printf("%18s  %-13s %-4s %8s  %s\n", "address", "type", "kind", "size", "symbol");
		execmem_module_foreach_symbol(m, print_symbol, NULL);
	}
	int rc = req.call ? call_symbol(m, &req) : EXIT_OK;
	fflush(stdout);
	err = execmem_module_unload(m);
	if (err) {
		fprintf(stderr, "execmem load: unload: %s\n", execmem_module_last_error());
		return EXIT_SYSTEM;
	}
	return rc;
}
