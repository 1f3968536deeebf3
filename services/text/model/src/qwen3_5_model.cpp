// Hybrid Qwen decoder forward and weight loading (qwen3_5_model.hpp). Read
// beside transformers' modeling_qwen3_5.py / modeling_qwen3_5_moe.py /
// modeling_qwen3_next.py: same op order, same casts, same epsilons.
#include "mmgen/text/qwen3_5_model.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/rsqrt.h>

#include <cmath>
#include <string>
#include <tuple>

#include "load_util.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {

using detail::bad_input;
using detail::load_linear;
using detail::load_mlp;



ZeroCenteredRMSNorm load_norm(io::WeightLoader& w, const std::string& name, std::int64_t n, double eps) {
  return ZeroCenteredRMSNorm{w.take(name + ".weight", {n}), eps};
}


SharedExpertMoe load_moe(const Qwen3_5Config& cfg, io::WeightLoader& w, const std::string& p) {
  const std::int64_t H = cfg.hidden_size, E = cfg.num_experts, I = cfg.moe_intermediate_size;
  SharedExpertMoe m;
  m.moe.gate = load_linear(w, p + "gate", E, H, false);
  m.moe.top_k = cfg.num_experts_per_tok;
  m.moe.norm_topk_prob = cfg.norm_topk_prob;
  if (w.contains(p + "experts.gate_up_proj")) {
    // transformers' fused layout: gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I].
    at::Tensor gate_up = w.take(p + "experts.gate_up_proj", {E, 2 * I, H});
    at::Tensor down = w.take(p + "experts.down_proj", {E, H, I});
    for (std::int64_t e = 0; e < E; ++e) {
      Mlp x;
      x.gate_up_proj.weight = gate_up[e];
      x.down_proj.weight = down[e];
      m.moe.experts.push_back(std::move(x));
    }
  } else {
    // Per expert, as save_pretrained writes it and Qwen3-Next is published.
    for (std::int64_t e = 0; e < E; ++e) m.moe.experts.push_back(load_mlp(w, p + "experts." + std::to_string(e), H, I));
  }
  m.shared_expert = load_mlp(w, p + "shared_expert", H, cfg.shared_expert_intermediate_size);
  m.shared_expert_gate = load_linear(w, p + "shared_expert_gate", 1, H, false);
  return m;
}

// The decoder's key prefix: "model.language_model." in the conditional-generation
// layout, "model." for text-only checkpoints (Qwen3-Next, Qwen3_5ForCausalLM).
std::string decoder_prefix(const io::WeightLoader& w) {
  return w.contains("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
}

QwenConfig rotary_config(const Qwen3_5Config& cfg) {
  QwenConfig r;
  r.head_dim = cfg.rotary_dim;  // the tables cover the rotated dims only
  r.max_position_embeddings = cfg.max_position_embeddings;
  r.rope = cfg.rope;
  return r;
}

}  // namespace

// ============================== blocks ==============================

at::Tensor ZeroCenteredRMSNorm::operator()(const at::Tensor& x) const {
  // float32 throughout, gain (1 + w) in float32, one cast back at the end.
  const at::Tensor xf = x.to(at::kFloat);
  at::Tensor out = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  out = out * (1.0 + weight.to(at::kFloat));
  return out.to(x.scalar_type());
}

at::Tensor SharedExpertMoe::operator()(const at::Tensor& x) const {
  const at::Tensor shared = shared_expert(x);
  const at::Tensor routed = moe(x);
  return routed + shared_expert_gate(x).sigmoid() * shared;
}

// ============================== Qwen3_5Model ==============================

Qwen3_5Model::Qwen3_5Model(const Qwen3_5Config& cfg, io::WeightLoader& w, const std::string& prefix)
    : cfg_(cfg), rotary_emb_(rotary_config(cfg)) {
  const std::int64_t H = cfg.hidden_size, D = cfg.head_dim;
  const double eps = cfg.rms_norm_eps;
  embed_tokens_ = w.take(prefix + "embed_tokens.weight", {cfg.vocab_size, H});
  std::int64_t n_full = 0, n_linear = 0;
  for (std::int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = prefix + "layers." + std::to_string(i) + ".";
    HybridDecoderLayer l;
    l.type = cfg.layer_types[std::size_t(i)];
    l.input_layernorm = load_norm(w, p + "input_layernorm", H, eps);
    l.post_attention_layernorm = load_norm(w, p + "post_attention_layernorm", H, eps);
    if (l.type == LayerType::linear_attention) {
      l.linear_attn = GatedDeltaNet::load(cfg, w, p + "linear_attn.");
      l.cache_index = n_linear++;
    } else {
      GatedAttention a;
      const bool bias = cfg.attention_bias;
      a.q_proj = load_linear(w, p + "self_attn.q_proj", 2 * cfg.q_size(), H, bias);
      a.k_proj = load_linear(w, p + "self_attn.k_proj", cfg.kv_size(), H, bias);
      a.v_proj = load_linear(w, p + "self_attn.v_proj", cfg.kv_size(), H, bias);
      a.o_proj = load_linear(w, p + "self_attn.o_proj", H, cfg.q_size(), bias);
      a.q_norm = load_norm(w, p + "self_attn.q_norm", D, eps);
      a.k_norm = load_norm(w, p + "self_attn.k_norm", D, eps);
      l.self_attn = std::move(a);
      l.cache_index = n_full++;
    }
    if (cfg.is_moe_layer(i)) {
      l.moe = load_moe(cfg, w, p + "mlp.");
    } else {
      l.mlp = load_mlp(w, p + "mlp", H, cfg.intermediate_size);
    }
    layers_.push_back(std::move(l));
  }
  norm_ = load_norm(w, prefix + "norm", H, eps);
}

HybridStates Qwen3_5Model::make_states(std::int64_t slots) const {
  return HybridStates(cfg_.num_linear_attention_layers(), slots, cfg_.conv_dim(), cfg_.linear_conv_kernel_dim,
                      cfg_.linear_num_value_heads, cfg_.linear_key_head_dim, cfg_.linear_value_head_dim, dtype(),
                      device());
}

HybridCache Qwen3_5Model::make_cache(std::int64_t slots, std::int64_t max_len) const {
  return HybridCache{KvCache(cfg_.num_full_attention_layers(), slots, max_len, cfg_.num_key_value_heads,
                             cfg_.head_dim, dtype(), device()),
                     make_states(slots)};
}

HybridCache Qwen3_5Model::make_paged_cache(std::int64_t num_blocks, std::int64_t block_size,
                                           std::int64_t state_slots) const {
  return HybridCache{KvCache::paged(cfg_.num_full_attention_layers(), num_blocks, block_size,
                                    cfg_.num_key_value_heads, cfg_.head_dim, dtype(), device()),
                     make_states(state_slots)};
}

std::pair<at::Tensor, at::Tensor> Qwen3_5Model::rotary_tables(const at::Tensor& positions,
                                                              const AttentionMetadata& meta) const {
  if (positions.dim() == 2) {
    // Interleaved M-RoPE (Qwen3.5): frequency j takes the height row when
    // j % 3 == 1 and j < 3 * section[1], the width row when j % 3 == 2 and
    // j < 3 * section[2], the temporal row otherwise (the reference's
    // recomposition_frequencies). Equal rows reduce to 1-D RoPE.
    const std::int64_t seq_len = positions.max().item<std::int64_t>() + 1;
    std::vector<at::Tensor> cos(3), sin(3);
    for (std::int64_t r = 0; r < 3; ++r) std::tie(cos[r], sin[r]) = rotary_emb_.cos_sin(positions[r], seq_len);
    const std::int64_t half = cfg_.rotary_dim / 2;
    std::vector<std::int64_t> row(std::size_t(half), 0);
    for (std::int64_t j = 0; j < half; ++j) {
      if (j % 3 == 1 && j < 3 * cfg_.mrope_section[1]) row[std::size_t(j)] = 1;
      if (j % 3 == 2 && j < 3 * cfg_.mrope_section[2]) row[std::size_t(j)] = 2;
    }
    auto pick = [&](const std::vector<at::Tensor>& t) {
      std::vector<at::Tensor> cols;
      for (std::int64_t j = 0; j < half; ++j) cols.push_back(t[std::size_t(row[std::size_t(j)])].narrow(-1, j, 1));
      return at::cat(cols, -1);  // [T, half]
    };
    return {pick(cos), pick(sin)};
  }
  // Dynamic NTK scales per sequence by its length; the other types ignore it.
  if (cfg_.rope.type != RopeType::dynamic || meta.seqs.size() <= 1) {
    const std::int64_t seq_len = positions.numel() ? positions.max().item<std::int64_t>() + 1 : 0;
    return rotary_emb_.cos_sin(positions, seq_len);
  }
  std::vector<at::Tensor> cos, sin;
  for (const auto& s : meta.seqs) {
    at::Tensor p = positions.narrow(-1, s.query_start, s.query_len);
    auto [c, si] = rotary_emb_.cos_sin(p, p.max().item<std::int64_t>() + 1);
    cos.push_back(c);
    sin.push_back(si);
  }
  return {at::cat(cos, 0), at::cat(sin, 0)};
}

at::Tensor Qwen3_5Model::attention_block(const HybridDecoderLayer& l, const at::Tensor& x, const at::Tensor& cos,
                                         const at::Tensor& sin, const AttentionMetadata& meta, KvCache& kv) const {
  const GatedAttention& a = *l.self_attn;
  const std::int64_t T = x.size(0), D = cfg_.head_dim, Hq = cfg_.num_attention_heads;
  // q_proj gives, per head, [query (D) | output gate (D)].
  const at::Tensor q_gate = a.q_proj(x).view({T, Hq, 2 * D});
  at::Tensor q = a.q_norm(q_gate.narrow(-1, 0, D));                    // [T, Hq, D]
  const at::Tensor gate = q_gate.narrow(-1, D, D).reshape({T, Hq * D});  // [T, Hq*D]
  at::Tensor k = a.k_norm(a.k_proj(x).view({T, -1, D}));                // [T, Hkv, D]
  const at::Tensor v = a.v_proj(x).view({T, -1, D});                    // [T, Hkv, D]
  apply_rotary(q, k, cos, sin);  // in place, the first rotary_dim dims
  const at::Tensor o = attend(l.cache_index, q, k, v, meta, kv, 0, std::pow(double(D), -0.5));  // [T, Hq, D]
  return a.o_proj(o.reshape({T, Hq * D}) * gate.sigmoid());
}

at::Tensor Qwen3_5Model::forward(const at::Tensor& input_ids, const at::Tensor& positions,
                                 const AttentionMetadata& meta, HybridCache& cache) const {
  if (input_ids.dim() != 1 || input_ids.scalar_type() != at::kLong) bad_input("input_ids must be [T] int64");
  const std::int64_t T = input_ids.size(0);
  if (T == 0 || meta.num_tokens() != T) {
    bad_input("attention metadata covers " + std::to_string(meta.num_tokens()) + " tokens but input_ids has " +
              std::to_string(T));
  }
  const std::int64_t lo = input_ids.min().item<std::int64_t>(), hi = input_ids.max().item<std::int64_t>();
  if (lo < 0 || hi >= cfg_.vocab_size) {
    bad_input("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary of " +
              std::to_string(cfg_.vocab_size));
  }
  return forward_embeds(embed_tokens_.index_select(0, input_ids.to(device())), positions, meta, cache);
}

at::Tensor Qwen3_5Model::forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& positions,
                                        const AttentionMetadata& meta, HybridCache& cache) const {
  const std::int64_t T = inputs_embeds.dim() == 2 ? inputs_embeds.size(0) : -1;
  if (T <= 0 || inputs_embeds.size(1) != cfg_.hidden_size || meta.num_tokens() != T) {
    bad_input("inputs_embeds must be [T, " + std::to_string(cfg_.hidden_size) + "] with T = the metadata's " +
              std::to_string(meta.num_tokens()) + " tokens");
  }
  const bool mrope = cfg_.mrope_section.size() == 3;
  const bool pos_ok = positions.scalar_type() == at::kLong &&
                      ((positions.dim() == 1 && positions.size(0) == T) ||
                       (mrope && positions.dim() == 2 && positions.size(0) == 3 && positions.size(1) == T));
  if (!pos_ok) {
    bad_input(std::string("positions must be [T] int64") + (mrope ? " (or [3, T] for M-RoPE)" : "") +
              " with T = " + std::to_string(T));
  }
  if (cfg_.num_linear_attention_layers() > 0 && cache.states.slots() == 0) {
    bad_input("this hybrid model needs recurrent-state slots in its cache (make_cache / make_paged_cache)");
  }
  for (const SequenceSlice& s : meta.seqs) {
    if (s.query_len <= 0 || s.context_len < 0) bad_input("every sequence needs new tokens and context_len >= 0");
  }

  // [T, rotary_dim / 2] each, cast to the model dtype as the reference casts cos/sin.
  auto [cos32, sin32] = rotary_tables(positions.to(device()), meta);
  const at::Tensor cos = cos32.to(dtype()), sin = sin32.to(dtype());

  at::Tensor h = inputs_embeds.to(device(), dtype());  // [T, H]
  for (const HybridDecoderLayer& l : layers_) {
    const at::Tensor x = l.input_layernorm(h);
    at::Tensor mixed;
    if (l.type == LayerType::linear_attention) {
      mixed = l.linear_attn->forward(x, meta, cache.states.conv_state(l.cache_index),
                                     cache.states.recurrent_state(l.cache_index));
    } else {
      mixed = attention_block(l, x, cos, sin, meta, cache.kv);
    }
    h = h + mixed;
    const at::Tensor y = l.post_attention_layernorm(h);
    h = h + (l.moe ? (*l.moe)(y) : l.mlp(y));
  }
  return norm_(h);  // [T, H]
}

// ============================== Qwen3_5ForCausalLM ==============================

Qwen3_5ForCausalLM::Qwen3_5ForCausalLM(const Qwen3_5Config& cfg, io::WeightLoader& w)
    : model(cfg, w, decoder_prefix(w)) {
  lm_head = detail::load_lm_head(w, cfg.tie_word_embeddings, model.embed_tokens(), cfg.vocab_size, cfg.hidden_size);
  // The vision tower is not run yet (text input only); multi-token-prediction
  // weights are ignored as the reference ignores them (_keys_to_ignore_on_load_unexpected).
  w.skip_prefix("model.visual.");
  w.skip_prefix("visual.");
  w.skip_prefix("mtp.");
}

Qwen3_5ForCausalLM Qwen3_5ForCausalLM::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  return detail::load_causal_lm<Qwen3_5ForCausalLM, Qwen3_5Config>(folder, opts);
}

at::Tensor Qwen3_5ForCausalLM::logits(const at::Tensor& hidden) const { return text::linear(hidden, lm_head); }

}  // namespace mmgen::text
