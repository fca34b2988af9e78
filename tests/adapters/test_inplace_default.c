/*
 * test_inplace_default - the default arena configured for in-place writing
 * is in mprotect mode whatever EXECMEM_MODE says (the test runs with
 * "dual" and "mprotect"): the option needs no mode name, and a configured
 * arena does not read the variable.  An explicit dual mode is refused.
 */
#include <errno.h>
#include <execmem.h>
#include <stdlib.h>

#include "../test_util.h"

int main(void)
{
	struct execmem_params p;
	execmem_params_init(&p);
	p.write = EXECMEM_WRITE_IN_PLACE;
	p.mode = EXECMEM_MODE_DUAL;
	CHECK_EQ(execmem_configure(&p), -EINVAL);
	p.mode = EXECMEM_MODE_AUTO;
	CHECK_EQ(execmem_configure(&p), 0);
	CHECK(getenv("EXECMEM_MODE") != NULL);

	struct execmem_stats st;
	CHECK_EQ(execmem_stats(&st), 0);
	CHECK_EQ(st.mode, EXECMEM_MODE_MPROTECT);
	void *code = execmem_alloc(EXECMEM_CODE, 100);
	uint8_t *w = code ? execmem_write_begin(code) : NULL;
	CHECK(w != NULL && w == code);
	if (w)
		tu_emit_return(w, 77);
	CHECK_EQ(tu_wx_mappings(), 0);
	CHECK(code && execmem_write_end(code) == 0);
	CHECK(code && tu_returns(code, 77, 0));
	CHECK_EQ(execmem_free(code), 0);
	return tu_finish("test_inplace_default");
}
