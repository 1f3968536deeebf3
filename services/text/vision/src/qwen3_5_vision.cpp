// Qwen3.5 vision tower: position-table resampling, weight loading and forward
// (qwen3_5_vision.hpp). Read beside transformers' modeling_qwen3_5.py
// (Qwen3_5VisionModel and its blocks) and vision_utils.py (position ids,
// cu_seqlens, interpolation taps): same op order, same casts, same epsilons.
#include "mmgen/text/qwen3_5_vision.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/sum.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "mmgen/image/qwen_vision.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/ops.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {

[[noreturn]] void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, "Qwen3.5 vision tower: " + what);
}

template <typename T>
at::Tensor to_tensor(std::vector<T> values, at::ScalarType dtype) {
  const auto n = std::int64_t(values.size());
  return at::from_blob(values.data(), {n}, at::TensorOptions().dtype(dtype)).clone();
}

using image::VisionGrid;

VisionLinear load_linear(io::WeightLoader& w, const std::string& name, std::int64_t out, std::int64_t in) {
  return VisionLinear{w.take(name + ".weight", {out, in}), w.take(name + ".bias", {out})};
}

VisionLayerNorm load_norm(io::WeightLoader& w, const std::string& name, std::int64_t n) {
  return VisionLayerNorm{w.take(name + ".weight", {n}), w.take(name + ".bias", {n}), 1e-6};
}

// One axis of the bilinear taps, in float32 as the reference computes them:
// source coordinate index * (side - 1) / max(size - 1, 1) (align_corners),
// taps floor and floor + 1 clamped to the table, weights 1 - |distance|.
struct AxisTaps {
  std::int64_t tap[2];
  float weight[2];
};
AxisTaps axis_taps(std::int64_t index, std::int64_t size, std::int64_t side) {
  const float src = (float(index) * float(side - 1)) / float(std::max<std::int64_t>(size - 1, 1));
  const float fl = std::floor(src);
  AxisTaps a{};
  for (int o = 0; o < 2; ++o) {
    a.tap[o] = std::clamp<std::int64_t>(std::int64_t(fl) + o, 0, side - 1);
    const float distance = std::fabs((src - fl) - float(o));
    a.weight[o] = std::max(1.0f - distance, 0.0f);
  }
  return a;
}

// Patches of every frame in the processor's order: 2x2 (m x m) merge blocks
// in raster order, each block's patches in raster order. Calls f(row, col).
template <typename F>
void for_each_patch(const std::vector<VisionGrid>& grids, std::int64_t m, F&& f) {
  for (const VisionGrid& g : grids) {
    for (std::int64_t t = 0; t < g.t; ++t) {
      for (std::int64_t bh = 0; bh < g.h / m; ++bh) {
        for (std::int64_t bw = 0; bw < g.w / m; ++bw) {
          for (std::int64_t ih = 0; ih < m; ++ih) {
            for (std::int64_t iw = 0; iw < m; ++iw) f(g, bh * m + ih, bw * m + iw);
          }
        }
      }
    }
  }
}

}  // namespace

// ============================== position table ==============================

PositionInterpolation interpolate_positions(const Qwen3_5VisionConfig& cfg, const at::Tensor& grid_thw) {
  const std::vector<VisionGrid> grids =
      image::read_vision_grid(grid_thw, cfg.spatial_merge_size, "Qwen3.5 vision tower");
  const std::int64_t side = cfg.num_grid_per_side();
  std::vector<std::int64_t> idx;
  std::vector<float> wts;
  for_each_patch(grids, cfg.spatial_merge_size, [&](const VisionGrid& g, std::int64_t r, std::int64_t c) {
    const AxisTaps h = axis_taps(r, g.h, side), w = axis_taps(c, g.w, side);
    for (int a = 0; a < 2; ++a) {
      for (int b = 0; b < 2; ++b) {
        idx.push_back(h.tap[a] * side + w.tap[b]);
        wts.push_back(h.weight[a] * w.weight[b]);
      }
    }
  });
  const auto n = std::int64_t(idx.size() / 4);
  return PositionInterpolation{to_tensor(std::move(idx), at::kLong).view({n, 4}),
                               to_tensor(std::move(wts), at::kFloat).view({n, 4})};
}

// ============================== layers ==============================

at::Tensor VisionLinear::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor VisionLayerNorm::operator()(const at::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

at::Tensor Qwen3_5VisionModel::mlp(const Qwen3_5VisionMlp& m, const at::Tensor& x) const {
  at::Tensor h = m.linear_fc1(x);
  if (cfg_.hidden_act == "gelu_pytorch_tanh" || cfg_.hidden_act == "gelu_new") {
    h = at::gelu(h, "tanh");
  } else if (cfg_.hidden_act == "gelu") {
    h = at::gelu(h);
  } else {
    h = at::silu(h);
  }
  return m.linear_fc2(h);
}

// ============================== loading ==============================

std::string Qwen3_5VisionModel::key_prefix(const io::WeightLoader& w) {
  return w.contains("model.visual.patch_embed.proj.weight") ? "model.visual." : "visual.";
}

Qwen3_5VisionModel::Qwen3_5VisionModel(const Qwen3_5VisionConfig& cfg, io::WeightLoader& w,
                                       const std::string& prefix)
    : cfg_(cfg) {
  const std::int64_t E = cfg.hidden_size, I = cfg.intermediate_size, P = cfg.patch_size;
  patch_embed.proj.weight =
      w.take(prefix + "patch_embed.proj.weight", {E, cfg.in_channels, cfg.temporal_patch_size, P, P})
          .reshape({E, cfg.patch_dim()});
  patch_embed.proj.bias = w.take(prefix + "patch_embed.proj.bias", {E});
  pos_embed = w.take(prefix + "pos_embed.weight", {cfg.num_position_embeddings, E});
  blocks.reserve(std::size_t(cfg.depth));
  for (std::int64_t i = 0; i < cfg.depth; ++i) {
    const std::string p = prefix + "blocks." + std::to_string(i) + ".";
    Qwen3_5VisionBlock b;
    b.norm1 = load_norm(w, p + "norm1", E);
    b.norm2 = load_norm(w, p + "norm2", E);
    b.attn.qkv = load_linear(w, p + "attn.qkv", 3 * E, E);
    b.attn.proj = load_linear(w, p + "attn.proj", E, E);
    b.mlp.linear_fc1 = load_linear(w, p + "mlp.linear_fc1", I, E);
    b.mlp.linear_fc2 = load_linear(w, p + "mlp.linear_fc2", E, I);
    blocks.push_back(std::move(b));
  }
  const std::int64_t M = E * cfg.merge_unit();
  merger.norm = load_norm(w, prefix + "merger.norm", E);
  merger.linear_fc1 = load_linear(w, prefix + "merger.linear_fc1", M, M);
  merger.linear_fc2 = load_linear(w, prefix + "merger.linear_fc2", cfg.out_hidden_size, M);
}

Qwen3_5VisionModel Qwen3_5VisionModel::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  const Qwen3_5VisionConfig cfg = Qwen3_5VisionConfig::load(folder);
  const io::Checkpoint ckpt = io::Checkpoint::open(folder);
  io::WeightLoader w(ckpt, opts);
  Qwen3_5VisionModel tower(cfg, w, key_prefix(w));
  // Everything else is the language model's (conditional-generation layout
  // "model.language_model.*", text-only "model.*"), the head's or the
  // multi-token-prediction weights'.
  for (const char* p : {"model.language_model.", "model.layers.", "model.embed_tokens.", "model.norm.", "lm_head.",
                        "mtp."}) {
    w.skip_prefix(p);
  }
  w.finish();
  return tower;
}

// ============================== forward ==============================

at::Tensor Qwen3_5VisionModel::attention(const Qwen3_5VisionAttention& a, const at::Tensor& x,
                                         const at::Tensor& cos, const at::Tensor& sin,
                                         const std::vector<std::int64_t>& cu_seqlens) const {
  const std::int64_t T = x.size(0), H = cfg_.num_heads, D = cfg_.head_dim();
  at::Tensor qkv = a.qkv(x).view({T, 3, H, D});
  at::Tensor q = qkv.select(1, 0), k = qkv.select(1, 1), v = qkv.select(1, 2);  // [T, H, D] views
  // The reference rotates in float32 and casts back; rope() does the same, in place.
  mmgen::ops::rope(q, k, cos, sin, mmgen::ops::RopeStyle::NeoX);
  const double scale = std::pow(double(D), -0.5);

  // Full attention within each image frame [cu[i], cu[i+1]).
  at::Tensor o = at::empty({T, H, D}, q.options());
  for (std::size_t i = 0; i + 1 < cu_seqlens.size(); ++i) {
    const std::int64_t s = cu_seqlens[i], len = cu_seqlens[i + 1] - s;
    auto heads = [&](const at::Tensor& t) { return t.narrow(0, s, len).transpose(0, 1).unsqueeze(0); };
    at::Tensor r = at::scaled_dot_product_attention(heads(q), heads(k), heads(v), {}, 0.0, false, scale);
    o.narrow(0, s, len).copy_(r.squeeze(0).transpose(0, 1));  // [1, H, L, D] -> [L, H, D]
  }
  return a.proj(o.view({T, H * D}));
}

at::Tensor Qwen3_5VisionModel::forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw) const {
  if (!pixel_values.defined() || pixel_values.dim() != 2 || pixel_values.size(1) != cfg_.patch_dim()) {
    bad_input("pixel_values must be [num_patches, " + std::to_string(cfg_.patch_dim()) + "] (C·T·P·P), got " +
              (pixel_values.defined() ? std::string(c10::str(pixel_values.sizes())) : std::string("undefined")));
  }
  if (!at::isFloatingType(pixel_values.scalar_type())) {
    bad_input("pixel_values must be floating point, got " + std::string(c10::toString(pixel_values.scalar_type())));
  }
  const std::int64_t N = pixel_values.size(0), unit = cfg_.merge_unit(), E = cfg_.hidden_size;
  const std::int64_t m = cfg_.spatial_merge_size;
  const std::vector<VisionGrid> grids =
      image::read_vision_grid(grid_thw, cfg_.spatial_merge_size, "Qwen3.5 vision tower");
  std::int64_t covered = 0;
  for (const VisionGrid& g : grids) covered += g.t * g.h * g.w;
  if (covered != N) {
    bad_input("grid_thw covers " + std::to_string(covered) + " patches but pixel_values has " + std::to_string(N));
  }

  // Patch embedding (Conv3d, stride = kernel) as one matmul over flattened patches.
  at::Tensor x = patch_embed.proj(pixel_values.to(device(), dtype()));  // [N, E]

  // Learned absolute positions, resampled to each grid: four table rows
  // weighted in float32, summed, cast to the model dtype and added.
  const PositionInterpolation interp = interpolate_positions(cfg_, grid_thw);
  const at::Tensor rows = pos_embed.index_select(0, interp.indices.to(device()).view({N * 4})).view({N, 4, E});
  const at::Tensor pos = at::sum(rows * interp.weights.to(device()).unsqueeze(-1), {1});
  x = x + pos.to(x.scalar_type());

  // Axial 2D rotary from each patch's (row, column): the first half of the
  // rotated features from the row, the second from the column, each with
  // inverse frequencies over head_dim / 2.
  std::vector<std::int64_t> rc;
  rc.reserve(std::size_t(2 * N));
  std::vector<std::int64_t> cu = {0};
  for_each_patch(grids, m, [&](const VisionGrid&, std::int64_t r, std::int64_t c) {
    rc.push_back(r);
    rc.push_back(c);
  });
  for (const VisionGrid& g : grids) {
    for (std::int64_t t = 0; t < g.t; ++t) cu.push_back(cu.back() + g.h * g.w);  // one segment per frame
  }
  const at::Tensor position_ids = to_tensor(std::move(rc), at::kLong).view({N, 2}).to(device());
  const std::int64_t half = cfg_.head_dim() / 2;
  const std::vector<std::int64_t> axes = {half, half};
  const mmgen::ops::RopeTables rope = mmgen::ops::rope_tables_multi_axis(position_ids, axes, cfg_.rope_theta);

  for (const Qwen3_5VisionBlock& b : blocks) {
    x = x + attention(b.attn, b.norm1(x), rope.cos, rope.sin, cu);
    x = x + mlp(b.mlp, b.norm2(x));
  }

  // Merger: norm per patch, then each 2x2 block's four patches concatenated.
  at::Tensor h = merger.norm(x).view({N / unit, unit * E});
  return merger.linear_fc2(at::gelu(merger.linear_fc1(h)));  // [N / 4, out_hidden_size]
}

}  // namespace mmgen::text
