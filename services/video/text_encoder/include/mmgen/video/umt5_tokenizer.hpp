// The umT5 tokenizer of the Wan pipelines, on the SentencePiece C++ library
// (Debian's libsentencepiece) over the published `tokenizer/spiece.model`,
// giving the same ids as what the pipeline loads: AutoTokenizer on the
// published folder, which in transformers 5 is T5Tokenizer (tokenizers
// backend, Unigram over the spiece vocabulary plus the <extra_id_N> sentinels).
//
// How that tokenizer works, and how each step is matched here:
//   1. Special tokens (<pad>, </s>, <unk>, <extra_id_N>) are cut out of the raw
//      text first (leftmost, longest) and map to their ids; the text between
//      them is tokenized piece by piece.                    -> encode()
//   2. Each piece: tokenizers' Precompiled normaliser with the spiece model's
//      character map (NFKC plus whitespace rules), applied per grapheme
//      cluster; a split on Unicode whitespace; "\u2581" before every word;
//      Unigram Viterbi per word; consecutive unknowns fused into one <unk>.
//      The normaliser and the split are ours (spm_normalizer.hpp): applying
//      the map per grapheme cluster differs from SentencePiece's own
//      longest-match normaliser (conjoining Hangul jamo, base letters with
//      several combining marks, ...). SentencePiece runs the rest on the same
//      model with an identity normaliser. Byte-fallback pieces, which the fast
//      tokenizer never produces, become one <unk> per run of unknown
//      characters, as the fast tokenizer's fused unknowns. The fast
//      tokenizer's vocabulary also holds the byte pieces ("<0x41>") as
//      ordinary entries of score 0, which its Viterbi takes where that text
//      appears (in principle a long piece reaching into the literal could
//      outscore it; no such case seen); SentencePiece never matches byte
//      pieces in text, so such literals are cut out of the word first.
//   3. "</s>" appended; truncation keeps max_length - 1 tokens then "</s>";
//      padding with <pad> (id 0) on the right; mask 1 on real tokens.
// Checked against the Hugging Face tokenizer on the project corpus (2,027
// lines) and, once, on 24,300 random strings mixing scripts, combining marks,
// jamo, whitespace and control characters, emoji sequences, special tokens
// and byte literals: no difference.
// The tokenizer.json of the published folder is not read: transformers 5.23
// rebuilds T5Tokenizer's pipeline from its class (Precompiled normaliser,
// WhitespaceSplit + Metaspace(prepend always), "$A </s>") and keeps only the
// vocabulary and the character map from the file, whatever normaliser and
// pre-tokenizer the file names (checked: a tokenizer.json written with
// transformers 4's Replace(" {2,}") normaliser and a bare Metaspace loads to
// the same pipeline). spiece.model holds the same vocabulary and map.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace mmgen::video {

namespace detail {
class PrecompiledNormalizer;
}

struct TokenizedBatch {
  std::int64_t batch = 0;
  std::int64_t length = 0;
  std::vector<std::int64_t> input_ids;       // [batch * length], row-major
  std::vector<std::int64_t> attention_mask;  // [batch * length], 1 = token, 0 = padding
};

class UMT5Tokenizer {
 public:
  // `folder` holds spiece.model and, optionally, tokenizer_config.json (for
  // extra_ids and the special-token spellings) and special_tokens_map.json.
  // Throws io::LoadError: io when spiece.model is missing, bad_header when
  // SentencePiece cannot read it, bad_config for an unusable tokenizer_config.json.
  static UMT5Tokenizer load(const std::filesystem::path& folder);
  ~UMT5Tokenizer();
  UMT5Tokenizer(UMT5Tokenizer&&) noexcept;
  UMT5Tokenizer& operator=(UMT5Tokenizer&&) noexcept;

  // add_special_tokens=True, no truncation: the ids of `text` (UTF-8) then
  // </s>. Throws std::invalid_argument for invalid UTF-8.
  std::vector<std::int64_t> encode(std::string_view text) const;
  // padding="max_length", truncation=True, max_length: every row exactly
  // max_length long. Throws std::invalid_argument for max_length < 1.
  TokenizedBatch encode_batch(const std::vector<std::string>& texts, std::int64_t max_length) const;

  // Pieces + sentinels (len(tokenizer)).
  std::int64_t size() const { return piece_size_ + extra_ids_; }
  std::int64_t pad_id() const { return pad_id_; }
  std::int64_t eos_id() const { return eos_id_; }
  std::int64_t unk_id() const { return unk_id_; }
  std::int64_t extra_ids() const { return extra_ids_; }
  // The id of a special token spelling, or -1.
  std::int64_t special_token_id(std::string_view token) const;

 private:
  UMT5Tokenizer() = default;
  // Tokenizes text between special tokens (normalise, split, Unigram).
  void encode_piece(std::string_view text, std::vector<std::int64_t>& out) const;
  // SentencePiece ids of already normalised text ("\u2581" for each space).
  void append_pieces(const std::string& text, std::vector<std::int64_t>& out) const;
  // The id of a byte piece spelled out ("<0x41>") at word[i], or -1.
  std::int64_t byte_piece_at(std::string_view word, std::size_t i) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;  // identity normaliser
  std::unique_ptr<detail::PrecompiledNormalizer> normalizer_;
  std::int64_t piece_size_ = 0;
  std::int64_t extra_ids_ = 0;
  std::int64_t pad_id_ = 0, eos_id_ = 1, unk_id_ = 2;
  // Special tokens, longest first, with their ids.
  std::vector<std::pair<std::string, std::int64_t>> specials_;
};

}  // namespace mmgen::video
