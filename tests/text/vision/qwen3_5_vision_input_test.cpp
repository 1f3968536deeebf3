// Qwen3.5 image input without a model: placeholder expansion, the M-RoPE
// position rule on a hand-worked prompt, and the position-table
// interpolation taps at the grid corners.
#include <ATen/core/Tensor.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "mmgen/protocol.hpp"
#include "mmgen/text/qwen3_5_vision.hpp"
#include "mmgen/text/qwen3_5_vision_input.hpp"

using namespace mmgen::text;

namespace {

Qwen3_5VisionConfig tiny() {
  Qwen3_5VisionConfig c;
  c.image_token_id = 9;
  c.video_token_id = 8;
  c.num_position_embeddings = 16;  // 4 x 4
  return c;
}

std::vector<std::int64_t> row(const at::Tensor& t, std::int64_t r) {
  const at::Tensor c = t[r].contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

TEST(Qwen3_5VisionInput, ExpandsEachPlaceholderToItsTokenCount) {
  const auto grid = at::tensor({1, 4, 6, 1, 2, 2}, at::kLong).view({2, 3});  // 6 and 1 tokens
  EXPECT_EQ(image_token_counts(grid, tiny()), (std::vector<std::int64_t>{6, 1}));
  const std::vector<std::int64_t> prompt = {1, 9, 2, 9, 3};
  EXPECT_EQ(expand_image_placeholders(prompt, grid, tiny()),
            (std::vector<std::int64_t>{1, 9, 9, 9, 9, 9, 9, 2, 9, 3}));
  const std::vector<std::int64_t> text_only = {1, 2, 3};
  EXPECT_EQ(expand_image_placeholders(text_only, at::Tensor(), tiny()), text_only);
  EXPECT_THROW(expand_image_placeholders(prompt, grid.narrow(0, 0, 1), tiny()), mmgen::proto::ProtocolError);
}

TEST(Qwen3_5VisionInput, RopeIndexFollowsTheReferenceRule) {
  // Text (2), a 2x3 merged image, text (2): the image starts at position 2,
  // rows (2, 2 + r, 2 + c); the text after it resumes at 2 + max(2, 3) = 5.
  const auto grid = at::tensor({1, 4, 6}, at::kLong).view({1, 3});
  const std::vector<std::int64_t> ids = {5, 5, 9, 9, 9, 9, 9, 9, 7, 7};
  const MropePositions p = qwen3_5_rope_index(ids, grid, tiny());
  EXPECT_EQ(row(p.positions, 0), (std::vector<std::int64_t>{0, 1, 2, 2, 2, 2, 2, 2, 5, 6}));
  EXPECT_EQ(row(p.positions, 1), (std::vector<std::int64_t>{0, 1, 2, 2, 2, 3, 3, 3, 5, 6}));
  EXPECT_EQ(row(p.positions, 2), (std::vector<std::int64_t>{0, 1, 2, 3, 4, 2, 3, 4, 5, 6}));
  EXPECT_EQ(p.rope_delta, 7 - 10);
  const std::vector<std::int64_t> text = {1, 2, 3};
  const MropePositions q = qwen3_5_rope_index(text, at::Tensor(), tiny());
  EXPECT_EQ(row(q.positions, 1), (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(q.rope_delta, 0);
}

TEST(Qwen3_5VisionInput, InterpolationHitsTheTableCornersExactly) {
  // A 2x2 grid on a 4x4 table (align_corners): the four patches take the
  // table's corner rows with weight 1.
  const auto grid = at::tensor({1, 2, 2}, at::kLong).view({1, 3});
  const PositionInterpolation pi = interpolate_positions(tiny(), grid);
  ASSERT_EQ(pi.indices.sizes(), (std::vector<std::int64_t>{4, 4}));
  const std::int64_t corners[4] = {0, 3, 12, 15};
  for (int p = 0; p < 4; ++p) {
    float total = 0;
    for (int k = 0; k < 4; ++k) {
      const float w = pi.weights[p][k].item<float>();
      total += w;
      if (w > 0) {
        EXPECT_EQ(pi.indices[p][k].item<std::int64_t>(), corners[p]);
      }
    }
    EXPECT_FLOAT_EQ(total, 1.0f);
  }
}

}  // namespace
