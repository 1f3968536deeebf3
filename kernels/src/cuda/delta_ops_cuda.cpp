// CUDA implementations of the Gated DeltaNet ops: validate (delta_plan),
// select the device, launch on the current stream (kernels: cuda/delta_rule.cu).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <tuple>

#include "cuda/delta_chunked_launch.hpp"
#include "cuda/delta_launch.hpp"
#include "delta_plan.hpp"
#include "op_impls.hpp"

namespace mmgen::kernels::cuda {
namespace {

namespace ck = ::mmgen::cuda_kernels;

void check_launch(int err, const char* op) {
  TORCH_CHECK(err == 0, op, ": CUDA kernel failed: ", ck::error_string(err));
}

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// The chunked kernel from this many tokens on, where its shared memory fits
// (dk up to 176); below, and for larger dk, the token-by-token kernel. The
// threshold is not measured on a GPU yet (see ops.hpp).
constexpr std::int64_t kChunkedFromTokens = 16;

}  // namespace

std::tuple<at::Tensor, at::Tensor> gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k,
                                                            const at::Tensor& v, const at::Tensor& g,
                                                            const at::Tensor& beta,
                                                            const std::optional<at::Tensor>& initial_state,
                                                            bool use_qk_l2norm) {
  const c10::cuda::CUDAGuard guard(q.device());
  auto p = plan::delta_rule_chunked(q, k, v, g, beta, initial_state, use_qk_l2norm);
  const bool chunked = p.args.tokens >= kChunkedFromTokens && ck::delta_rule_chunked_fits(p.args);
  check_launch(chunked ? ck::gated_delta_rule_by_chunks(p.args, current_stream())
                       : ck::gated_delta_rule(p.args, current_stream()),
               "gated_delta_rule_chunked");
  return {p.out, p.state};
}

at::Tensor gated_delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                 const at::Tensor& beta, at::Tensor& state,
                                 const std::optional<at::Tensor>& state_indices, bool use_qk_l2norm) {
  const c10::cuda::CUDAGuard guard(q.device());
  auto p = plan::delta_rule_step(q, k, v, g, beta, state, state_indices, use_qk_l2norm);
  check_launch(ck::gated_delta_rule(p.args, current_stream()), "gated_delta_rule_step");
  return p.out;
}

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         bool silu) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::causal_conv1d(x, weight, bias, silu, nullptr, std::nullopt);
  check_launch(ck::causal_conv1d(p.args, current_stream()), "causal_conv1d");
  return p.out();
}

at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, bool silu,
                                const std::optional<at::Tensor>& state_indices) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::causal_conv1d(x, weight, bias, silu, &conv_state, state_indices);
  check_launch(ck::causal_conv1d(p.args, current_stream()), "causal_conv1d_update");
  return p.out();
}

at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::gated_rms_norm(x, z, weight, eps);
  check_launch(ck::gated_rms_norm(p.args, current_stream()), "gated_rms_norm");
  return p.out;
}

}  // namespace mmgen::kernels::cuda
