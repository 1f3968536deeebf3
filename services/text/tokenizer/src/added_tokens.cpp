#include "mmgen/text/added_tokens.hpp"

#include <algorithm>

#include "mmgen/text/unicode.hpp"

namespace mmgen::text {
namespace {

// First / last code point of a valid UTF-8 string.
char32_t first_char(std::string_view s) { return utf8_step(s).code_point; }
char32_t last_char(std::string_view s) {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return utf8_step(s.substr(i)).code_point;
}

// Start of the whitespace run that ends `s`.
std::size_t trailing_space_start(std::string_view s) {
  std::size_t i = s.size();
  while (i > 0) {
    std::size_t j = i - 1;
    while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    if (!is_unicode_whitespace(utf8_step(s.substr(j)).code_point)) break;
    i = j;
  }
  return i;
}

// Length of the whitespace run that starts `s`.
std::size_t leading_space_length(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    Utf8Step st = utf8_step(s.substr(i));
    if (!st.valid || !is_unicode_whitespace(st.code_point)) break;
    i += st.length;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::pair<std::string, AddedToken>> patterns) {
  nodes_.emplace_back();
  for (auto& [text, token] : patterns) {
    if (text.empty()) continue;
    std::int32_t node = 0;
    for (char ch : text) {
      auto b = static_cast<std::uint8_t>(ch);
      auto& next = nodes_[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), b,
                                 [](const auto& e, std::uint8_t v) { return e.first < v; });
      if (it != next.end() && it->first == b) {
        node = it->second;
      } else {
        auto child = static_cast<std::int32_t>(nodes_.size());
        next.insert(it, {b, child});
        nodes_.emplace_back();
        node = child;
      }
    }
    first_bytes_.set(static_cast<std::uint8_t>(text[0]));
    // The same text twice: the later definition wins.
    if (nodes_[node].token >= 0) {
      tokens_[nodes_[node].token] = std::move(token);
    } else {
      nodes_[node].token = static_cast<std::int32_t>(tokens_.size());
      tokens_.push_back(std::move(token));
    }
  }
}

std::pair<std::int32_t, std::size_t> AddedTokenMatcher::longest_at(std::string_view text,
                                                                   std::size_t pos) const {
  std::pair<std::int32_t, std::size_t> best{-1, 0};
  std::int32_t node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto& next = nodes_[node].next;
    auto b = static_cast<std::uint8_t>(text[i]);
    auto it = std::lower_bound(next.begin(), next.end(), b,
                               [](const auto& e, std::uint8_t v) { return e.first < v; });
    if (it == next.end() || it->first != b) break;
    node = it->second;
    if (nodes_[node].token >= 0) best = {nodes_[node].token, i + 1 - pos};
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  std::size_t done = 0;  // everything before this is already in `out`
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!first_bytes_.test(static_cast<std::uint8_t>(text[pos]))) {
      ++pos;
      continue;
    }
    auto [index, length] = longest_at(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[index];
    std::size_t start = pos, stop = pos + length;
    pos = stop;  // the next search starts after this match, accepted or not
    if (tok.single_word) {
      bool word_before = start > 0 && is_word_char(last_char(text.substr(0, start)));
      bool word_after = stop < text.size() && is_word_char(first_char(text.substr(stop)));
      if (word_before || word_after) continue;
    }
    if (tok.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), done);
    if (tok.rstrip) stop += leading_space_length(text.substr(stop));
    if (done < start) out.push_back(Segment{done, start, -1});
    out.push_back(Segment{start, stop, tok.id});
    done = pos = stop;
  }
  if (done < text.size()) out.push_back(Segment{done, text.size(), -1});
}

}  // namespace mmgen::text
