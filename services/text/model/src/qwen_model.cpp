// Qwen decoder forward and weight loading (qwen_model.hpp). Read beside
// transformers' modeling_qwen3.py / modeling_qwen2.py / modeling_qwen3_moe.py:
// same op order, same casts, same epsilons.
#include "mmgen/text/qwen_model.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros_like.h>

#include <cmath>
#include <string>

#include "load_util.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/ops.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {

using detail::bad_input;
using detail::load_linear;
using detail::load_mlp;


std::string layer_prefix(const std::string& prefix, std::int64_t i) {
  return prefix + "layers." + std::to_string(i) + ".";
}


RMSNorm load_norm(io::WeightLoader& w, const std::string& name, std::int64_t n, double eps) {
  return RMSNorm{w.take(name + ".weight", {n}), eps};
}


// The decoder's key prefix: "model." as published; transformers 5 saves the
// Qwen2.5-VL language model under "model.language_model.".
std::string decoder_prefix(const QwenConfig& cfg, const io::WeightLoader& w) {
  if (cfg.architecture == Architecture::qwen2_5_vl_text &&
      w.contains("model.language_model.embed_tokens.weight")) {
    return "model.language_model.";
  }
  return "model.";
}

}  // namespace

// ============================== blocks ==============================

std::int64_t small_linear_rows(c10::ScalarType) { return 16; }

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  const std::int64_t k = x.dim() > 0 ? x.size(-1) : 0;
  const std::int64_t rows = k > 0 ? x.numel() / k : 0;
  if (x.device().is_cpu() && rows > 0 && rows <= small_linear_rows(x.scalar_type()))
    return mmgen::ops::linear_small_m(x, weight, b);
  return at::linear(x, weight, b);
}

at::Tensor Linear::operator()(const at::Tensor& x) const { return text::linear(x, weight, bias); }

at::Tensor RMSNorm::operator()(const at::Tensor& x) const { return mmgen::ops::rms_norm(x, weight, eps); }

at::Tensor Mlp::operator()(const at::Tensor& x) const {
  return down_proj(mmgen::ops::silu_and_mul(gate_up_proj(x)));  // [T, 2I] -> [T, I] -> [T, H]
}

at::Tensor SparseMoe::operator()(const at::Tensor& x) const {
  // Router (Qwen3MoeTopKRouter): softmax in float32, top-k, optional renormalisation.
  at::Tensor router_logits = gate(x);                                  // [T, E]
  at::Tensor probs = at::softmax(router_logits, -1, at::kFloat);       // [T, E] fp32
  auto [top_value, top_index] = at::topk(probs, top_k, -1);            // [T, k]
  if (norm_topk_prob) top_value = top_value / top_value.sum(-1, /*keepdim=*/true);
  top_value = top_value.to(router_logits.scalar_type());

  // Experts (Qwen3MoeExperts): each expert runs on the tokens routed to it, in
  // expert order; rows ordered by (top-k slot, token) as torch.where yields them.
  const std::int64_t num_tokens = x.size(0);
  const std::int64_t num_experts = std::int64_t(experts.size());
  at::Tensor index_cpu = top_index.to(at::kCPU).contiguous();
  const auto* idx = index_cpu.data_ptr<std::int64_t>();
  std::vector<std::vector<std::int64_t>> tokens(static_cast<std::size_t>(num_experts));
  std::vector<std::vector<std::int64_t>> slots(static_cast<std::size_t>(num_experts));
  for (std::int64_t kpos = 0; kpos < top_k; ++kpos) {
    for (std::int64_t t = 0; t < num_tokens; ++t) {
      const std::int64_t e = idx[t * top_k + kpos];
      tokens[std::size_t(e)].push_back(t);
      slots[std::size_t(e)].push_back(t * top_k + kpos);
    }
  }
  at::Tensor out = at::zeros_like(x);                // [T, H]
  at::Tensor flat_weight = top_value.reshape({-1});  // [T*k]
  auto long_opts = at::TensorOptions().dtype(at::kLong);
  for (std::int64_t e = 0; e < num_experts; ++e) {
    auto& tok = tokens[std::size_t(e)];
    if (tok.empty()) continue;
    const auto n = std::int64_t(tok.size());
    at::Tensor token_idx = at::from_blob(tok.data(), {n}, long_opts).to(x.device());
    at::Tensor slot_idx = at::from_blob(slots[std::size_t(e)].data(), {n}, long_opts).to(x.device());
    at::Tensor h = experts[std::size_t(e)](x.index_select(0, token_idx));  // [n, H]
    h = h * flat_weight.index_select(0, slot_idx).unsqueeze(-1);
    out.index_add_(0, token_idx, h.to(out.scalar_type()));
  }
  return out;
}

// ============================== QwenModel ==============================

QwenModel::QwenModel(const QwenConfig& cfg, io::WeightLoader& w, const std::string& prefix)
    : cfg_(cfg), rotary_emb_(cfg) {
  const std::int64_t H = cfg.hidden_size, D = cfg.head_dim;
  embed_tokens_ = w.take(prefix + "embed_tokens.weight", {cfg.vocab_size, H});
  layers_.reserve(std::size_t(cfg.num_hidden_layers));
  for (std::int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = layer_prefix(prefix, i);
    DecoderLayer l;
    l.input_layernorm = load_norm(w, p + "input_layernorm", H, cfg.rms_norm_eps);
    l.post_attention_layernorm = load_norm(w, p + "post_attention_layernorm", H, cfg.rms_norm_eps);
    Attention& a = l.self_attn;
    a.q_proj = load_linear(w, p + "self_attn.q_proj", cfg.q_size(), H, cfg.qkv_bias);
    a.k_proj = load_linear(w, p + "self_attn.k_proj", cfg.kv_size(), H, cfg.qkv_bias);
    a.v_proj = load_linear(w, p + "self_attn.v_proj", cfg.kv_size(), H, cfg.qkv_bias);
    a.o_proj = load_linear(w, p + "self_attn.o_proj", H, cfg.q_size(), cfg.o_bias);
    if (cfg.qk_norm) {
      a.q_norm = load_norm(w, p + "self_attn.q_norm", D, cfg.rms_norm_eps);
      a.k_norm = load_norm(w, p + "self_attn.k_norm", D, cfg.rms_norm_eps);
    }
    a.window = cfg.window_of(i);
    if (cfg.is_moe_layer(i)) {
      SparseMoe moe;
      moe.gate = load_linear(w, p + "mlp.gate", cfg.num_experts, H, false);
      moe.top_k = cfg.num_experts_per_tok;
      moe.norm_topk_prob = cfg.norm_topk_prob;
      for (std::int64_t e = 0; e < cfg.num_experts; ++e) {
        moe.experts.push_back(load_mlp(w, p + "mlp.experts." + std::to_string(e), H, cfg.moe_intermediate_size));
      }
      l.moe = std::move(moe);
    } else {
      l.mlp = load_mlp(w, p + "mlp", H, cfg.intermediate_size);
    }
    layers_.push_back(std::move(l));
  }
  norm_ = load_norm(w, prefix + "norm", H, cfg.rms_norm_eps);
}

KvCache QwenModel::make_cache(std::int64_t slots, std::int64_t max_len) const {
  return KvCache(cfg_.num_hidden_layers, slots, max_len, cfg_.num_key_value_heads, cfg_.head_dim, dtype(),
                 device());
}

std::pair<at::Tensor, at::Tensor> QwenModel::rotary_tables(const at::Tensor& positions,
                                                           const AttentionMetadata& meta) const {
  // Dynamic NTK scales per sequence by its length (transformers: max(position_ids) + 1
  // of the batch, which is the same thing for one sequence); the other types ignore it.
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

at::Tensor QwenModel::attention_block(std::int64_t layer, const Attention& a, const at::Tensor& x,
                                      const at::Tensor& cos, const at::Tensor& sin, const AttentionMetadata& meta,
                                      KvCache& cache) const {
  const std::int64_t T = x.size(0), D = cfg_.head_dim;
  at::Tensor q = a.q_proj(x).view({T, -1, D});  // [T, Hq, D]
  at::Tensor k = a.k_proj(x).view({T, -1, D});  // [T, Hkv, D]
  at::Tensor v = a.v_proj(x).view({T, -1, D});  // [T, Hkv, D]
  if (cfg_.qk_norm) {
    q = a.q_norm(q);
    k = a.k_norm(k);
  }
  apply_rotary(q, k, cos, sin);  // in place
  const double scale = std::pow(double(D), -0.5);
  at::Tensor o = attend(layer, q, k, v, meta, cache, a.window, scale);  // [T, Hq, D]
  return a.o_proj(o.reshape({T, -1}));
}

at::Tensor QwenModel::forward(const at::Tensor& input_ids, const at::Tensor& positions,
                              const AttentionMetadata& meta, KvCache& cache) const {
  if (input_ids.dim() != 1 || input_ids.scalar_type() != at::kLong) bad_input("input_ids must be [T] int64");
  const std::int64_t T = input_ids.size(0);
  if (T == 0 || meta.num_tokens() != T) {
    bad_input("attention metadata covers " + std::to_string(meta.num_tokens()) + " tokens but input_ids has " +
              std::to_string(T));
  }
  const bool pos_ok = positions.scalar_type() == at::kLong &&
                      ((positions.dim() == 1 && positions.size(0) == T) ||
                       (cfg_.uses_mrope() && positions.dim() == 2 && positions.size(0) == 3 && positions.size(1) == T));
  if (!pos_ok) bad_input("positions must be [T] int64 (or [3, T] for M-RoPE) with T = " + std::to_string(T));
  const std::int64_t lo = input_ids.min().item<std::int64_t>(), hi = input_ids.max().item<std::int64_t>();
  if (lo < 0 || hi >= cfg_.vocab_size) {
    bad_input("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary of " +
              std::to_string(cfg_.vocab_size));
  }

  at::Tensor ids = input_ids.to(device());
  return forward_embeds(embed_tokens_.index_select(0, ids), positions, meta, cache);
}

at::Tensor QwenModel::forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& positions,
                                     const AttentionMetadata& meta, KvCache& cache) const {
  const std::int64_t T = inputs_embeds.dim() == 2 ? inputs_embeds.size(0) : -1;
  if (T <= 0 || inputs_embeds.size(1) != cfg_.hidden_size || meta.num_tokens() != T) {
    bad_input("inputs_embeds must be [T, " + std::to_string(cfg_.hidden_size) + "] with T = the metadata's " +
              std::to_string(meta.num_tokens()) + " tokens");
  }
  const bool pos_ok = positions.scalar_type() == at::kLong &&
                      ((positions.dim() == 1 && positions.size(0) == T) ||
                       (cfg_.uses_mrope() && positions.dim() == 2 && positions.size(0) == 3 && positions.size(1) == T));
  if (!pos_ok) bad_input("positions must be [T] int64 (or [3, T] for M-RoPE) with T = " + std::to_string(T));
  // [T, D/2] each, cast to the model dtype as the reference casts cos/sin before rotating.
  auto [cos32, sin32] = rotary_tables(positions.to(device()), meta);
  const at::Tensor cos = cos32.to(dtype()), sin = sin32.to(dtype());
  // The residual stream lives in `residual`; each "residual + branch" of the
  // reference followed by the next norm is one fused_add_rms_norm (same
  // rounding: the sum is rounded to the model dtype once, then normed).
  // A copy: the fused norms below update the residual stream in place.
  at::Tensor residual = inputs_embeds.to(device(), dtype(), /*non_blocking=*/false, /*copy=*/true);  // [T, H]
  at::Tensor h = layers_.empty() ? norm_(residual) : layers_[0].input_layernorm(residual);
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const DecoderLayer& l = layers_[i];
    at::Tensor attn = attention_block(std::int64_t(i), l.self_attn, h, cos, sin, meta, cache);
    h = mmgen::ops::fused_add_rms_norm(attn, residual, l.post_attention_layernorm.weight,
                                       l.post_attention_layernorm.eps);
    at::Tensor mlp = l.moe ? (*l.moe)(h) : l.mlp(h);
    const RMSNorm& next = i + 1 < layers_.size() ? layers_[i + 1].input_layernorm : norm_;
    h = mmgen::ops::fused_add_rms_norm(mlp, residual, next.weight, next.eps);
  }
  return h;  // [T, H], after the final norm
}

// ============================== QwenForCausalLM ==============================

QwenForCausalLM::QwenForCausalLM(const QwenConfig& cfg, io::WeightLoader& w)
    : model(cfg, w, decoder_prefix(cfg, w)) {
  lm_head = detail::load_lm_head(w, cfg.tie_word_embeddings, model.embed_tokens(), cfg.vocab_size, cfg.hidden_size);
  if (cfg.architecture == Architecture::qwen2_5_vl_text) {
    w.skip_prefix("visual.");
    w.skip_prefix("model.visual.");
  }
}

QwenForCausalLM QwenForCausalLM::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  return detail::load_causal_lm<QwenForCausalLM, QwenConfig>(folder, opts);
}

at::Tensor QwenForCausalLM::logits(const at::Tensor& hidden) const { return text::linear(hidden, lm_head); }

QwenModel load_qwen2_5_vl_text_model(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  const QwenConfig cfg = QwenConfig::load(folder);
  if (cfg.architecture != Architecture::qwen2_5_vl_text) {
    throw io::LoadError(io::LoadErrorKind::unsupported,
                        (folder / "config.json").string() + ": architecture '" + cfg.architecture_name +
                            "' is not Qwen2_5_VLForConditionalGeneration");
  }
  const io::Checkpoint ckpt = io::Checkpoint::open(folder);
  io::WeightLoader w(ckpt, opts);
  QwenModel m(cfg, w, decoder_prefix(cfg, w));
  w.skip("lm_head.weight");
  w.skip_prefix("visual.");
  w.skip_prefix("model.visual.");
  w.finish();
  return m;
}

at::Tensor encode(const QwenModel& model, const at::Tensor& input_ids, const at::Tensor& positions) {
  const std::int64_t T = input_ids.size(0);
  KvCache cache = model.make_cache(1, T);
  return model.forward(input_ids, positions, AttentionMetadata::single(T, 0), cache);
}

}  // namespace mmgen::text
