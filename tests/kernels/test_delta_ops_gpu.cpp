// The Gated DeltaNet CUDA ops on a real GPU (label gpu): device tensors in the
// model's layouts against the plain-ATen references (on the CPU) and the CPU
// ops; the delta rule through both its kernels (token by token below 16
// tokens, chunked from 16). Skips, saying why, without CUDA kernels in the
// build or a CUDA device.
#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "delta_ref.hpp"
#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace ops = mmgen::ops;

const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

class DeltaKernelsGpu : public GpuTest {};

at::Tensor gpu(const at::Tensor& t) { return t.to(at::kCUDA); }

TEST_F(DeltaKernelsGpu, ChunkedAndStep) {
  std::uint64_t seed = 1;
  for (std::int64_t dk : {128, 64, 96}) {
    for (auto dt : kDtypes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " dk=" + std::to_string(dk));
      const std::int64_t B = 2, T = 77, Hk = 2, Hv = 4, dv = 128, kd = Hk * dk, vd = Hv * dv;
      const at::Tensor mixed = randn({B, T, 2 * kd + vd}, dt, seed++);
      const at::Tensor q = mixed.narrow(2, 0, kd).reshape({B, T, Hk, dk});
      const at::Tensor k = mixed.narrow(2, kd, kd).reshape({B, T, Hk, dk});
      const at::Tensor v = mixed.narrow(2, 2 * kd, vd).reshape({B, T, Hv, dv});
      const at::Tensor g = uniform({B, T, Hv}, at::kFloat, -1.5, -0.01, seed++);
      const at::Tensor beta = uniform({B, T, Hv}, dt, 0.05, 0.95, seed++);
      const at::Tensor init = randn({B, Hv, dk, dv}, at::kFloat, seed++) * 0.2;
      const auto [o, st] = ops::gated_delta_rule_chunked(gpu(q), gpu(k), gpu(v), gpu(g), gpu(beta), gpu(init), true);
      EXPECT_TRUE(o.is_cuda());
      const auto [ro, rst] = ref_recurrent_gated_delta_rule(q, k, v, g, beta, init, true);
      EXPECT_TRUE(all_close(o.cpu(), ro));
      EXPECT_TRUE(all_close(st.cpu(), rst, {2e-5, 2e-5}));
      // Decode steps over a pool on the device reproduce the chunked result.
      at::Tensor pool = gpu(at::zeros({5, Hv, dk, dv}));
      const at::Tensor rows = gpu(at::tensor(std::vector<std::int32_t>{4, 1}));
      pool.index_copy_(0, rows.to(at::kLong), gpu(init));
      std::vector<at::Tensor> outs;
      for (std::int64_t t = 0; t < T; ++t)
        outs.push_back(ops::gated_delta_rule_step(gpu(q.select(1, t)), gpu(k.select(1, t)), gpu(v.select(1, t)),
                                                  gpu(g.select(1, t)), gpu(beta.select(1, t)), pool, rows, true));
      const at::Tensor so = at::stack(outs, 1).cpu();
      if (dt == at::kFloat) {
        EXPECT_TRUE(all_close(so, o.cpu(), {1e-5, 0}));
        EXPECT_TRUE(all_close(pool.index_select(0, rows.to(at::kLong)).cpu(), st.cpu(), {1e-5, 0}));
      } else {
        EXPECT_TRUE(all_close(so, ro));
      }
    }
  }
}

TEST_F(DeltaKernelsGpu, ChunkedKernelOverLengths) {
  // gated_delta_rule_chunked runs the chunked kernel (cuda/delta_chunked.cu)
  // from 16 tokens on, the token kernel below: both against the recurrence in
  // ATen on the CPU, float32 within 1e-5, bf16 within the dtype's tolerance.
  struct Dims {
    std::int64_t B, Hk, dk, dv;
  };
  std::uint64_t seed = 500;
  int n = 0;
  for (const Dims d : {Dims{1, 16, 128, 128}, Dims{2, 2, 24, 40}}) {
    for (std::int64_t ratio : {1, 2}) {
      for (std::int64_t T : {1, 7, 63, 64, 65, 200, 1000}) {
        for (auto dt : {at::kFloat, at::kBFloat16}) {
          const int combo = (n++ / 2) % 4;
          const bool with_state = (combo & 1) != 0, l2norm = (combo & 2) == 0;
          SCOPED_TRACE(std::string(dtype_name(dt)) + " T=" + std::to_string(T) + " dk=" + std::to_string(d.dk) +
                       " Hv/Hk=" + std::to_string(ratio) + (with_state ? " state" : "") + (l2norm ? " l2norm" : ""));
          const std::int64_t Hv = d.Hk * ratio, kd = d.Hk * d.dk, vd = Hv * d.dv;
          at::Tensor mixed = randn({d.B, T, 2 * kd + vd}, at::kFloat, seed++);
          if (!l2norm) mixed.narrow(2, 0, 2 * kd).mul_(0.8 / std::sqrt(double(d.dk)));
          mixed = mixed.to(dt);
          const at::Tensor q = mixed.narrow(2, 0, kd).reshape({d.B, T, d.Hk, d.dk});
          const at::Tensor k = mixed.narrow(2, kd, kd).reshape({d.B, T, d.Hk, d.dk});
          const at::Tensor v = mixed.narrow(2, 2 * kd, vd).reshape({d.B, T, Hv, d.dv});
          const at::Tensor g = uniform({d.B, T, Hv}, at::kFloat, -1.5, -0.01, seed++);
          const at::Tensor beta = uniform({d.B, T, Hv}, dt, 0.05, 0.95, seed++);
          std::optional<at::Tensor> init;
          if (with_state) init = randn({d.B, Hv, d.dk, d.dv}, at::kFloat, seed++) * 0.2;
          const auto [o, st] = ops::gated_delta_rule_chunked(
              gpu(q), gpu(k), gpu(v), gpu(g), gpu(beta), init ? std::optional<at::Tensor>(gpu(*init)) : std::nullopt,
              l2norm);
          const auto [ro, rst] = ref_recurrent_gated_delta_rule(q, k, v, g, beta, init, l2norm);
          if (dt == at::kFloat) {
            EXPECT_TRUE(all_close(o.cpu(), ro, {1e-5, 0}));
          } else {
            EXPECT_TRUE(all_close(o.cpu(), ro, tolerance_for(dt)));
          }
          EXPECT_TRUE(all_close(st.cpu(), rst, {1e-5, 0}));
        }
      }
    }
  }
}

TEST_F(DeltaKernelsGpu, CausalConv1d) {
  std::uint64_t seed = 100;
  for (auto dt : kDtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const std::int64_t B = 2, S = 300, C = 1000, K = 4;
    const at::Tensor x = randn({B, S, C}, dt, seed++).transpose(1, 2);
    const at::Tensor w = randn({C, K}, dt, seed++), bias = randn({C}, dt, seed++);
    const at::Tensor out = ops::causal_conv1d(gpu(x), gpu(w), gpu(bias), true);
    EXPECT_TRUE(all_close(out.cpu(), ref_causal_conv1d(x, w, bias, true), tolerance_for(dt)));
    const at::Tensor init = randn({B, C, K}, dt, seed++);
    const auto [rout, rstate] = ref_causal_conv1d_update(x, init, w, bias, true);
    at::Tensor state = gpu(init);
    const at::Tensor uout = ops::causal_conv1d_update(gpu(x), state, gpu(w), gpu(bias), true);
    EXPECT_TRUE(all_close(uout.cpu(), rout, tolerance_for(dt)));
    EXPECT_TRUE(bit_equal(state.cpu(), rstate));
  }
}

TEST_F(DeltaKernelsGpu, GatedRmsNorm) {
  std::uint64_t seed = 200;
  for (auto dt : kDtypes) {
    for (auto wdt : {dt, at::kFloat}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " w " + dtype_name(wdt));
      const at::Tensor x = randn({300, 128}, dt, seed++), z = randn({300, 128}, dt, seed++);
      const at::Tensor w = randn({128}, wdt, seed++);
      const at::Tensor out = ops::gated_rms_norm(gpu(x), gpu(z), gpu(w), 1e-6);
      EXPECT_TRUE(all_close(out.cpu(), ref_gated_rms_norm(x, z, w, 1e-6), tolerance_for(dt)));
    }
  }
}

}  // namespace
