// m_cxx_b.cc - a second C++ module with the same inline function and
// template instance as m_cxx.cc: loaded after it, it must use m_cxx's copy.
#include "cxx_shared.h"

extern "C" int cxx_b_shared_next() { return shared_next(); }
extern "C" void *cxx_b_shared_address() { return reinterpret_cast<void *>(&shared_next); }
extern "C" int cxx_b_box_get(int v)
{
	shared_box<int> box;
	box.value = v + 1;
	const shared_box<int> &ref = box;
	return ref.get();
}
