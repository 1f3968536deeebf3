// CUDA implementations: validate (plan), select the tensors' device, launch on
// the current stream. A plain C++ file: the kernels sit behind launch.hpp.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "cuda/launch.hpp"
#include "op_impls.hpp"
#include "plan.hpp"

namespace mmgen::kernels::cuda {
namespace {

namespace ck = ::mmgen::cuda_kernels;

void check_launch(int err, const char* op) {
  TORCH_CHECK(err == 0, op, ": CUDA kernel failed: ", ck::error_string(err));
}

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

int multiprocessors(c10::DeviceIndex device) {
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || n <= 0) n = 108;
  return n;
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::rms_norm(x, weight, eps, nullptr);
  check_launch(ck::rms_norm(p.args, current_stream()), "rms_norm");
  return p.out;
}

at::Tensor fused_add_rms_norm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::rms_norm(x, weight, eps, &residual);
  check_launch(ck::rms_norm(p.args, current_stream()), "fused_add_rms_norm");
  p.finish();
  return p.out;
}

void rope(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin, std::int64_t style) {
  const c10::cuda::CUDAGuard guard(q.device());
  auto p = plan::rope(q, k, cos, sin, style);
  check_launch(ck::rope(p.args, current_stream()), "rope");
  p.finish();
}

at::Tensor silu_and_mul(const at::Tensor& gate_up) {
  const c10::cuda::CUDAGuard guard(gate_up.device());
  auto p = plan::silu_and_mul(gate_up);
  check_launch(ck::silu_and_mul(p.args, current_stream()), "silu_and_mul");
  return p.out;
}

at::Tensor gelu_tanh(const at::Tensor& x) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::gelu_tanh(x);
  check_launch(ck::gelu_tanh(p.args, current_stream()), "gelu_tanh");
  return p.out;
}

at::Tensor adaln_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::adaln_modulate(x, shift, scale, eps);
  check_launch(ck::adaln_modulate(p.args, current_stream()), "adaln_modulate");
  return p.out;
}

at::Tensor gated_residual(const at::Tensor& x, const at::Tensor& y, const at::Tensor& gate) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::gated_residual(x, y, gate);
  check_launch(ck::gated_residual(p.args, current_stream()), "gated_residual");
  return p.out;
}

at::Tensor paged_attention_decode(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                  const at::Tensor& block_tables, const at::Tensor& context_lens, double scale) {
  const c10::cuda::CUDAGuard guard(q.device());
  auto p = plan::paged_attention(q, k_cache, v_cache, block_tables, context_lens, scale);
  TORCH_CHECK(ck::paged_attention_supports_head_dim(p.args.head_dim),
              "paged_attention_decode: the CUDA kernel supports head_dim 64, 128 or 256, got ", p.args.head_dim);
  const std::int64_t max_context = p.args.max_blocks * p.args.block_size;
  const int partition = ck::paged_attention_pick_partition(p.args.batch, p.args.kv_heads, p.args.q_heads, max_context,
                                                           multiprocessors(q.get_device()));
  const std::int64_t parts = ck::paged_attention_partitions(max_context, partition);
  at::Tensor workspace;
  if (parts > 1) {
    const std::int64_t B = p.args.batch, H = p.args.q_heads, D = p.args.head_dim;
    workspace = q.new_empty({B * H * parts * (D + 2)}, q.options().dtype(at::kFloat));
    p.args.tmp_out = workspace.data_ptr<float>();
    p.args.max_logits = p.args.tmp_out + B * H * parts * D;
    p.args.exp_sums = p.args.max_logits + B * H * parts;
    p.args.partitions = parts;
  }
  check_launch(ck::paged_attention(p.args, partition, current_stream()), "paged_attention_decode");
  return p.out;  // the workspace is freed into the caching allocator, stream-ordered
}

void reshape_and_cache(const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache, at::Tensor& v_cache,
                       const at::Tensor& slot_mapping) {
  const c10::cuda::CUDAGuard guard(k.device());
  auto p = plan::reshape_and_cache(k, v, k_cache, v_cache, slot_mapping);
  check_launch(ck::reshape_and_cache(p.args, current_stream()), "reshape_and_cache");
}

}  // namespace mmgen::kernels::cuda
