// CPU implementations of the Gated DeltaNet ops: validate (delta_plan), then
// split the work over libtorch's intra-op thread pool.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "cpu/delta_loops.hpp"
#include "delta_plan.hpp"
#include "op_impls.hpp"

namespace mmgen::kernels::cpu {
namespace {

void run_delta_rule(const DeltaRuleArgs& a) {
  // One item per (sequence, value head): its state is updated by one thread only.
  at::parallel_for(0, a.batch * a.v_heads, 1,
                   [&](std::int64_t b, std::int64_t e) { delta_loops().delta_rule(a, b, e); });
}

// Prefill path of gated_delta_rule_chunked on the CPU (see ops.hpp for the
// measurements behind the threshold). MMGEN_DELTA_CPU_PATH=token|chunked
// forces one path (tests and ops_bench compare them); read at every call.
constexpr std::int64_t kDeltaChunk = 64;
constexpr std::int64_t kChunkedFromTokens = 6;

bool use_chunked_path(const DeltaRuleArgs& a) {
  if (const char* env = std::getenv("MMGEN_DELTA_CPU_PATH")) {
    if (std::strcmp(env, "token") == 0) return false;
    if (std::strcmp(env, "chunked") == 0) return true;
  }
  return a.tokens >= kChunkedFromTokens;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> gated_delta_rule_chunked(const at::Tensor& q, const at::Tensor& k,
                                                            const at::Tensor& v, const at::Tensor& g,
                                                            const at::Tensor& beta,
                                                            const std::optional<at::Tensor>& initial_state,
                                                            bool use_qk_l2norm) {
  auto p = plan::delta_rule_chunked(q, k, v, g, beta, initial_state, use_qk_l2norm);
  if (use_chunked_path(p.args)) {
    const DeltaRuleArgs& a = p.args;
    at::parallel_for(0, a.batch * a.v_heads, 1, [&](std::int64_t b, std::int64_t e) {
      delta_loops().delta_rule_chunked(a, kDeltaChunk, b, e);
    });
  } else {
    run_delta_rule(p.args);
  }
  return {p.out, p.state};
}

at::Tensor gated_delta_rule_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& g,
                                 const at::Tensor& beta, at::Tensor& state,
                                 const std::optional<at::Tensor>& state_indices, bool use_qk_l2norm) {
  auto p = plan::delta_rule_step(q, k, v, g, beta, state, state_indices, use_qk_l2norm);
  plan::check_state_indices(p.indices, p.args.states, "gated_delta_rule_step");
  run_delta_rule(p.args);
  return p.out;
}

namespace {
at::Tensor run_conv(plan::CausalConv& p) {
  const auto& a = p.args;
  // Items: (sequence, run of channels), ~32K outputs each, at least 64 channels.
  const std::int64_t per =
      std::clamp<std::int64_t>(32768 / std::max<std::int64_t>(1, a.seq * a.width), 64, std::max<std::int64_t>(64, a.channels));
  const std::int64_t chunks = (a.channels + per - 1) / per;
  at::parallel_for(0, a.batch * chunks, 1,
                   [&](std::int64_t b, std::int64_t e) { delta_loops().causal_conv1d(a, per, b, e); });
  return p.out();
}
}  // namespace

at::Tensor causal_conv1d(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                         bool silu) {
  auto p = plan::causal_conv1d(x, weight, bias, silu, nullptr, std::nullopt);
  return run_conv(p);
}

at::Tensor causal_conv1d_update(const at::Tensor& x, at::Tensor& conv_state, const at::Tensor& weight,
                                const std::optional<at::Tensor>& bias, bool silu,
                                const std::optional<at::Tensor>& state_indices) {
  auto p = plan::causal_conv1d(x, weight, bias, silu, &conv_state, state_indices);
  plan::check_state_indices(p.indices, p.args.states, "causal_conv1d_update");
  return run_conv(p);
}

at::Tensor gated_rms_norm(const at::Tensor& x, const at::Tensor& z, const at::Tensor& weight, double eps) {
  auto p = plan::gated_rms_norm(x, z, weight, eps);
  const std::int64_t rows = p.args.x_rows.count();
  const std::int64_t grain = std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(1, p.args.cols));
  at::parallel_for(0, rows, grain,
                   [&](std::int64_t b, std::int64_t e) { delta_loops().gated_rms_norm(p.args, b, e); });
  return p.out;
}

}  // namespace mmgen::kernels::cpu
