// Qwen2.5-VL vision tower: window layout, weight loading and forward
// (qwen_vision.hpp). Read beside transformers' modeling_qwen2_5_vl.py
// (Qwen2_5_VisionTransformerPretrainedModel and its blocks) and vision_utils.py
// (position ids, cu_seqlens, window index): same op order, same casts, same
// epsilons. The config is read in qwen_vision_config.cpp.
#include "mmgen/image/qwen_vision.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scaled_dot_product_attention.h>

#include <cmath>
#include <map>
#include <string>

#include "mmgen/io/load_error.hpp"
#include "mmgen/ops.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::image {

namespace {

[[noreturn]] void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, "vision tower: " + what);
}

at::Tensor long_tensor(std::vector<std::int64_t> values) {
  const auto n = std::int64_t(values.size());
  return at::from_blob(values.data(), {n}, at::TensorOptions().dtype(at::kLong)).clone();
}

VisionLinear load_linear(io::WeightLoader& w, const std::string& name, std::int64_t out, std::int64_t in) {
  return VisionLinear{w.take(name + ".weight", {out, in}), w.take(name + ".bias", {out})};
}

VisionRMSNorm load_norm(io::WeightLoader& w, const std::string& name, std::int64_t n) {
  return VisionRMSNorm{w.take(name + ".weight", {n}), 1e-6};
}

}  // namespace

std::vector<VisionGrid> read_vision_grid(const at::Tensor& grid_thw, std::int64_t m, std::string_view who) {
  const auto bad = [&](const std::string& what) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, std::string(who) + ": " + what);
  };
  if (!grid_thw.defined() || grid_thw.dim() != 2 || grid_thw.size(1) != 3 || grid_thw.size(0) == 0) {
    bad("grid_thw must be [num_images, 3] (t, h, w), got " +
        (grid_thw.defined() ? std::string(c10::str(grid_thw.sizes())) : std::string("an undefined tensor")));
  }
  if (!at::isIntegralType(grid_thw.scalar_type(), /*includeBool=*/false)) {
    bad("grid_thw must hold integers, got " + std::string(c10::toString(grid_thw.scalar_type())));
  }
  const at::Tensor g = grid_thw.to(at::kCPU, at::kLong).contiguous();
  const auto* p = g.data_ptr<std::int64_t>();
  std::vector<VisionGrid> out;
  for (std::int64_t i = 0; i < g.size(0); ++i) {
    const VisionGrid gr{p[3 * i], p[3 * i + 1], p[3 * i + 2]};
    if (gr.t <= 0 || gr.h <= 0 || gr.w <= 0 || gr.h % m != 0 || gr.w % m != 0) {
      bad("grid_thw row " + std::to_string(i) + " is (" + std::to_string(gr.t) + ", " + std::to_string(gr.h) + ", " +
          std::to_string(gr.w) + "); t, h, w must be positive and h, w multiples of the merge size " +
          std::to_string(m));
    }
    // A sane bound before sizes are multiplied (a 1e5 x 1e5-patch grid is not an image).
    if (gr.t > (1 << 16) || gr.h > (1 << 16) || gr.w > (1 << 16)) {
      bad("grid_thw row " + std::to_string(i) + " is implausibly large");
    }
    out.push_back(gr);
  }
  return out;
}

// ============================== layout ==============================

VisionLayout vision_layout(const QwenVisionConfig& cfg, const at::Tensor& grid_thw) {
  const std::vector<VisionGrid> grids = read_vision_grid(grid_thw, cfg.spatial_merge_size, "vision tower");
  const std::int64_t m = cfg.spatial_merge_size;
  const std::int64_t unit = cfg.merge_unit();
  // Window side in merged tokens (112 px / 2 / 14 = 4 as published).
  const std::int64_t ws = cfg.window_size / m / cfg.patch_size;

  std::vector<std::int64_t> pos;  // (row, col) pairs
  std::vector<std::int64_t> window_index;
  VisionLayout out;
  out.cu_seqlens = {0};
  out.cu_window_seqlens = {0};
  std::int64_t block_offset = 0;  // merge blocks of the images before this one
  for (const VisionGrid& g : grids) {
    // Patches in merge-block order: block (bh, bw) row-major, then its m x m
    // patches row-major; every frame repeats the image's positions.
    for (std::int64_t t = 0; t < g.t; ++t) {
      for (std::int64_t bh = 0; bh < g.h / m; ++bh) {
        for (std::int64_t bw = 0; bw < g.w / m; ++bw) {
          for (std::int64_t ih = 0; ih < m; ++ih) {
            for (std::int64_t iw = 0; iw < m; ++iw) {
              pos.push_back(bh * m + ih);
              pos.push_back(bw * m + iw);
            }
          }
        }
      }
      out.cu_seqlens.push_back(out.cu_seqlens.back() + g.h * g.w);  // one segment per frame
    }
    // Windows of ws x ws merge blocks tile each frame from the top-left; the
    // ragged ones at the right and bottom edges are smaller. The reference pads
    // to whole windows and drops the padding (and the empty windows a full
    // extra pad row or column leaves when the grid divides evenly).
    const std::int64_t lh = g.h / m, lw = g.w / m;
    for (std::int64_t t = 0; t < g.t; ++t) {
      for (std::int64_t wr = 0; wr < lh; wr += ws) {
        for (std::int64_t wc = 0; wc < lw; wc += ws) {
          std::int64_t count = 0;
          for (std::int64_t r = wr; r < std::min(wr + ws, lh); ++r) {
            for (std::int64_t c = wc; c < std::min(wc + ws, lw); ++c) {
              window_index.push_back(block_offset + (t * lh + r) * lw + c);
              ++count;
            }
          }
          out.cu_window_seqlens.push_back(out.cu_window_seqlens.back() + count * unit);
        }
      }
    }
    block_offset += g.t * lh * lw;
  }
  const auto n = std::int64_t(pos.size() / 2);
  out.position_ids = long_tensor(std::move(pos)).view({n, 2});
  out.window_index = long_tensor(std::move(window_index));
  return out;
}

// ============================== blocks ==============================

at::Tensor VisionLinear::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

at::Tensor VisionRMSNorm::operator()(const at::Tensor& x) const { return mmgen::ops::rms_norm(x, weight, eps); }

at::Tensor VisionMlp::operator()(const at::Tensor& x) const {
  return down_proj(mmgen::ops::silu_and_mul(gate_up_proj(x)));  // [T, 2I] -> [T, I] -> [T, E]
}

// ============================== tower ==============================

std::string QwenVisionTower::key_prefix(const io::WeightLoader& w) {
  return w.contains("model.visual.patch_embed.proj.weight") ? "model.visual." : "visual.";
}

QwenVisionTower::QwenVisionTower(const QwenVisionConfig& cfg, io::WeightLoader& w, const std::string& prefix)
    : cfg_(cfg) {
  const std::int64_t E = cfg.hidden_size, I = cfg.intermediate_size, P = cfg.patch_size;
  patch_embed_proj_ = w.take(prefix + "patch_embed.proj.weight", {E, cfg.in_channels, cfg.temporal_patch_size, P, P})
                          .reshape({E, cfg.patch_dim()});
  blocks_.reserve(std::size_t(cfg.depth));
  for (std::int64_t i = 0; i < cfg.depth; ++i) {
    const std::string p = prefix + "blocks." + std::to_string(i) + ".";
    VisionBlock b;
    b.norm1 = load_norm(w, p + "norm1", E);
    b.norm2 = load_norm(w, p + "norm2", E);
    b.attn.qkv = load_linear(w, p + "attn.qkv", 3 * E, E);
    b.attn.proj = load_linear(w, p + "attn.proj", E, E);
    VisionLinear gate = load_linear(w, p + "mlp.gate_proj", I, E);
    VisionLinear up = load_linear(w, p + "mlp.up_proj", I, E);
    // [2I, E] with the gate rows first, as silu_and_mul expects.
    b.mlp.gate_up_proj = VisionLinear{at::cat({gate.weight, up.weight}, 0), at::cat({gate.bias, up.bias}, 0)};
    b.mlp.down_proj = load_linear(w, p + "mlp.down_proj", E, I);
    blocks_.push_back(std::move(b));
  }
  const std::int64_t M = E * cfg.merge_unit();
  merger_.ln_q = load_norm(w, prefix + "merger.ln_q", E);
  merger_.mlp_0 = load_linear(w, prefix + "merger.mlp.0", M, M);
  merger_.mlp_2 = load_linear(w, prefix + "merger.mlp.2", cfg.out_hidden_size, M);
}

QwenVisionTower QwenVisionTower::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  const QwenVisionConfig cfg = QwenVisionConfig::load(folder);
  const io::Checkpoint ckpt = io::Checkpoint::open(folder);
  io::WeightLoader w(ckpt, opts);
  QwenVisionTower tower(cfg, w, key_prefix(w));
  // The language model beside it (published: model.*, transformers 5:
  // model.language_model.*) and the head are the prompt encoder's business.
  for (const char* p : {"model.layers.", "model.embed_tokens.", "model.norm.", "model.language_model.", "lm_head."}) {
    w.skip_prefix(p);
  }
  w.finish();
  return tower;
}

at::Tensor QwenVisionTower::attention(const VisionAttention& a, const at::Tensor& x, const at::Tensor& cos,
                                      const at::Tensor& sin, const std::vector<std::int64_t>& cu_seqlens) const {
  const std::int64_t T = x.size(0), H = cfg_.num_heads, D = cfg_.head_dim();
  at::Tensor qkv = a.qkv(x).view({T, 3, H, D});
  at::Tensor q = qkv.select(1, 0), k = qkv.select(1, 1), v = qkv.select(1, 2);  // [T, H, D] views
  // The reference rotates in float32 and casts back; rope() does the same, in place.
  mmgen::ops::rope(q, k, cos, sin, mmgen::ops::RopeStyle::NeoX);
  const double scale = std::pow(double(D), -0.5);

  // Attention within each segment [cu[i], cu[i+1]). Segments of equal length
  // (most windows are full) run as one batched call instead of one per window.
  std::map<std::int64_t, std::vector<std::int64_t>> starts_by_len;
  for (std::size_t i = 0; i + 1 < cu_seqlens.size(); ++i) {
    starts_by_len[cu_seqlens[i + 1] - cu_seqlens[i]].push_back(cu_seqlens[i]);
  }
  at::Tensor o = at::empty({T, H, D}, q.options());
  for (const auto& [len, starts] : starts_by_len) {
    const auto G = std::int64_t(starts.size());
    if (G == 1) {
      const std::int64_t s = starts.front();
      auto heads = [&](const at::Tensor& t) { return t.narrow(0, s, len).transpose(0, 1).unsqueeze(0); };
      at::Tensor r = at::scaled_dot_product_attention(heads(q), heads(k), heads(v), {}, 0.0, false, scale);
      o.narrow(0, s, len).copy_(r.squeeze(0).transpose(0, 1));  // [1, H, L, D] -> [L, H, D]
      continue;
    }
    std::vector<std::int64_t> rows;
    rows.reserve(std::size_t(G * len));
    for (std::int64_t s : starts) {
      for (std::int64_t j = 0; j < len; ++j) rows.push_back(s + j);
    }
    const at::Tensor idx = long_tensor(std::move(rows)).to(x.device());
    auto heads = [&](const at::Tensor& t) { return t.index_select(0, idx).view({G, len, H, D}).transpose(1, 2); };
    at::Tensor r = at::scaled_dot_product_attention(heads(q), heads(k), heads(v), {}, 0.0, false, scale);
    o.index_copy_(0, idx, r.transpose(1, 2).reshape({G * len, H, D}));
  }
  return a.proj(o.view({T, H * D}));
}

at::Tensor QwenVisionTower::forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw) const {
  if (!pixel_values.defined() || pixel_values.dim() != 2 || pixel_values.size(1) != cfg_.patch_dim()) {
    bad_input("pixel_values must be [num_patches, " + std::to_string(cfg_.patch_dim()) + "] (C·T·P·P), got " +
              (pixel_values.defined() ? std::string(c10::str(pixel_values.sizes())) : std::string("undefined")));
  }
  if (!at::isFloatingType(pixel_values.scalar_type())) {
    bad_input("pixel_values must be floating point, got " + std::string(c10::toString(pixel_values.scalar_type())));
  }
  const std::int64_t N = pixel_values.size(0), unit = cfg_.merge_unit(), E = cfg_.hidden_size;
  // Checked before the layout is built, so a hostile grid allocates nothing.
  std::int64_t covered = 0;
  for (const VisionGrid& g : read_vision_grid(grid_thw, cfg_.spatial_merge_size, "vision tower"))
    covered += g.t * g.h * g.w;
  if (covered != N) {
    bad_input("grid_thw covers " + std::to_string(covered) + " patches but pixel_values has " + std::to_string(N));
  }
  const VisionLayout layout = vision_layout(cfg_, grid_thw);

  // Patch embedding: Conv3d with stride = kernel over each flattened patch.
  at::Tensor x = at::linear(pixel_values.to(device(), dtype()), patch_embed_proj_);  // [N, E]

  // Window order: merge blocks of 4 patches move together.
  const at::Tensor widx = layout.window_index.to(device());
  x = x.view({N / unit, unit, E}).index_select(0, widx).view({N, E});
  const at::Tensor pos = layout.position_ids.to(device()).view({N / unit, unit, 2}).index_select(0, widx).view({N, 2});
  // Axial 2D rotary: the first half of the rotated features from the row, the
  // second from the column, each with its own inverse frequencies over D/2.
  const std::int64_t half = cfg_.head_dim() / 2;
  const std::vector<std::int64_t> axes = {half, half};
  const mmgen::ops::RopeTables rope = mmgen::ops::rope_tables_multi_axis(pos, axes, cfg_.rope_theta);  // [N, D/2]

  // Pre-norm blocks; each "residual + branch" followed by the next norm is one
  // fused_add_rms_norm (the sum rounded to the model dtype once, then normed).
  // The last block's sum feeds the merger's ln_q.
  at::Tensor residual = x;
  at::Tensor h = blocks_.empty() ? merger_.ln_q(residual) : blocks_.front().norm1(residual);
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const VisionBlock& b = blocks_[i];
    const auto& cu = cfg_.is_full_attention(std::int64_t(i)) ? layout.cu_seqlens : layout.cu_window_seqlens;
    at::Tensor attn = attention(b.attn, h, rope.cos, rope.sin, cu);
    h = mmgen::ops::fused_add_rms_norm(attn, residual, b.norm2.weight, b.norm2.eps);
    at::Tensor mlp = b.mlp(h);
    const VisionRMSNorm& next = i + 1 < blocks_.size() ? blocks_[i + 1].norm1 : merger_.ln_q;
    h = mmgen::ops::fused_add_rms_norm(mlp, residual, next.weight, next.eps);
  }

  // Merger over each block of 4 neighbouring patches, then back to raster order.
  at::Tensor merged = merger_.mlp_2(at::gelu(merger_.mlp_0(h.reshape({N / unit, unit * E}))));  // [N/4, out]
  std::vector<std::int64_t> inverse(std::size_t(N / unit));
  const at::Tensor wcpu = layout.window_index.contiguous();
  const auto* wi = wcpu.data_ptr<std::int64_t>();
  for (std::int64_t j = 0; j < N / unit; ++j) inverse[std::size_t(wi[j])] = j;
  return merged.index_select(0, long_tensor(std::move(inverse)).to(device()));
}

}  // namespace mmgen::image
