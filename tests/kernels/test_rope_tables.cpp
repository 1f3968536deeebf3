// The rotary-table builders: 1-D (transformers), multi-axis (Qwen-Image
// frame/height/width, Wan t/h/w in float64) and M-RoPE sections (Qwen2.5-VL
// contiguous, Qwen3-VL interleaved).
#include <ATen/ops/arange.h>
#include <ATen/ops/stack.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernel_test_util.hpp"
#include "mmgen/ops.hpp"

namespace {

using namespace mmgen::testing;
namespace ops = mmgen::ops;

at::Tensor positions_1d(std::int64_t n, std::int64_t start = 0) {
  return at::arange(start, start + n, at::TensorOptions().dtype(at::kLong));
}

TEST(RopeTables, InvFreqIsTheTransformersFormula) {
  const at::Tensor inv = ops::rope_inv_freq(128, 1e6);
  ASSERT_EQ(inv.scalar_type(), at::kFloat);
  ASSERT_EQ(inv.size(0), 64);
  for (std::int64_t i = 0; i < 64; ++i) {
    const double expect = 1.0 / std::pow(1e6, double(2 * i) / 128.0);
    EXPECT_NEAR(inv[i].item<double>(), expect, 2e-7 * expect) << i;
  }
}

TEST(RopeTables, OneDimensionalTablesAreCosSinOfPositionTimesFrequency) {
  const at::Tensor pos = positions_1d(300, 5);
  const auto t = ops::rope_tables(pos, 64, 10000.0);
  ASSERT_EQ(t.cos.sizes(), (std::vector<std::int64_t>{300, 32}));
  // float32 angles, as transformers computes them
  const at::Tensor angles = pos.to(at::kFloat).unsqueeze(1).mul(ops::rope_inv_freq(64, 10000.0));
  EXPECT_TRUE(bit_equal(t.cos, angles.cos()));
  EXPECT_TRUE(bit_equal(t.sin, angles.sin()));
  // float64 angles (diffusers' Wan) agree with exact math to float32 rounding
  const auto t64 = ops::rope_tables(pos, 64, 10000.0, at::kDouble);
  const at::Tensor exact = pos.to(at::kDouble).unsqueeze(1).mul(
      at::arange(0, 64, 2, at::TensorOptions().dtype(at::kDouble)).div(64.0).mul(std::log(10000.0)).neg().exp());
  EXPECT_TRUE(all_close(t64.cos, exact.cos(), {1e-7, 0}));
  EXPECT_TRUE(all_close(t64.sin, exact.sin(), {1e-7, 0}));
}

TEST(RopeTables, MultiAxisConcatenatesPerAxisTables) {
  // Qwen-Image: axes (16, 56, 56) -> 64 frequency pairs (128 rotary dims); Wan: (44, 42, 42).
  for (const auto& [dims, dtype] : std::vector<std::pair<std::vector<std::int64_t>, at::ScalarType>>{
           {{16, 56, 56}, at::kFloat}, {{44, 42, 42}, at::kDouble}}) {
    const std::int64_t N = 24;
    const at::Tensor pos = at::stack({positions_1d(N, 0).remainder(2), positions_1d(N, -6).div(4, "floor"),
                                      positions_1d(N, -12).remainder(5)},
                                     1);  // [N, 3], negative (centred) positions included
    const auto t = ops::rope_tables_multi_axis(pos, dims, 10000.0, dtype);
    ASSERT_EQ(t.cos.sizes(), (std::vector<std::int64_t>{N, (dims[0] + dims[1] + dims[2]) / 2}));
    std::int64_t col = 0;
    for (int a = 0; a < 3; ++a) {
      const auto axis = ops::rope_tables(pos.select(1, a).contiguous(), dims[std::size_t(a)], 10000.0, dtype);
      EXPECT_TRUE(bit_equal(t.cos.slice(1, col, col + dims[std::size_t(a)] / 2), axis.cos)) << "axis " << a;
      EXPECT_TRUE(bit_equal(t.sin.slice(1, col, col + dims[std::size_t(a)] / 2), axis.sin)) << "axis " << a;
      col += dims[std::size_t(a)] / 2;
    }
  }
}

TEST(RopeTables, MropeWithEqualRowsReducesToOneDimensional) {
  const at::Tensor p = positions_1d(40, 3);
  const at::Tensor pos3 = at::stack({p, p, p}, 0);
  const auto one = ops::rope_tables(p, 128, 1e6);
  for (bool interleaved : {false, true}) {
    const std::vector<std::int64_t> sections = interleaved ? std::vector<std::int64_t>{24, 20, 20}
                                                           : std::vector<std::int64_t>{16, 24, 24};
    const auto m = ops::rope_tables_mrope(pos3, 128, 1e6, sections, interleaved);
    EXPECT_TRUE(bit_equal(m.cos, one.cos)) << "interleaved=" << interleaved;
    EXPECT_TRUE(bit_equal(m.sin, one.sin)) << "interleaved=" << interleaved;
  }
}

TEST(RopeTables, MropeSectionsPickTheirAxis) {
  const std::int64_t N = 10, R = 64, F = R / 2;
  const at::Tensor pos3 = at::stack({positions_1d(N, 0), positions_1d(N, 100), positions_1d(N, 1000)}, 0);
  std::vector<ops::RopeTables> per_axis;
  for (int a = 0; a < 3; ++a) per_axis.push_back(ops::rope_tables(pos3[a].contiguous(), R, 1e6));
  {  // contiguous sections [8, 12, 12]
    const auto m = ops::rope_tables_mrope(pos3, R, 1e6, {8, 12, 12}, false);
    for (std::int64_t i = 0; i < F; ++i) {
      const int axis = i < 8 ? 0 : (i < 20 ? 1 : 2);
      EXPECT_TRUE(bit_equal(m.cos.select(1, i), per_axis[std::size_t(axis)].cos.select(1, i))) << "freq " << i;
    }
  }
  {  // interleaved sections [12, 10, 10]: i % 3 == 1 -> h (i < 30), i % 3 == 2 -> w (i < 30), else t
    const auto m = ops::rope_tables_mrope(pos3, R, 1e6, {12, 10, 10}, true);
    for (std::int64_t i = 0; i < F; ++i) {
      const int axis = (i % 3 == 1 && i < 30) ? 1 : ((i % 3 == 2 && i < 30) ? 2 : 0);
      EXPECT_TRUE(bit_equal(m.sin.select(1, i), per_axis[std::size_t(axis)].sin.select(1, i))) << "freq " << i;
    }
  }
}

TEST(RopeTables, BadArgumentsAreRejected) {
  EXPECT_THROW(ops::rope_inv_freq(63, 1e4), c10::Error);
  EXPECT_THROW(ops::rope_tables(positions_1d(4), 64, -1.0), c10::Error);
  EXPECT_THROW(ops::rope_tables_multi_axis(positions_1d(4).unsqueeze(1), {16, 56, 56}, 1e4), c10::Error);
  EXPECT_THROW(ops::rope_tables_mrope(positions_1d(4).unsqueeze(0).expand({3, 4}), 128, 1e6, {16, 24, 25}, false),
               c10::Error);
}

}  // namespace
