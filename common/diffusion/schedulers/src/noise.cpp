// Seeded noise (noise.hpp), mirroring diffusers' utils/torch_utils.py
// randn_tensor with CPU generators.
#include "mmgen/diffusion/noise.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/randn.h>

#include <mutex>
#include <stdexcept>
#include <string>

namespace mmgen::diffusion {

namespace {

void check_shape(at::IntArrayRef shape) {
  if (shape.empty()) throw std::invalid_argument("randn_tensor: the shape needs a batch dimension");
  for (std::int64_t d : shape) {
    if (d < 0) throw std::invalid_argument("randn_tensor: negative dimension " + std::to_string(d));
  }
}

void check_cpu(const at::Generator& gen) {
  if (!gen.defined() || gen.device().type() != at::kCPU) {
    throw std::invalid_argument("randn_tensor: the generator must be a CPU generator");
  }
}

// torch.randn(shape, generator=gen, dtype=dtype) on the CPU.
at::Tensor draw(at::IntArrayRef shape, at::Generator& gen, at::ScalarType dtype) {
  return at::randn(shape, gen, at::TensorOptions().dtype(dtype).device(at::kCPU));
}

}  // namespace

at::Generator cpu_generator(std::uint64_t seed) {
  // torch.Generator("cpu") makes a generator with the default seed;
  // manual_seed then reseeds mt19937 and drops the cached normal samples.
  at::Generator gen = at::detail::createCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}

at::Tensor randn_tensor(at::IntArrayRef shape, at::Generator& gen, at::ScalarType dtype, at::Device device) {
  check_shape(shape);
  check_cpu(gen);
  at::Tensor out = draw(shape, gen, dtype);
  return device.is_cpu() ? out : out.to(device);
}

at::Tensor randn_tensor(at::IntArrayRef shape, std::span<at::Generator> gens, at::ScalarType dtype,
                        at::Device device) {
  check_shape(shape);
  if (gens.empty()) throw std::invalid_argument("randn_tensor: empty list of generators");
  if (gens.size() == 1) return randn_tensor(shape, gens[0], dtype, device);
  if (static_cast<std::int64_t>(gens.size()) != shape[0]) {
    throw std::invalid_argument("randn_tensor: " + std::to_string(gens.size()) + " generators for a batch of " +
                                std::to_string(shape[0]));
  }
  std::vector<std::int64_t> row(shape.begin(), shape.end());
  row[0] = 1;
  std::vector<at::Tensor> rows;
  rows.reserve(gens.size());
  for (at::Generator& g : gens) {
    check_cpu(g);
    rows.push_back(draw(row, g, dtype));
  }
  at::Tensor out = at::cat(rows, 0);
  return device.is_cpu() ? out : out.to(device);
}

at::Tensor seeded_randn(at::IntArrayRef shape, std::uint64_t seed, at::ScalarType dtype, at::Device device) {
  at::Generator gen = cpu_generator(seed);
  return randn_tensor(shape, gen, dtype, device);
}

at::Tensor seeded_randn(at::IntArrayRef shape, std::span<const std::uint64_t> seeds, at::ScalarType dtype,
                        at::Device device) {
  std::vector<at::Generator> gens;
  gens.reserve(seeds.size());
  for (std::uint64_t s : seeds) gens.push_back(cpu_generator(s));
  return randn_tensor(shape, std::span<at::Generator>(gens), dtype, device);
}

}  // namespace mmgen::diffusion
