// CPU loops of the Gated DeltaNet ops, built once per x86 ISA level like
// loops.hpp (delta_loops_impl.cpp via generated delta_loops_<isa>.cpp) and
// chosen at run time with the same rule (MMGEN_CPU_ISA forces a lower level).
#pragma once

#include <cstdint>

#include "common/delta_args.hpp"

namespace mmgen::kernels::cpu {

struct DeltaLoops {
  const char* isa;
  // Items i in [begin, end): sequence i / v_heads, value head i % v_heads.
  void (*delta_rule)(const DeltaRuleArgs&, std::int64_t item_begin, std::int64_t item_end);
  // The same op evaluated `chunk` tokens at a time (chunked form, matrix
  // products per chunk); same items.
  void (*delta_rule_chunked)(const DeltaRuleArgs&, std::int64_t chunk, std::int64_t item_begin,
                             std::int64_t item_end);
  // Items: sequence i / chunks, channels [c * n, min(C, (c + 1) * n)) with c = i % chunks.
  void (*causal_conv1d)(const CausalConvArgs&, std::int64_t channels_per_item, std::int64_t item_begin,
                        std::int64_t item_end);
  void (*gated_rms_norm)(const GatedRmsNormArgs&, std::int64_t row_begin, std::int64_t row_end);
};

const DeltaLoops& delta_loops();

const DeltaLoops& delta_loops_baseline();
const DeltaLoops& delta_loops_avx2();
const DeltaLoops& delta_loops_avx512();

}  // namespace mmgen::kernels::cpu
