// A small JSON value for tokenizer files, chat tools and tool calls.
//
// Objects keep their keys in document order: chat templates print tool
// definitions with Python's json.dumps, which preserves insertion order, so a
// sorted map would change the prompt the model sees.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mmgen::text {

class Json;
using JsonArray = std::vector<Json>;
using JsonObject = std::vector<std::pair<std::string, Json>>;

class Json {
 public:
  using Storage = std::variant<std::nullptr_t, bool, std::int64_t, double, std::string, JsonArray,
                               JsonObject>;

  Json() : v_(nullptr) {}
  Json(std::nullptr_t) : v_(nullptr) {}
  Json(bool b) : v_(b) {}
  Json(int i) : v_(static_cast<std::int64_t>(i)) {}
  Json(std::int64_t i) : v_(i) {}
  Json(double d) : v_(d) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(JsonArray a) : v_(std::move(a)) {}
  Json(JsonObject o) : v_(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<std::int64_t>(v_); }
  bool is_number() const { return is_int() || std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<JsonArray>(v_); }
  bool is_object() const { return std::holds_alternative<JsonObject>(v_); }

  // Typed access; a mismatch throws ProtocolError(invalid_request) naming `what`.
  bool as_bool(std::string_view what = "value") const;
  std::int64_t as_int(std::string_view what = "value") const;
  double as_double(std::string_view what = "value") const;
  const std::string& as_string(std::string_view what = "value") const;
  const JsonArray& as_array(std::string_view what = "value") const;
  const JsonObject& as_object(std::string_view what = "value") const;

  // Object member lookup (first match); nullptr when absent or not an object.
  const Json* find(std::string_view key) const;

  const Storage& storage() const { return v_; }
  bool operator==(const Json&) const = default;

 private:
  Storage v_;
};

// Parses one JSON document (RFC 8259; surrounding whitespace allowed). Errors
// throw ProtocolError(invalid_request) with the byte offset. Nesting is capped
// (256) so hostile input cannot exhaust the stack.
Json parse_json(std::string_view text);

// Serialises as Python's json.dumps(x, ensure_ascii=False) does: ", " and ": "
// separators, keys in order, non-ASCII verbatim, floats in Python's repr.
std::string dump_json(const Json& value);

// The JSON string literal for `s` (with quotes), escaped as json.dumps does.
std::string json_quote(std::string_view s);

}  // namespace mmgen::text
