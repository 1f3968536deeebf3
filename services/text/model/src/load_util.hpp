// Loading helpers shared by the Qwen decoder ports (qwen_model.cpp,
// qwen3_5_model.cpp, gated_deltanet.cpp): checkpoint names in, typed weights out.
#pragma once

#include <ATen/ops/cat.h>

#include <filesystem>
#include <string>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/text/qwen_model.hpp"

namespace mmgen::text::detail {

[[noreturn]] inline void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, what);
}

inline Linear load_linear(io::WeightLoader& w, const std::string& name, std::int64_t out, std::int64_t in,
                          bool bias) {
  Linear l;
  l.weight = w.take(name + ".weight", {out, in});
  if (bias) l.bias = w.take(name + ".bias", {out});
  return l;
}

// gate_proj [I, H] and up_proj [I, H] stacked into one [2I, H] matmul, gate
// rows first, as mmgen::ops::silu_and_mul splits it.
inline Mlp load_mlp(io::WeightLoader& w, const std::string& name, std::int64_t hidden, std::int64_t inter) {
  Mlp m;
  at::Tensor gate = w.take(name + ".gate_proj.weight", {inter, hidden});
  at::Tensor up = w.take(name + ".up_proj.weight", {inter, hidden});
  m.gate_up_proj.weight = at::cat({gate, up}, 0);
  m.down_proj = load_linear(w, name + ".down_proj", hidden, inter, false);
  return m;
}

// The output head: the embedding itself when tied (a stored lm_head.weight
// is then ignored, as transformers does), else its own [vocab, hidden] matrix.
inline at::Tensor load_lm_head(io::WeightLoader& w, bool tied, const at::Tensor& embedding, std::int64_t vocab,
                               std::int64_t hidden) {
  if (!tied) return w.take("lm_head.weight", {vocab, hidden});
  w.skip("lm_head.weight");
  return embedding;
}

// Config from config.json, weights from the checkpoint, every tensor used.
template <class Model, class Config>
Model load_causal_lm(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  const Config cfg = Config::load(folder);
  const io::Checkpoint ckpt = io::Checkpoint::open(folder);
  io::WeightLoader w(ckpt, opts);
  Model m(cfg, w);
  w.finish();
  return m;
}

}  // namespace mmgen::text::detail
