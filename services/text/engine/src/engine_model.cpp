// The engine's model adapters (engine_model.hpp).
#include "mmgen/text/engine_model.hpp"

#include <optional>
#include <stdexcept>
#include <utility>

#include "mmgen/io/hf_config.hpp"

namespace mmgen::text {

std::int64_t hybrid_state_bytes_per_slot(const Qwen3_5Config& cfg, c10::ScalarType dtype) {
  // Per linear-attention layer: the conv window [conv_dim, kernel-1] in the
  // model dtype and the delta-rule state [Hv, dk, dv] in float32 (HybridStates).
  const std::int64_t conv = cfg.conv_dim() * (cfg.linear_conv_kernel_dim - 1) * std::int64_t(c10::elementSize(dtype));
  const std::int64_t rec = cfg.linear_num_value_heads * cfg.linear_key_head_dim * cfg.linear_value_head_dim *
                           std::int64_t(sizeof(float));
  return cfg.num_linear_attention_layers() * (conv + rec);
}

at::Tensor EngineModel::forward_embeds(const at::Tensor&, const at::Tensor&, const AttentionMetadata&) {
  throw std::logic_error(architecture() + " takes no input embeddings");
}

namespace {

// QwenForCausalLM: every layer has a KV cache; no state slots.
class QwenEngineModel final : public EngineModel {
 public:
  QwenEngineModel(const QwenForCausalLM& model, std::optional<QwenForCausalLM> owned)
      : owned_(std::move(owned)), model_(owned_ ? *owned_ : model) {}

  std::string architecture() const override {
    return model_.config().architecture_name;
  }
  std::int64_t vocab_size() const override { return model_.config().vocab_size; }
  std::int64_t max_position_embeddings() const override { return model_.config().max_position_embeddings; }
  std::vector<std::int64_t> eos_token_ids() const override { return model_.config().eos_token_ids; }
  c10::ScalarType dtype() const override { return model_.model.dtype(); }
  c10::Device device() const override { return model_.model.device(); }
  CacheSpec cache_spec() const override {
    const auto& c = model_.config();
    return CacheSpec{c.num_hidden_layers, c.num_key_value_heads, c.head_dim,
                     std::int64_t(c10::elementSize(dtype())), 0};
  }
  void allocate_cache(std::int64_t num_blocks, std::int64_t block_size, std::int64_t) override {
    const auto& c = model_.config();
    cache_.emplace(KvCache::paged(c.num_hidden_layers, num_blocks, block_size, c.num_key_value_heads, c.head_dim,
                                  dtype(), device()));
  }
  std::int64_t allocated_state_bytes_per_slot() const override { return 0; }
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& positions, const AttentionMetadata& meta) override {
    return model_.forward(ids, positions, meta, *cache_);
  }
  at::Tensor logits(const at::Tensor& hidden) const override { return model_.logits(hidden); }

 private:
  std::optional<QwenForCausalLM> owned_;
  const QwenForCausalLM& model_;
  std::optional<KvCache> cache_;
};

// Qwen3_5ForCausalLM: KV for the full-attention layers + recurrent-state slots.
class HybridEngineModel final : public EngineModel {
 public:
  HybridEngineModel(const Qwen3_5ForCausalLM& model, std::optional<Qwen3_5ForCausalLM> owned)
      : owned_(std::move(owned)), model_(owned_ ? *owned_ : model) {}

  std::string architecture() const override {
    const auto& c = model_.config();
    return c.architecture_name.empty() ? std::string(to_string(c.architecture)) : c.architecture_name;
  }
  std::int64_t vocab_size() const override { return model_.config().vocab_size; }
  std::int64_t max_position_embeddings() const override { return model_.config().max_position_embeddings; }
  std::vector<std::int64_t> eos_token_ids() const override { return model_.config().eos_token_ids; }
  c10::ScalarType dtype() const override { return model_.model.dtype(); }
  c10::Device device() const override { return model_.model.device(); }
  CacheSpec cache_spec() const override {
    const auto& c = model_.config();
    return CacheSpec{c.num_full_attention_layers(), c.num_key_value_heads, c.head_dim,
                     std::int64_t(c10::elementSize(dtype())), hybrid_state_bytes_per_slot(c, dtype())};
  }
  void allocate_cache(std::int64_t num_blocks, std::int64_t block_size, std::int64_t num_state_slots) override {
    cache_.emplace(model_.model.make_paged_cache(num_blocks, block_size, num_state_slots));
  }
  std::int64_t allocated_state_bytes_per_slot() const override {
    return cache_ ? cache_->states.bytes_per_slot() : 0;
  }
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& positions, const AttentionMetadata& meta) override {
    return model_.forward(ids, positions, meta, *cache_);
  }
  at::Tensor logits(const at::Tensor& hidden) const override { return model_.logits(hidden); }
  bool accepts_embeddings() const override { return true; }
  at::Tensor embed_tokens() const override { return model_.model.embed_tokens(); }
  at::Tensor forward_embeds(const at::Tensor& embeds, const at::Tensor& positions,
                            const AttentionMetadata& meta) override {
    return model_.model.forward_embeds(embeds, positions, meta, *cache_);
  }

 private:
  std::optional<Qwen3_5ForCausalLM> owned_;
  const Qwen3_5ForCausalLM& model_;
  std::optional<HybridCache> cache_;
};

}  // namespace

std::unique_ptr<EngineModel> make_engine_model(const QwenForCausalLM& model) {
  return std::make_unique<QwenEngineModel>(model, std::nullopt);
}

std::unique_ptr<EngineModel> make_engine_model(const Qwen3_5ForCausalLM& model) {
  return std::make_unique<HybridEngineModel>(model, std::nullopt);
}

std::unique_ptr<EngineModel> load_engine_model(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  if (Qwen3_5Config::handles(io::HfConfig::load(folder))) {
    auto m = Qwen3_5ForCausalLM::load(folder, opts);
    // The adapter keeps the loaded model; the reference argument is unused when it owns one.
    return std::make_unique<HybridEngineModel>(m, std::optional<Qwen3_5ForCausalLM>(std::move(m)));
  }
  auto m = QwenForCausalLM::load(folder, opts);
  return std::make_unique<QwenEngineModel>(m, std::optional<QwenForCausalLM>(std::move(m)));
}

}  // namespace mmgen::text
