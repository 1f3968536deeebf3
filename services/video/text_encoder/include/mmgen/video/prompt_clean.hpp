// The prompt clean-up the Wan pipelines apply before tokenizing
// (diffusers pipeline_wan.py: prompt_clean = whitespace_clean(basic_clean(t))):
//   basic_clean:      ftfy.fix_text when ftfy is installed, then
//                     html.unescape twice, then str.strip()
//   whitespace_clean: every run of regex `\s` (the `regex` module's Unicode
//                     whitespace) becomes one space, then str.strip()
// Implemented here: both html.unescape passes with Python's rules (all 2,231
// HTML5 named references, with and without ';' where the standard allows,
// longest-prefix matching of unterminated names, numeric references with the
// HTML5 replacements for C1 controls, surrogates and out-of-range values),
// the two whitespace sets (str.strip also strips U+001C..U+001F, `\s` does
// not), and the order of the steps.
// Not implemented: ftfy.fix_text (mojibake repair, "fixing" of quotes,
// ligatures, control characters, ...). ftfy is optional in diffusers and not
// installed in the pinned reference environment, so the reference this
// project is checked against skips it too; a deployment that installs ftfy
// next to diffusers would clean some malformed prompts differently.
#pragma once

#include <string>
#include <string_view>

namespace mmgen::video {

// Python's html.unescape on UTF-8 text.
std::string html_unescape(std::string_view text);

// The pipeline's prompt_clean on UTF-8 text. Throws std::invalid_argument
// when `text` is not valid UTF-8.
std::string prompt_clean(std::string_view text);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool is_valid_utf8(std::string_view text);

}  // namespace mmgen::video
