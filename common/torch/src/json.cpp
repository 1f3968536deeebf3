// config.json, shard indexes and safetensors headers through the project's one
// JSON reader (mmgen/json_reader.hpp), with Python's NaN/Infinity literals.
#include "mmgen/io/json.hpp"

#include <fstream>
#include <string>

#include "mmgen/io/load_error.hpp"
#include "mmgen/json_reader.hpp"

namespace mmgen::io {

std::string_view to_string(LoadErrorKind k) {
  switch (k) {
    case LoadErrorKind::io: return "io";
    case LoadErrorKind::bad_json: return "bad_json";
    case LoadErrorKind::bad_header: return "bad_header";
    case LoadErrorKind::truncated: return "truncated";
    case LoadErrorKind::missing: return "missing";
    case LoadErrorKind::unexpected: return "unexpected";
    case LoadErrorKind::wrong_shape: return "wrong_shape";
    case LoadErrorKind::wrong_dtype: return "wrong_dtype";
    case LoadErrorKind::bad_config: return "bad_config";
    case LoadErrorKind::unsupported: return "unsupported";
  }
  return "?";
}

Value parse_json(std::string_view text, std::string_view source) {
  try {
    return json::read_value(text, json::Dialect{kMaxJsonDepth, /*non_finite=*/true});
  } catch (const json::SyntaxError& e) {
    throw LoadError(LoadErrorKind::bad_json, std::string(source) + ": invalid JSON at line " +
                                                 std::to_string(e.line()) + " column " +
                                                 std::to_string(e.column()) + ": " + e.reason());
  }
}

Value read_json_file(const std::filesystem::path& path, std::size_t max_bytes) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw LoadError(LoadErrorKind::io, path.string() + ": cannot read: " + ec.message());
  if (size > max_bytes) {
    throw LoadError(LoadErrorKind::io, path.string() + ": " + std::to_string(size) +
                                           " bytes, more than the " + std::to_string(max_bytes) +
                                           " allowed for a JSON file");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text(size, '\0');
  if (!in || !in.read(text.data(), std::streamsize(size))) {
    throw LoadError(LoadErrorKind::io, path.string() + ": cannot read");
  }
  return parse_json(text, path.string());
}

}  // namespace mmgen::io
