/*
 * qemu_init.c - /init of the initramfs that scripts/ci-qemu-system.sh boots
 * under qemu-system-aarch64.  It mounts what the tests need, runs every
 * program listed in /tests/list (one "[NAME=VALUE...] program [arg...]" per
 * line, each program in /tests), prints one closing line the script greps for, and powers the
 * machine off.  QEMU's own exit status says nothing about the tests, hence
 * the closing line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 16

/* /dev for /dev/console and /dev/null, /proc for the tests' map scans. */
static void mount_filesystems(void)
{
	mkdir("/dev", 0755);
	mkdir("/proc", 0555);
	mkdir("/tmp", 01777);
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL) != 0 && errno != EBUSY)
		perror("init: mount /dev");
	if (mount("proc", "/proc", "proc", 0, NULL) != 0)
		perror("init: mount /proc");
	if (mount("tmpfs", "/tmp", "tmpfs", 0, NULL) != 0)
		perror("init: mount /tmp");
}

/* Splits line into argv (in place); returns the argument count. */
static int split_words(char *line, char *argv[MAX_ARGS + 1])
{
	int argc = 0;
	for (char *word = strtok(line, " \t\n"); word && argc < MAX_ARGS; word = strtok(NULL, " \t\n"))
		argv[argc++] = word;
	argv[argc] = NULL;
	return argc;
}

/* Leading NAME=VALUE words set the test's environment; returns the rest. */
static char **apply_environment(char *argv[])
{
	while (argv[0] && strchr(argv[0], '=')) {
		putenv(argv[0]);
		argv++;
	}
	return argv;
}

enum outcome { PASSED, FAILED, SKIPPED };

/* Exit status 77 means "skipped", as for CTest's SKIP_RETURN_CODE. */
#define SKIP_STATUS 77

/* Runs one list line: [NAME=VALUE...] program [arg...]. */
static enum outcome run_test(char *words[])
{
	printf("init: running");
	for (char **word = words; *word; word++)
		printf(" %s", *word);
	printf("\n");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		char **argv = apply_environment(words);
		char path[256];
		if (!argv[0])
			_exit(127);
		snprintf(path, sizeof(path), "/tests/%s", argv[0]);
		execv(path, argv);
		perror("init: execv");
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return FAILED;
	if (WIFEXITED(status)) {
		printf("init: exit status %d\n", WEXITSTATUS(status));
		if (WEXITSTATUS(status) == SKIP_STATUS)
			return SKIPPED;
		return WEXITSTATUS(status) == 0 ? PASSED : FAILED;
	}
	printf("init: killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
	return FAILED;
}

int main(void)
{
	mount_filesystems();
	setenv("EXECMEM_TEST_QEMU_SYSTEM", "1", 1);
	FILE *list = fopen("/tests/list", "r");
	if (!list) {
		perror("init: /tests/list");
	}
	int count[3] = { 0, 0, 0 };
	char line[512];
	while (list && fgets(line, sizeof(line), list)) {
		char *argv[MAX_ARGS + 1];
		if (line[0] == '#' || split_words(line, argv) == 0)
			continue;
		count[run_test(argv)]++;
	}
	/* The script greps for the PASS line; a run with no test is a failure. */
	printf("execmem-qemu-system: %d passed, %d failed, %d skipped\n",
	       count[PASSED], count[FAILED], count[SKIPPED]);
	if (count[FAILED] == 0 && count[PASSED] > 0)
		printf("execmem-qemu-system: PASS\n");
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
