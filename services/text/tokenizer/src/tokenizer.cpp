#include "mmgen/text/tokenizer.hpp"

#include <algorithm>
#include <unordered_map>

#include "mmgen/protocol.hpp"
#include "mmgen/text/split_regex.hpp"
#include "mmgen/text/unicode.hpp"

namespace mmgen::text {

using proto::ErrorCode;
using proto::ProtocolError;

const std::string_view kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Tokenizer::Impl {
  explicit Impl(TokenizerSpec& spec)
      : model(std::move(spec.vocab), spec.merges, spec.ignore_merges), nfc(spec.nfc) {
    for (const auto& s : spec.splits) splits.emplace_back(s.pattern, s.literal);
    std::vector<std::pair<std::string, AddedToken>> raw, normalized;
    for (const auto& t : spec.added_tokens) {
      if (t.id < 0) throw ProtocolError(ErrorCode::invalid_request, "negative added token id");
      if (utf8_error_offset(t.content))
        throw ProtocolError(ErrorCode::invalid_request,
                            "added token " + std::to_string(t.id) + " is not valid UTF-8");
      // Normalised tokens are looked for in normalised text, so in normal form.
      if (t.normalized) normalized.emplace_back(nfc ? text::nfc(t.content) : t.content, t);
      else raw.emplace_back(t.content, t);
      added_by_content[t.content] = t.id;
      added_by_id[t.id] = t;
    }
    raw_matcher = AddedTokenMatcher(std::move(raw));
    normalized_matcher = AddedTokenMatcher(std::move(normalized));
    added_list = spec.added_tokens;
    std::sort(added_list.begin(), added_list.end(),
              [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
    id_space = model.id_space();
    for (const auto& t : added_list) id_space = std::max(id_space, static_cast<std::size_t>(t.id) + 1);
  }

  // Normalise, find normalised added tokens, split, merge.
  void encode_text(std::string_view text, bool match_added, std::vector<TokenId>& out) const {
    std::string normalized_storage;
    std::string_view normalized = text;
    if (nfc) {
      normalized_storage = text::nfc(text);
      normalized = normalized_storage;
    }
    if (!match_added || normalized_matcher.empty()) {
      pretokenize_and_merge(normalized, out);
      return;
    }
    std::vector<Segment> segments;
    normalized_matcher.split(normalized, segments);
    for (const Segment& s : segments) {
      if (s.id >= 0) out.push_back(s.id);
      else pretokenize_and_merge(normalized.substr(s.begin, s.end - s.begin), out);
    }
  }

  void pretokenize_and_merge(std::string_view text, std::vector<TokenId>& out) const {
    if (text.empty()) return;
    thread_local std::vector<std::string_view> pieces, next;
    pieces.assign(1, text);
    for (const SplitRegex& re : splits) {
      next.clear();
      for (std::string_view p : pieces) re.split(p, next);
      pieces.swap(next);
    }
    for (std::string_view p : pieces) model.encode_piece(p, out);
  }

  BpeModel model;
  bool nfc = false;
  std::vector<SplitRegex> splits;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::unordered_map<TokenId, AddedToken> added_by_id;
  std::unordered_map<std::string, TokenId> added_by_content;
  std::vector<AddedToken> added_list;
  std::size_t id_space = 0;
};

Tokenizer::Tokenizer(TokenizerSpec spec) : impl_(std::make_shared<const Impl>(spec)) {}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool match_added_tokens) const {
  if (auto bad = utf8_error_offset(text))
    throw ProtocolError(ErrorCode::invalid_request,
                        "text is not valid UTF-8 at byte " + std::to_string(*bad));
  if (text.size() > (1u << 30))
    throw ProtocolError(ErrorCode::too_large, "text over 1 GiB cannot be tokenized");
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 8);
  const Impl& im = *impl_;
  if (!match_added_tokens || im.raw_matcher.empty()) {
    im.encode_text(text, match_added_tokens, out);
    return out;
  }
  std::vector<Segment> segments;
  im.raw_matcher.split(text, segments);
  for (const Segment& s : segments) {
    if (s.id >= 0) out.push_back(s.id);
    else im.encode_text(text.substr(s.begin, s.end - s.begin), true, out);
  }
  return out;
}

void Tokenizer::append_bytes(TokenId id, std::string& out, bool skip_special_tokens) const {
  auto it = impl_->added_by_id.find(id);
  if (it != impl_->added_by_id.end()) {
    if (!(skip_special_tokens && it->second.special)) out += it->second.content;
    return;
  }
  if (const std::string* b = impl_->model.id_to_bytes(id)) out += *b;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (TokenId id : ids) append_bytes(id, bytes, skip_special_tokens);
  return utf8_lossy(bytes);
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_by_content.find(std::string(token));
  if (it != impl_->added_by_content.end()) return it->second;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (const AddedToken* t = added_token(id)) return t->content;
  if (const std::string* s = impl_->model.id_to_token(id)) return *s;
  return std::nullopt;
}

const AddedToken* Tokenizer::added_token(TokenId id) const {
  auto it = impl_->added_by_id.find(id);
  return it == impl_->added_by_id.end() ? nullptr : &it->second;
}

bool Tokenizer::is_special(TokenId id) const {
  const AddedToken* t = added_token(id);
  return t != nullptr && t->special;
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added_list; }
std::size_t Tokenizer::vocab_size() const { return impl_->id_space; }
bool Tokenizer::normalizes_nfc() const { return impl_->nfc; }

}  // namespace mmgen::text
