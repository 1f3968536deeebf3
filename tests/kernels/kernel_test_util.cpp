#include "kernel_test_util.hpp"

#include <ATen/Context.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <sstream>

namespace mmgen::testing {

Tolerance tolerance_for(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16: return {1.6e-2, 1.6e-2};
    case at::kHalf: return {2e-3, 2e-3};
    default: return {2e-5, 2e-5};
  }
}

std::string cuda_unavailable_reason() {
#if !defined(MMGEN_WITH_CUDA_KERNELS)
  return "mmgen was built without CUDA kernels (MMGEN_CUDA=OFF or no nvcc at configure time)";
#else
  return at::hasCUDA() ? "" : "no CUDA device is available on this machine";
#endif
}

bool cpu_runs_avx2_build() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool cpu_runs_avx512_build() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

const char* dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "f32";
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "f16";
    default: return "other";
  }
}

::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected, Tolerance tol) {
  if (actual.sizes() != expected.sizes()) {
    std::ostringstream os;
    os << "shape " << actual.sizes() << " != expected " << expected.sizes();
    return ::testing::AssertionFailure() << os.str();
  }
  const at::Tensor a = actual.to(at::kCPU).to(at::kDouble).flatten();
  const at::Tensor e = expected.to(at::kCPU).to(at::kDouble).flatten();
  if (!a.isnan().equal(e.isnan())) {
    return ::testing::AssertionFailure() << "NaN positions differ: actual has " << a.isnan().sum().item<std::int64_t>()
                                         << " NaN, expected " << e.isnan().sum().item<std::int64_t>();
  }
  const at::Tensor diff = a.sub(e).abs().nan_to_num(0.0);
  const at::Tensor limit = e.abs().nan_to_num(0.0).mul(tol.rtol).add(tol.atol);
  const std::int64_t bad = diff.gt(limit).sum().item<std::int64_t>();
  if (bad == 0) return ::testing::AssertionSuccess();
  const std::int64_t worst = diff.sub(limit).argmax().item<std::int64_t>();
  std::ostringstream os;
  os << bad << " of " << a.numel() << " elements out of tolerance (atol " << tol.atol << ", rtol " << tol.rtol
     << "); max |diff| " << diff.max().item<double>() << "; worst at flat index " << worst << ": actual "
     << a[worst].item<double>() << " expected " << e[worst].item<double>();
  return ::testing::AssertionFailure() << os.str();
}

::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected) {
  return all_close(actual, expected, tolerance_for(expected.scalar_type()));
}

::testing::AssertionResult bit_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() && a.to(at::kCPU).equal(b.to(at::kCPU)))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "tensors differ";
}

at::Tensor randn(std::vector<std::int64_t> sizes, at::ScalarType dtype, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(sizes, gen, at::TensorOptions().dtype(at::kFloat)).to(dtype);
}

at::Tensor uniform(std::vector<std::int64_t> sizes, at::ScalarType dtype, double lo, double hi, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::zeros(sizes, at::TensorOptions().dtype(at::kFloat)).uniform_(lo, hi, gen).to(dtype);
}

// ---- references -------------------------------------------------------------------------------
at::Tensor ref_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  const at::Tensor variance = h.pow(2).mean({-1}, /*keepdim=*/true);
  h = h.mul(variance.add(eps).rsqrt());
  return weight.mul(h.to(x.scalar_type()));
}

std::pair<at::Tensor, at::Tensor> ref_fused_add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                                        const at::Tensor& weight, double eps) {
  const at::Tensor r = x.add(residual);
  return {ref_rms_norm(r, weight, eps), r};
}

namespace {

// cos/sin [positions, R/2] or [B, S, R/2] -> broadcastable against x[..., :R] with a head axis.
at::Tensor head_broadcast(const at::Tensor& t) { return t.unsqueeze(-2); }

at::Tensor rope_one(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int style) {
  const std::int64_t R = 2 * cos.size(-1);
  const at::Tensor xr = x.slice(-1, 0, R);
  const at::Tensor pass = x.slice(-1, R);
  at::Tensor out;
  if (style == 0) {
    // q_embed = (q * cos) + (rotate_half(q) * sin), all in q's dtype
    const at::Tensor c = head_broadcast(at::cat({cos, cos}, -1).to(x.scalar_type()));
    const at::Tensor s = head_broadcast(at::cat({sin, sin}, -1).to(x.scalar_type()));
    const at::Tensor rotated = at::cat({xr.slice(-1, R / 2).neg(), xr.slice(-1, 0, R / 2)}, -1);
    out = xr.mul(c).add(rotated.mul(s));
  } else {
    // view_as_complex(x.float().reshape(..., -1, 2)) * polar(1, angle), back to x's dtype
    const at::Tensor xf = xr.to(at::kFloat);
    const at::Tensor x0 = xf.slice(-1, 0, R, 2), x1 = xf.slice(-1, 1, R, 2);
    const at::Tensor c = head_broadcast(cos.to(at::kFloat)), s = head_broadcast(sin.to(at::kFloat));
    out = at::stack({x0.mul(c).sub(x1.mul(s)), x0.mul(s).add(x1.mul(c))}, -1).flatten(-2).to(x.scalar_type());
  }
  return at::cat({out, pass}, -1);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> ref_rope(const at::Tensor& q, const at::Tensor& k, const at::Tensor& cos,
                                           const at::Tensor& sin, int style) {
  return {rope_one(q, cos, sin, style), rope_one(k, cos, sin, style)};
}

at::Tensor ref_silu_and_mul(const at::Tensor& gate_up) {
  const std::int64_t I = gate_up.size(-1) / 2;
  return at::silu(gate_up.slice(-1, 0, I)).mul(gate_up.slice(-1, I));
}

at::Tensor ref_gelu_tanh(const at::Tensor& x) { return at::gelu(x, "tanh"); }

namespace {
at::Tensor per_token(const at::Tensor& m) { return m.dim() == 2 ? m.unsqueeze(1) : m; }
}  // namespace

at::Tensor ref_adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps) {
  const at::Tensor normed = at::layer_norm(x.to(at::kFloat), {x.size(-1)}, {}, {}, eps);
  return normed.mul(per_token(scale).to(at::kFloat).add(1.0)).add(per_token(shift).to(at::kFloat)).to(x.scalar_type());
}

at::Tensor ref_gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate) {
  return x.to(at::kFloat).add(y.to(at::kFloat).mul(per_token(gate).to(at::kFloat))).to(x.scalar_type());
}

at::Tensor ref_paged_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                               const at::Tensor& block_tables, const at::Tensor& context_lens, double scale) {
  const std::int64_t B = q.size(0), Hq = q.size(1), D = q.size(2);
  const std::int64_t bs = k_cache.size(1), Hkv = k_cache.size(2);
  const at::Tensor bt = block_tables.to(at::kCPU).to(at::kLong);
  const at::Tensor cl = context_lens.to(at::kCPU);
  std::vector<at::Tensor> outs;
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t L = cl[b].item<std::int64_t>();
    if (L == 0) {
      outs.push_back(at::zeros({Hq, D}, q.options()));
      continue;
    }
    const std::int64_t nb = (L + bs - 1) / bs;
    const at::Tensor ids = bt[b].slice(0, 0, nb).to(k_cache.device());
    auto gather = [&](const at::Tensor& cache) {
      return cache.index_select(0, ids).reshape({nb * bs, Hkv, D}).slice(0, 0, L).repeat_interleave(Hq / Hkv, 1);
    };
    const at::Tensor k = gather(k_cache).to(at::kFloat).permute({1, 2, 0});  // [Hq, D, L]
    const at::Tensor v = gather(v_cache).to(at::kFloat).permute({1, 0, 2});  // [Hq, L, D]
    const at::Tensor scores = q[b].to(at::kFloat).unsqueeze(1).matmul(k).mul(scale);  // [Hq, 1, L]
    outs.push_back(scores.softmax(-1).matmul(v).squeeze(1).to(q.scalar_type()));
  }
  return at::stack(outs, 0);
}

std::pair<at::Tensor, at::Tensor> ref_reshape_and_cache(const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                        const at::Tensor& slot_mapping) {
  at::Tensor kc = k_cache.clone(), vc = v_cache.clone();
  const at::Tensor kf = kc.view({-1, k.size(1), k.size(2)}), vf = vc.view({-1, k.size(1), k.size(2)});
  const at::Tensor slots = slot_mapping.to(at::kCPU);
  for (std::int64_t t = 0; t < k.size(0); ++t) {
    const std::int64_t s = slots[t].item<std::int64_t>();
    if (s < 0) continue;
    kf.select(0, s).copy_(k.select(0, t));
    vf.select(0, s).copy_(v.select(0, t));
  }
  return {kc, vc};
}

PagedCase make_paged_case(std::int64_t batch, std::int64_t q_heads, std::int64_t kv_heads, std::int64_t head_dim,
                          std::int64_t block_size, const std::vector<std::int64_t>& context_lens,
                          at::ScalarType dtype, std::uint64_t seed, bool strided_q) {
  std::int64_t needed = 0, max_blocks = 1;
  for (auto L : context_lens) {
    needed += (L + block_size - 1) / block_size;
    max_blocks = std::max(max_blocks, (L + block_size - 1) / block_size);
  }
  max_blocks += 1;                           // one unused column per row
  const std::int64_t num_blocks = needed + 3;  // and some blocks nobody owns
  PagedCase c;
  c.k_cache = randn({num_blocks, block_size, kv_heads, head_dim}, dtype, seed);
  c.v_cache = randn({num_blocks, block_size, kv_heads, head_dim}, dtype, seed + 1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 2);
  const at::Tensor perm = at::randperm(num_blocks, gen, at::TensorOptions().dtype(at::kLong));
  // Unused table entries hold an invalid id: kernels must never read them.
  std::vector<std::int32_t> table(std::size_t(batch * max_blocks), std::int32_t(num_blocks + 1000));
  std::int64_t next = 0;
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t nb = (context_lens[std::size_t(b)] + block_size - 1) / block_size;
    for (std::int64_t j = 0; j < nb; ++j) table[std::size_t(b * max_blocks + j)] = std::int32_t(perm[next++].item<std::int64_t>());
  }
  c.block_tables = at::tensor(table, at::TensorOptions().dtype(at::kInt)).view({batch, max_blocks});
  std::vector<std::int32_t> lens(context_lens.begin(), context_lens.end());
  c.context_lens = at::tensor(lens, at::TensorOptions().dtype(at::kInt));
  if (strided_q) {
    c.q = randn({batch, q_heads + 3, head_dim}, dtype, seed + 3).slice(1, 2, 2 + q_heads);
  } else {
    c.q = randn({batch, q_heads, head_dim}, dtype, seed + 3);
  }
  c.scale = 1.0 / std::sqrt(double(head_dim));
  return c;
}

}  // namespace mmgen::testing
