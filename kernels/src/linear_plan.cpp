#include "linear_plan.hpp"

#include <vector>

#include "plan.hpp"

namespace mmgen::kernels::plan {

Linear linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  const char* op = "linear_small_m";
  const DType xd = dtype_of(x, op, "x");
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  const DType wd = dtype_of(weight, op, "weight");
  TORCH_CHECK(wd == xd, op, ": weight must have x's dtype (", x.scalar_type(), "), got ", weight.scalar_type());
  const std::int64_t K = x.size(-1);
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == K, op, ": weight must have shape [N, ", K,
              "] for x of shape ", x.sizes(), ", got ", weight.sizes());
  TORCH_CHECK(weight.device() == x.device(), op, ": weight is on ", weight.device(), " but x is on ", x.device());
  const std::int64_t N = weight.size(0);

  Linear p;
  // Rows of x as one strided level (a 2-D view keeps its row stride; anything
  // else is flattened, copying only when it has to).
  std::int64_t M = 1;
  for (std::int64_t d = 0; d + 1 < x.dim(); ++d) M *= x.size(d);
  p.x = x.dim() == 2 ? x : x.reshape({M, K});
  if (K > 1 && p.x.stride(1) != 1) p.x = p.x.contiguous();
  p.weight = (K > 1 && weight.stride(1) != 1) ? weight.contiguous() : weight;
  if (bias.has_value() && bias->defined()) {
    const at::Tensor& b = *bias;
    TORCH_CHECK(dtype_of(b, op, "bias") == xd, op, ": bias must have x's dtype (", x.scalar_type(), "), got ",
                b.scalar_type());
    TORCH_CHECK(b.dim() == 1 && b.size(0) == N, op, ": bias must have shape [", N, "], got ", b.sizes());
    TORCH_CHECK(b.device() == x.device(), op, ": bias is on ", b.device(), " but x is on ", x.device());
    p.bias = b.contiguous();
  }
  std::vector<std::int64_t> out_sizes(x.sizes().begin(), x.sizes().end());
  out_sizes.back() = N;
  p.out = x.new_empty(out_sizes);

  LinearArgs& a = p.args;
  a.dtype = xd;
  a.m = p.x.size(0);
  a.n = N;
  a.k = K;
  a.x = p.x.data_ptr();
  a.x_stride = p.x.stride(0);
  a.weight = p.weight.data_ptr();
  a.w_stride = p.weight.stride(0);
  a.bias = p.bias.defined() ? p.bias.data_ptr() : nullptr;
  a.out = p.out.data_ptr();
  return p;
}

}  // namespace mmgen::kernels::plan
