/* stdio_main.c - m_stdio.c linked natively: prints what the module reports. */
#include <stdio.h>

int stdio_report(char *out, size_t len);

int main(void)
{
	char report[512];
	stdio_report(report, sizeof(report));
	printf("%s\n", report);
	return 0;
}
