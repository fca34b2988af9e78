/* Module: uses m_base's exports. */
int base_value(int x);
extern int base_counter;

int user_value(int x)
{
	int v = base_value(x);   /* before reading the counter it changes */
	return v + base_counter * 1000;
}
