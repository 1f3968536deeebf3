// The common head of every per-ISA loop file (loops_impl.cpp, delta_loops_impl.cpp,
// linear_loops_impl.cpp), each compiled once per ISA level with its own
// -m flags and MMGEN_CPU_ISA (kernels/CMakeLists.txt). Include it first; then
// the file's own loops header, and vec.hpp inside an anonymous namespace.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

// GCC 12 flags the deliberately undefined vectors inside its own AVX-512
// conversion intrinsics (_mm512_cvtps_ph, _mm512_cvtph_ps,
// _mm512_cvtepi32_epi16) as uninitialized once they are inlined into a loop
// file. The pragmas stay in force for the rest of the file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#ifndef MMGEN_CPU_ISA
#error "MMGEN_CPU_ISA must name the ISA variant (baseline, avx2, avx512)"
#endif
