// Strict JSON (RFC 8259) to mmgen::Value, for config.json, the shard index and
// safetensors headers. Torch-free.
//
// Integers without fraction or exponent that fit in int64 become ints, every
// other number a double. Python's json writes NaN / Infinity / -Infinity for
// non-finite floats, so those three literals are accepted too. Duplicate keys:
// the last one wins, as in Python. Nesting is limited (kMaxJsonDepth) so a
// hostile file cannot exhaust the stack.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>

#include "mmgen/value.hpp"

namespace mmgen::io {

inline constexpr int kMaxJsonDepth = 256;

// Throws LoadError(bad_json) naming `source`, the line and column.
Value parse_json(std::string_view text, std::string_view source);

// Reads a whole file (at most max_bytes) and parses it. Throws LoadError(io)
// when the file cannot be read or is larger than max_bytes.
Value read_json_file(const std::filesystem::path& path, std::size_t max_bytes = 64u << 20);

}  // namespace mmgen::io
