#include "mmgen/text/bpe.hpp"

#include <algorithm>
#include <functional>

#include "mmgen/protocol.hpp"
#include "mmgen/text/byte_level.hpp"

namespace mmgen::text {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

// A candidate merge of the symbol at `pos` with its right neighbour. Ordered
// so the queue pops the lowest rank, then the leftmost position.
struct Candidate {
  std::uint32_t rank;
  std::int32_t pos;
  TokenId merged;
  bool operator>(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

struct Symbol {
  TokenId id;
  std::int32_t prev, next;
  bool alive;
};

}  // namespace

// ---- pair table ------------------------------------------------------------------

std::uint64_t BpeModel::PairTable::mix(std::uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

void BpeModel::PairTable::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
}

void BpeModel::PairTable::insert_or_assign(TokenId a, TokenId b, Merge m) {
  std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
                      static_cast<std::uint32_t>(b);
  for (std::uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].key == kEmpty || slots_[i].key == key) {
      slots_[i] = Slot{key, m};
      return;
    }
  }
}

const BpeModel::Merge* BpeModel::PairTable::find(TokenId a, TokenId b) const {
  std::uint64_t key = (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
                      static_cast<std::uint32_t>(b);
  for (std::uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].key == key) return &slots_[i].merge;
    if (slots_[i].key == kEmpty) return nullptr;
  }
}

// ---- model -------------------------------------------------------------------------

BpeModel::BpeModel(std::vector<std::pair<std::string, TokenId>> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges,
                   bool ignore_merges)
    : ignore_merges_(ignore_merges) {
  TokenId max_id = -1;
  for (const auto& [tok, id] : vocab) {
    if (id < 0) throw ProtocolError(ErrorCode::invalid_request, "negative id for token " + tok);
    max_id = std::max(max_id, id);
  }
  tokens_.assign(static_cast<std::size_t>(max_id + 1), {});
  bytes_.assign(tokens_.size(), {});
  present_.assign(tokens_.size(), false);
  vocab_.reserve(vocab.size());
  for (auto& [tok, id] : vocab) {
    auto idx = static_cast<std::size_t>(id);
    // A token outside the byte alphabet decodes to its own UTF-8 spelling, as
    // the reference ByteLevel decoder does.
    auto raw = from_byte_level(tok);
    bytes_[idx] = raw ? std::move(*raw) : tok;
    tokens_[idx] = tok;
    present_[idx] = true;
    vocab_.insert_or_assign(std::move(tok), id);
  }
  for (int b = 0; b < 256; ++b) {
    std::string s;
    s += static_cast<char>(b);
    auto it = vocab_.find(to_byte_level(s));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size());
  std::string joined;
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    joined = a;
    joined += b;
    auto im = vocab_.find(joined);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end())
      throw ProtocolError(ErrorCode::invalid_request,
                          "merge " + std::to_string(rank) + " (\"" + a + "\", \"" + b +
                              "\") uses a token that is not in the vocabulary");
    // Later duplicates win, as when the reference collects merges into a map.
    merges_.insert_or_assign(ia->second, ib->second,
                             Merge{static_cast<std::uint32_t>(rank), im->second});
  }
  merge_count_ = merges.size();
}

std::optional<TokenId> BpeModel::token_to_id(std::string_view tok) const {
  auto it = vocab_.find(tok);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(TokenId id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || !present_[id]) return nullptr;
  return &tokens_[id];
}

const std::string* BpeModel::id_to_bytes(TokenId id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= bytes_.size() || !present_[id]) return nullptr;
  return &bytes_[id];
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<TokenId>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1) {
    TokenId id = byte_ids_[static_cast<std::uint8_t>(bytes[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  if (ignore_merges_) {
    if (auto id = token_to_id(to_byte_level(bytes))) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = bytes.size() <= kCacheMaxWord;
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    auto it = cache_.find(bytes);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::size_t first = out.size();
  merge_word(bytes, out);
  if (cacheable) {
    std::lock_guard lock(cache_mu_);
    if (cache_.size() < kCacheEntries)
      cache_.emplace(std::string(bytes), std::vector<TokenId>(out.begin() + first, out.end()));
  }
}

// The reference's merge loop: a priority queue of candidate merges; a popped
// candidate is applied only if its symbol is still alive, still has a right
// neighbour, and that pair still merges into the same token.
void BpeModel::merge_word(std::string_view bytes, std::vector<TokenId>& out) const {
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;  // min-heap via std::greater
  symbols.clear();
  for (char c : bytes) {
    TokenId id = byte_ids_[static_cast<std::uint8_t>(c)];
    if (id < 0) continue;
    auto n = static_cast<std::int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, n + 1, true});
  }
  if (symbols.empty()) return;
  const auto count = static_cast<std::int32_t>(symbols.size());
  symbols.back().next = -1;

  heap.clear();
  auto push = [](Candidate c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (std::int32_t i = 0; i + 1 < count; ++i)
    if (const Merge* m = merges_.find(symbols[i].id, symbols[i + 1].id))
      push(Candidate{m->rank, i, m->merged});

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const Merge* now = merges_.find(left.id, right.id);
    if (now == nullptr || now->merged != top.merged) continue;

    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;

    if (left.prev >= 0)
      if (const Merge* m = merges_.find(symbols[left.prev].id, left.id))
        push(Candidate{m->rank, left.prev, m->merged});
    if (left.next >= 0)
      if (const Merge* m = merges_.find(left.id, symbols[left.next].id))
        push(Candidate{m->rank, top.pos, m->merged});
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace mmgen::text
