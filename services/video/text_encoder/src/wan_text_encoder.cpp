// Wan prompt encoding (wan_text_encoder.hpp), read beside diffusers'
// pipeline_wan.py _get_t5_prompt_embeds.
#include "mmgen/video/wan_text_encoder.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/from_blob.h>

#include <stdexcept>

#include "mmgen/io/load_error.hpp"
#include "mmgen/video/prompt_clean.hpp"

namespace mmgen::video {

WanTextEncoder WanTextEncoder::load(const std::filesystem::path& root, const io::LoadOptions& opts) {
  return load(root / "text_encoder", root / "tokenizer", opts);
}

WanTextEncoder WanTextEncoder::load(const std::filesystem::path& text_encoder_dir,
                                    const std::filesystem::path& tokenizer_dir, const io::LoadOptions& opts) {
  UMT5Tokenizer tokenizer = UMT5Tokenizer::load(tokenizer_dir);
  UMT5EncoderModel model = UMT5EncoderModel::load(text_encoder_dir, opts);
  if (tokenizer.size() > model.config().vocab_size) {
    throw io::LoadError(io::LoadErrorKind::bad_config, "Wan text encoder: the tokenizer in " + tokenizer_dir.string() +
                                                           " has " + std::to_string(tokenizer.size()) +
                                                           " ids but text_encoder/config.json's vocab_size is " +
                                                           std::to_string(model.config().vocab_size));
  }
  return WanTextEncoder(std::move(model), std::move(tokenizer));
}

std::pair<at::Tensor, at::Tensor> WanTextEncoder::tokenize(const std::vector<std::string>& prompts,
                                                           std::int64_t max_sequence_length) const {
  if (prompts.empty()) throw std::invalid_argument("Wan text encoder: no prompts");
  std::vector<std::string> cleaned;
  cleaned.reserve(prompts.size());
  for (const std::string& p : prompts) cleaned.push_back(prompt_clean(p));
  TokenizedBatch b = tokenizer_.encode_batch(cleaned, max_sequence_length);
  const auto opts = at::TensorOptions().dtype(at::kLong);
  at::Tensor ids = at::from_blob(b.input_ids.data(), {b.batch, b.length}, opts).clone();
  at::Tensor mask = at::from_blob(b.attention_mask.data(), {b.batch, b.length}, opts).clone();
  return {ids, mask};
}

at::Tensor WanTextEncoder::encode_prompts(const std::vector<std::string>& prompts, std::int64_t max_sequence_length,
                                          std::int64_t num_videos_per_prompt) const {
  if (num_videos_per_prompt < 1) {
    throw std::invalid_argument("Wan text encoder: num_videos_per_prompt must be at least 1, got " +
                                std::to_string(num_videos_per_prompt));
  }
  auto [ids, mask] = tokenize(prompts, max_sequence_length);  // [B, L] each
  at::Tensor hidden = model_.forward(ids, mask);              // [B, L, D]
  // Keep each prompt's real tokens, zeros after: the same as cutting to
  // seq_len and padding with new_zeros, since the mask is a prefix of ones.
  at::Tensor keep = mask.to(hidden.device()).gt(0).unsqueeze(-1);  // [B, L, 1]
  at::Tensor embeds = hidden.masked_fill(keep.logical_not(), 0);
  if (num_videos_per_prompt > 1) {
    // repeat(1, n, 1).view(B * n, L, D): prompt 0 n times, then prompt 1, ...
    const std::int64_t B = embeds.size(0), L = embeds.size(1), D = embeds.size(2);
    embeds = embeds.repeat({1, num_videos_per_prompt, 1}).view({B * num_videos_per_prompt, L, D});
  }
  return embeds;
}

}  // namespace mmgen::video
