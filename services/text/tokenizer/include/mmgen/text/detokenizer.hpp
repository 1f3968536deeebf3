// Streaming detokenization: ids arrive one at a time and text leaves as soon as
// it is complete UTF-8. A character split across tokens (common for CJK and
// emoji in byte-level BPE) is held back until its last byte arrives, so a
// client never sees half a character. The concatenation of everything pushed
// and finish() equals Tokenizer::decode of all ids.
#pragma once

#include <span>
#include <string>

#include "mmgen/text/tokenizer.hpp"

namespace mmgen::text {

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  // Text made complete by this id (often empty while a character is pending).
  std::string push(TokenId id);
  std::string push(std::span<const TokenId> ids);
  // End of stream: whatever is still pending becomes U+FFFD.
  std::string finish();
  // Bytes held back waiting for the rest of a character.
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string drain();

  Tokenizer tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace mmgen::text
