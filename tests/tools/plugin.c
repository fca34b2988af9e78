/* plugin.c - a module for the debugger tests: line 8 calls helper(). */
static int helper(int x)
{
	return x * 3;
}

int f(int x) {
	int y = helper(x);
	return y + 1;
}
