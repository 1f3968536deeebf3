#include "mmgen/text/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "mmgen/json_reader.hpp"
#include "mmgen/json_writer.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/unicode.hpp"

namespace mmgen::text {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

[[noreturn]] void type_error(std::string_view what, std::string_view want) {
  throw ProtocolError(ErrorCode::invalid_request,
                      std::string(what) + ": expected " + std::string(want));
}

// Objects as member lists in document order (see json.hpp).
struct JsonBuilder {
  using Array = JsonArray;
  using Object = JsonObject;
  Json scalar(json::Scalar s) {
    return std::visit([](auto x) { return Json(x); }, s);
  }
  Json string(std::string&& s) { return Json(std::move(s)); }
  Array new_array() { return {}; }
  void push(Array& a, Json&& v) { a.push_back(std::move(v)); }
  Json array(Array&& a) { return Json(std::move(a)); }
  Object new_object() { return {}; }
  void put(Object& o, std::string&& k, Json&& v) { o.emplace_back(std::move(k), std::move(v)); }
  Json object(Object&& o) { return Json(std::move(o)); }
};

// Python's float repr: shortest round-trip digits; fixed notation when the
// decimal exponent is in [-4, 16), else d.ddde±XX; integral values get ".0".
void append_python_float(std::string& out, double d) {
  if (std::isnan(d)) { out += "NaN"; return; }
  if (std::isinf(d)) { out += d < 0 ? "-Infinity" : "Infinity"; return; }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));
  bool neg = !sci.empty() && sci[0] == '-';
  if (neg) sci.remove_prefix(1);
  std::size_t epos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, epos))
    if (c != '.') digits += c;
  int exp10 = std::stoi(std::string(sci.substr(epos + 1)));
  int decpt = exp10 + 1;  // value = 0.DIGITS × 10^decpt
  if (neg) out += '-';
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-decpt), '0');
      out += digits;
    } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
      out += digits;
      out.append(static_cast<std::size_t>(decpt) - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<std::size_t>(decpt));
      out += '.';
      out += digits.substr(static_cast<std::size_t>(decpt));
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    int e = decpt - 1;
    std::snprintf(buf, sizeof buf, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    out += buf;
  }
}

void append_quoted(std::string& out, std::string_view s) { json::append_string(out, s); }

void append_json(std::string& out, const Json& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) out += "null";
        else if constexpr (std::is_same_v<T, bool>) out += x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::int64_t>) out += std::to_string(x);
        else if constexpr (std::is_same_v<T, double>) append_python_float(out, x);
        else if constexpr (std::is_same_v<T, std::string>) append_quoted(out, x);
        else if constexpr (std::is_same_v<T, JsonArray>) {
          out += '[';
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (i) out += ", ";
            append_json(out, x[i]);
          }
          out += ']';
        } else {
          out += '{';
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (i) out += ", ";
            append_quoted(out, x[i].first);
            out += ": ";
            append_json(out, x[i].second);
          }
          out += '}';
        }
      },
      v.storage());
}

}  // namespace

bool Json::as_bool(std::string_view what) const {
  if (!is_bool()) type_error(what, "a boolean");
  return std::get<bool>(v_);
}
std::int64_t Json::as_int(std::string_view what) const {
  if (!is_int()) type_error(what, "an integer");
  return std::get<std::int64_t>(v_);
}
double Json::as_double(std::string_view what) const {
  if (is_int()) return static_cast<double>(std::get<std::int64_t>(v_));
  if (!std::holds_alternative<double>(v_)) type_error(what, "a number");
  return std::get<double>(v_);
}
const std::string& Json::as_string(std::string_view what) const {
  if (!is_string()) type_error(what, "a string");
  return std::get<std::string>(v_);
}
const JsonArray& Json::as_array(std::string_view what) const {
  if (!is_array()) type_error(what, "an array");
  return std::get<JsonArray>(v_);
}
const JsonObject& Json::as_object(std::string_view what) const {
  if (!is_object()) type_error(what, "an object");
  return std::get<JsonObject>(v_);
}
const Json* Json::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : std::get<JsonObject>(v_))
    if (k == key) return &v;
  return nullptr;
}

// Python's json.loads accepts NaN and Infinity too (a model may write them in
// tool-call arguments).
Json parse_json(std::string_view text) {
  JsonBuilder b;
  try {
    return json::read(text, json::Dialect{256, /*non_finite=*/true}, b);
  } catch (const json::SyntaxError& e) {
    throw ProtocolError(ErrorCode::invalid_request, "invalid JSON at byte " + std::to_string(e.offset()) +
                                                        " (line " + std::to_string(e.line()) + ", column " +
                                                        std::to_string(e.column()) + "): " + e.reason());
  }
}

std::string dump_json(const Json& value) {
  std::string out;
  append_json(out, value);
  return out;
}

std::string json_quote(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

}  // namespace mmgen::text
