// Value's JSON form and the typed Params getters.
#include "mmgen/value.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "mmgen/json_writer.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen {

namespace {

void append_double(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip form
  std::string_view s(buf, static_cast<std::size_t>(r.ptr - buf));
  out += s;
  if (s.find_first_of(".eEn") == std::string_view::npos) out += ".0";
}

void append_json(std::string& out, const Value& v);

void append_map(std::string& out, const ValueMap& m) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : m) {
    if (!first) out += ',';
    first = false;
    out += json_escape(k);
    out += ':';
    append_json(out, v);
  }
  out += '}';
}

void append_json(std::string& out, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) out += "null";
        else if constexpr (std::is_same_v<T, bool>) out += x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::int64_t>) out += std::to_string(x);
        else if constexpr (std::is_same_v<T, double>) append_double(out, x);
        else if constexpr (std::is_same_v<T, std::string>) out += json_escape(x);
        else if constexpr (std::is_same_v<T, Value::Binary>) {
          out += "{\"$binary\":" + std::to_string(x.bytes.size()) + "}";
        } else if constexpr (std::is_same_v<T, ValueArray>) {
          out += '[';
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (i) out += ',';
            append_json(out, x[i]);
          }
          out += ']';
        } else {
          append_map(out, x);
        }
      },
      v.storage());
}

// A key as it may appear in a message: control bytes escaped, quotes dropped.
std::string printable(std::string_view key) {
  auto q = json_escape(key);
  return q.substr(1, q.size() - 2);
}

[[noreturn]] void bad_param(std::string_view key, std::string_view want, const Value& got) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request,
                             "param '" + printable(key) + "': expected " + std::string(want) +
                                 ", got " + got.to_json());
}
}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  json::append_string(out, s);
  return out;
}

std::string Value::to_json() const {
  std::string out;
  append_json(out, *this);
  return out;
}

std::string to_json(const ValueMap& m) {
  std::string out;
  append_map(out, m);
  return out;
}

std::int64_t Params::get_int(std::string_view key, std::int64_t def, std::int64_t lo,
                             std::int64_t hi) const {
  auto it = m_.find(key);
  if (it == m_.end() || it->second.is_null()) return def;
  const Value& v = it->second;
  std::int64_t x;
  if (v.is_int()) {
    x = v.as_int();
  } else if (v.is_double() && std::nearbyint(v.as_double()) == v.as_double() &&
             std::fabs(v.as_double()) < 9.0e18) {
    x = static_cast<std::int64_t>(v.as_double());
  } else {
    bad_param(key, "an integer", v);
  }
  if (x < lo || x > hi)
    bad_param(key, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", v);
  return x;
}

double Params::get_double(std::string_view key, double def, double lo, double hi) const {
  auto it = m_.find(key);
  if (it == m_.end() || it->second.is_null()) return def;
  const Value& v = it->second;
  if (!v.is_number()) bad_param(key, "a number", v);
  double x = v.as_double();
  if (!(x >= lo && x <= hi)) {
    std::string range;
    append_double(range, lo);
    range += ", ";
    append_double(range, hi);
    bad_param(key, "a number in [" + range + "]", v);
  }
  return x;
}

bool Params::get_bool(std::string_view key, bool def) const {
  auto it = m_.find(key);
  if (it == m_.end() || it->second.is_null()) return def;
  if (!it->second.is_bool()) bad_param(key, "a boolean", it->second);
  return it->second.as_bool();
}

std::string Params::get_string(std::string_view key, std::string def) const {
  auto it = m_.find(key);
  if (it == m_.end() || it->second.is_null()) return def;
  if (!it->second.is_string()) bad_param(key, "a string", it->second);
  return it->second.as_string();
}

}  // namespace mmgen
