// Loading tokenizers from the files Hugging Face publishes.
#include <fstream>
#include <sstream>

#include "mmgen/protocol.hpp"
#include "mmgen/text/json.hpp"
#include "mmgen/text/tokenizer.hpp"

namespace mmgen::text {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

// GPT-2's split pattern, used by ByteLevel(use_regex=true).
constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

[[noreturn]] void unsupported(const std::string& what) {
  throw ProtocolError(ErrorCode::unsupported, "tokenizer: " + what + " is not supported");
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ProtocolError(ErrorCode::invalid_request, "cannot open " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Re-throws errors with the file they came from.
template <class F>
auto with_file(const std::filesystem::path& path, F&& f) {
  try {
    return f();
  } catch (const ProtocolError& e) {
    throw ProtocolError(e.code(), path.string() + ": " + e.what());
  }
}

std::string type_of(const Json& node) {
  const Json* t = node.find("type");
  return t && t->is_string() ? t->as_string() : std::string();
}

bool flag(const Json& obj, std::string_view key, bool def) {
  const Json* v = obj.find(key);
  return v && !v->is_null() ? v->as_bool(key) : def;
}

AddedToken added_token_from(const Json& obj, TokenId id) {
  AddedToken t;
  t.id = id;
  t.content = obj.find("content") ? obj.find("content")->as_string("content") : "";
  t.special = flag(obj, "special", false);
  t.single_word = flag(obj, "single_word", false);
  t.lstrip = flag(obj, "lstrip", false);
  t.rstrip = flag(obj, "rstrip", false);
  // The reference's default: special tokens are matched on raw text.
  t.normalized = flag(obj, "normalized", !t.special);
  return t;
}

void read_normalizer(const Json* node, TokenizerSpec& spec) {
  if (node == nullptr || node->is_null()) return;
  std::string type = type_of(*node);
  if (type == "NFC") {
    spec.nfc = true;
  } else if (type == "Sequence") {
    const Json* list = node->find("normalizers");
    if (list == nullptr) unsupported("normalizer Sequence without normalizers");
    for (const Json& n : list->as_array("normalizers")) read_normalizer(&n, spec);
  } else {
    unsupported("normalizer " + type);
  }
}

void read_pre_tokenizer(const Json* node, TokenizerSpec& spec) {
  if (node == nullptr || node->is_null()) return;
  std::string type = type_of(*node);
  if (type == "Sequence") {
    const Json* list = node->find("pretokenizers");
    if (list == nullptr) unsupported("pre_tokenizer Sequence without pretokenizers");
    for (const Json& n : list->as_array("pretokenizers")) read_pre_tokenizer(&n, spec);
  } else if (type == "Split") {
    const Json* behavior = node->find("behavior");
    if (!behavior || behavior->as_string("behavior") != "Isolated")
      unsupported("Split behavior other than Isolated");
    if (flag(*node, "invert", false)) unsupported("Split with invert");
    const Json* pattern = node->find("pattern");
    if (!pattern) throw ProtocolError(ErrorCode::invalid_request, "Split without pattern");
    if (const Json* re = pattern->find("Regex")) spec.splits.push_back({re->as_string("Regex"), false});
    else if (const Json* s = pattern->find("String")) spec.splits.push_back({s->as_string("String"), true});
    else throw ProtocolError(ErrorCode::invalid_request, "Split pattern is neither Regex nor String");
  } else if (type == "ByteLevel") {
    if (flag(*node, "add_prefix_space", false)) unsupported("ByteLevel add_prefix_space=true");
    if (flag(*node, "use_regex", true)) spec.splits.push_back({std::string(kGpt2SplitPattern), false});
  } else {
    unsupported("pre_tokenizer " + type);
  }
}

void read_bpe_model(const Json& model, TokenizerSpec& spec) {
  std::string type = type_of(model);
  if (!type.empty() && type != "BPE") unsupported("model " + type);
  if (flag(model, "byte_fallback", false)) unsupported("BPE byte_fallback");
  if (const Json* d = model.find("dropout"); d && !d->is_null() && d->as_double("dropout") != 0.0)
    unsupported("BPE dropout");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const Json* v = model.find(key); v && !v->is_null() && !v->as_string(key).empty())
      unsupported(std::string("BPE ") + key);
  spec.ignore_merges = flag(model, "ignore_merges", false);

  const Json* vocab = model.find("vocab");
  if (!vocab) throw ProtocolError(ErrorCode::invalid_request, "model has no vocab");
  for (const auto& [tok, id] : vocab->as_object("model.vocab"))
    spec.vocab.emplace_back(tok, static_cast<TokenId>(id.as_int("vocab id")));

  const Json* merges = model.find("merges");
  if (!merges) return;
  for (const Json& m : merges->as_array("model.merges")) {
    if (m.is_string()) {
      // Legacy form "left right".
      const std::string& s = m.as_string();
      auto space = s.find(' ');
      if (space == std::string::npos)
        throw ProtocolError(ErrorCode::invalid_request, "merge without a space: " + s);
      spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      const JsonArray& pair = m.as_array("merge");
      if (pair.size() != 2) throw ProtocolError(ErrorCode::invalid_request, "merge is not a pair");
      spec.merges.emplace_back(pair[0].as_string("merge"), pair[1].as_string("merge"));
    }
  }
}

void check_decoder(const Json* node) {
  if (node == nullptr || node->is_null()) return;
  std::string type = type_of(*node);
  if (type == "Sequence") {
    const Json* list = node->find("decoders");
    if (list == nullptr) unsupported("decoder Sequence without decoders");
    for (const Json& n : list->as_array("decoders")) check_decoder(&n);
  } else if (type != "ByteLevel") {
    unsupported("decoder " + type);
  }
}

// Post-processors only matter here if they add tokens around the text (BOS and
// the like); encode() never does, so only those that add nothing are accepted.
void check_post_processor(const Json* node) {
  if (node == nullptr || node->is_null()) return;
  std::string type = type_of(*node);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const Json* list = node->find("processors");
    if (list == nullptr) unsupported("post_processor Sequence without processors");
    for (const Json& n : list->as_array("processors")) check_post_processor(&n);
    return;
  }
  if (type == "TemplateProcessing") {
    const Json* single = node->find("single");
    if (single != nullptr)
      for (const Json& piece : single->as_array("single"))
        if (piece.find("SpecialToken") != nullptr)
          unsupported("post_processor TemplateProcessing that adds special tokens");
    return;
  }
  unsupported("post_processor " + type);
}

}  // namespace

Tokenizer Tokenizer::from_json(std::string_view text) {
  Json root = parse_json(text);
  TokenizerSpec spec;
  if (const Json* t = root.find("truncation"); t && !t->is_null()) unsupported("truncation");
  read_normalizer(root.find("normalizer"), spec);
  read_pre_tokenizer(root.find("pre_tokenizer"), spec);
  check_decoder(root.find("decoder"));
  check_post_processor(root.find("post_processor"));
  const Json* model = root.find("model");
  if (!model) throw ProtocolError(ErrorCode::invalid_request, "tokenizer.json has no model");
  read_bpe_model(*model, spec);
  if (const Json* added = root.find("added_tokens"); added && !added->is_null())
    for (const Json& t : added->as_array("added_tokens")) {
      const Json* id = t.find("id");
      if (id == nullptr) throw ProtocolError(ErrorCode::invalid_request, "added token without id");
      spec.added_tokens.push_back(added_token_from(t, static_cast<TokenId>(id->as_int("id"))));
    }
  return Tokenizer(std::move(spec));
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  std::string text = read_file(path);
  return with_file(path, [&] { return from_json(text); });
}

Tokenizer Tokenizer::from_qwen2_files(const std::filesystem::path& vocab_json,
                                      const std::filesystem::path& merges_txt,
                                      const std::filesystem::path& tokenizer_config_json) {
  TokenizerSpec spec;
  spec.nfc = true;
  spec.splits.push_back({std::string(kQwen2SplitPattern), false});

  std::string vocab_text = read_file(vocab_json);
  with_file(vocab_json, [&] {
    Json vocab = parse_json(vocab_text);
    for (const auto& [tok, id] : vocab.as_object("vocab.json"))
      spec.vocab.emplace_back(tok, static_cast<TokenId>(id.as_int("vocab id")));
    return 0;
  });

  std::istringstream merges(read_file(merges_txt));
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(merges, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.starts_with("#version")) continue;
    auto space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      throw ProtocolError(ErrorCode::invalid_request, merges_txt.string() + ":" +
                                                          std::to_string(line_no) +
                                                          ": a merge is two tokens separated by one space");
    spec.merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }

  if (!tokenizer_config_json.empty()) {
    std::string cfg_text = read_file(tokenizer_config_json);
    with_file(tokenizer_config_json, [&] {
      Json cfg = parse_json(cfg_text);
      if (const Json* decoder = cfg.find("added_tokens_decoder"))
        for (const auto& [id, tok] : decoder->as_object("added_tokens_decoder")) {
          TokenId numeric = 0;
          try {
            numeric = static_cast<TokenId>(std::stol(id));
          } catch (const std::exception&) {
            throw ProtocolError(ErrorCode::invalid_request, "added token id is not a number: " + id);
          }
          spec.added_tokens.push_back(added_token_from(tok, numeric));
        }
      return 0;
    });
  }
  return with_file(vocab_json, [&] { return Tokenizer(std::move(spec)); });
}

Tokenizer Tokenizer::from_directory(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "tokenizer.json")) return from_file(dir / "tokenizer.json");
  if (std::filesystem::exists(dir / "vocab.json") && std::filesystem::exists(dir / "merges.txt")) {
    auto cfg = dir / "tokenizer_config.json";
    return from_qwen2_files(dir / "vocab.json", dir / "merges.txt",
                            std::filesystem::exists(cfg) ? cfg : std::filesystem::path());
  }
  throw ProtocolError(ErrorCode::invalid_request,
                      dir.string() + ": no tokenizer.json, and no vocab.json + merges.txt");
}

}  // namespace mmgen::text
