// Picks the widest loop build the running CPU supports. MMGEN_CPU_ISA
// (baseline|avx2|avx512) forces a lower level, e.g. to test the baseline build
// on an AVX-512 machine.
#include <cstdlib>
#include <string_view>

#include "cpu/loops.hpp"

namespace mmgen::kernels::cpu {
namespace {

const CpuLoops& choose() {
  const char* env = std::getenv("MMGEN_CPU_ISA");
  const std::string_view want = env ? env : "";
#if defined(MMGEN_HAVE_X86_VARIANTS)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (want == "baseline") return cpu_loops_baseline();
  if (avx512 && want != "avx2") return cpu_loops_avx512();
  if (avx2) return cpu_loops_avx2();
#endif
  (void)want;
  return cpu_loops_baseline();
}

}  // namespace

const CpuLoops& cpu_loops() {
  static const CpuLoops& loops = choose();
  return loops;
}

}  // namespace mmgen::kernels::cpu
