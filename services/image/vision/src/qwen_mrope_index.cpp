// qwen_mrope_index.hpp. Read beside transformers' modeling_qwen2_5_vl.py:
// Qwen2_5_VLModel.get_rope_index and get_vision_position_ids (time_interval 1
// for still images).
#include "mmgen/image/qwen_mrope_index.hpp"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <string>
#include <vector>

#include "mmgen/protocol.hpp"

namespace mmgen::image {

namespace {

[[noreturn]] void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, "M-RoPE index: " + what);
}

}  // namespace

MropeIndex qwen2_5_vl_rope_index(const at::Tensor& input_ids, const at::Tensor& image_grid_thw,
                                 std::int64_t image_token_id, std::int64_t spatial_merge_size) {
  if (!input_ids.defined() || input_ids.dim() != 1 || input_ids.scalar_type() != at::kLong) {
    bad_input("input_ids must be [T] int64");
  }
  if (spatial_merge_size <= 0) bad_input("spatial_merge_size must be positive");
  std::vector<std::int64_t> grid;
  if (image_grid_thw.defined() && image_grid_thw.numel() > 0) {
    if (image_grid_thw.dim() != 2 || image_grid_thw.size(1) != 3 ||
        !at::isIntegralType(image_grid_thw.scalar_type(), false)) {
      bad_input("image_grid_thw must be [num_images, 3] integers");
    }
    at::Tensor g = image_grid_thw.to(at::kCPU, at::kLong).contiguous();
    grid.assign(g.data_ptr<std::int64_t>(), g.data_ptr<std::int64_t>() + g.numel());
  }
  const std::size_t num_images = grid.size() / 3;

  const at::Tensor ids_t = input_ids.to(at::kCPU).contiguous();
  const auto* ids = ids_t.data_ptr<std::int64_t>();
  const std::int64_t T = ids_t.size(0);
  at::Tensor positions = at::empty({3, T}, at::TensorOptions().dtype(at::kLong));
  std::int64_t* row[3] = {positions.data_ptr<std::int64_t>(), positions.data_ptr<std::int64_t>() + T,
                          positions.data_ptr<std::int64_t>() + 2 * T};

  std::int64_t pos = 0;  // the next text position
  std::int64_t max_pos = -1;
  std::size_t image = 0;
  for (std::int64_t i = 0; i < T;) {
    if (ids[i] != image_token_id) {
      for (auto* r : row) r[i] = pos;
      max_pos = std::max(max_pos, pos);
      ++pos, ++i;
      continue;
    }
    // A maximal run of placeholders is one image (the reference groups the
    // token types the same way).
    std::int64_t end = i;
    while (end < T && ids[end] == image_token_id) ++end;
    if (image >= num_images) {
      bad_input("the prompt has more image placeholder runs than image_grid_thw rows (" +
                std::to_string(num_images) + ")");
    }
    const std::int64_t t = grid[3 * image], h = grid[3 * image + 1] / spatial_merge_size,
                       w = grid[3 * image + 2] / spatial_merge_size;
    if (t <= 0 || h <= 0 || w <= 0 || end - i != t * h * w) {
      bad_input("image " + std::to_string(image) + " has " + std::to_string(end - i) +
                " placeholder tokens but its grid (" + std::to_string(grid[3 * image]) + ", " +
                std::to_string(grid[3 * image + 1]) + ", " + std::to_string(grid[3 * image + 2]) + ") needs " +
                std::to_string(std::max<std::int64_t>(t * h * w, 0)));
    }
    std::int64_t k = i;
    for (std::int64_t a = 0; a < t; ++a) {
      for (std::int64_t b = 0; b < h; ++b) {
        for (std::int64_t c = 0; c < w; ++c, ++k) {
          row[0][k] = pos + a;
          row[1][k] = pos + b;
          row[2][k] = pos + c;
        }
      }
    }
    max_pos = std::max({max_pos, pos + t - 1, pos + h - 1, pos + w - 1});
    pos += std::max(h, w);
    ++image;
    i = end;
  }
  if (image != num_images) {
    bad_input("image_grid_thw has " + std::to_string(num_images) + " rows but the prompt has " +
              std::to_string(image) + " image placeholder runs");
  }
  return MropeIndex{positions, max_pos + 1 - T};
}

}  // namespace mmgen::image
