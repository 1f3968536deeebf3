// umT5 tokenizer on SentencePiece (umt5_tokenizer.hpp).
#include "mmgen/video/umt5_tokenizer.hpp"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/video/prompt_clean.hpp"
#include "spm_normalizer.hpp"

namespace mmgen::video {

namespace {

using io::LoadError;
using io::LoadErrorKind;

constexpr std::int64_t kDefaultExtraIds = 100;  // T5Tokenizer's default

// A token spelling from tokenizer_config.json: a string or an AddedToken
// object {"content": ...}; `def` when absent.
std::string token_spelling(const io::HfConfig& cfg, std::string_view key, std::string def) {
  const Value* v = cfg.find(key);
  if (v == nullptr) return def;
  if (v->is_string()) return v->as_string();
  if (v->is_map()) {
    if (auto sub = cfg.sub(key); sub && sub->has("content")) return sub->get_string("content");
  }
  cfg.fail(key, "must be a string or an object with 'content'");
}

// How many <extra_id_N> sentinels follow the pieces: tokenizer_config.json's
// extra_ids, else the count listed among the additional special tokens.
std::int64_t count_extra_ids(const io::HfConfig& cfg) {
  if (cfg.has("extra_ids")) {
    const std::int64_t n = cfg.get_int("extra_ids");
    if (n < 0) cfg.fail("extra_ids", "must not be negative");
    if (n > 0) return n;
  }
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
    const Value* v = cfg.find(key);
    if (v == nullptr || !v->is_array()) continue;
    std::int64_t n = 0;
    for (const Value& t : v->as_array()) {
      std::string s;
      if (t.is_string())
        s = t.as_string();
      else if (t.is_map() && t.as_map().count("content") && t.as_map().at("content").is_string())
        s = t.as_map().at("content").as_string();
      if (s.rfind("<extra_id_", 0) == 0) ++n;
    }
    if (n > 0) return n;
  }
  return cfg.has("extra_ids") ? 0 : kDefaultExtraIds;
}

}  // namespace

UMT5Tokenizer::~UMT5Tokenizer() = default;
UMT5Tokenizer::UMT5Tokenizer(UMT5Tokenizer&&) noexcept = default;
UMT5Tokenizer& UMT5Tokenizer::operator=(UMT5Tokenizer&&) noexcept = default;

UMT5Tokenizer UMT5Tokenizer::load(const std::filesystem::path& folder) {
  const std::filesystem::path model_path = folder / "spiece.model";
  if (!std::filesystem::is_regular_file(model_path)) {
    throw LoadError(LoadErrorKind::io, "UMT5 tokenizer: " + model_path.string() +
                                           " not found (the SentencePiece model of the published tokenizer/ "
                                           "folder is required; tokenizer.json alone is not enough)");
  }
  UMT5Tokenizer t;
  {
    // Read the bytes ourselves so a directory, a permission problem or an
    // empty file is reported as such.
    std::ifstream in(model_path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in.good() && !in.eof()) {
      throw LoadError(LoadErrorKind::io, "UMT5 tokenizer: cannot read " + model_path.string());
    }
    // Normalisation is done here as the fast tokenizer does it; SentencePiece
    // gets the same model with an identity normaliser (spm_normalizer.hpp).
    detail::SpmModelParts parts = detail::split_spm_model(buf.str(), model_path.string());
    t.normalizer_ = std::make_unique<detail::PrecompiledNormalizer>(std::move(parts.charsmap), model_path.string());
    t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = t.sp_->LoadFromSerializedProto(parts.identity_model);
    if (!status.ok()) {
      throw LoadError(LoadErrorKind::bad_header,
                      "UMT5 tokenizer: " + model_path.string() + " is not a SentencePiece model: " + status.ToString());
    }
  }
  t.piece_size_ = t.sp_->GetPieceSize();

  std::string eos = "</s>", unk = "<unk>", pad = "<pad>";
  t.extra_ids_ = kDefaultExtraIds;
  if (std::filesystem::is_regular_file(folder / "tokenizer_config.json")) {
    const io::HfConfig cfg = io::HfConfig::load(folder / "tokenizer_config.json");
    eos = token_spelling(cfg, "eos_token", eos);
    unk = token_spelling(cfg, "unk_token", unk);
    pad = token_spelling(cfg, "pad_token", pad);
    t.extra_ids_ = count_extra_ids(cfg);
  }
  auto piece_id = [&](const std::string& s) -> std::int64_t {
    const int id = t.sp_->PieceToId(s);
    // PieceToId answers unk_id for unknown spellings.
    if (id == t.sp_->unk_id() && s != t.sp_->IdToPiece(id)) {
      throw LoadError(LoadErrorKind::bad_config,
                      "UMT5 tokenizer: special token '" + s + "' is not a piece of " + model_path.string());
    }
    return id;
  };
  t.eos_id_ = piece_id(eos);
  t.unk_id_ = piece_id(unk);
  t.pad_id_ = piece_id(pad);

  t.specials_ = {{eos, t.eos_id_}, {unk, t.unk_id_}, {pad, t.pad_id_}};
  // Sentinels follow the pieces in reverse: <extra_id_0> is the last id.
  for (std::int64_t i = 0; i < t.extra_ids_; ++i) {
    t.specials_.emplace_back("<extra_id_" + std::to_string(i) + ">", t.piece_size_ + t.extra_ids_ - 1 - i);
  }
  std::stable_sort(t.specials_.begin(), t.specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return t;
}

std::int64_t UMT5Tokenizer::special_token_id(std::string_view token) const {
  for (const auto& [s, id] : specials_) {
    if (s == token) return id;
  }
  return -1;
}

void UMT5Tokenizer::append_pieces(const std::string& text, std::vector<std::int64_t>& out) const {
  if (text.empty()) return;
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error("UMT5 tokenizer: SentencePiece failed: " + status.ToString());
  bool in_unknown_run = false;
  for (int id : ids) {
    // Byte-fallback pieces and <unk> alike: one <unk> per run, as the fast
    // tokenizer (no byte fallback, fused unknowns) gives.
    if (sp_->IsByte(id) || sp_->IsUnknown(id)) {
      if (!in_unknown_run) out.push_back(unk_id_);
      in_unknown_run = true;
    } else {
      out.push_back(id);
      in_unknown_run = false;
    }
  }
}

std::int64_t UMT5Tokenizer::byte_piece_at(std::string_view word, std::size_t i) const {
  // "<0xHH>" with upper-case hex, SentencePiece's spelling of byte pieces.
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  if (i + 6 > word.size() || word.compare(i, 3, "<0x") != 0 || !hex(word[i + 3]) || !hex(word[i + 4]) ||
      word[i + 5] != '>') {
    return -1;
  }
  const int id = sp_->PieceToId(word.substr(i, 6));
  return sp_->IsByte(id) ? id : -1;
}

void UMT5Tokenizer::encode_piece(std::string_view text, std::vector<std::int64_t>& out) const {
  // Normalise and split on Unicode whitespace as the fast tokenizer does;
  // every word then gets its "\u2581" (a leading space, escaped by the
  // identity normaliser) and the Unigram model. Consecutive ordinary words go
  // to SentencePiece in one call: pieces never cross a "\u2581".
  const std::string normalized = normalizer_->normalize(text);
  std::string run;
  for (std::string_view word : detail::split_words(normalized)) {
    std::size_t literal = word.find("<0x");
    while (literal != std::string_view::npos && byte_piece_at(word, literal) < 0) {
      literal = word.find("<0x", literal + 1);
    }
    if (literal == std::string_view::npos) {
      run.push_back(' ');
      run.append(word);
      continue;
    }
    // The fast tokenizer's vocabulary holds the byte pieces as ordinary
    // entries of score 0, so its Viterbi takes the literal text "<0x41>" as
    // one token, with its neighbours segmented apart (only the first part of
    // the word has the "\u2581"). SentencePiece never matches byte pieces in
    // text: cut the word there ourselves.
    append_pieces(run, out);
    run.clear();
    std::string part = " ";
    std::size_t pos = 0;
    for (std::size_t i = literal; i < word.size();) {
      const std::int64_t byte_id = byte_piece_at(word, i);
      if (byte_id < 0) {
        ++i;
        continue;
      }
      part.append(word.substr(pos, i - pos));
      append_pieces(part, out);
      out.push_back(byte_id);
      part.clear();
      i += 6;
      pos = i;
    }
    part.append(word.substr(pos));
    append_pieces(part, out);
  }
  append_pieces(run, out);
}

std::vector<std::int64_t> UMT5Tokenizer::encode(std::string_view text) const {
  if (!is_valid_utf8(text)) throw std::invalid_argument("UMT5 tokenizer: text is not valid UTF-8");
  std::vector<std::int64_t> out;
  std::size_t start = 0;  // beginning of the ordinary text not yet encoded
  std::size_t i = 0;
  while (i < text.size()) {
    const std::pair<std::string, std::int64_t>* match = nullptr;
    if (text[i] == '<') {
      for (const auto& sp : specials_) {  // longest first
        if (text.compare(i, sp.first.size(), sp.first) == 0) {
          match = &sp;
          break;
        }
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    encode_piece(text.substr(start, i - start), out);
    out.push_back(match->second);
    i += match->first.size();
    start = i;
  }
  encode_piece(text.substr(start), out);
  out.push_back(eos_id_);
  return out;
}

TokenizedBatch UMT5Tokenizer::encode_batch(const std::vector<std::string>& texts, std::int64_t max_length) const {
  if (max_length < 1) {
    throw std::invalid_argument("UMT5 tokenizer: max_length must be at least 1, got " + std::to_string(max_length));
  }
  TokenizedBatch b;
  b.batch = static_cast<std::int64_t>(texts.size());
  b.length = max_length;
  b.input_ids.assign(static_cast<std::size_t>(b.batch * max_length), pad_id_);
  b.attention_mask.assign(static_cast<std::size_t>(b.batch * max_length), 0);
  for (std::int64_t r = 0; r < b.batch; ++r) {
    std::vector<std::int64_t> ids = encode(texts[static_cast<std::size_t>(r)]);
    if (static_cast<std::int64_t>(ids.size()) > max_length) {
      // Truncation leaves room for the </s> that add_special_tokens appends.
      ids.resize(static_cast<std::size_t>(max_length - 1));
      ids.push_back(eos_id_);
    }
    std::copy(ids.begin(), ids.end(), b.input_ids.begin() + r * max_length);
    std::fill_n(b.attention_mask.begin() + r * max_length, ids.size(), 1);
  }
  return b;
}

}  // namespace mmgen::video
