// The normalisation half of the Hugging Face umT5 tokenizer, so that the
// SentencePiece library only has to do the Unigram half (private to
// mmgen_umt5; see umt5_tokenizer.hpp for the whole picture).
//
// transformers 5's T5Tokenizer normalises with tokenizers' `Precompiled`
// normaliser over the spiece model's precompiled character map, which walks
// the text by extended grapheme cluster: a cluster shorter than 6 bytes is
// replaced as a whole by the map entry of its SHORTEST mapped prefix (the rest
// of the cluster is dropped); longer clusters, and clusters with no mapped
// prefix, are mapped code point by code point. SentencePiece's own normaliser
// takes the longest match at every position instead, and so composes, for
// example, conjoining Hangul jamo that the fast tokenizer leaves apart. We
// therefore normalise here, then split on Unicode White_Space (the
// tokenizers WhitespaceSplit), and hand SentencePiece the words, each with a
// leading space for its "\u2581" (Metaspace), under an identity normaliser
// that neither adds a prefix nor drops spaces.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mmgen::video::detail {

struct SpmModelParts {
  std::string charsmap;        // normalizer_spec.precompiled_charsmap (may be empty)
  std::string identity_model;  // the model with an identity normaliser (no dummy prefix, spaces
                               // kept and escaped) and no self-test data
};

// Splits a serialized sentencepiece ModelProto. Throws io::LoadError(bad_header)
// naming `source` when the bytes are not a well-formed protobuf message.
SpmModelParts split_spm_model(std::string_view bytes, const std::string& source);

class PrecompiledNormalizer {
 public:
  // `charsmap`: [u32 trie size][darts-clone double array][NUL-separated
  // replacement strings]. Empty = identity. Throws io::LoadError(bad_header).
  PrecompiledNormalizer(std::string charsmap, const std::string& source);
  // UTF-8 in (valid), UTF-8 out.
  std::string normalize(std::string_view text) const;

 private:
  // The replacement of the shortest mapped prefix of `key`, or nullptr.
  const char* shortest_match(std::string_view key, std::size_t& replacement_size) const;

  std::string blob_;
  const std::uint32_t* units_ = nullptr;
  std::size_t num_units_ = 0;
  const char* replacements_ = nullptr;
  std::size_t replacements_size_ = 0;
};

// Words of `text` between runs of Unicode White_Space (Rust's
// char::is_whitespace, as tokenizers' WhitespaceSplit).
std::vector<std::string_view> split_words(std::string_view text);

}  // namespace mmgen::video::detail
