/*
 * test_archives.c - Debian's own static libraries, as built by the
 * distribution with its default flags (PIE: PC-relative references to
 * stdin, stdout and stderr), loaded whole and run:
 *
 *   test_archives LIBLUA5.4.A LIBSQLITE3.A
 *
 * Lua runs a script through luaL_newstate/luaL_openlibs/luaL_loadstring and
 * lua_pcallk; SQLite runs SQL on an in-memory database.  Their answers are
 * fixed by the script and the SQL.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "execmem/module.h"

#include "module_check.h"

static int failures;


static struct execmem_module *load(const char *path)
{
	struct execmem_module *m = NULL;
	int err = execmem_module_load_file(path, NULL, &m);
	CHECK(err == 0, "load %s: %s", path, execmem_module_last_error());
	return m;
}

static void *sym(struct execmem_module *m, const char *name)
{
	void *p = execmem_module_symbol(m, name);
	CHECK(p != NULL, "symbol %s missing", name);
	return p;
}

static const char lua_script[] =
	"local t = {} for i = 1, 10 do t[#t + 1] = i * i end\n"
	"io.write('') io.stdout:flush()\n"
	"return string.format('%d %s %.3f %s', t[10], string.rep('ab', 3), math.sqrt(2),\n"
	"                     table.concat({ 'x', 'y', 'z' }, '-'))";

static void test_lua(const char *archive)
{
	struct execmem_module *m = load(archive);
	if (!m)
		return;
	void *(*newstate)(void) = (void *(*)(void))sym(m, "luaL_newstate");
	void (*openlibs)(void *) = (void (*)(void *))sym(m, "luaL_openlibs");
	int (*loadstring)(void *, const char *) =
		(int (*)(void *, const char *))sym(m, "luaL_loadstring");
	int (*pcallk)(void *, int, int, int, long, void *) =
		(int (*)(void *, int, int, int, long, void *))sym(m, "lua_pcallk");
	const char *(*tolstring)(void *, int, size_t *) =
		(const char *(*)(void *, int, size_t *))sym(m, "lua_tolstring");
	void (*close)(void *) = (void (*)(void *))sym(m, "lua_close");
	if (failures)
		return;
	void *L = newstate();
	openlibs(L);
	int rc = loadstring(L, lua_script) || pcallk(L, 0, 1, 0, 0, NULL);
	const char *result = tolstring(L, -1, NULL);
	CHECK(rc == 0 && result && strcmp(result, "100 ababab 1.414 x-y-z") == 0,
	      "script: %d %s", rc, result ? result : "(null)");
	close(L);
	CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_module_last_error());
}

static int collect_row(void *out, int n, char **values, char **names)
{
	(void)names;
	for (int i = 0; i < n; i++)
		snprintf((char *)out + strlen(out), 128 - strlen(out), "%s%s", i ? "|" : "",
			 values[i] ? values[i] : "NULL");
	return 0;
}

static void test_sqlite(const char *archive)
{
	struct execmem_module *m = load(archive);
	if (!m)
		return;
	int (*open)(const char *, void **) = (int (*)(const char *, void **))sym(m, "sqlite3_open");
	int (*exec)(void *, const char *, int (*)(void *, int, char **, char **), void *,
		    char **) = (int (*)(void *, const char *, int (*)(void *, int, char **, char **),
					void *, char **))sym(m, "sqlite3_exec");
	int (*close)(void *) = (int (*)(void *))sym(m, "sqlite3_close");
	if (failures)
		return;
	void *db = NULL;
	char row[128] = "";
	CHECK(open(":memory:", &db) == 0, "sqlite3_open");
	int rc = exec(db, "create table t(a, b); insert into t values (1, 'x'), (2, 'y'), (4, 'z');"
		      "select sum(a), group_concat(b, ','), printf('%.2f', avg(a)) from t;",
		      collect_row, row, NULL);
	CHECK(rc == 0 && strcmp(row, "7|x,y,z|2.33") == 0, "query: %d '%s'", rc, row);
	CHECK(close(db) == 0, "sqlite3_close");
	CHECK(execmem_module_unload(m) == 0, "unload: %s", execmem_module_last_error());
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s LIBLUA.A LIBSQLITE3.A\n", argv[0]);
		return 2;
	}
	/* What a program linking these archives would link too: libm. */
	CHECK(dlopen("libm.so.6", RTLD_NOW | RTLD_GLOBAL) != NULL, "libm: %s", dlerror());
	test_lua(argv[1]);
	test_sqlite(argv[2]);
	if (!failures)
		printf("Lua and SQLite archives loaded and ran\n");
	return failures ? 1 : 0;
}
