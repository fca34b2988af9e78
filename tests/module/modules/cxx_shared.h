// cxx_shared.h - an inline function and a template both C++ modules
// instantiate: each object carries a copy in a COMDAT group, and one copy
// must serve both (the same address, the same static counter).
#ifndef CXX_SHARED_H
#define CXX_SHARED_H

inline int shared_next()
{
	static int counter;
	return ++counter;
}

template <typename T> struct shared_box {
	T value;
	virtual ~shared_box() {}
	virtual T get() const { return value; }
};

extern "C" void host_cxx_log(const char *line);

#endif
