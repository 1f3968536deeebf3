// The CLI's JSON files through the project's one JSON reader
// (mmgen/json_reader.hpp): strict RFC 8259, no NaN/Infinity, shallow nesting.
#include "cli/json_parse.hpp"

#include "mmgen/json_reader.hpp"

namespace mmgen::cli {

Value parse_json(std::string_view text) {
  try {
    return json::read_value(text, json::Dialect{int(kMaxJsonDepth), /*non_finite=*/false});
  } catch (const json::SyntaxError& e) {
    throw JsonError(e.what());  // "<reason> at line L, column C"
  }
}

}  // namespace mmgen::cli
