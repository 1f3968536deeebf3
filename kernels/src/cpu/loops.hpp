// The CPU loops: torch-free functions over raw pointers that each process a
// range of rows (or work items), so the torch side can split the range over
// threads with at::parallel_for. loops_impl.cpp is compiled once per x86 ISA
// level (baseline, AVX2+FMA+F16C, AVX-512); cpu_loops() returns the best one
// this CPU supports, chosen once at first use.
#pragma once

#include <cstdint>

#include "common/op_args.hpp"

namespace mmgen::kernels::cpu {

struct CpuLoops {
  const char* isa;
  void (*rms_norm)(const RmsNormArgs&, std::int64_t row_begin, std::int64_t row_end);
  void (*rope)(const RopeArgs&, std::int64_t tok_begin, std::int64_t tok_end);
  void (*silu_and_mul)(const ActArgs&, std::int64_t row_begin, std::int64_t row_end);
  void (*gelu_tanh)(const ActArgs&, std::int64_t row_begin, std::int64_t row_end);
  void (*adaln_modulate)(const ModulateArgs&, std::int64_t row_begin, std::int64_t row_end);
  void (*gated_residual)(const GatedResidualArgs&, std::int64_t row_begin, std::int64_t row_end);
  // Work item i = (sequence i / chunks, kv heads [c * n, (c + 1) * n) with
  // c = i % chunks), n = cpu_kv_heads_per_item, chunks = ceil(kv_heads / n).
  void (*paged_attention)(const PagedAttentionArgs&, std::int64_t item_begin, std::int64_t item_end);
  void (*reshape_and_cache)(const ReshapeAndCacheArgs&, std::int64_t tok_begin, std::int64_t tok_end);
};

const CpuLoops& cpu_loops();

// Per-ISA tables (defined in the loops_<isa>.cpp builds of loops_impl.cpp).
const CpuLoops& cpu_loops_baseline();
const CpuLoops& cpu_loops_avx2();
const CpuLoops& cpu_loops_avx512();

}  // namespace mmgen::kernels::cpu
