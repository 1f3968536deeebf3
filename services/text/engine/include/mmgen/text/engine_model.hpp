// The engine's view of a causal LM: what it must know to size and own the
// cache, run a step and get logits — the same for the plain Qwen decoders
// (QwenForCausalLM, KV cache only) and the hybrid ones (Qwen3_5ForCausalLM:
// KV cache for the full-attention layers plus one recurrent-state slot per
// running sequence for the Gated DeltaNet layers).
//
// An EngineModel owns the model's cache tensors (allocate_cache) and either
// borrows the model (make_engine_model(model): the caller keeps it alive) or
// owns it (load_engine_model(folder): picks the model class from
// config.json's "architectures").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/text/attention.hpp"
#include "mmgen/text/qwen3_5_model.hpp"
#include "mmgen/text/qwen_model.hpp"

namespace mmgen::text {

// Cache geometry of a model, in bytes where the budget needs them.
struct CacheSpec {
  std::int64_t kv_layers = 0;     // layers with a KV cache (all of them, or a hybrid's full-attention layers)
  std::int64_t kv_heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t dtype_bytes = 0;   // KV element size (the model dtype)
  // Per-sequence recurrent state (conv windows in the model dtype + float32
  // delta-rule states of every linear-attention layer); 0: no recurrent layers.
  std::int64_t state_bytes_per_slot = 0;

  std::int64_t kv_bytes_per_block(std::int64_t block_size) const {
    return 2 * kv_layers * block_size * kv_heads * head_dim * dtype_bytes;
  }
  bool hybrid() const { return state_bytes_per_slot > 0; }
};

class EngineModel {
 public:
  virtual ~EngineModel() = default;

  virtual std::string architecture() const = 0;  // for logs ("Qwen3ForCausalLM", "qwen3_5" ...)
  virtual std::int64_t vocab_size() const = 0;
  virtual std::int64_t max_position_embeddings() const = 0;
  virtual std::vector<std::int64_t> eos_token_ids() const = 0;
  virtual c10::ScalarType dtype() const = 0;
  virtual c10::Device device() const = 0;
  virtual CacheSpec cache_spec() const = 0;

  // Allocates the paged KV cache (num_blocks of block_size tokens) and, for a
  // hybrid model, `num_state_slots` recurrent-state slots. Called once by the engine.
  virtual void allocate_cache(std::int64_t num_blocks, std::int64_t block_size, std::int64_t num_state_slots) = 0;
  // Bytes of one state slot as allocated (0 before allocate_cache or for
  // models without recurrent layers); equals cache_spec().state_bytes_per_slot.
  virtual std::int64_t allocated_state_bytes_per_slot() const = 0;

  // ids [T], positions [T] (int64), paged metadata whose SequenceSlice::
  // cache_slot is the sequence's state slot -> hidden states [T, H].
  virtual at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& positions,
                             const AttentionMetadata& meta) = 0;
  // hidden [N, H] -> logits [N, V] (model dtype).
  virtual at::Tensor logits(const at::Tensor& hidden) const = 0;

  // Prompts given as embeddings (image input): only models whose forward takes
  // input embeddings and 3-row M-RoPE positions (Qwen3.5) say true.
  virtual bool accepts_embeddings() const { return false; }
  // The input embedding table [V, H] (undefined when !accepts_embeddings()).
  virtual at::Tensor embed_tokens() const { return {}; }
  // inputs_embeds [T, H] (model dtype, on device()), positions [3, T] int64 ->
  // hidden states [T, H]. Throws std::logic_error when !accepts_embeddings().
  virtual at::Tensor forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& positions,
                                    const AttentionMetadata& meta);
};

// Borrowing adapters: `model` must outlive the result.
std::unique_ptr<EngineModel> make_engine_model(const QwenForCausalLM& model);
std::unique_ptr<EngineModel> make_engine_model(const Qwen3_5ForCausalLM& model);

// Loads <folder> as the model class its config.json names: Qwen3.5 /
// Qwen3.5-MoE / Qwen3-Next (Qwen3_5Config::handles) as Qwen3_5ForCausalLM,
// everything else as QwenForCausalLM. Throws io::LoadError like the loaders.
std::unique_ptr<EngineModel> load_engine_model(const std::filesystem::path& folder, const io::LoadOptions& opts);

// Recurrent-state bytes per sequence of a hybrid model, from its config (the
// same figure as HybridStates::bytes_per_slot, without allocating).
std::int64_t hybrid_state_bytes_per_slot(const Qwen3_5Config& cfg, c10::ScalarType dtype);

}  // namespace mmgen::text
