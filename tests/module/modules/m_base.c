/* Module: exports symbols another module uses. */
int base_counter = 10;

int base_value(int x)
{
	return x * 3 + base_counter++;
}
