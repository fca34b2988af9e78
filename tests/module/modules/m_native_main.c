/* Program linking a module's code natively, for comparison: prints what
 * DESCRIBE (a -D of the build) writes. */
#include <stdio.h>

int DESCRIBE(char *out, size_t len);

int main(void)
{
	static char text[4096];
	DESCRIBE(text, sizeof(text));
	fputs(text, stdout);
	return 0;
}
