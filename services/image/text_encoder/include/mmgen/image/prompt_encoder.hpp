// Qwen-Image's prompt encoder, as diffusers' QwenImagePipeline computes it:
//
//   prompt -> template.format(prompt) -> Qwen2 tokenizer (truncated to
//   1024 + drop tokens) -> Qwen2.5-VL language model -> last hidden state
//   after the final norm -> drop the template's first `drop` tokens ->
//   zero-pad the batch to its longest prompt (+ a 0/1 mask) -> cut to
//   max_sequence_length -> repeat per image.
//
// Prompts of a batch are encoded one by one: with right padding and causal
// attention the reference's padded batch gives the same valid rows, and a
// single prompt avoids computing the padding.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/text/qwen_model.hpp"
#include "mmgen/text/tokenizer.hpp"

namespace mmgen::image {

// A chat template with one "{}" where the prompt goes, and how many leading
// tokens of the encoded template the pipeline throws away (the system turn).
struct PromptTemplate {
  std::string_view text;
  std::int64_t drop = 0;
};
// QwenImagePipeline (also img2img and inpaint): drop 34.
extern const PromptTemplate kTextToImageTemplate;
// QwenImageEditPipeline: the image's placeholder is in the template; drop 64.
extern const PromptTemplate kEditTemplate;
// QwenImageEditPlusPipeline (Edit-2509/2511): "Picture i: <placeholder>" per
// image is prefixed to the prompt; drop 64.
extern const PromptTemplate kEditPlusTemplate;

struct PromptEmbeds {
  at::Tensor embeds;  // [B, L, H] in the text encoder's dtype
  at::Tensor mask;    // [B, L] int64 (1 = token, 0 = padding); undefined when
                      // no row is padded, as the reference then passes None
};

class PromptEncoder {
 public:
  // The pipeline folder's text_encoder/ and tokenizer/ (as published).
  // Throws io::LoadError naming the component and file.
  // Also loads the Qwen2.5-VL vision tower and processor/ when the folder
  // has them (edit pipelines); without them encode_with_images() throws.
  static PromptEncoder load(const std::filesystem::path& pipeline_dir, const io::LoadOptions& opts);
  PromptEncoder(text::Tokenizer tokenizer, text::QwenModel model);
  ~PromptEncoder();
  PromptEncoder(PromptEncoder&&) noexcept;
  PromptEncoder& operator=(PromptEncoder&&) noexcept;

  // The reference's limit on the templated prompt, after the drop.
  static constexpr std::int64_t kTokenizerMaxLength = 1024;

  // prompts: B strings (UTF-8). max_sequence_length in [1, 1024] (else
  // std::invalid_argument), images_per_prompt >= 1.
  // Returns embeds [B * images_per_prompt, L, H], L = min(longest prompt,
  // max_sequence_length).
  PromptEmbeds encode(const std::vector<std::string>& prompts, std::int64_t max_sequence_length = 512,
                      std::int64_t images_per_prompt = 1,
                      const PromptTemplate& tmpl = kTextToImageTemplate) const;

  // Edit prompts: the VL encoder sees `images` (RGB, already resized by the
  // pipeline to its condition size) through the processor and the vision
  // tower; each "<|image_pad|>" of the templated prompt (one per image, in
  // order) becomes that image's merged patch embeddings. Neither truncated
  // nor cut to a maximum length: the edit pipelines do neither (their
  // max_sequence_length is only checked). Throws std::logic_error if the
  // folder had no vision tower, ProtocolError(invalid_request) for a bad image.
  PromptEmbeds encode_with_images(const std::string& prompt, const std::vector<media::Image>& images,
                                  const PromptTemplate& tmpl, std::int64_t images_per_prompt = 1) const;
  bool has_vision() const { return vision_ != nullptr; }

  // The ids the model sees for one prompt (template applied, truncated).
  std::vector<std::int64_t> token_ids(std::string_view prompt, const PromptTemplate& tmpl) const;

  const text::QwenModel& model() const { return model_; }
  const text::Tokenizer& tokenizer() const { return tokenizer_; }

 private:
  // One prompt -> its hidden states after the drop: [T - drop, H].
  at::Tensor encode_one(std::string_view prompt, const PromptTemplate& tmpl) const;

  PromptEmbeds pad_and_repeat(std::vector<at::Tensor> rows, std::int64_t max_sequence_length,
                              std::int64_t images_per_prompt) const;

  text::Tokenizer tokenizer_;
  text::QwenModel model_;
  struct Vision;  // tower + processor options (edit pipelines only)
  std::unique_ptr<Vision> vision_;
};

}  // namespace mmgen::image
