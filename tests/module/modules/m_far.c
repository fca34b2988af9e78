/* m_far.c - two variables reached PC-relatively (hidden: the compiler takes
 * them for the module's own, whatever the code model), which the test
 * resolves to addresses near each other or too far apart to reach both. */
extern int far_first __attribute__((visibility("hidden")));
extern int far_second __attribute__((visibility("hidden")));

int far_sum(void);

int far_sum(void)
{
	return far_first + far_second;
}
