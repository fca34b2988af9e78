// cxx_main.cc - m_cxx.cc linked natively: the log it prints is what the
// loaded module must produce.
#include <cstdio>
#include <exception>

extern "C" void cxx_run();
extern "C" void cxx_throw_to_host(int code);

extern "C" void host_cxx_log(const char *line)
{
	std::printf("%s\n", line);
}

int main()
{
	cxx_run();
	for (int code = 0; code < 2; code++) {
		try {
			cxx_throw_to_host(code * 7);
		} catch (const std::exception &e) {
			std::printf("host caught: %s\n", e.what());
		}
	}
	return 0;
}
