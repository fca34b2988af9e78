/* Archive member b. */
static const char digits[] = "0123456789";

int arch_b(int x)
{
	return digits[x % 10] - '0' + 7;
}
