/* Module: constructors, destructors and a ro_after_init variable. */
void host_log(int event);
int host_scan_wx(void);

__attribute__((section(".data..ro_after_init"))) int roai_value = 1;
int ctor_saw_wx = -1;

__attribute__((constructor(101))) static void early(void)
{
	host_log(1);
}

__attribute__((constructor)) static void late(void)
{
	host_log(2);
	roai_value = 42;              /* still writable while constructors run */
	ctor_saw_wx = host_scan_wx(); /* the load is under way right now */
}

__attribute__((destructor)) static void bye(void)
{
	host_log(3);
}

int *roai_address(void)
{
	return &roai_value;
}
