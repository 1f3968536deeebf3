// Qwen-Image prompt encoding (prompt_encoder.hpp). Read beside diffusers'
// pipelines/qwenimage/pipeline_qwenimage.py: _get_qwen_prompt_embeds and
// encode_prompt.
#include "mmgen/image/prompt_encoder.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/index_put.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "mmgen/image/qwen_image_processor.hpp"
#include "mmgen/image/qwen_vision.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::image {

const PromptTemplate kTextToImageTemplate{
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, "
    "spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
    "<|im_start|>assistant\n",
    34};

const PromptTemplate kEditTemplate{
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{}<|im_end|>\n"
    "<|im_start|>assistant\n",
    64};

const PromptTemplate kEditPlusTemplate{
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
    "image that meets the user's requirements while maintaining consistency with the original input where "
    "appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n",
    64};

struct PromptEncoder::Vision {
  QwenVisionTower tower;
  QwenImageProcessorOptions processor;
  std::int64_t image_token_id = -1;
};

namespace {

std::string apply_template(std::string_view tmpl, std::string_view prompt) {
  const auto at = tmpl.find("{}");
  if (at == std::string_view::npos) throw std::logic_error("prompt template without {}");
  std::string out;
  out.reserve(tmpl.size() + prompt.size());
  out.append(tmpl.substr(0, at)).append(prompt).append(tmpl.substr(at + 2));
  return out;
}

}  // namespace

PromptEncoder PromptEncoder::load(const std::filesystem::path& pipeline_dir, const io::LoadOptions& opts) {
  const auto tok_dir = pipeline_dir / "tokenizer";
  const auto enc_dir = pipeline_dir / "text_encoder";
  if (!std::filesystem::is_directory(tok_dir)) {
    throw io::LoadError(io::LoadErrorKind::missing, tok_dir.string() + ": tokenizer folder missing");
  }
  if (!std::filesystem::is_directory(enc_dir)) {
    throw io::LoadError(io::LoadErrorKind::missing, enc_dir.string() + ": text_encoder folder missing");
  }
  PromptEncoder enc(text::Tokenizer::from_directory(tok_dir), text::load_qwen2_5_vl_text_model(enc_dir, opts));
  // Edit pipelines publish processor/ (the Qwen2-VL processor) beside the
  // text encoder; the text-to-image pipelines don't and need no tower.
  const auto proc_dir = pipeline_dir / "processor";
  if (std::filesystem::is_regular_file(proc_dir / "preprocessor_config.json")) {
    const auto pad = enc.tokenizer_.token_to_id("<|image_pad|>");
    if (!pad) {
      throw io::LoadError(io::LoadErrorKind::bad_config,
                          tok_dir.string() + ": the tokenizer has no <|image_pad|> token for edit prompts");
    }
    enc.vision_ = std::make_unique<Vision>(
        Vision{QwenVisionTower::load(enc_dir, opts), QwenImageProcessorOptions::load(proc_dir), *pad});
  }
  return enc;
}

PromptEncoder::PromptEncoder(text::Tokenizer tokenizer, text::QwenModel model)
    : tokenizer_(std::move(tokenizer)), model_(std::move(model)) {}
PromptEncoder::~PromptEncoder() = default;
PromptEncoder::PromptEncoder(PromptEncoder&&) noexcept = default;
PromptEncoder& PromptEncoder::operator=(PromptEncoder&&) noexcept = default;

std::vector<std::int64_t> PromptEncoder::token_ids(std::string_view prompt, const PromptTemplate& tmpl) const {
  const auto ids = tokenizer_.encode(apply_template(tmpl.text, prompt));
  // The reference tokenizes with truncation=True, max_length = 1024 + drop:
  // a long prompt loses its tail, template suffix included.
  const std::size_t keep = std::min<std::size_t>(ids.size(), kTokenizerMaxLength + tmpl.drop);
  return {ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep)};
}

at::Tensor PromptEncoder::encode_one(std::string_view prompt, const PromptTemplate& tmpl) const {
  auto ids = token_ids(prompt, tmpl);
  const auto T = static_cast<std::int64_t>(ids.size());
  const at::Tensor input = at::from_blob(ids.data(), {T}, at::kLong).to(model_.device());
  // Text only: the three M-RoPE rows are equal, so 1-D positions serve.
  const at::Tensor positions = at::arange(T, at::TensorOptions().dtype(at::kLong).device(model_.device()));
  const at::Tensor hidden = text::encode(model_, input, positions);  // [T, H]
  const std::int64_t drop = std::min(tmpl.drop, T);
  return hidden.slice(0, drop);  // [T - drop, H]
}

PromptEmbeds PromptEncoder::encode(const std::vector<std::string>& prompts, std::int64_t max_sequence_length,
                                   std::int64_t images_per_prompt, const PromptTemplate& tmpl) const {
  if (prompts.empty()) throw std::invalid_argument("no prompt to encode");
  if (max_sequence_length < 1 || max_sequence_length > kTokenizerMaxLength) {
    throw std::invalid_argument("max_sequence_length must be in [1, 1024], got " +
                                std::to_string(max_sequence_length));
  }
  if (images_per_prompt < 1) {
    throw std::invalid_argument("images per prompt must be at least 1, got " + std::to_string(images_per_prompt));
  }
  std::vector<at::Tensor> rows;
  rows.reserve(prompts.size());
  for (const auto& p : prompts) rows.push_back(encode_one(p, tmpl));
  return pad_and_repeat(std::move(rows), max_sequence_length, images_per_prompt);
}

PromptEmbeds PromptEncoder::encode_with_images(const std::string& prompt, const std::vector<media::Image>& images,
                                               const PromptTemplate& tmpl, std::int64_t images_per_prompt) const {
  if (!vision_) {
    throw std::logic_error("this pipeline has no vision encoder (processor/ missing): edit prompts need one");
  }
  if (images.empty()) throw std::invalid_argument("an edit prompt needs at least one image");
  if (images_per_prompt < 1) {
    throw std::invalid_argument("images per prompt must be at least 1, got " + std::to_string(images_per_prompt));
  }
  std::vector<media::ImageView> views(images.begin(), images.end());
  const ProcessedImages px = preprocess(views, vision_->processor);
  const auto per_image = image_token_counts(px.grid_thw, vision_->processor.merge_size);

  // The processor expands the i-th "<|image_pad|>" into per_image[i] copies
  // before tokenizing; the pad is an added token, so expanding its id after
  // tokenizing gives the same ids.
  const auto raw = tokenizer_.encode(apply_template(tmpl.text, prompt));
  std::vector<std::int64_t> ids;
  std::size_t next_image = 0;
  for (const auto id : raw) {
    if (id != vision_->image_token_id) {
      ids.push_back(id);
      continue;
    }
    if (next_image == per_image.size()) {
      throw std::invalid_argument("the prompt has more image placeholders than the " +
                                  std::to_string(per_image.size()) + " images given");
    }
    ids.insert(ids.end(), static_cast<std::size_t>(per_image[next_image++]), id);
  }
  if (next_image != per_image.size()) {
    throw std::invalid_argument(std::to_string(per_image.size()) + " images given but the prompt has " +
                                std::to_string(next_image) + " image placeholders");
  }
  const auto T = static_cast<std::int64_t>(ids.size());
  const at::Tensor input = at::from_blob(ids.data(), {T}, at::kLong).to(model_.device());
  at::Tensor embeds = model_.embed_tokens().index_select(0, input);  // [T, H]
  const at::Tensor features = vision_->tower.forward(px.pixel_values, px.grid_thw).to(embeds.scalar_type());
  embeds.index_put_({input == vision_->image_token_id}, features);
  // The edit pipelines call the text encoder without mm_token_type_ids, so
  // transformers gives every token, image ones included, the sequential
  // position on all three M-RoPE rows (services/image/vision's
  // qwen_mrope_index.hpp has the measurement).
  const at::Tensor positions = at::arange(T, at::TensorOptions().dtype(at::kLong).device(model_.device()));
  text::KvCache cache = model_.make_cache(1, T);
  const at::Tensor hidden = model_.forward_embeds(embeds, positions, text::AttentionMetadata::single(T, 0), cache);
  std::vector<at::Tensor> rows{hidden.slice(0, std::min(tmpl.drop, T))};
  return pad_and_repeat(std::move(rows), std::numeric_limits<std::int64_t>::max(), images_per_prompt);
}

PromptEmbeds PromptEncoder::pad_and_repeat(std::vector<at::Tensor> rows, std::int64_t max_sequence_length,
                                           std::int64_t images_per_prompt) const {
  std::int64_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.size(0));
  const std::int64_t L = std::min(longest, max_sequence_length);
  const std::int64_t B = static_cast<std::int64_t>(rows.size());
  const std::int64_t H = model_.config().hidden_size;
  at::Tensor embeds = at::zeros({B, L, H}, rows.front().options());
  at::Tensor mask = at::zeros({B, L}, at::TensorOptions().dtype(at::kLong).device(model_.device()));
  bool padded = false;
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t n = std::min(rows[b].size(0), L);
    embeds[b].slice(0, 0, n).copy_(rows[b].slice(0, 0, n));
    mask[b].slice(0, 0, n).fill_(1);
    padded = padded || n < L;
  }
  if (images_per_prompt > 1) {
    // prompt 0 ×n, prompt 1 ×n, ... (the reference's repeat + view)
    embeds = embeds.repeat_interleave(images_per_prompt, 0);
    mask = mask.repeat_interleave(images_per_prompt, 0);
  }
  return {embeds, padded ? mask : at::Tensor()};
}

}  // namespace mmgen::image
