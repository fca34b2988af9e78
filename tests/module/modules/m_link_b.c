/* Module, linked with m_link_a.c into one. */
int link_a_offset(int x);
extern int link_a_counter;

int link_b_table[4] = { 1000, 2000, 3000, 4000 };

int link_b_twice(int x)
{
	return 2 * link_a_offset(x) + link_a_counter;
}
