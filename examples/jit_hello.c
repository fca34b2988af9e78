/* jit_hello - JIT a function that returns a constant, call it, free it. */
#include <execmem.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
#if defined(__x86_64__)
	const unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 };          /* mov eax, 42; ret */
#elif defined(__aarch64__)
	const unsigned char code[] = { 0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6 }; /* mov w0, #42; ret */
#elif defined(__riscv)
	const unsigned char code[] = { 0x13, 0x05, 0xa0, 0x02, 0x67, 0x80, 0x00, 0x00 }; /* li a0, 42; ret */
#endif
	void *fn = execmem_alloc(EXECMEM_CODE, sizeof code);
	if (!fn || execmem_write(fn, code, sizeof code)) {
		perror("execmem");
		return 1;
	}
	int answer = ((int (*)(void))fn)();
	printf("JIT function at %p returned %d\n", fn, answer);
	return execmem_free(fn) == 0 && answer == 42 ? 0 : 1;
}
