/*
 * cmd_audit.c - `execmem audit [--json] [PID]`: the W^X hazards of a
 * process (execmem_audit()), as text or as one JSON object.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void usage_audit(FILE *out)
{
	fprintf(out,
		"usage: execmem audit [--json] [PID]\n"
		"\n"
		"Lists the W^X hazards of process PID (default: the command itself):\n"
		"  wx             a mapping writable and executable at once\n"
		"  dual-mapped    a page of a file or memfd shared writable in one mapping\n"
		"                 and executable in another\n"
		"  execmem-alias  the same made by execmem's dual mode (by design)\n"
		"  patched-text   anonymous pages in read+execute file text (mprotect patching,\n"
		"                 or a debugger's breakpoints)\n"
		"and the process's MDWE state.  Mappings are execmem's by their names\n"
		"(/memfd:execmem:TYPE, [anon:execmem:TYPE]).  Exits 1 if a W+X mapping is found.\n"
		"\n"
		"  --json   one JSON object: pid, mappings, mdwe, counts, findings\n");
}

struct audit_output {
	bool json;
	size_t shown;
};

static void perms_of(const struct execmem_mapping *m, char perms[5])
{
	perms[0] = m->prot & EXECMEM_PROT_READ ? 'r' : '-';
	perms[1] = m->prot & EXECMEM_PROT_WRITE ? 'w' : '-';
	perms[2] = m->prot & EXECMEM_PROT_EXEC ? 'x' : '-';
	perms[3] = m->shared ? 's' : 'p';
	perms[4] = '\0';
}

/* A JSON string: the names of mappings are paths, which may hold anything. */
static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_mapping(const struct execmem_mapping *m)
{
	char perms[5];
	perms_of(m, perms);
	printf("{\"start\": \"%#" PRIxPTR "\", \"end\": \"%#" PRIxPTR "\", \"perms\": \"%s\", "
	       "\"offset\": %" PRIu64 ", \"inode\": %" PRIu64 ", \"anonymous\": %zu, "
	       "\"execmem\": %s, \"tool\": %s, \"name\": ",
	       m->start, m->end, perms, m->offset, m->inode, m->anonymous,
	       m->execmem ? "true" : "false", m->tool ? "true" : "false");
	json_string(m->name);
	putchar('}');
}

static void text_mapping(const struct execmem_mapping *m)
{
	char perms[5];
	perms_of(m, perms);
	printf("%" PRIxPTR "-%" PRIxPTR " %s %s%s%s", m->start, m->end, perms,
	       *m->name ? m->name : "[anonymous]", m->execmem ? " (execmem)" : "",
	       m->tool ? " (the tool's own: valgrind)" : "");
}

static int show_finding(const struct execmem_finding *f, void *ctx)
{
	struct audit_output *out = ctx;
	bool pair = f->kind == EXECMEM_FINDING_DUAL_MAPPED || f->kind == EXECMEM_FINDING_EXECMEM_ALIAS;
	if (out->json) {
		printf("%s\n    {\"kind\": \"%s\", \"bytes\": %zu, \"mapping\": ", out->shown ? "," : "",
		       execmem_finding_kind_name(f->kind), f->bytes);
		json_mapping(&f->mapping);
		if (pair) {
			printf(", \"other\": ");
			json_mapping(&f->other);
		}
		putchar('}');
	} else {
		printf("%-14s ", execmem_finding_kind_name(f->kind));
		text_mapping(&f->mapping);
		if (pair) {
			printf("\n%-14s   executable as ", "");
			text_mapping(&f->other);
		}
		printf(" [%zu bytes]\n", f->bytes);
	}
	out->shown++;
	return 0;
}

static void json_summary(const struct execmem_audit_report *r)
{
	printf("\n  ],\n  \"pid\": %d, \"mappings\": %zu, \"mdwe\": \"%s\", \"mdwe_flags\": %lu,\n"
	       "  \"wx\": %zu, \"tool_wx\": %zu, \"dual_mapped\": %zu, \"execmem_aliases\": %zu, "
	       "\"patched_text\": %zu\n}\n",
	       r->pid, r->mappings, execmem_mdwe_name(r->mdwe), r->mdwe_flags, r->wx, r->tool_wx,
	       r->dual_mapped, r->execmem_aliases, r->patched_text);
}

static void text_summary(const struct execmem_audit_report *r)
{
	printf("pid %d: %zu mappings; %zu W+X%s; %zu dual-mapped; %zu execmem aliases (by design); "
	       "%zu patched text; MDWE %s\n",
	       r->pid, r->mappings, r->wx, r->tool_wx ? " (and the tool's own, left out)" : "",
	       r->dual_mapped, r->execmem_aliases, r->patched_text, execmem_mdwe_name(r->mdwe));
}

static int parse_audit_options(int argc, char **argv, bool *json, long *pid)
{
	bool have_pid = false;
	for (int i = 1; i < argc; i++) {
		uint64_t value;
		if (!strcmp(argv[i], "--json")) {
			*json = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage_audit(stdout);
			return -1;
		} else if (!have_pid && argv[i][0] != '-' && parse_count("PID", argv[i], 1, INT32_MAX, &value)) {
			*pid = (long)value;
			have_pid = true;
		} else {
			fprintf(stderr, "execmem audit: unexpected argument '%s'\n", argv[i]);
			usage_audit(stderr);
			return EXIT_USAGE;
		}
	}
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	bool json = false;
	long pid = 0;
	int rc = parse_audit_options(argc, argv, &json, &pid);
	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	struct audit_output out = { json, 0 };
	struct execmem_audit_report report;
	if (json)
		printf("{\n  \"findings\": [");
	int err = execmem_audit((int)pid, show_finding, &out, &report);
	if (err) {
		if (json)
			printf("\n  ]\n}\n");
		fprintf(stderr, "execmem audit: cannot read the mappings of pid %ld: %s\n", pid,
			strerror(-err));
		return EXIT_SYSTEM;
	}
	if (json)
		json_summary(&report);
	else
		text_summary(&report);
	return report.wx ? EXIT_CHECK_FAILED : EXIT_OK;
}
