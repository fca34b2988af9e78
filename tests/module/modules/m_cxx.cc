// m_cxx.cc - a C++ module: static objects with constructors and
// destructors, std::map and std::string, virtual calls and RTTI,
// exceptions caught inside the module and thrown to the host.  Every step
// is written to the host's log (host_cxx_log), which cxx_main.cc prints
// when the same code is linked natively.
#include <map>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include "cxx_shared.h"

namespace {

struct tracer {
	std::string name;
	explicit tracer(const char *n) : name(n) { host_cxx_log(("construct " + name).c_str()); }
	~tracer() { host_cxx_log(("destroy " + name).c_str()); }
};

tracer first("first");
tracer second("second");

struct shape {
	virtual ~shape() {}
	virtual double area() const = 0;
	virtual std::string name() const = 0;
};

struct square : shape {
	double side;
	explicit square(double s) : side(s) {}
	double area() const override { return side * side; }
	std::string name() const override { return "square"; }
};

struct circle : shape {
	double radius;
	explicit circle(double r) : radius(r) {}
	double area() const override { return 3.0 * radius * radius; }
	std::string name() const override { return "circle"; }
};

struct module_error : std::runtime_error {
	int code;
	module_error(const char *what, int c) : std::runtime_error(what), code(c) {}
};

__attribute__((noinline)) int parse_positive(const std::string &s)
{
	int v = std::stoi(s);        // throws std::invalid_argument from libstdc++
	if (v <= 0)
		throw module_error("not positive", v);
	return v;
}

}  // namespace

extern "C" int cxx_shared_next() { return shared_next(); }
extern "C" void *cxx_shared_address() { return reinterpret_cast<void *>(&shared_next); }
extern "C" int cxx_box_get(int v)
{
	shared_box<int> box;
	box.value = v;
	const shared_box<int> &ref = box;
	return ref.get();
}

extern "C" void cxx_run()
{
	std::map<std::string, int> counts;
	const char *words[] = { "pear", "fig", "pear", "kiwi", "fig", "pear" };
	for (const char *w : words)
		counts[w]++;
	std::string line = "counts:";
	for (const auto &kv : counts)
		line += " " + kv.first + "=" + std::to_string(kv.second);
	host_cxx_log(line.c_str());

	square sq(3);
	circle ci(2);
	const shape *shapes[] = { &sq, &ci };
	for (const shape *s : shapes) {
		bool is_square = dynamic_cast<const square *>(s) != nullptr;
		host_cxx_log((s->name() + " " + std::to_string(static_cast<int>(s->area())) +
			      (is_square ? " (a square)" : "") +
			      (typeid(*s) == typeid(circle) ? " (a circle)" : "")).c_str());
	}

	const char *inputs[] = { "12", "-3", "abc" };
	for (const char *in : inputs) {
		try {
			host_cxx_log(("parsed " + std::to_string(parse_positive(in))).c_str());
		} catch (const module_error &e) {
			host_cxx_log((std::string("module_error ") + e.what() + " " +
				      std::to_string(e.code)).c_str());
		} catch (const std::invalid_argument &) {
			host_cxx_log("invalid_argument");
		}
	}
}

extern "C" void cxx_throw_to_host(int code)
{
	if (code)
		throw module_error("thrown to the host", code);
	throw std::out_of_range("out of range in the module");
}
