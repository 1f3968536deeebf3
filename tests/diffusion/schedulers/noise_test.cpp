// Seeded noise is bit-identical to diffusers' randn_tensor with
// torch.Generator("cpu").manual_seed(seed): float32 and bfloat16, shapes
// below and above torch's 16-element vectorised threshold, the
// list-of-generators batch form, and a generator reused for two draws.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fixture.hpp"
#include "mmgen/diffusion/noise.hpp"

namespace mmgen::diffusion {
namespace {

using test::bit_equal;
using test::golden;

std::string shape_name(const std::vector<std::int64_t>& shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

TEST(SeededNoise, BitExactAgainstDiffusers) {
  const std::vector<std::vector<std::int64_t>> shapes = {{1},  {7},       {15},       {16},
                                                         {17}, {33},      {2, 3, 5},  {1, 16, 1, 6, 8}};
  const std::vector<std::uint64_t> seeds = {0, 42, (1ull << 32) + 5, 1234567890123ull};
  int checked = 0;
  for (std::uint64_t seed : seeds) {
    for (auto [dtype, dname] : {std::pair{at::kFloat, "float32"}, std::pair{at::kBFloat16, "bfloat16"}}) {
      for (const auto& shape : shapes) {
        const std::string name = "noise.s" + std::to_string(seed) + "." + dname + "." + shape_name(shape);
        const at::Tensor got = seeded_randn(shape, seed, dtype);
        EXPECT_TRUE(bit_equal(got, golden(name))) << name;
        ++checked;
      }
    }
  }
  std::printf("[parity] noise: %d tensors compared bit for bit\n", checked);
}

TEST(SeededNoise, ListOfGeneratorsPerBatchRow) {
  const std::vector<std::uint64_t> seeds = {1, 2, 3};
  EXPECT_TRUE(bit_equal(seeded_randn({3, 4, 5}, seeds, at::kFloat), golden("noise.list.float32")));
  EXPECT_TRUE(bit_equal(seeded_randn({3, 4, 5}, seeds, at::kBFloat16), golden("noise.list.bfloat16")));
  // Batch row i is the first draw of seed i's generator.
  const at::Tensor row1 = seeded_randn({1, 4, 5}, 2, at::kFloat);
  EXPECT_TRUE(bit_equal(golden("noise.list.float32").narrow(0, 1, 1), row1));
  EXPECT_THROW(seeded_randn({2, 4, 5}, seeds, at::kFloat), std::invalid_argument);
}

TEST(SeededNoise, ReusedGeneratorContinuesTheStream) {
  at::Generator g = cpu_generator(7);
  EXPECT_TRUE(bit_equal(randn_tensor({16}, g, at::kFloat), golden("noise.stream.first")));
  EXPECT_TRUE(bit_equal(randn_tensor({2, 3, 5}, g, at::kFloat), golden("noise.stream.second")));
}

TEST(SeededNoise, BadArguments) {
  EXPECT_THROW(seeded_randn({}, 1, at::kFloat), std::invalid_argument);
  EXPECT_THROW(seeded_randn({2, -1}, 1, at::kFloat), std::invalid_argument);
  std::vector<at::Generator> none;
  EXPECT_THROW(randn_tensor({2}, std::span<at::Generator>(none), at::kFloat), std::invalid_argument);
}

}  // namespace
}  // namespace mmgen::diffusion
