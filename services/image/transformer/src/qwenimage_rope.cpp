// Qwen-Image rotary positions and tables (qwenimage_rope.hpp). Read beside
// diffusers' QwenEmbedRope: its pos/neg frequency tables are lookups of
// exactly these integer positions, so building the angles from the positions
// gives the same float32 values without the 4096-row tables.
#include "mmgen/image/qwenimage_rope.hpp"

#include <ATen/ops/empty.h>

#include <algorithm>

namespace mmgen::image {

at::Tensor qwenimage_rope_positions(const std::vector<ImageShape>& images, std::int64_t txt_len) {
  std::int64_t img_tokens = 0;
  std::int64_t txt_start = 0;  // scale_rope: max(h // 2, w // 2) over the images
  for (const ImageShape& s : images) {
    img_tokens += s.tokens();
    txt_start = std::max({txt_start, s.height / 2, s.width / 2});
  }
  at::Tensor pos = at::empty({txt_len + img_tokens, 3}, at::TensorOptions().dtype(at::kLong));
  auto* p = pos.data_ptr<std::int64_t>();
  for (std::int64_t j = 0; j < txt_len; ++j, p += 3) {
    p[0] = p[1] = p[2] = txt_start + j;
  }
  for (std::size_t i = 0; i < images.size(); ++i) {
    const ImageShape& s = images[i];
    const std::int64_t y0 = s.height - s.height / 2, x0 = s.width - s.width / 2;
    for (std::int64_t f = 0; f < s.frames; ++f) {
      for (std::int64_t y = 0; y < s.height; ++y) {
        for (std::int64_t x = 0; x < s.width; ++x, p += 3) {
          p[0] = std::int64_t(i) + f;
          p[1] = y - y0;
          p[2] = x - x0;
        }
      }
    }
  }
  return pos;
}

ops::RopeTables qwenimage_rope_tables(const std::vector<ImageShape>& images, std::int64_t txt_len,
                                      const std::vector<std::int64_t>& axes_dims, c10::Device device) {
  constexpr double kTheta = 10000.0;
  ops::RopeTables t = ops::rope_tables_multi_axis(qwenimage_rope_positions(images, txt_len), axes_dims, kTheta);
  if (device.is_cpu()) return t;
  return ops::RopeTables{t.cos.to(device), t.sin.to(device)};
}

}  // namespace mmgen::image
