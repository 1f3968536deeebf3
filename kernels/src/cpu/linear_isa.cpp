// The linear_small_m loops follow the ISA level chosen for the other loops
// (cpu/isa.cpp, including its MMGEN_CPU_ISA override), so one process never
// mixes levels.
#include <string_view>

#include "cpu/linear_loops.hpp"
#include "cpu/loops.hpp"

namespace mmgen::kernels::cpu {

const LinearLoops& linear_loops() {
  static const LinearLoops& loops = []() -> const LinearLoops& {
    const std::string_view isa = cpu_loops().isa;
#if defined(MMGEN_HAVE_X86_VARIANTS)
    if (isa == "avx512") return linear_loops_avx512();
    if (isa == "avx2") return linear_loops_avx2();
#endif
    (void)isa;
    return linear_loops_baseline();
  }();
  return loops;
}

}  // namespace mmgen::kernels::cpu
