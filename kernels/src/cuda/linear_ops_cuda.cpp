// CUDA implementation of linear_small_m: validate (linear_plan), select the
// device, launch on the current stream (kernel: cuda/linear.cu).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "cuda/linear_launch.hpp"
#include "linear_plan.hpp"
#include "op_impls.hpp"

namespace mmgen::kernels::cuda {

at::Tensor linear_small_m(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto p = plan::linear(x, weight, bias);
  namespace ck = ::mmgen::cuda_kernels;
  const int err = ck::linear_small_m(p.args, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == 0, "linear_small_m: CUDA kernel failed: ", ck::error_string(err));
  return p.out;
}

}  // namespace mmgen::kernels::cuda
