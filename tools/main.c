/*
 * main.c - the `execmem` command: finds the subcommand and runs it.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: execmem COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  demo      load, run and check 10,000 small JIT programs; report memory,\n"
		"            huge pages, timings and a W+X audit\n"
		"  audit [PID]  list the W^X hazards of a process (W+X mappings, dual-mapped\n"
		"            file pages, patched text, MDWE); exit 1 on W+X\n"
		"  bench     compare execmem with a page per program, an mprotect pool and\n"
		"            asmjit's JitAllocator on this machine\n"
		"  trace -f FUNCTION... -- PROGRAM [ARGS...]\n"
		"            run a program and count the calls of its functions and their\n"
		"            mean time, through hooks (see execmem help trace)\n"
#ifdef EXECMEM_HAVE_LOAD
		"  load      load a relocatable object with execmem's module loader\n"
#endif
		"  help [COMMAND]   show this text or a command's options\n"
		"  version   print the library version\n"
		"\n"
		"Exit codes:\n"
		"  0  success\n"
		"  1  a check failed: a program returned a wrong value, or a mapping was\n"
		"     writable and executable at once (demo, audit)\n"
		"  2  unknown command or bad option\n"
		"  3  the library or the system refused (allocation, configuration, /proc)\n"
		"\n"
		"Environment: EXECMEM_MODE=dual|mprotect|auto chooses the default mode.\n");
}

static int help_for(const char *command)
{
	if (!command) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(command, "demo")) {
		usage_demo(stdout);
		return EXIT_OK;
	}
	if (!strcmp(command, "bench")) {
		usage_bench(stdout);
		return EXIT_OK;
	}
	if (!strcmp(command, "audit")) {
		usage_audit(stdout);
		return EXIT_OK;
	}
	if (!strcmp(command, "trace")) {
		usage_trace(stdout);
		return EXIT_OK;
	}
#ifdef EXECMEM_HAVE_LOAD
	if (!strcmp(command, "load")) {
		char *argv[] = { "load", "--help", NULL };
		return cmd_load(2, argv);
	}
#endif
	fprintf(stderr, "execmem: no command '%s' (see execmem --help)\n", command);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *command = argv[1];

	if (!strcmp(command, "demo"))
		return cmd_demo(argc - 1, argv + 1);
	if (!strcmp(command, "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(command, "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(command, "trace"))
		return cmd_trace(argc - 1, argv + 1);
	if (!strcmp(command, "__bench-child"))
		return cmd_bench_child(argc - 1, argv + 1);
#ifdef EXECMEM_HAVE_LOAD
	if (!strcmp(command, "load"))
		return cmd_load(argc - 1, argv + 1);
#endif
	if (!strcmp(command, "help"))
		return argc > 3 ? (fprintf(stderr, "execmem: help takes one command\n"), EXIT_USAGE)
				: help_for(argc == 3 ? argv[2] : NULL);
	if (!strcmp(command, "--help") || !strcmp(command, "-h"))
		return help_for(NULL);
	if (!strcmp(command, "version") || !strcmp(command, "--version")) {
		printf("execmem %d.%d.%d\n", EXECMEM_VERSION_MAJOR, EXECMEM_VERSION_MINOR,
		       EXECMEM_VERSION_PATCH);
		return EXIT_OK;
	}
	fprintf(stderr, "execmem: unknown command '%s' (see execmem --help)\n", command);
	return EXIT_USAGE;
}
