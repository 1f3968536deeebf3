// The text side of the Wan pipelines: prompt_clean -> umT5 tokenizer ->
// UMT5 encoder -> cut to each prompt's real length and zero-pad back, as
// diffusers' WanPipeline._get_t5_prompt_embeds does. The video pipeline calls
// encode_prompts and nothing else from this library.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/video/umt5_model.hpp"
#include "mmgen/video/umt5_tokenizer.hpp"

namespace mmgen::video {

class WanTextEncoder {
 public:
  // The published layout: <root>/text_encoder/ (config.json + model.safetensors
  // or shards) and <root>/tokenizer/ (spiece.model, tokenizer_config.json, ...).
  // Throws io::LoadError naming the component, file and tensor.
  static WanTextEncoder load(const std::filesystem::path& root, const io::LoadOptions& opts);
  static WanTextEncoder load(const std::filesystem::path& text_encoder_dir, const std::filesystem::path& tokenizer_dir,
                             const io::LoadOptions& opts);

  // prompts: B strings (UTF-8). Returns prompt_embeds [B * num_videos_per_prompt,
  // max_sequence_length, d_model] in the model dtype: each prompt cleaned,
  // tokenized to max_sequence_length (</s> appended, truncated, padded), encoded
  // with its attention mask, its hidden states kept for its real tokens and
  // zeros after; each prompt's rows repeated num_videos_per_prompt times in a
  // row. Throws std::invalid_argument for an empty batch, max_sequence_length
  // < 1, num_videos_per_prompt < 1 or a prompt that is not valid UTF-8.
  at::Tensor encode_prompts(const std::vector<std::string>& prompts, std::int64_t max_sequence_length,
                            std::int64_t num_videos_per_prompt = 1) const;

  // The tokenizer step alone (after prompt_clean): ids and mask [B, L] int64.
  std::pair<at::Tensor, at::Tensor> tokenize(const std::vector<std::string>& prompts,
                                             std::int64_t max_sequence_length) const;

  const UMT5EncoderModel& model() const { return model_; }
  const UMT5Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  WanTextEncoder(UMT5EncoderModel model, UMT5Tokenizer tokenizer)
      : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {}
  UMT5EncoderModel model_;
  UMT5Tokenizer tokenizer_;
};

}  // namespace mmgen::video
