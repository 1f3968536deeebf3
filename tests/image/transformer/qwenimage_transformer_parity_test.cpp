// Parity with diffusers' QwenImageTransformer2DModel on the tiny checkpoints of
// tests/fixtures/image/transformer_qwenimage{,_zero_cond} (made by
// scripts/fixtures/make_qwenimage_transformer_fixtures.py): in float32 the
// output of every recorded case is within 1e-4 (max abs) of the reference.
// Cases: a single non-square image without mask; a batch of two with padded
// text and different timesteps; an edit with a reference image; with
// zero_cond_t (Edit-2511, sharded checkpoint) a batched edit and a single image.
// bfloat16 (a bound, not parity): on the batched cases our bfloat16 output is no
// farther from the float32 reference than 1.5x diffusers' own bfloat16 run is.
#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "mmgen/image/qwenimage_transformer.hpp"
#include "mmgen/io/checkpoint.hpp"

namespace fs = std::filesystem;
using mmgen::image::ImageShape;
using mmgen::image::QwenImageTransformer;
using mmgen::io::Checkpoint;
using mmgen::io::LoadOptions;

namespace {

const fs::path kFixtures = MMGEN_QWENIMAGE_FIXTURES;
constexpr double kTol = 1e-4;

// MMGEN_TEST_DEVICE=cuda runs the same comparisons on the GPU (CPU otherwise).
c10::Device test_device() {
  const char* d = std::getenv("MMGEN_TEST_DEVICE");
  return d && std::string(d) == "cuda" ? c10::Device(c10::DeviceType::CUDA, 0) : c10::Device(c10::DeviceType::CPU);
}

// img_shapes recorded as [B, N_img, 3] int64.
std::vector<std::vector<ImageShape>> shapes_of(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  const auto* p = c.data_ptr<std::int64_t>();
  std::vector<std::vector<ImageShape>> out(std::size_t(c.size(0)));
  for (std::int64_t b = 0; b < c.size(0); ++b) {
    for (std::int64_t i = 0; i < c.size(1); ++i, p += 3) out[std::size_t(b)].push_back({p[0], p[1], p[2]});
  }
  return out;
}

at::Tensor run_model(const QwenImageTransformer& model, const Checkpoint& ref, const std::string& name) {
  const c10::Device dev = test_device();
  at::Tensor mask;
  if (ref.contains(name + ".encoder_hidden_states_mask"))
    mask = ref.tensor(name + ".encoder_hidden_states_mask").to(dev);
  return model.forward(ref.tensor(name + ".hidden_states").to(dev), ref.tensor(name + ".encoder_hidden_states").to(dev),
                       mask, ref.tensor(name + ".timestep").to(dev), shapes_of(ref.tensor(name + ".img_shapes")));
}

double run_case(const QwenImageTransformer& model, const Checkpoint& ref, const std::string& name) {
  at::Tensor out = run_model(model, ref, name);
  at::Tensor expected = ref.tensor(name + ".output");
  EXPECT_EQ(out.sizes(), expected.sizes()) << name;
  if (out.sizes() != expected.sizes()) return 1e9;
  const double err = (out.to(at::kCPU).to(at::kFloat) - expected).abs().max().item<double>();
  std::cout << "  " << name << ": max |err| = " << err << " (output max |x| = " << expected.abs().max().item<double>()
            << ")\n";
  return err;
}

void check_fixture(const std::string& fixture, const std::vector<std::string>& cases) {
  const fs::path dir = kFixtures / fixture;
  const QwenImageTransformer model = QwenImageTransformer::load(dir, LoadOptions{at::kFloat, test_device()});
  const Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  std::cout << fixture << ":\n";
  for (const std::string& c : cases) EXPECT_LE(run_case(model, ref, c), kTol) << fixture << " / " << c;
}

TEST(QwenImageTransformerParity, PlainModel) { check_fixture("transformer_qwenimage", {"single", "batch", "edit"}); }

TEST(QwenImageTransformerParity, ZeroCondEditSharded) {
  check_fixture("transformer_qwenimage_zero_cond", {"edit", "single"});
}

void check_bf16(const std::string& fixture, const std::string& name) {
  const fs::path dir = kFixtures / fixture;
  const QwenImageTransformer model = QwenImageTransformer::load(dir, LoadOptions{at::kBFloat16, test_device()});
  const Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  at::Tensor out = run_model(model, ref, name).to(at::kCPU).to(at::kFloat);
  const at::Tensor expected = ref.tensor(name + ".output");
  ASSERT_EQ(out.sizes(), expected.sizes());
  const double ours = (out - expected).abs().max().item<double>();
  const double theirs = (ref.tensor(name + ".output_bf16") - expected).abs().max().item<double>();
  std::cout << fixture << " / " << name << " bfloat16: max |err| = " << ours << " (diffusers bfloat16: " << theirs
            << ")\n";
  EXPECT_LE(ours, 1.5 * theirs);
}

TEST(QwenImageTransformerParity, BFloat16WithinReferenceError) {
  check_bf16("transformer_qwenimage", "batch");
  check_bf16("transformer_qwenimage_zero_cond", "edit");
}

}  // namespace
