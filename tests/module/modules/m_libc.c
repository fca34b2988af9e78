/* Module: libc calls, constant tables, static and global state, function
 * pointer tables.  Loaded by test_module.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const colours[] = { "red", "green", "blue", "cyan" };
static const int primes[8] = { 2, 3, 5, 7, 11, 13, 17, 19 };
static int calls;            /* .bss */
int module_global = 1234;    /* .data, exported */
double module_scale = 2.5;

static int by_value(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int libc_format(char *buf, size_t len, int index)
{
	calls++;
	return snprintf(buf, len, "%s:%d:%ld", colours[index & 3], primes[index & 7],
			strtol("  -42", NULL, 10));
}

/* Sort a shuffled array with a callback into this module; 1 when sorted. */
int libc_sort(int n)
{
	int *v = malloc((size_t)n * sizeof(*v));
	if (!v)
		return -1;
	for (int i = 0; i < n; i++)
		v[i] = (i * 7919) % n;
	qsort(v, (size_t)n, sizeof(*v), by_value);
	int ok = 1;
	for (int i = 0; i < n; i++)
		ok &= v[i] == i;
	free(v);
	calls++;
	return ok;
}

static int op_add(int a, int b) { return a + b; }
static int op_sub(int a, int b) { return a - b; }
static int op_mul(int a, int b) { return a * b; }
static int (*const ops[])(int, int) = { op_add, op_sub, op_mul };
int (*mutable_ops[])(int, int) = { op_mul, op_sub, op_add };

int libc_apply(int which, int a, int b)
{
	calls++;
	return ops[which % 3](a, b) + mutable_ops[which % 3](a, b);
}

int libc_calls(void)
{
	return calls + module_global + (int)(module_scale * 2) + (int)strlen(colours[2]);
}
