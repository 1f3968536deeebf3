// CPU loops of linear_small_m, built once per x86 ISA level like loops.hpp
// (linear_loops_impl.cpp via generated linear_loops_<isa>.cpp) and chosen at
// run time with the same rule (MMGEN_CPU_ISA forces a lower level).
#pragma once

#include <cstdint>

#include "common/linear_args.hpp"

namespace mmgen::kernels::cpu {

struct LinearLoops {
  const char* isa;
  // True when bfloat16 calls multiply bfloat16 pairs directly (AVX-512 BF16
  // vdpbf16ps: exact products, float32 sums) and read x from a.x, ignoring x32.
  bool native_bf16;
  // x (a.m rows of a.k values of a.dtype) widened to float32 into x32 [m, k], contiguous.
  void (*widen)(const LinearArgs&, float* x32);
  // Output features [n_begin, n_end) of every row: x32 holds x as float32,
  // rows x32_stride apart (unused for bfloat16 when native_bf16); weight, bias
  // and out are read from a.
  void (*linear)(const LinearArgs&, const float* x32, std::int64_t x32_stride, std::int64_t n_begin,
                 std::int64_t n_end);
};

const LinearLoops& linear_loops();

const LinearLoops& linear_loops_baseline();
const LinearLoops& linear_loops_avx2();
const LinearLoops& linear_loops_avx512();

}  // namespace mmgen::kernels::cpu
