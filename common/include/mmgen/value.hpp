// A small JSON-like value: the type of job params, PARTIAL data, result data
// and metrics. It travels as msgpack on the wire and prints as JSON in the CLI.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mmgen {

class Value;
using ValueMap = std::map<std::string, Value, std::less<>>;
using ValueArray = std::vector<Value>;

class Value {
 public:
  struct Binary {
    std::string bytes;
    bool operator==(const Binary&) const = default;
  };
  using Storage = std::variant<std::monostate, bool, std::int64_t, double, std::string, Binary,
                               ValueArray, ValueMap>;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}
  Value(unsigned i) : v_(static_cast<std::int64_t>(i)) {}
  Value(long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(long long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(unsigned long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(unsigned long long i) : v_(static_cast<std::int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Binary b) : v_(std::move(b)) {}
  Value(ValueArray a) : v_(std::move(a)) {}
  Value(ValueMap m) : v_(std::move(m)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<std::int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_number() const { return is_int() || is_double(); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_binary() const { return std::holds_alternative<Binary>(v_); }
  bool is_array() const { return std::holds_alternative<ValueArray>(v_); }
  bool is_map() const { return std::holds_alternative<ValueMap>(v_); }

  // Accessors throw std::bad_variant_access on a type mismatch; use the
  // typed getters in Params for user-facing errors.
  bool as_bool() const { return std::get<bool>(v_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(v_); }
  double as_double() const { return is_int() ? static_cast<double>(as_int()) : std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Binary& as_binary() const { return std::get<Binary>(v_); }
  const ValueArray& as_array() const { return std::get<ValueArray>(v_); }
  ValueArray& as_array() { return std::get<ValueArray>(v_); }
  const ValueMap& as_map() const { return std::get<ValueMap>(v_); }
  ValueMap& as_map() { return std::get<ValueMap>(v_); }

  const Storage& storage() const { return v_; }
  bool operator==(const Value&) const = default;

  // Compact JSON (binary values print as {"$binary": <size>}).
  std::string to_json() const;

 private:
  Storage v_;
};

std::string json_escape(std::string_view s);
std::string to_json(const ValueMap& m);

// Typed reading of a params map with errors that name the key. Throws
// mmgen::proto::ProtocolError(invalid_request) on a wrong type or range.
class Params {
 public:
  Params() = default;
  explicit Params(ValueMap m) : m_(std::move(m)) {}

  bool has(std::string_view key) const { return m_.find(key) != m_.end(); }
  std::int64_t get_int(std::string_view key, std::int64_t def, std::int64_t lo = INT64_MIN,
                       std::int64_t hi = INT64_MAX) const;
  double get_double(std::string_view key, double def, double lo = -1e300, double hi = 1e300) const;
  bool get_bool(std::string_view key, bool def) const;
  std::string get_string(std::string_view key, std::string def) const;
  const ValueMap& map() const { return m_; }

 private:
  ValueMap m_;
};

}  // namespace mmgen
