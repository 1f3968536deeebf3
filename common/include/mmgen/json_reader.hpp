// The one strict JSON (RFC 8259) reader of the project. Torch-free.
//
// Three callers want three different trees from the same text: the checkpoint
// loader and the CLI build mmgen::Value (keys sorted, the last duplicate wins,
// as Python's json.load), the tokenizer and chat code build text::Json (keys in
// document order, because chat templates print tool definitions in the order
// they were given). So the grammar lives here once, and each caller supplies a
// small builder; the lexical work (strings with escapes and UTF-8 validation,
// numbers, literals, positions) is compiled once in json_reader.cpp.
//
// What is accepted: RFC 8259 exactly, with a nesting limit so a hostile file
// cannot exhaust the stack, plus, where a Dialect allows it, the NaN /
// Infinity / -Infinity literals that Python's json.dumps writes for
// non-finite floats. Integers without fraction or exponent that fit in int64
// are integers, every other number a double (out-of-range saturates as strtod
// does). Strings must be valid UTF-8; \u escapes must pair surrogates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "mmgen/value.hpp"

namespace mmgen::json {

struct Dialect {
  int max_depth = 256;      // values nested deeper than this are rejected
  bool non_finite = false;  // accept NaN, Infinity, -Infinity
};

// Where and why a text is not JSON. Callers rethrow it as their own typed
// error (io::LoadError, cli::JsonError, ProtocolError), in their own words.
class SyntaxError : public std::runtime_error {
 public:
  SyntaxError(std::string reason, std::size_t offset, std::size_t line, std::size_t column);
  const std::string& reason() const { return reason_; }
  std::size_t offset() const { return offset_; }  // bytes from the start
  std::size_t line() const { return line_; }      // 1-based
  std::size_t column() const { return column_; }  // 1-based, in bytes

 private:
  std::string reason_;
  std::size_t offset_, line_, column_;
};

using Scalar = std::variant<std::nullptr_t, bool, std::int64_t, double>;

// The lexer: a position in the text and the tokens that start there.
class Cursor {
 public:
  Cursor(std::string_view text, const Dialect& dialect) : s_(text), dialect_(dialect) {}

  void skip_ws();
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  // Consumes c if it is next (no whitespace skipped).
  bool consume(char c) {
    if (peek() != c || at_end()) return false;
    ++pos_;
    return true;
  }
  std::string string();  // at '"'
  Scalar scalar();       // a literal or a number
  void enter(int depth) const {
    if (depth >= dialect_.max_depth) fail("nesting deeper than " + std::to_string(dialect_.max_depth));
  }
  [[noreturn]] void fail(std::string reason) const;

 private:
  unsigned hex4();
  void copy_utf8(std::string& out);
  void literal(std::string_view word);
  Scalar number();

  std::string_view s_;
  Dialect dialect_;
  std::size_t pos_ = 0;
};

// Builder interface (duck-typed):
//   Node scalar(Scalar);  Node string(std::string&&);
//   Array new_array();    void push(Array&, Node&&);              Node array(Array&&);
//   Object new_object();  void put(Object&, std::string&&, Node&&); Node object(Object&&);
template <class Builder>
class Reader {
 public:
  using Node = decltype(std::declval<Builder&>().string(std::string()));

  Reader(std::string_view text, const Dialect& dialect, Builder& b) : c_(text, dialect), b_(b) {}

  Node document() {
    c_.skip_ws();
    Node v = value(0);
    c_.skip_ws();
    if (!c_.at_end()) c_.fail("unexpected text after the JSON value");
    return v;
  }

 private:
  Node value(int depth) {
    c_.enter(depth);
    switch (c_.peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return b_.string(c_.string());
      default: return b_.scalar(c_.scalar());
    }
  }

  Node object(int depth) {
    c_.consume('{');
    auto o = b_.new_object();
    c_.skip_ws();
    if (c_.consume('}')) return b_.object(std::move(o));
    for (;;) {
      c_.skip_ws();
      if (c_.peek() != '"') c_.fail("expected a string key");
      std::string key = c_.string();
      c_.skip_ws();
      if (!c_.consume(':')) c_.fail("expected ':' after a key");
      c_.skip_ws();
      b_.put(o, std::move(key), value(depth + 1));
      c_.skip_ws();
      if (c_.consume(',')) continue;
      if (c_.consume('}')) return b_.object(std::move(o));
      c_.fail("expected ',' or '}' in an object");
    }
  }

  Node array(int depth) {
    c_.consume('[');
    auto a = b_.new_array();
    c_.skip_ws();
    if (c_.consume(']')) return b_.array(std::move(a));
    for (;;) {
      c_.skip_ws();
      b_.push(a, value(depth + 1));
      c_.skip_ws();
      if (c_.consume(',')) continue;
      if (c_.consume(']')) return b_.array(std::move(a));
      c_.fail("expected ',' or ']' in an array");
    }
  }

  Cursor c_;
  Builder& b_;
};

template <class Builder>
auto read(std::string_view text, const Dialect& dialect, Builder& builder) {
  return Reader<Builder>(text, dialect, builder).document();
}

// The mmgen::Value tree (sorted keys, the last duplicate wins). Throws SyntaxError.
Value read_value(std::string_view text, const Dialect& dialect);

// True when `text` is one JSON document in `dialect` (nothing is built).
bool valid(std::string_view text, const Dialect& dialect = {});

}  // namespace mmgen::json
