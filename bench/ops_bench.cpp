// ops_bench: each mmgen op against the ATen composite the reference code runs
// (transformers / diffusers formulas), at the sizes the models use, float32
// and bfloat16, measured in the same run. CPU: 2 intra-op threads unless
// --threads N. With a CUDA build on a GPU machine it also times the CUDA
// kernels and reports achieved memory bandwidth (the fewest bytes the op must
// move / time) against the card's peak and against a device-to-device copy.
//
// Allocation: every op (and every composite) allocates its outputs. glibc
// serves blocks over 32 MB with a fresh mmap each time, and libtorch asks for
// transparent huge pages on them, so a 64 MB output costs page faults (and
// compaction) worth more than the op itself on this machine class: that would
// dominate both columns and hide the kernels. The bench therefore installs a
// small caching CPU allocator (freed blocks are kept and reused by size, as a
// long-running worker's allocator would); --raw-malloc keeps libtorch's default.
//
//   ops_bench [--threads N] [--cpu-only] [--gpu-only] [--filter SUBSTRING] [--dtype f32|bf16|f16] [--raw-malloc]
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv1d.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/linalg_solve_triangular.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/view_as_complex.h>
#include <ATen/ops/view_as_real.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "mmgen/ops.hpp"

#if defined(MMGEN_WITH_CUDA_KERNELS)
#include <cuda_runtime_api.h>
#endif

namespace {

namespace ops = mmgen::ops;
using Fn = std::function<void()>;

struct Options {
  int threads = 2;
  bool cpu = true;
  bool gpu = true;
  std::string filter;
  bool raw_malloc = false;
  std::vector<at::ScalarType> dtypes = {at::kFloat, at::kBFloat16};
};

// ---- a caching CPU allocator (see the header) ----------------------------------------
class CachingCpuAllocator final : public c10::Allocator {
 public:
  static CachingCpuAllocator& instance() {
    static CachingCpuAllocator a;
    return a;
  }
  c10::DataPtr allocate(std::size_t n) override {
    const std::size_t size = (std::max<std::size_t>(n, 1) + 4095) / 4096 * 4096;
    void* p = nullptr;
    {
      std::lock_guard lock(mu_);
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size) {
        p = it->second;
        sizes_[p] = it->first;
        free_.erase(it);
      }
    }
    if (!p) {
      p = std::aligned_alloc(4096, size);
      if (!p) throw std::bad_alloc();
      std::lock_guard lock(mu_);
      sizes_[p] = size;
    }
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  static void release(void* p) {
    auto& a = instance();
    std::lock_guard lock(a.mu_);
    auto it = a.sizes_.find(p);
    a.free_.emplace(it->second, p);
    a.sizes_.erase(it);
  }
  std::mutex mu_;
  std::multimap<std::size_t, void*> free_;
  std::unordered_map<void*, std::size_t> sizes_;
};

// ---- timing -------------------------------------------------------------------------
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds per call: warm up, then repeat for ~0.4 s (3 to 50 samples).
double time_cpu(const Fn& f) {
  f();
  f();
  std::vector<double> s;
  const auto start = std::chrono::steady_clock::now();
  while (s.size() < 3 || (s.size() < 50 && std::chrono::steady_clock::now() - start < std::chrono::milliseconds(400))) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(s);
}

#if defined(MMGEN_WITH_CUDA_KERNELS)
void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}
// Median over samples of 20 back-to-back calls timed with CUDA events on the
// default stream (the stream libtorch uses unless told otherwise).
double time_gpu(const Fn& f) {
  for (int i = 0; i < 3; ++i) f();
  cuda_check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t a, b;
  cuda_check(cudaEventCreate(&a), "event");
  cuda_check(cudaEventCreate(&b), "event");
  std::vector<double> s;
  for (int rep = 0; rep < 15; ++rep) {
    cuda_check(cudaEventRecord(a, nullptr), "record");
    for (int i = 0; i < 20; ++i) f();
    cuda_check(cudaEventRecord(b, nullptr), "record");
    cuda_check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    cuda_check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    s.push_back(ms / 1e3 / 20);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(s);
}
#endif

// ---- cases ----------------------------------------------------------------------------
struct Case {
  std::string op, size;
  at::ScalarType dtype;
  Fn mmgen, aten;
  double bytes;  // fewest bytes the op must read + write
};

at::Tensor rnd(std::vector<std::int64_t> sizes, at::ScalarType dt, at::Device dev) {
  return at::randn(sizes, at::TensorOptions().dtype(at::kFloat)).to(dev, dt);
}

const char* dname(at::ScalarType t) { return t == at::kFloat ? "f32" : (t == at::kBFloat16 ? "bf16" : "f16"); }

// transformers: weight * (h * rsqrt(mean(h^2) + eps)).to(dtype)
at::Tensor composite_rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  const at::Tensor h = x.to(at::kFloat);
  return w.mul(h.mul(h.pow(2).mean({-1}, true).add(eps).rsqrt()).to(x.scalar_type()));
}

std::vector<Case> make_cases(at::ScalarType dt, at::Device dev, bool gpu) {
  std::vector<Case> cs;
  const double es = double(c10::elementSize(dt));
  {  // rms_norm 4096 x 4096 (Qwen3-8B hidden 4096, 4096 tokens)
    const at::Tensor x = rnd({4096, 4096}, dt, dev), w = rnd({4096}, dt, dev);
    cs.push_back({"rms_norm", "4096x4096", dt, [=] { ops::rms_norm(x, w, 1e-6); },
                  [=] { composite_rms_norm(x, w, 1e-6); }, 2 * 4096.0 * 4096 * es});
  }
  {  // fused_add_rms_norm: residual += x; rms_norm(residual)
    const at::Tensor x = rnd({4096, 4096}, dt, dev), w = rnd({4096}, dt, dev);
    at::Tensor res = rnd({4096, 4096}, dt, dev);
    cs.push_back({"fused_add_rms_norm", "4096x4096", dt, [=]() mutable { ops::fused_add_rms_norm(x, res, w, 1e-6); },
                  [=]() mutable {
                    res.add_(x);
                    composite_rms_norm(res, w, 1e-6);
                  },
                  4 * 4096.0 * 4096 * es});
  }
  {  // per-head q norm on a [T, 32, 128] view of a fused qkv projection (Qwen3)
    const at::Tensor qkv = rnd({4096, 48 * 128}, dt, dev), w = rnd({128}, dt, dev);
    const at::Tensor q = qkv.slice(1, 0, 32 * 128).view({4096, 32, 128});
    cs.push_back({"rms_norm(q heads view)", "4096x32x128", dt, [=] { ops::rms_norm(q, w, 1e-6); },
                  [=] { composite_rms_norm(q, w, 1e-6); }, 2 * 4096.0 * 32 * 128 * es});
  }
  {  // NeoX rope: Qwen3-8B, 4096 tokens, q 32 heads, k 8 heads, D 128
    const std::int64_t T = 4096, D = 128;
    at::Tensor q = rnd({T, 32, D}, dt, dev), k = rnd({T, 8, D}, dt, dev);
    const auto tab = ops::rope_tables(at::arange(T, at::TensorOptions().dtype(at::kLong)), D, 1e6);
    const at::Tensor cos = tab.cos.to(dev), sin = tab.sin.to(dev);
    const at::Tensor cf = at::cat({cos, cos}, -1).unsqueeze(1).to(dt), sf = at::cat({sin, sin}, -1).unsqueeze(1).to(dt);
    auto rot = [=](const at::Tensor& x) {
      return x.mul(cf).add(at::cat({x.slice(-1, D / 2).neg(), x.slice(-1, 0, D / 2)}, -1).mul(sf));
    };
    cs.push_back({"rope neox", "4096x(32+8)x128", dt, [=]() mutable { ops::rope(q, k, cos, sin, ops::RopeStyle::NeoX); },
                  [=] {
                    rot(q);
                    rot(k);
                  },
                  2 * T * 40.0 * D * es});
  }
  {  // interleaved rope: Qwen-Image 1024x1024 (4096 image tokens), 24 heads x 128
    const std::int64_t S = 4096, H = 24, D = 128;
    at::Tensor q = rnd({1, S, H, D}, dt, dev), k = rnd({1, S, H, D}, dt, dev);
    const at::Tensor ang = at::randn({S, D / 2}).to(dev);
    const at::Tensor cos = ang.cos(), sin = ang.sin();
    const at::Tensor freqs = at::view_as_complex(at::stack({cos, sin}, -1)).unsqueeze(1);  // [S, 1, D/2]
    auto rot = [=](const at::Tensor& x) {  // diffusers apply_rotary_emb_qwen(use_real=False)
      const at::Tensor xc = at::view_as_complex(x.to(at::kFloat).reshape({1, S, H, D / 2, 2}));
      return at::view_as_real(xc.mul(freqs)).flatten(3).to(x.scalar_type());
    };
    cs.push_back({"rope interleaved", "4096x(24+24)x128", dt,
                  [=]() mutable { ops::rope(q, k, cos, sin, ops::RopeStyle::Interleaved); },
                  [=] {
                    rot(q);
                    rot(k);
                  },
                  2 * S * 48.0 * D * es});
  }
  {  // silu_and_mul: Qwen3-8B MLP, 2048 tokens x intermediate 12288
    const at::Tensor x = rnd({2048, 2 * 12288}, dt, dev);
    cs.push_back({"silu_and_mul", "2048x2x12288", dt, [=] { ops::silu_and_mul(x); },
                  [=] { at::silu(x.slice(1, 0, 12288)).mul(x.slice(1, 12288)); }, 3 * 2048.0 * 12288 * es});
  }
  {  // gelu_tanh: Qwen-Image FFN, 4096 tokens x 12288
    const at::Tensor x = rnd({4096, 12288}, dt, dev);
    cs.push_back({"gelu_tanh", "4096x12288", dt, [=] { ops::gelu_tanh(x); }, [=] { at::gelu(x, "tanh"); },
                  2 * 4096.0 * 12288 * es});
  }
  {  // adaln_modulate: Qwen-Image block, 4096 tokens x 3072
    const at::Tensor x = rnd({1, 4096, 3072}, dt, dev), sh = rnd({1, 3072}, dt, dev), sc = rnd({1, 3072}, dt, dev);
    cs.push_back({"adaln_modulate", "4096x3072", dt, [=] { ops::adaln_modulate(x, sh, sc, 1e-6); },
                  [=] {
                    at::layer_norm(x, {3072}, {}, {}, 1e-6).mul(sc.unsqueeze(1).add(1.0)).add(sh.unsqueeze(1));
                  },
                  2 * 4096.0 * 3072 * es});
  }
  {  // gated_residual: x + gate * y
    const at::Tensor x = rnd({1, 4096, 3072}, dt, dev), y = rnd({1, 4096, 3072}, dt, dev), g = rnd({1, 3072}, dt, dev);
    cs.push_back({"gated_residual", "4096x3072", dt, [=] { ops::gated_residual(x, y, g); },
                  [=] { x.add(g.unsqueeze(1).mul(y)); }, 3 * 4096.0 * 3072 * es});
  }
  // paged decode vs SDPA over a contiguous cache of the same length
  auto paged = [&](std::int64_t B, std::int64_t L, std::int64_t Hq, std::int64_t Hkv, std::int64_t D) {
    const std::int64_t bs = 16, nb_per = L / bs, NB = B * nb_per;
    const at::Tensor q = rnd({B, Hq, D}, dt, dev);
    const at::Tensor kc = rnd({NB, bs, Hkv, D}, dt, dev), vc = rnd({NB, bs, Hkv, D}, dt, dev);
    const at::Tensor bt = at::randperm(NB, at::TensorOptions().dtype(at::kLong)).to(at::kInt).view({B, nb_per}).to(dev);
    const at::Tensor cl = at::full({B}, L, at::TensorOptions().dtype(at::kInt)).to(dev);
    const at::Tensor k = rnd({B, Hkv, L, D}, dt, dev), v = rnd({B, Hkv, L, D}, dt, dev);
    const at::Tensor q4 = q.unsqueeze(2);
    const double scale = 1.0 / std::sqrt(double(D));
    cs.push_back({"paged_attention_decode vs SDPA",
                  "B" + std::to_string(B) + " L" + std::to_string(L) + " " + std::to_string(Hq) + "/" +
                      std::to_string(Hkv) + "x" + std::to_string(D),
                  dt, [=] { ops::paged_attention_decode(q, kc, vc, bt, cl, scale); },
                  [=] { at::scaled_dot_product_attention(q4, k, v, {}, 0.0, false, scale, /*enable_gqa=*/true); },
                  2.0 * B * L * Hkv * D * es});
  };
  paged(16, 1024, 32, 8, 128);  // Qwen3-8B
  if (gpu) paged(64, 4096, 32, 8, 128);
  {  // reshape_and_cache: 4096 prefill tokens, 8 kv heads x 128
    const std::int64_t T = 4096, Hkv = 8, D = 128, NB = 512, bs = 16;
    const at::Tensor k = rnd({T, Hkv, D}, dt, dev), v = rnd({T, Hkv, D}, dt, dev);
    at::Tensor kc = rnd({NB, bs, Hkv, D}, dt, dev), vc = rnd({NB, bs, Hkv, D}, dt, dev);
    const at::Tensor slots = at::randperm(NB * bs, at::TensorOptions().dtype(at::kLong)).slice(0, 0, T).to(dev);
    cs.push_back({"reshape_and_cache", "4096x8x128", dt, [=]() mutable { ops::reshape_and_cache(k, v, kc, vc, slots); },
                  [=]() mutable {
                    kc.view({-1, Hkv, D}).index_copy_(0, slots, k);
                    vc.view({-1, Hkv, D}).index_copy_(0, slots, v);
                  },
                  4.0 * T * Hkv * D * es});
  }
  // ---- Gated DeltaNet (Qwen3.5-0.8B-shaped linear attention: 16 heads x 128, conv 6144 x 4) ----
  {  // gated_rms_norm over 4096 tokens x 16 value heads x 128
    const at::Tensor x = rnd({4096 * 16, 128}, dt, dev), z = rnd({4096 * 16, 128}, dt, dev), w = rnd({128}, dt, dev);
    cs.push_back({"gated_rms_norm", "65536x128", dt, [=] { ops::gated_rms_norm(x, z, w, 1e-6); },
                  [=] {
                    const at::Tensor h = x.to(at::kFloat);
                    w.mul(h.mul(h.pow(2).mean({-1}, true).add(1e-6).rsqrt()).to(x.scalar_type()))
                        .mul(at::silu(z.to(at::kFloat)))
                        .to(x.scalar_type());
                  },
                  3 * 65536.0 * 128 * es});
  }
  {  // causal conv1d: prefill of 4096 tokens, and a decode step with its window for 16 sequences
    const std::int64_t C = 6144, K = 4;
    const at::Tensor w = rnd({C, K}, dt, dev);
    const at::Tensor x = rnd({1, 4096, C}, dt, dev).transpose(1, 2);
    cs.push_back({"causal_conv1d", "4096x6144 k4", dt, [=] { ops::causal_conv1d(x, w, {}, true); },
                  [=] {
                    at::silu(at::conv1d(x, w.unsqueeze(1), {}, {1}, {K - 1}, {1}, C).narrow(2, 0, 4096));
                  },
                  2 * 4096.0 * C * es});
    const at::Tensor xd = rnd({16, 1, C}, dt, dev).transpose(1, 2);
    at::Tensor st = rnd({16, C, K}, dt, dev);
    cs.push_back({"causal_conv1d_update", "B16x6144 k4", dt,
                  [=]() mutable { ops::causal_conv1d_update(xd, st, w, {}, true); },
                  [=]() mutable {
                    const at::Tensor cat = at::cat({st, xd}, -1);
                    st.copy_(cat.narrow(-1, 1, K));
                    at::silu(at::conv1d(cat, w.unsqueeze(1), {}, {1}, at::IntArrayRef(std::vector<std::int64_t>{0}), {1}, C).narrow(2, 1, 1));
                  },
                  16.0 * C * (2 * K + 2) * es});
  }
  {  // gated delta rule: decode step for 16 sequences, and a 512-token prefill (ATen: the
     // reference's per-token recurrence, since the model falls back to it without the op)
    const std::int64_t H = 16, D = 128;
    auto l2 = [](const at::Tensor& t) { return t * ((t * t).sum(-1, true) + 1e-6).rsqrt(); };
    auto aten_steps = [=](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                          const at::Tensor& b, at::Tensor S) {
      // q, k, v [B, T, H, D]; g, b [B, T, H]; S [B, H, D, D] float32
      const at::Tensor qf = l2(q.transpose(1, 2).to(at::kFloat)) * (1.0 / std::sqrt(double(D)));
      const at::Tensor kf = l2(k.transpose(1, 2).to(at::kFloat)), vf = v.transpose(1, 2).to(at::kFloat);
      const at::Tensor gf = g.transpose(1, 2).to(at::kFloat), bf = b.transpose(1, 2).to(at::kFloat);
      for (std::int64_t t = 0; t < q.size(1); ++t) {
        const at::Tensor kt = kf.select(2, t);
        S = S * gf.select(2, t).exp().unsqueeze(-1).unsqueeze(-1);
        const at::Tensor delta = (vf.select(2, t) - (S * kt.unsqueeze(-1)).sum(-2)) * bf.select(2, t).unsqueeze(-1);
        S = S + kt.unsqueeze(-1) * delta.unsqueeze(-2);
        (S * qf.select(2, t).unsqueeze(-1)).sum(-2);
      }
    };
    const std::int64_t B = 16;
    const at::Tensor q = rnd({B, H, D}, dt, dev), k = rnd({B, H, D}, dt, dev), v = rnd({B, H, D}, dt, dev);
    const at::Tensor g = rnd({B, H}, at::kFloat, dev).abs().neg(), b = rnd({B, H}, dt, dev).sigmoid();
    at::Tensor pool = rnd({B, H, D, D}, at::kFloat, dev);
    cs.push_back({"gated_delta_rule_step", "B16 16x128x128", dt,
                  [=]() mutable { ops::gated_delta_rule_step(q, k, v, g, b, pool); },
                  [=] { aten_steps(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), g.unsqueeze(1), b.unsqueeze(1), pool); },
                  B * H * D * D * 8.0});
    // Prefill at the Qwen3.5-0.8B layer shape (16 value heads, 16 key heads x 128),
    // batch 1: the op as dispatched against the reference's per-token recurrence
    // in ATen (T 512), then, on the CPU, each of the op's two paths
    // (MMGEN_DELTA_CPU_PATH, see ops.hpp) against the reference's chunked form in
    // ATen (chunks of 64, the UT transform by triangular solves, as the layer's
    // DeltaPrefill::aten_chunked runs it).
    auto aten_chunked = [=](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                            const at::Tensor& b, const at::Tensor& S0) {
      const std::int64_t C = 64, T = q.size(1);
      const at::Tensor qf = l2(q[0].transpose(0, 1).to(at::kFloat)) * (1.0 / std::sqrt(double(D)));
      const at::Tensor kf = l2(k[0].transpose(0, 1).to(at::kFloat)), vf = v[0].transpose(0, 1).to(at::kFloat);
      const at::Tensor gf = g[0].t().to(at::kFloat), bf = b[0].t().to(at::kFloat);
      at::Tensor S = S0[0];
      const at::Tensor upper = at::ones({C, C}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
      for (std::int64_t s = 0; s < T; s += C) {
        const std::int64_t L = std::min(C, T - s);
        const at::Tensor Q = qf.narrow(1, s, L), K = kf.narrow(1, s, L), V = vf.narrow(1, s, L);
        const at::Tensor beta = bf.narrow(1, s, L).unsqueeze(-1), cum = gf.narrow(1, s, L).cumsum(-1);
        const at::Tensor decay =
            (cum.unsqueeze(-1) - cum.unsqueeze(-2)).masked_fill(upper.narrow(0, 0, L).narrow(1, 0, L), -INFINITY).exp();
        const at::Tensor Kt = K.transpose(-1, -2), ce = cum.exp().unsqueeze(-1);
        const at::Tensor ut = at::matmul(K * beta, Kt) * decay, intra = at::matmul(Q, Kt) * decay;
        const at::Tensor u = at::linalg_solve_triangular(ut, V * beta, false, true, true);
        const at::Tensor w = at::linalg_solve_triangular(ut, K * beta * ce, false, true, true);
        const at::Tensor vn = u - at::matmul(w, S);
        (at::matmul(Q * ce, S) + at::matmul(intra, vn)).sum();  // the chunk's output
        const at::Tensor last = cum.narrow(1, L - 1, 1);
        S = S * last.exp().unsqueeze(-1) + at::matmul((K * (last - cum).exp().unsqueeze(-1)).transpose(-1, -2), vn);
      }
    };
    for (const std::int64_t T : {512, 4096}) {
      const at::Tensor qp = rnd({1, T, H, D}, dt, dev), kp = rnd({1, T, H, D}, dt, dev), vp = rnd({1, T, H, D}, dt, dev);
      const at::Tensor gp = rnd({1, T, H}, at::kFloat, dev).abs().neg(), bp = rnd({1, T, H}, dt, dev).sigmoid();
      const at::Tensor s0 = rnd({1, H, D, D}, at::kFloat, dev);
      const double bytes = T * H * D * 4.0 * es + 2 * H * D * D * 4.0;
      const std::string size = "T" + std::to_string(T) + " 16x128x128";
      if (T == 512)
        cs.push_back({"gated_delta_rule_chunked", size, dt, [=] { ops::gated_delta_rule_chunked(qp, kp, vp, gp, bp, s0); },
                      [=] { aten_steps(qp, kp, vp, gp, bp, s0); }, bytes});
      if (gpu) {
        if (T != 512)
          cs.push_back({"gated_delta_rule_chunked", size, dt,
                        [=] { ops::gated_delta_rule_chunked(qp, kp, vp, gp, bp, s0); },
                        [=] { aten_chunked(qp, kp, vp, gp, bp, s0); }, bytes});
        continue;
      }
      for (const char* path : {"token", "chunked"}) {
        cs.push_back({"gated_delta_rule_chunked", "T" + std::to_string(T) + " path=" + path, dt,
                      [=] {
                        setenv("MMGEN_DELTA_CPU_PATH", path, 1);
                        ops::gated_delta_rule_chunked(qp, kp, vp, gp, bp, s0);
                        unsetenv("MMGEN_DELTA_CPU_PATH");
                      },
                      [=] { aten_chunked(qp, kp, vp, gp, bp, s0); }, bytes});
      }
    }
  }
  return cs;
}

bool wanted(const Options& o, const Case& c) { return o.filter.empty() || c.op.find(o.filter) != std::string::npos; }

void run_cpu(const Options& o) {
  at::set_num_threads(o.threads);
  std::printf("\n== CPU: mmgen kernels (%s) vs ATen composite, %d threads, %s ==\n", ops::build_info(),
              at::get_num_threads(), o.raw_malloc ? "libtorch's default allocator" : "caching allocator (see header)");
  std::printf("%-32s %-20s %-5s %12s %12s %9s\n", "op", "size", "dtype", "mmgen ms", "ATen ms", "speedup");
  for (auto dt : o.dtypes) {
    for (const Case& c : make_cases(dt, at::kCPU, false)) {
      if (!wanted(o, c)) continue;
      const double tm = time_cpu(c.mmgen), ta = time_cpu(c.aten);
      std::printf("%-32s %-20s %-5s %12.3f %12.3f %8.2fx\n", c.op.c_str(), c.size.c_str(), dname(c.dtype), tm * 1e3,
                  ta * 1e3, ta / tm);
      std::fflush(stdout);
    }
  }
}

#if defined(MMGEN_WITH_CUDA_KERNELS)
void run_gpu(const Options& o) {
  int dev = 0, clock_khz = 0, bus_bits = 0;
  cuda_check(cudaGetDevice(&dev), "device");
  cudaDeviceProp prop{};
  cuda_check(cudaGetDeviceProperties(&prop, dev), "properties");
  cuda_check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev), "memory clock");
  cuda_check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev), "bus width");
  const double peak = 2.0 * clock_khz * 1e3 * bus_bits / 8.0;  // DDR: two transfers per clock
  // Practical ceiling: a large device-to-device copy (bytes read + written).
  const at::Tensor a = at::empty({1LL << 28}, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA));
  at::Tensor b = at::empty_like(a);
  const double tcopy = time_gpu([&] { b.copy_(a); });
  const double copy_bw = 2.0 * double(a.nbytes()) / tcopy;
  std::printf("\n== GPU: %s, peak %.0f GB/s (memory clock x bus), device-to-device copy %.0f GB/s ==\n", prop.name,
              peak / 1e9, copy_bw / 1e9);
  std::printf("%-32s %-20s %-5s %10s %10s %8s %9s %8s %8s\n", "op", "size", "dtype", "mmgen us", "ATen us",
              "speedup", "GB/s", "%peak", "%copy");
  for (auto dt : o.dtypes) {
    for (const Case& c : make_cases(dt, at::kCUDA, true)) {
      if (!wanted(o, c)) continue;
      const double tm = time_gpu(c.mmgen), ta = time_gpu(c.aten);
      const double bw = c.bytes / tm;
      std::printf("%-32s %-20s %-5s %10.1f %10.1f %7.2fx %9.0f %7.1f%% %7.1f%%\n", c.op.c_str(), c.size.c_str(),
                  dname(c.dtype), tm * 1e6, ta * 1e6, ta / tm, bw / 1e9, 100 * bw / peak, 100 * bw / copy_bw);
      std::fflush(stdout);
    }
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      o.threads = std::atoi(argv[++i]);
    } else if (a == "--cpu-only") {
      o.gpu = false;
    } else if (a == "--gpu-only") {
      o.cpu = false;
    } else if (a == "--filter" && i + 1 < argc) {
      o.filter = argv[++i];
    } else if (a == "--dtype" && i + 1 < argc) {
      const std::string d = argv[++i];
      o.dtypes = {d == "f32" ? at::kFloat : (d == "f16" ? at::kHalf : at::kBFloat16)};
    } else if (a == "--raw-malloc") {
      o.raw_malloc = true;
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--cpu-only] [--gpu-only] [--filter SUBSTRING] [--dtype f32|bf16|f16] [--raw-malloc]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!o.raw_malloc) c10::SetCPUAllocator(&CachingCpuAllocator::instance(), /*priority=*/100);
  if (o.cpu) run_cpu(o);
#if defined(MMGEN_WITH_CUDA_KERNELS)
  if (o.gpu && at::hasCUDA()) {
    run_gpu(o);
  } else if (o.gpu) {
    std::printf("\n(no CUDA device: GPU section skipped)\n");
  }
#else
  if (o.gpu) std::printf("\n(built without CUDA kernels: GPU section skipped)\n");
#endif
  return 0;
}
