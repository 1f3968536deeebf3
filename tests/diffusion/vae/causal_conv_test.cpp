// CausalConv3d's single-frame path (an image, or a video's first chunk with
// nothing cached) runs a 2-D convolution with the last temporal tap; it must
// give the numbers of the reference's computation — zero frames in front,
// then Conv3d — to float rounding, for every kernel / stride / dtype the VAE
// family uses. With a cache, or more frames, the 3-D path runs and is checked
// against the same explicit computation.
#include <ATen/core/Tensor.h>
#include <ATen/Context.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv3d.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <tuple>

#include "mmgen/diffusion/wan_vae.hpp"

using mmgen::diffusion::CausalConv3d;

namespace {

CausalConv3d make_conv(std::int64_t in, std::int64_t out, std::int64_t kt, std::int64_t k,
                       std::array<std::int64_t, 3> stride, c10::ScalarType dtype) {
  CausalConv3d c;
  c.weight = at::randn({out, in, kt, k, k}).mul_(0.2).to(dtype);
  c.bias = at::randn({out}).to(dtype);
  c.stride = stride;
  c.pad_t = kt - 1;  // the reference's 2 * padding[0] with padding = (kt - 1) / 2
  c.pad_h = c.pad_w = (k - 1) / 2;
  return c;
}

// The reference's WanCausalConv3d.forward: cached frames, zero frames for what
// the cache lacks, then the plain Conv3d (height / width padded by it).
at::Tensor reference(const CausalConv3d& c, const at::Tensor& x, const at::Tensor& cache = at::Tensor()) {
  std::int64_t zeros = c.pad_t - (cache.defined() ? cache.size(2) : 0);
  std::vector<at::Tensor> parts;
  if (zeros > 0) parts.push_back(at::zeros({x.size(0), x.size(1), zeros, x.size(3), x.size(4)}, x.options()));
  if (cache.defined()) parts.push_back(cache);
  parts.push_back(x);
  return at::conv3d(at::cat(parts, 2), c.weight, c.bias, c.stride, {0, c.pad_h, c.pad_w});
}

double max_err(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

}  // namespace

TEST(CausalConvTest, SingleFrameWithoutCacheEqualsZeroPaddedConv3d) {
  at::manual_seed(7);
  // (in, out, kt, k, stride): the residual blocks' 3x3x3, the 1x1x1 shortcuts
  // and quant convs, conv_in / conv_out shapes, a strided and an odd-sized case.
  const std::tuple<int, int, int, int, std::array<std::int64_t, 3>> cases[] = {
      {8, 12, 3, 3, {1, 1, 1}}, {12, 8, 1, 1, {1, 1, 1}}, {3, 16, 3, 3, {1, 1, 1}},
      {16, 3, 3, 3, {1, 1, 1}}, {5, 7, 3, 3, {1, 2, 2}},  {6, 6, 3, 1, {1, 1, 1}}};
  for (const auto& [in, out, kt, k, stride] : cases) {
    const CausalConv3d c = make_conv(in, out, kt, k, stride, at::kFloat);
    const at::Tensor x = at::randn({2, in, 1, 11, 9});
    const at::Tensor y = c(x);
    const at::Tensor want = reference(c, x);
    ASSERT_EQ(y.sizes(), want.sizes()) << "in " << in << " out " << out << " kt " << kt << " k " << k;
    EXPECT_LT(max_err(y, want), 1e-5) << "in " << in << " out " << out << " kt " << kt << " k " << k;
  }
}

TEST(CausalConvTest, SingleFrameBFloat16WithinRounding) {
  at::manual_seed(8);
  const CausalConv3d c = make_conv(16, 16, 3, 3, {1, 1, 1}, at::kBFloat16);
  const at::Tensor x = at::randn({1, 16, 1, 12, 12}).to(at::kBFloat16);
  // Both round the same float32 sums to bfloat16; they may differ by one ulp.
  const at::Tensor want = reference(c, x);
  EXPECT_LE(max_err(c(x), want), 0.02 * want.abs().max().item<double>());
}

TEST(CausalConvTest, CachedOrMultiFrameInputsKeepTheTemporalKernel) {
  at::manual_seed(9);
  const CausalConv3d c = make_conv(6, 5, 3, 3, {1, 1, 1}, at::kFloat);
  const at::Tensor one = at::randn({1, 6, 1, 7, 7});
  const at::Tensor four = at::randn({1, 6, 4, 7, 7});
  const at::Tensor cache1 = at::randn({1, 6, 1, 7, 7});
  const at::Tensor cache2 = at::randn({1, 6, 2, 7, 7});
  EXPECT_LT(max_err(c(four), reference(c, four)), 1e-5);
  EXPECT_LT(max_err(c(one, cache1), reference(c, one, cache1)), 1e-5);
  EXPECT_LT(max_err(c(one, cache2), reference(c, one, cache2)), 1e-5);
  EXPECT_LT(max_err(c(four, cache2), reference(c, four, cache2)), 1e-5);
  // A cache makes the earlier taps see real data: the result must differ from
  // the cache-free one (guards against the 2-D path being taken wrongly).
  EXPECT_GT(max_err(c(one, cache2), c(one)), 1e-3);
}
