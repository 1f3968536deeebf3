// Seeded initial noise, drawn exactly as diffusers draws it: a job's seed gives
// the same latents as
//   randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=dtype)
// in Python, bit for bit (principle 5, "same seed, same pixels").
//
// The draw runs on libtorch's CPU generator (mt19937 + Box-Muller) in the
// requested dtype, then moves to the target device, as randn_tensor does with
// a CPU generator. torch's CPU normal kernel switches to a vectorised 16-lane
// path for contiguous float32 tensors of >= 16 elements, whose bits depend on
// the kernel flavour libtorch dispatches to (ATEN_CPU_CAPABILITY): the AVX2 and
// AVX-512 flavours agree with each other (checked with torch 2.14.1), the
// non-SIMD "default" one does not. Python and C++ agree on any one machine
// because both run the same libtorch.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

namespace mmgen::diffusion {

// torch.Generator("cpu").manual_seed(seed).
at::Generator cpu_generator(std::uint64_t seed);

// randn_tensor(shape, generator=gen, dtype=dtype) with device `device`: the
// values come from `gen` (advancing it, so a second call continues the stream
// as a reused Python generator does) and the tensor is moved to `device`.
at::Tensor randn_tensor(at::IntArrayRef shape, at::Generator& gen, at::ScalarType dtype = at::kFloat,
                        at::Device device = at::Device(at::kCPU));

// The list-of-generators form: batch row i (shape[0] == gens.size()) is drawn
// with shape (1, shape[1:]) from gens[i], then the rows are concatenated. A
// list of one generator behaves like a single generator, as in diffusers.
at::Tensor randn_tensor(at::IntArrayRef shape, std::span<at::Generator> gens, at::ScalarType dtype = at::kFloat,
                        at::Device device = at::Device(at::kCPU));

// Convenience for a job: a fresh generator seeded with `seed`.
at::Tensor seeded_randn(at::IntArrayRef shape, std::uint64_t seed, at::ScalarType dtype = at::kFloat,
                        at::Device device = at::Device(at::kCPU));
// One fresh generator per batch row (diffusers' generator=[Generator().manual_seed(s) for s in seeds]).
at::Tensor seeded_randn(at::IntArrayRef shape, std::span<const std::uint64_t> seeds,
                        at::ScalarType dtype = at::kFloat, at::Device device = at::Device(at::kCPU));

}  // namespace mmgen::diffusion
