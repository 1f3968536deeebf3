// Added tokens (special tokens such as <|im_start|>, and plain added tokens
// such as <think>) are found in the text before it is split and merged, so
// they always become their single id.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mmgen/text/bpe.hpp"

namespace mmgen::text {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool single_word = false;  // match only when not inside a word
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool normalized = false;   // matched against normalised text (else raw text)
  bool special = false;      // dropped by decode(skip_special_tokens)
};

// A span of the input: an added token (id >= 0) or text for the model (id < 0).
struct Segment {
  std::size_t begin = 0, end = 0;
  TokenId id = -1;
};

// Leftmost-longest matching over a byte trie, with the single_word / lstrip /
// rstrip rules of the reference. A match rejected by single_word still
// consumes its span (the reference's non-overlapping search does the same).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns`: the text to look for and the token it stands for.
  explicit AddedTokenMatcher(std::vector<std::pair<std::string, AddedToken>> patterns);

  bool empty() const { return tokens_.empty(); }
  // Appends segments covering `text` in order (adjacent, no gaps).
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<std::uint8_t, std::int32_t>> next;  // sorted by byte
    std::int32_t token = -1;                                  // index into tokens_
  };
  // Longest token starting at `pos`: {token index, length} or {-1, 0}.
  std::pair<std::int32_t, std::size_t> longest_at(std::string_view text, std::size_t pos) const;

  std::vector<Node> nodes_;
  std::vector<AddedToken> tokens_;
  std::bitset<256> first_bytes_;
};

}  // namespace mmgen::text
