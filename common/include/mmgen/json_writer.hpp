// Writing JSON strings: the one escaper behind Value::to_json (CLI output,
// logs, error messages) and the tokenizer's chat-template `tojson`.
#pragma once

#include <string>
#include <string_view>

namespace mmgen::json {

// Appends `s` as a JSON string: quoted; '"', '\\' and control characters
// escaped (\n \r \t \b \f by name, others as \u00XX); other characters as
// they are (no \u escapes for non-ASCII, like json.dumps(ensure_ascii=False));
// a byte that is not part of valid UTF-8 becomes U+FFFD, so the result is
// always valid UTF-8.
void append_string(std::string& out, std::string_view s);

}  // namespace mmgen::json
