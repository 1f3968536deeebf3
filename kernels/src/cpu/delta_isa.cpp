// The Gated DeltaNet loops follow the ISA level chosen for the other loops
// (cpu/isa.cpp, including its MMGEN_CPU_ISA override), so one process never
// mixes levels.
#include <string_view>

#include "cpu/delta_loops.hpp"
#include "cpu/loops.hpp"

namespace mmgen::kernels::cpu {

const DeltaLoops& delta_loops() {
  static const DeltaLoops& loops = []() -> const DeltaLoops& {
    const std::string_view isa = cpu_loops().isa;
#if defined(MMGEN_HAVE_X86_VARIANTS)
    if (isa == "avx512") return delta_loops_avx512();
    if (isa == "avx2") return delta_loops_avx2();
#endif
    (void)isa;
    return delta_loops_baseline();
  }();
  return loops;
}

}  // namespace mmgen::kernels::cpu
