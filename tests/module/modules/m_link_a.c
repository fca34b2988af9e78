/* Module, linked with m_link_b.c into one: references in both directions. */
int link_b_twice(int x);
extern int link_b_table[4];

int link_a_counter = 7;

int link_a_offset(int x)
{
	return x + 100;
}

int link_a_total(int x)
{
	return link_b_twice(x) + link_b_table[x & 3];
}
