/*
 * load_libs.c - libraries named with -l, searched like the static linker
 * searches them (-L directories first, then the system's), for
 * `execmem load`.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "load_libs.h"

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#endif

/* The static linker's default search path, in its order. */
static const char *const default_dirs[] = {
#ifdef MULTIARCH
	"/usr/local/lib/" MULTIARCH, "/lib/" MULTIARCH, "/usr/lib/" MULTIARCH,
#endif
	"/usr/local/lib64", "/lib64", "/usr/lib64", "/usr/local/lib", "/lib", "/usr/lib",
};
#define NDEFAULT_DIRS (sizeof(default_dirs) / sizeof(default_dirs[0]))

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The highest dir/libNAME.so.N, into path; 0 when there is none. */
static int find_versioned(const char *dir, const char *name, char *path, size_t len)
{
	char prefix[512], best[256] = "";
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return 0;
	int n = snprintf(prefix, sizeof(prefix), "lib%s.so.", name);
	while ((e = readdir(d)))
		if (n > 0 && strncmp(e->d_name, prefix, (size_t)n) == 0 &&
		    strlen(e->d_name) < sizeof(best) && strverscmp(e->d_name, best) > 0)
			strcpy(best, e->d_name);
	closedir(d);
	return best[0] && snprintf(path, len, "%s/%s", dir, best) < (int)len;
}

/* The library -l name stands for in dir, into path; 0 when there is none. */
static int find_in(const char *dir, const char *name, char *path, size_t len)
{
	if (name[0] == ':')
		return snprintf(path, len, "%s/%s", dir, name + 1) < (int)len && is_file(path);
	static const char *const forms[] = { "lib%s.so", "lib%s.a" };
	for (size_t i = 0; i < 2; i++) {
		char file[512];
		snprintf(file, sizeof(file), forms[i], name);
		if (snprintf(path, len, "%s/%s", dir, file) < (int)len && is_file(path))
			return 1;
	}
	return find_versioned(dir, name, path, len);
}

static int find_library(const struct load_libs *libs, const char *name, char *path, size_t len)
{
	for (size_t i = 0; i < libs->ndirs; i++)
		if (find_in(libs->dirs[i], name, path, len))
			return 1;
	for (size_t i = 0; i < NDEFAULT_DIRS; i++)
		if (find_in(default_dirs[i], name, path, len))
			return 1;
	return 0;
}

static void print_searched(const struct load_libs *libs, const char *name)
{
	fprintf(stderr, "execmem load: cannot find -l %s: looked for ", name);
	if (name[0] == ':')
		fprintf(stderr, "%s", name + 1);
	else
		fprintf(stderr, "lib%s.so, lib%s.a and lib%s.so.N", name, name, name);
	fprintf(stderr, " in");
	for (size_t i = 0; i < libs->ndirs; i++)
		fprintf(stderr, " %s", libs->dirs[i]);
	for (size_t i = 0; i < NDEFAULT_DIRS; i++)
		fprintf(stderr, " %s", default_dirs[i]);
	fprintf(stderr, "\n");
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A linker script (libm.so, libc.so on glibc) names the shared library
 * it stands for: the first absolute path in it. */
static void *open_script(const char *path)
{
	char text[4096], *p;
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;

	if (f)
		fclose(f);
	text[n] = '\0';
	if (!strstr(text, "GROUP") && !strstr(text, "INPUT"))
		return NULL;
	for (p = text; (p = strchr(p, '/')); p++) {
		if (p[1] == '*' || (p > text && p[-1] == '*'))
			continue;   /* a comment's delimiter */
		size_t len = strcspn(p, " \t\n)");
		char target[1024];
		if (len >= sizeof(target))
			return NULL;
		memcpy(target, p, len);
		target[len] = '\0';
		return dlopen(target, RTLD_NOW | RTLD_LOCAL);
	}
	return NULL;
}

static int keep_handle(struct load_libs *libs, void *handle)
{
	void **n = realloc(libs->handles, (libs->nhandles + 1) * sizeof(*n));
	if (!n) {
		dlclose(handle);
		fprintf(stderr, "execmem load: out of memory\n");
		return -1;
	}
	libs->handles = n;
	libs->handles[libs->nhandles++] = handle;
	return 0;
}

int load_libs_add(struct load_libs *libs, const char *name, char **archive)
{
	char path[1024];

	*archive = NULL;
	if (!name[0] || !find_library(libs, name, path, sizeof(path))) {
		print_searched(libs, name);
		return -1;
	}
	if (has_suffix(path, ".a")) {
		*archive = strdup(path);
		if (!*archive)
			fprintf(stderr, "execmem load: out of memory\n");
		return *archive ? 0 : -1;
	}
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		const char *why = dlerror();
		char message[1024];
		snprintf(message, sizeof(message), "%s", why ? why : "unknown error");
		handle = open_script(path);
		if (!handle) {
			fprintf(stderr, "execmem load: -l %s: %s\n", name, message);
			return -1;
		}
	}
	return keep_handle(libs, handle);
}

/*
 * The process's own definitions come first, as they would for a program
 * linked with these libraries (the executable and what it already loaded
 * precede them in the lookup order), so that a module and the program use
 * the same malloc(), say.
 */
void *load_libs_resolve(const char *symbol, void *context)
{
	const struct load_libs *libs = context;
	if (dlsym(RTLD_DEFAULT, symbol))
		return NULL;
	for (size_t i = 0; i < libs->nhandles; i++) {
		void *address = dlsym(libs->handles[i], symbol);
		if (address)
			return address;
	}
	return NULL;
}

void load_libs_close(struct load_libs *libs)
{
	for (size_t i = 0; i < libs->nhandles; i++)
		dlclose(libs->handles[i]);
	free(libs->handles);
	free(libs->dirs);
	libs->handles = NULL;
	libs->dirs = NULL;
	libs->nhandles = libs->ndirs = 0;
}
