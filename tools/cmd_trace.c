/*
 * cmd_trace.c - `execmem trace -f FUNCTION... -- PROGRAM ARGS...`: runs
 * PROGRAM with the agent libexecmem-trace.so preloaded, which hooks each
 * FUNCTION and appends its counts to a report file at exit; then prints
 * the counts, summed over every process that reported, as a table.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "trace_report.h"

#define AGENT_FILE "libexecmem-trace.so"

void usage_trace(FILE *out)
{
	fprintf(out,
		"usage: execmem trace -f FUNCTION [-f FUNCTION]... [-o FILE] [--] PROGRAM [ARGS...]\n"
		"\n"
		"Runs PROGRAM with a hook on each FUNCTION that counts its calls and their\n"
		"time, and prints at its exit one line per function: its name, the number of\n"
		"calls and the mean time per call (a call's time includes the calls it makes).\n"
		"FUNCTION is a function of the program, exported or not (its symbol table is\n"
		"read), or of a library loaded with it; FUNC@LIB looks in LIB only (a path, a\n"
		"file name, or one without its version: getpid@libc).  The agent\n"
		AGENT_FILE " is preloaded (LD_PRELOAD, ahead of any preload already set)\n"
		"into the program and every process it starts; the table sums them.  A process\n"
		"that ends by _exit() or a fatal signal reports nothing.\n"
		"Exit status: the program's (128 + N after signal N; 126 or 127 when it\n"
		"cannot be run, 2 for a bad option, 3 when the agent is missing).\n"
		"\n"
		"  -f FUNCTION  a function to trace (at least one, up to %d)\n"
		"  -o FILE      write the table to FILE instead of stderr\n",
		TRACE_MAX_FUNCTIONS);
}

struct trace_options {
	const char *functions[TRACE_MAX_FUNCTIONS];
	size_t nfunctions;
	const char *table_path;
	char **program; /* NULL-terminated argv */
};

static bool valid_function(const char *f)
{
	const char *at = strchr(f, '@');

	if (!*f || at == f || (at && !at[1]) || strlen(f) >= TRACE_NAME_MAX || strpbrk(f, ",\t\n")) {
		fprintf(stderr, "execmem trace: '%s' is not a function name (FUNC or FUNC@LIB)\n", f);
		return false;
	}
	return true;
}

static bool parse_options(int argc, char **argv, struct trace_options *o)
{
	static const struct option longopts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:f:o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (o->nfunctions == TRACE_MAX_FUNCTIONS) {
				fprintf(stderr, "execmem trace: at most %d functions\n",
					TRACE_MAX_FUNCTIONS);
				return false;
			}
			if (!valid_function(optarg))
				return false;
			o->functions[o->nfunctions++] = optarg;
			break;
		case 'o':
			o->table_path = optarg;
			break;
		case 'h':
			usage_trace(stdout);
			exit(EXIT_OK);
		case ':':
			fprintf(stderr, "execmem trace: %s needs an argument\n", argv[optind - 1]);
			return false;
		default:
			fprintf(stderr, "execmem trace: bad option '%s' (see execmem help trace)\n",
				argv[optind - 1]);
			return false;
		}
	}
	if (!o->nfunctions || optind == argc) {
		fprintf(stderr, "execmem trace: %s (see execmem help trace)\n",
			!o->nfunctions ? "no function to trace: give -f FUNCTION" : "no program to run");
		return false;
	}
	o->program = argv + optind;
	return true;
}

/* The agent next to the command (the build tree, or bin/ and lib/ together), or where it is installed. */
static bool find_agent(char *path, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		snprintf(path, size, "%s/" AGENT_FILE, dirname(self));
		if (!access(path, R_OK))
			return true;
	}
	snprintf(path, size, "%s", EXECMEM_TRACE_AGENT_INSTALLED);
	if (!access(path, R_OK))
		return true;
	fprintf(stderr, "execmem trace: the agent " AGENT_FILE " is neither next to the command nor at %s\n",
		EXECMEM_TRACE_AGENT_INSTALLED);
	return false;
}

/* The environment the agent reads, in this process: the child inherits it. */
static bool set_environment(const struct trace_options *o, const char *agent, const char *report)
{
	char list[TRACE_MAX_FUNCTIONS * TRACE_NAME_MAX] = "", *preload = NULL;
	const char *old = getenv("LD_PRELOAD");
	size_t len = 0;

	for (size_t i = 0; i < o->nfunctions; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? "," : "",
					o->functions[i]);
	if (old && *old ? asprintf(&preload, "%s %s", agent, old) < 0 : !(preload = strdup(agent)))
		return false;
	bool ok = !setenv(TRACE_ENV_FUNCTIONS, list, 1) && !setenv(TRACE_ENV_OUTPUT, report, 1) &&
		  !setenv("LD_PRELOAD", preload, 1);
	free(preload);
	return ok;
}

/*
 * Run the program and wait for it; its exit status as a shell gives it,
 * or 126/127 when it could not be run (its errno comes back through a
 * close-on-exec pipe, which the exec closes when it works).
 */
static int run(char **program, bool *ran)
{
	int pipefd[2], err = 0;
	struct sigaction ignore = { .sa_handler = SIG_IGN }, old_int, old_quit;

	if (pipe2(pipefd, O_CLOEXEC)) {
		perror("execmem trace: pipe");
		return EXIT_SYSTEM;
	}
	/* ^C and ^\ are for the program; the command still prints what it counted. */
	sigaction(SIGINT, &ignore, &old_int);
	sigaction(SIGQUIT, &ignore, &old_quit);
	pid_t pid = fork();
	if (pid == 0) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		close(pipefd[0]);
		execvp(program[0], program);
		err = errno;
		ssize_t sent = write(pipefd[1], &err, sizeof(err));
		(void)sent; /* nothing more to do if the parent cannot hear it */
		_exit(127);
	}
	close(pipefd[1]);
	if (pid < 0) {
		perror("execmem trace: fork");
		close(pipefd[0]);
		return EXIT_SYSTEM;
	}
	ssize_t got;
	while ((got = read(pipefd[0], &err, sizeof(err))) < 0 && errno == EINTR)
		;
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (got == (ssize_t)sizeof(err)) {
		fprintf(stderr, "execmem trace: cannot run %s: %s\n", program[0], strerror(err));
		return err == ENOENT ? 127 : 126;
	}
	*ran = true;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "execmem trace: %s ended by signal %d (%s)\n", program[0],
			WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/* A function's counts over every process that reported it. */
struct total {
	uint64_t calls, total_ns;
	bool traced;                   /* in at least one process */
	char status[TRACE_STATUS_MAX]; /* why not, from the first process that said so */
};

struct report {
	struct total totals[TRACE_MAX_FUNCTIONS];
	size_t processes;
};

static void add_record(const struct trace_options *o, struct report *rep,
		       const struct trace_result *r, long *last_pid)
{
	for (size_t i = 0; i < o->nfunctions; i++) {
		struct total *t = &rep->totals[i];
		if (strcmp(o->functions[i], r->name))
			continue;
		if (!*r->status) {
			t->traced = true;
			t->calls += r->calls;
			t->total_ns += r->total_ns;
		} else if (!*t->status) {
			snprintf(t->status, sizeof(t->status), "%s", r->status);
		}
	}
	/* A process appends its records in one write: a new pid starts a new process. */
	if (r->pid != *last_pid)
		rep->processes++;
	*last_pid = r->pid;
}

static void read_report(const struct trace_options *o, int fd, struct report *rep)
{
	FILE *f = fdopen(fd, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long last_pid = -1;

	if (!f) {
		close(fd);
		return;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		struct trace_result r;
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (trace_result_parse(line, &r))
			add_record(o, rep, &r, &last_pid);
	}
	free(line);
	fclose(f);
}

static int print_table(const struct trace_options *o, const struct report *rep)
{
	FILE *out = o->table_path ? fopen(o->table_path, "w") : stderr;
	char row[TRACE_NAME_MAX + TRACE_STATUS_MAX + 64];

	if (!out) {
		fprintf(stderr, "execmem trace: %s: %s\n", o->table_path, strerror(errno));
		return EXIT_SYSTEM;
	}
	if (!rep->processes) {
		fprintf(out, "execmem trace: no report from %s: it ended by _exit() or a signal, or "
			     "did not load the agent (a static or set-user-ID program)\n",
			o->program[0]);
	} else {
		trace_table_header(row, sizeof(row));
		fputs(row, out);
		for (size_t i = 0; i < o->nfunctions; i++) {
			const struct total *t = &rep->totals[i];
			trace_table_row(row, sizeof(row), o->functions[i], t->calls, t->total_ns,
					t->traced ? "" : *t->status ? t->status : "not reported");
			fputs(row, out);
		}
		if (rep->processes > 1)
			fprintf(out, "(sums over %zu processes)\n", rep->processes);
	}
	if (out != stderr && fclose(out)) {
		fprintf(stderr, "execmem trace: %s: %s\n", o->table_path, strerror(errno));
		return EXIT_SYSTEM;
	}
	return EXIT_OK;
}

int cmd_trace(int argc, char **argv)
{
	struct trace_options o = { .nfunctions = 0 };
	char agent[PATH_MAX], report_path[PATH_MAX];
	const char *tmp = getenv("TMPDIR");
	static struct report rep;

	if (!parse_options(argc, argv, &o))
		return EXIT_USAGE;
	if (!find_agent(agent, sizeof(agent)))
		return EXIT_SYSTEM;
	snprintf(report_path, sizeof(report_path), "%s/execmem-trace.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkostemp(report_path, O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "execmem trace: cannot make the report file %s: %s\n", report_path,
			strerror(errno));
		return EXIT_SYSTEM;
	}
	if (!set_environment(&o, agent, report_path)) {
		fprintf(stderr, "execmem trace: cannot set the environment: %s\n", strerror(errno));
		close(fd);
		unlink(report_path);
		return EXIT_SYSTEM;
	}
	bool ran = false;
	int status = run(o.program, &ran);
	unlink(report_path);
	if (!ran) {
		close(fd);
		return status;
	}
	read_report(&o, fd, &rep);
	int printed = print_table(&o, &rep);
	return printed == EXIT_OK ? status : printed;
}
