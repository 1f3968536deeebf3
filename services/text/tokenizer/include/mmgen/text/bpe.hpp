// Byte-level BPE: a piece of raw bytes becomes one symbol per byte, then the
// ranked merges are applied lowest rank first (leftmost first among equal
// ranks), exactly as Hugging Face tokenizers' BPE model does. No byte fallback,
// no dropout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mmgen::text {

using TokenId = std::int32_t;

class BpeModel {
 public:
  // `vocab`: byte-level token string -> id. `merges`: pairs of byte-level
  // strings in rank order (rank = index). Throws ProtocolError naming a merge
  // whose parts or result are not in the vocabulary.
  BpeModel(std::vector<std::pair<std::string, TokenId>> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges);

  // Appends the ids of one pre-tokenized piece given as raw bytes. Bytes with
  // no vocabulary entry are dropped, as the reference does without unk_token.
  void encode_piece(std::string_view bytes, std::vector<TokenId>& out) const;

  std::optional<TokenId> token_to_id(std::string_view byte_level_token) const;
  // The byte-level spelling / the raw bytes of an id; nullptr if the id is not in the vocabulary.
  const std::string* id_to_token(TokenId id) const;
  const std::string* id_to_bytes(TokenId id) const;
  // One past the largest id.
  std::size_t id_space() const { return tokens_.size(); }
  std::size_t merge_count() const { return merge_count_; }

 private:
  struct Merge {
    std::uint32_t rank;
    TokenId merged;
  };
  // Open addressing over (left id, right id) packed into 64 bits.
  class PairTable {
   public:
    void reserve(std::size_t n);
    void insert_or_assign(TokenId a, TokenId b, Merge m);
    const Merge* find(TokenId a, TokenId b) const;

   private:
    struct Slot {
      std::uint64_t key = kEmpty;
      Merge merge{};
    };
    static constexpr std::uint64_t kEmpty = ~0ull;
    static std::uint64_t mix(std::uint64_t k);
    std::vector<Slot> slots_;
    std::uint64_t mask_ = 0;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using StringMap = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;
  using Cache = std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>>;

  void merge_word(std::string_view bytes, std::vector<TokenId>& out) const;

  StringMap vocab_;
  std::vector<std::string> tokens_;  // id -> byte-level string ("" for holes)
  std::vector<std::string> bytes_;   // id -> raw bytes
  std::vector<bool> present_;
  TokenId byte_ids_[256];            // id of each single byte, -1 if absent
  PairTable merges_;
  std::size_t merge_count_ = 0;
  bool ignore_merges_ = false;

  // word -> ids. Bounded: once full it stops growing (the reference does the same).
  static constexpr std::size_t kCacheEntries = 1u << 16;
  static constexpr std::size_t kCacheMaxWord = 256;
  mutable std::mutex cache_mu_;
  mutable Cache cache_;
};

}  // namespace mmgen::text
