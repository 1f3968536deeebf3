// A small strict JSON reader (RFC 8259) into mmgen::Value, for files the CLI
// sends as parameters (the --chat messages). Bounded: nesting depth and input
// size are limited, so a hostile file cannot exhaust the stack or memory.
#pragma once

#include <stdexcept>
#include <string_view>

#include "mmgen/value.hpp"

namespace mmgen::cli {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::size_t kMaxJsonDepth = 64;

// Integers that fit in int64 become ints, other numbers doubles. Throws
// JsonError naming the line and column of the problem.
Value parse_json(std::string_view text);

}  // namespace mmgen::cli
