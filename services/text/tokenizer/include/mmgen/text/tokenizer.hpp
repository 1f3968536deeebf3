// Byte-level BPE tokenizer compatible with Hugging Face `tokenizers` for the
// Qwen family (and other GPT-style byte-level BPE models):
//
//   text -> added tokens found (raw text) -> NFC -> added tokens found
//   (normalised text) -> split regex(es) -> bytes -> BPE merges -> ids
//
// Immutable after construction and safe to use from several threads (the
// word cache inside is locked). Copies share the loaded tables.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mmgen/text/added_tokens.hpp"
#include "mmgen/text/bpe.hpp"

namespace mmgen::text {

// Everything a tokenizer file says, in plain data. Built by the loaders below
// or by hand (tests).
struct TokenizerSpec {
  std::vector<std::pair<std::string, TokenId>> vocab;            // byte-level strings
  std::vector<std::pair<std::string, std::string>> merges;       // in rank order
  bool ignore_merges = false;
  bool nfc = false;                                              // normalizer
  struct Split {
    std::string pattern;
    bool literal = false;
  };
  std::vector<Split> splits;                                     // applied in order
  std::vector<AddedToken> added_tokens;
};

// The split regex of Qwen2 / Qwen2.5 / Qwen3 tokenizers.
extern const std::string_view kQwen2SplitPattern;

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerSpec spec);

  // A Hugging Face tokenizer.json (text or file).
  static Tokenizer from_json(std::string_view tokenizer_json);
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json);
  // vocab.json + merges.txt (+ tokenizer_config.json's added_tokens_decoder),
  // configured as transformers' Qwen2Tokenizer does: NFC, the Qwen split regex,
  // byte-level BPE.
  static Tokenizer from_qwen2_files(const std::filesystem::path& vocab_json,
                                    const std::filesystem::path& merges_txt,
                                    const std::filesystem::path& tokenizer_config_json = {});
  // A model folder: tokenizer.json if present, else the Qwen2 file triplet.
  static Tokenizer from_directory(const std::filesystem::path& dir);

  // Text (UTF-8) -> ids. Added tokens in the text become their ids unless
  // `match_added_tokens` is false. Invalid UTF-8 throws
  // ProtocolError(invalid_request) naming the byte offset.
  std::vector<TokenId> encode(std::string_view text, bool match_added_tokens = true) const;

  // Ids -> text. Bytes that do not form UTF-8 become U+FFFD; ids outside the
  // vocabulary are skipped (both as the reference does).
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;
  // Appends the raw bytes of one id (nothing for an unknown or skipped id).
  void append_bytes(TokenId id, std::string& out, bool skip_special_tokens = false) const;

  // Byte-level spelling for vocabulary tokens, content for added tokens.
  std::optional<TokenId> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(TokenId id) const;
  const AddedToken* added_token(TokenId id) const;
  bool is_special(TokenId id) const;
  const std::vector<AddedToken>& added_tokens() const;
  // One past the largest id (vocabulary and added tokens).
  std::size_t vocab_size() const;
  bool normalizes_nfc() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace mmgen::text
