// Shared by the kernel tests: reference implementations written with plain
// ATen ops following the Python references line by line, random inputs, and
// a closeness check with per-dtype tolerances that reports where it failed.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mmgen::testing {

struct Tolerance {
  double atol;
  double rtol;
};
// float32: rounding-order noise only; bf16/f16: a few units in the last place
// of a value of magnitude ~1 (the references round intermediates more often).
Tolerance tolerance_for(at::ScalarType dtype);

// Checks |actual - expected| <= atol + rtol * |expected| elementwise (NaN must
// match NaN). Compares on the CPU in float64; shapes must be equal.
::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected, Tolerance tol);
::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected);  // tol of expected's dtype
::testing::AssertionResult bit_equal(const at::Tensor& a, const at::Tensor& b);

// Standard normal values of the given dtype on the CPU (seeded per call site).
at::Tensor randn(std::vector<std::int64_t> sizes, at::ScalarType dtype, std::uint64_t seed);
at::Tensor uniform(std::vector<std::int64_t> sizes, at::ScalarType dtype, double lo, double hi, std::uint64_t seed);
const char* dtype_name(at::ScalarType t);

// Whether this CPU can run the AVX2 / AVX-512 builds of the loop tables (the
// features their -m flags assume); the baseline build always runs.
bool cpu_runs_avx2_build();

// Why the gpu-labelled tests cannot run here ("" when they can): no CUDA
// build of the kernels, or no device.
std::string cuda_unavailable_reason();

// Base of the gpu-labelled tests: each test skips, saying why, where the
// CUDA kernels cannot run.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = cuda_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  }
};

bool cpu_runs_avx512_build();

// ---- references (plain ATen; see each op's doc in mmgen/ops.hpp) -----------------------
// transformers Qwen3RMSNorm: weight * (h * rsqrt(mean(h^2) + eps)).to(x.dtype), h = x.float()
at::Tensor ref_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
// decoder layer: residual = x + residual (model dtype); then rms_norm. Returns (out, new residual).
std::pair<at::Tensor, at::Tensor> ref_fused_add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                                        const at::Tensor& weight, double eps);
// NeoX (style 0): transformers apply_rotary_pos_emb in q's dtype, cos/sin cast to q's
// dtype and duplicated, partial rotary on the first R features. Interleaved
// (style 1): diffusers Qwen-Image complex multiplication in float32.
// Returns the rotated copies (q, k); cos/sin [positions, R/2] or [B, S, R/2].
std::pair<at::Tensor, at::Tensor> ref_rope(const at::Tensor& q, const at::Tensor& k, const at::Tensor& cos,
                                           const at::Tensor& sin, int style);
at::Tensor ref_silu_and_mul(const at::Tensor& gate_up);  // F.silu(gate) * up in the model dtype
at::Tensor ref_gelu_tanh(const at::Tensor& x);           // F.gelu(x, approximate="tanh")
// Wan: (layer_norm(x.float()) * (1 + scale) + shift).type_as(x); shift/scale [B, D] | [B, 1|S, D]
at::Tensor ref_adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps);
// Wan: (x.float() + y * gate).type_as(x)
at::Tensor ref_gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate);
// vLLM's reference: gather each sequence's keys/values, repeat kv heads, softmax
// in float32 (empty context -> zeros).
at::Tensor ref_paged_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                               const at::Tensor& block_tables, const at::Tensor& context_lens, double scale);
// Copies of the caches after writing k/v at slot_mapping (slot -1 skipped).
std::pair<at::Tensor, at::Tensor> ref_reshape_and_cache(const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& k_cache, const at::Tensor& v_cache,
                                                        const at::Tensor& slot_mapping);

// ---- paged-cache fixtures -------------------------------------------------------------
struct PagedCase {
  at::Tensor q, k_cache, v_cache, block_tables, context_lens;
  double scale;
};
// Random caches; each sequence gets its own randomly chosen (non-contiguous,
// shuffled) blocks; q is a strided view into a wider buffer when strided_q.
PagedCase make_paged_case(std::int64_t batch, std::int64_t q_heads, std::int64_t kv_heads, std::int64_t head_dim,
                          std::int64_t block_size, const std::vector<std::int64_t>& context_lens,
                          at::ScalarType dtype, std::uint64_t seed, bool strided_q = true);

}  // namespace mmgen::testing
