#include "mmgen/text/detokenizer.hpp"

#include "mmgen/text/unicode.hpp"

namespace mmgen::text {

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string IncrementalDetokenizer::push(TokenId id) {
  tokenizer_.append_bytes(id, pending_, skip_special_);
  return drain();
}

std::string IncrementalDetokenizer::push(std::span<const TokenId> ids) {
  for (TokenId id : ids) tokenizer_.append_bytes(id, pending_, skip_special_);
  return drain();
}

// Emits all but an unfinished character at the end. Ill-formed bytes before
// it are replaced now: no later byte can make them valid.
std::string IncrementalDetokenizer::drain() {
  std::size_t keep = utf8_incomplete_tail(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string IncrementalDetokenizer::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace mmgen::text
