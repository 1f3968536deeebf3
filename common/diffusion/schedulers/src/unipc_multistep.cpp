// UniPCMultistepScheduler, flow-matching form (unipc_multistep.hpp). Read
// beside diffusers' scheduling_unipc_multistep.py: the schedule is numpy
// float64 then float32 sigmas and int64 timesteps; the predictor
// (multistep_uni_p_bh_update) and corrector (multistep_uni_c_bh_update) are
// the same ATen ops on the same 0-dim float32 sigma tensors, in the same
// order, so each step matches the reference to rounding.
#include "mmgen/diffusion/unipc_multistep.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/einsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/expm1.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/linalg_solve.h>
#include <ATen/ops/log.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/rsub.h>
#include <ATen/ops/select.h>
#include <ATen/ops/stack.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "scheduler_config.hpp"

namespace mmgen::diffusion {

namespace {

constexpr const char* kClassName = "UniPCMultistepScheduler";

using io::LoadError;
using io::LoadErrorKind;

using scheduler_config::error;

[[noreturn]] void bad_argument(const std::string& what) {
  throw std::invalid_argument(std::string(kClassName) + ": " + what);
}

// lambda = log(alpha) - log(sigma) with the flow parametrisation alpha = 1 - sigma.
at::Tensor lambda_of(const at::Tensor& sigma) { return at::log(at::rsub(sigma, 1)) - at::log(sigma); }

// The coefficients both updates share: h, hh = -h (predict_x0), h_phi_1,
// B_h, and R / b of the order-k linear system, built by the reference's
// recurrence h_phi_k <- h_phi_k / hh - 1 / (k+1)!.
struct UpdateTerms {
  at::Tensor h_phi_1, B_h, R, b;
};

UpdateTerms update_terms(const at::Tensor& h, const std::vector<at::Tensor>& rks_in, std::int64_t order,
                         UniPCSolverType solver, const at::Device& device) {
  std::vector<at::Tensor> rks_list = rks_in;
  rks_list.push_back(at::ones({}, at::TensorOptions().device(device)));  // float32, as torch.ones(())
  const at::Tensor rks = at::stack(rks_list);
  const at::Tensor hh = -h;  // predict_x0
  UpdateTerms t;
  t.h_phi_1 = at::expm1(hh);
  at::Tensor h_phi_k = t.h_phi_1 / hh - 1;
  std::int64_t factorial_i = 1;
  t.B_h = solver == UniPCSolverType::bh1 ? hh : at::expm1(hh);
  std::vector<at::Tensor> R, b;
  for (std::int64_t i = 1; i <= order; ++i) {
    R.push_back(at::pow(rks, i - 1));
    b.push_back(h_phi_k * factorial_i / t.B_h);
    factorial_i *= i + 1;
    h_phi_k = h_phi_k / hh - 1.0 / static_cast<double>(factorial_i);
  }
  t.R = at::stack(R);
  t.b = at::stack(b);
  return t;
}

}  // namespace

// =============================== config ===============================

UniPCConfig UniPCConfig::from_json(const io::HfConfig& cfg) {
  scheduler_config::expect_class(cfg, kClassName);
  UniPCConfig c;
  c.source = cfg.source();
  c.num_train_timesteps = cfg.get_int("num_train_timesteps", c.num_train_timesteps);
  c.beta_start = cfg.get_double("beta_start", c.beta_start);
  c.beta_end = cfg.get_double("beta_end", c.beta_end);
  c.beta_schedule = cfg.get_string("beta_schedule", c.beta_schedule);
  const bool has_trained_betas = cfg.has("trained_betas");
  c.solver_order = cfg.get_int("solver_order", c.solver_order);
  c.prediction_type = cfg.get_string("prediction_type", c.prediction_type);
  c.thresholding = cfg.get_bool("thresholding", c.thresholding);
  c.predict_x0 = cfg.get_bool("predict_x0", c.predict_x0);
  const std::string solver = cfg.get_string("solver_type", "bh2");
  if (solver == "bh1") {
    c.solver_type = UniPCSolverType::bh1;
  } else if (solver == "bh2" || solver == "midpoint" || solver == "heun" || solver == "logrho") {
    c.solver_type = UniPCSolverType::bh2;  // the reference re-registers the last three as bh2
  } else {
    error(LoadErrorKind::unsupported, c.source, "solver_type", "'" + solver + "' is not bh1 or bh2");
  }
  c.lower_order_final = cfg.get_bool("lower_order_final", c.lower_order_final);
  c.disable_corrector = cfg.get_int_list("disable_corrector", {});
  if (cfg.has("solver_p")) {
    error(LoadErrorKind::unsupported, c.source, "solver_p",
          "is set: an external predictor scheduler is not supported");
  }
  c.use_karras_sigmas = cfg.get_bool("use_karras_sigmas", c.use_karras_sigmas);
  c.use_exponential_sigmas = cfg.get_bool("use_exponential_sigmas", c.use_exponential_sigmas);
  c.use_beta_sigmas = cfg.get_bool("use_beta_sigmas", c.use_beta_sigmas);
  c.use_flow_sigmas = cfg.get_bool("use_flow_sigmas", c.use_flow_sigmas);
  c.flow_shift = cfg.get_double("flow_shift", c.flow_shift);
  c.timestep_spacing = cfg.get_string("timestep_spacing", c.timestep_spacing);
  c.steps_offset = cfg.get_int("steps_offset", c.steps_offset);
  const std::string final_type = cfg.get_string("final_sigmas_type", "zero");
  if (final_type == "zero") {
    c.final_sigmas_type = FinalSigmasType::zero;
  } else if (final_type == "sigma_min") {
    c.final_sigmas_type = FinalSigmasType::sigma_min;
  } else {
    error(LoadErrorKind::bad_config, c.source, "final_sigmas_type",
          "must be 'zero' or 'sigma_min', got '" + final_type + "'");
  }
  // rescale_betas_zero_snr and the DDPM betas only shape the non-flow sigmas.
  (void)cfg.get_bool("rescale_betas_zero_snr", false);
  c.use_dynamic_shifting = cfg.get_bool("use_dynamic_shifting", c.use_dynamic_shifting);
  const std::string shift_type = cfg.get_string("time_shift_type", "exponential");
  c.time_shift_type = scheduler_config::time_shift_type(shift_type, c.source);
  c.shift_terminal = cfg.opt_double("shift_terminal");
  if (!has_trained_betas && c.beta_schedule != "linear" && c.beta_schedule != "scaled_linear" &&
      c.beta_schedule != "squaredcos_cap_v2") {
    error(LoadErrorKind::unsupported, c.source, "beta_schedule",
          "'" + c.beta_schedule + "' is not implemented (linear, scaled_linear, squaredcos_cap_v2)");
  }
  c.validate();
  return c;
}

UniPCConfig UniPCConfig::load(const std::filesystem::path& path) {
  std::error_code ec;
  const bool dir = std::filesystem::is_directory(path, ec);
  return from_json(io::HfConfig::load(dir ? path / "scheduler_config.json" : path));
}

void UniPCConfig::validate() const {
  auto bad = [&](const char* key, const std::string& why) { error(LoadErrorKind::bad_config, source, key, why); };
  auto unsupported = [&](const char* key, const std::string& why) {
    error(LoadErrorKind::unsupported, source, key, why);
  };
  if (num_train_timesteps < 1) bad("num_train_timesteps", "must be at least 1, got " + std::to_string(num_train_timesteps));
  if (solver_order < 1) bad("solver_order", "must be at least 1, got " + std::to_string(solver_order));
  if (int(use_karras_sigmas) + int(use_exponential_sigmas) + int(use_beta_sigmas) > 1) {
    bad("use_karras_sigmas", "only one of use_beta_sigmas, use_exponential_sigmas, use_karras_sigmas can be set");
  }
  if (shift_terminal && !use_flow_sigmas) bad("shift_terminal", "is only supported with use_flow_sigmas=true");
  if (!use_flow_sigmas) {
    unsupported("use_flow_sigmas", "is false: only the flow-matching UniPC (use_flow_sigmas=true) is implemented");
  }
  if (use_karras_sigmas) unsupported("use_karras_sigmas", "is true: Karras spacing is not implemented for UniPC");
  if (use_exponential_sigmas) {
    unsupported("use_exponential_sigmas", "is true: exponential spacing is not implemented for UniPC");
  }
  if (use_beta_sigmas) unsupported("use_beta_sigmas", "is true: beta spacing is not implemented for UniPC");
  if (prediction_type != "flow_prediction") {
    unsupported("prediction_type", "'" + prediction_type + "' is not implemented; only flow_prediction is");
  }
  if (!predict_x0) unsupported("predict_x0", "is false: flow_prediction needs the x0 (data) form");
  if (thresholding) unsupported("thresholding", "is true: dynamic thresholding is not implemented");
  if (timestep_spacing != "linspace" && timestep_spacing != "leading" && timestep_spacing != "trailing") {
    bad("timestep_spacing", "must be 'linspace', 'leading' or 'trailing', got '" + timestep_spacing + "'");
  }
  if (!(flow_shift > 0.0) || !std::isfinite(flow_shift)) {
    bad("flow_shift", "must be a positive number, got " + std::to_string(flow_shift));
  }
  if (shift_terminal && !(*shift_terminal < 1.0)) {
    bad("shift_terminal", "must be below 1, got " + std::to_string(*shift_terminal));
  }
}

// ============================== scheduler ==============================

UniPCMultistepScheduler::UniPCMultistepScheduler(UniPCConfig config) : config_(std::move(config)) {
  config_.validate();
  model_outputs_.assign(static_cast<std::size_t>(config_.solver_order), at::Tensor());
}

void UniPCMultistepScheduler::set_flow_shift(double flow_shift) {
  if (!(flow_shift > 0.0) || !std::isfinite(flow_shift)) {
    bad_argument("flow_shift must be a positive number, got " + std::to_string(flow_shift));
  }
  config_.flow_shift = flow_shift;
}

void UniPCMultistepScheduler::set_timesteps(std::int64_t num_inference_steps, std::optional<double> mu) {
  if (num_inference_steps < 1) {
    bad_argument("num_inference_steps must be at least 1, got " + std::to_string(num_inference_steps));
  }
  // np.linspace(1, 1 / num_train_timesteps, num_inference_steps + 1)[:-1]
  std::vector<double> sigmas =
      schedule::linspace(1.0, 1.0 / static_cast<double>(config_.num_train_timesteps), num_inference_steps + 1);
  sigmas.pop_back();
  build_schedule(std::move(sigmas), mu);
}

void UniPCMultistepScheduler::set_timesteps(const std::vector<double>& sigmas, std::optional<double> mu) {
  if (sigmas.empty()) bad_argument("custom sigmas must not be empty");
  build_schedule(sigmas, mu);
}

void UniPCMultistepScheduler::build_schedule(std::vector<double> sigmas, std::optional<double> mu) {
  if (config_.use_dynamic_shifting && !mu) bad_argument("mu must be given when use_dynamic_shifting is set");
  if (config_.use_dynamic_shifting) {
    schedule::apply_time_shift(sigmas, config_.time_shift_type, *mu);
  } else {
    schedule::apply_static_shift(sigmas, config_.flow_shift);
  }
  if (config_.shift_terminal && *config_.shift_terminal != 0.0) {
    schedule::stretch_to_terminal(sigmas, *config_.shift_terminal);
  }
  // Keeps the first sigma off 1, where lambda = log(alpha) would be -inf.
  constexpr double eps = 1e-6;
  if (std::fabs(sigmas[0] - 1) < eps) sigmas[0] -= eps;

  const std::int64_t n = static_cast<std::int64_t>(sigmas.size());
  const double nt = static_cast<double>(config_.num_train_timesteps);
  timesteps_v_.resize(sigmas.size());
  for (std::size_t i = 0; i < sigmas.size(); ++i) {
    timesteps_v_[i] = static_cast<std::int64_t>(sigmas[i] * nt);  // torch .to(int64) truncates
  }
  const double last = config_.final_sigmas_type == FinalSigmasType::zero ? 0.0 : sigmas.back();
  sigmas_ = at::empty({n + 1}, at::TensorOptions().dtype(at::kFloat));
  float* s = sigmas_.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) s[i] = static_cast<float>(sigmas[static_cast<std::size_t>(i)]);
  s[n] = static_cast<float>(last);
  timesteps_ = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  std::memcpy(timesteps_.data_ptr<std::int64_t>(), timesteps_v_.data(), timesteps_v_.size() * sizeof(std::int64_t));
  num_inference_steps_ = n;
  reset();
}

void UniPCMultistepScheduler::reset() {
  model_outputs_.assign(static_cast<std::size_t>(config_.solver_order), at::Tensor());
  last_sample_ = at::Tensor();
  lower_order_nums_ = 0;
  this_order_ = 0;
  step_index_.reset();
  begin_index_.reset();
}

void UniPCMultistepScheduler::set_begin_index(std::int64_t begin_index) {
  if (begin_index < 0) bad_argument("begin index must not be negative");
  begin_index_ = begin_index;
}

double UniPCMultistepScheduler::boundary_timestep(double boundary_ratio) const {
  return boundary_ratio * static_cast<double>(config_.num_train_timesteps);
}

bool UniPCMultistepScheduler::is_high_noise(std::int64_t timestep, double boundary_ratio) const {
  // `t >= boundary_timestep`: an int64 0-dim tensor against a Python float
  // promotes both to the default dtype, float32.
  return static_cast<float>(timestep) >= static_cast<float>(boundary_timestep(boundary_ratio));
}

std::int64_t UniPCMultistepScheduler::index_for_timestep(std::int64_t timestep) const {
  require_schedule("index_for_timestep");
  std::vector<std::int64_t> hits;
  for (std::size_t i = 0; i < timesteps_v_.size(); ++i) {
    if (timesteps_v_[i] == timestep) hits.push_back(static_cast<std::int64_t>(i));
  }
  if (hits.empty()) return num_inference_steps_ - 1;
  return hits.size() > 1 ? hits[1] : hits[0];
}

void UniPCMultistepScheduler::require_schedule(const char* what) const {
  if (!has_schedule()) bad_argument(std::string(what) + " called before set_timesteps");
}

at::Tensor UniPCMultistepScheduler::sigma_at(std::int64_t i, const at::Device& device) const {
  return at::select(sigmas_, 0, i).to(device);
}

// multistep_uni_p_bh_update: from the sample at sigma[i] to sigma[i + 1],
// using the newest converted output m0 and `order - 1` older ones.
at::Tensor UniPCMultistepScheduler::predictor(const at::Tensor& x, std::int64_t order) const {
  const std::int64_t i = *step_index_;
  const at::Device device = x.device();
  const std::size_t last = model_outputs_.size() - 1;
  const at::Tensor& m0 = model_outputs_[last];

  const at::Tensor sigma_t = sigma_at(i + 1, device);
  const at::Tensor sigma_s0 = sigma_at(i, device);
  const at::Tensor alpha_t = at::rsub(sigma_t, 1);
  const at::Tensor lambda_s0 = lambda_of(sigma_s0);
  const at::Tensor h = lambda_of(sigma_t) - lambda_s0;

  std::vector<at::Tensor> rks, D1s;
  for (std::int64_t k = 1; k < order; ++k) {
    const at::Tensor& mi = model_outputs_[last - static_cast<std::size_t>(k)];
    const at::Tensor rk = (lambda_of(sigma_at(i - k, device)) - lambda_s0) / h;
    rks.push_back(rk);
    D1s.push_back((mi - m0) / rk);
  }
  const UpdateTerms t = update_terms(h, rks, order, config_.solver_type, device);

  const at::Tensor x_t_ = sigma_t / sigma_s0 * x - alpha_t * t.h_phi_1 * m0;
  at::Tensor x_t;
  if (!D1s.empty()) {
    const at::Tensor D1 = at::stack(D1s, 1);  // [B, K, C, ...]
    at::Tensor rhos_p;
    if (order == 2) {
      rhos_p = at::ones({1}, at::TensorOptions().dtype(x.scalar_type()).device(device)) * 0.5;
    } else {
      // R[:-1, :-1], b[:-1]
      rhos_p = at::linalg_solve(t.R.slice(0, 0, -1).slice(1, 0, -1), t.b.slice(0, 0, -1))
                   .to(device)
                   .to(x.scalar_type());
    }
    const at::Tensor pred_res = at::einsum("k,bkc...->bc...", {rhos_p, D1});
    x_t = x_t_ - alpha_t * t.B_h * pred_res;
  } else {
    x_t = x_t_ - alpha_t * t.B_h * 0;  // pred_res = 0
  }
  return x_t.to(x.scalar_type());
}

// multistep_uni_c_bh_update: re-solves the last interval sigma[i - 1] ->
// sigma[i] with the fresh output at sigma[i], refining `this_sample`.
at::Tensor UniPCMultistepScheduler::corrector(const at::Tensor& model_t, const at::Tensor& x,
                                              const at::Tensor& this_sample, std::int64_t order) const {
  const std::int64_t i = *step_index_;
  const at::Device device = this_sample.device();
  const std::size_t last = model_outputs_.size() - 1;
  const at::Tensor& m0 = model_outputs_[last];

  const at::Tensor sigma_t = sigma_at(i, device);
  const at::Tensor sigma_s0 = sigma_at(i - 1, device);
  const at::Tensor alpha_t = at::rsub(sigma_t, 1);
  const at::Tensor lambda_s0 = lambda_of(sigma_s0);
  const at::Tensor h = lambda_of(sigma_t) - lambda_s0;

  std::vector<at::Tensor> rks, D1s;
  for (std::int64_t k = 1; k < order; ++k) {
    const at::Tensor& mi = model_outputs_[last - static_cast<std::size_t>(k)];
    const at::Tensor rk = (lambda_of(sigma_at(i - (k + 1), device)) - lambda_s0) / h;
    rks.push_back(rk);
    D1s.push_back((mi - m0) / rk);
  }
  const UpdateTerms t = update_terms(h, rks, order, config_.solver_type, device);

  at::Tensor rhos_c;
  if (order == 1) {
    rhos_c = at::ones({1}, at::TensorOptions().dtype(x.scalar_type()).device(device)) * 0.5;
  } else {
    rhos_c = at::linalg_solve(t.R, t.b).to(device).to(x.scalar_type());
  }
  const at::Tensor x_t_ = sigma_t / sigma_s0 * x - alpha_t * t.h_phi_1 * m0;
  const at::Tensor D1_t = model_t - m0;
  const at::Tensor rho_last = at::select(rhos_c, 0, -1);
  at::Tensor correction;
  if (!D1s.empty()) {
    const at::Tensor corr_res = at::einsum("k,bkc...->bc...", {rhos_c.slice(0, 0, -1), at::stack(D1s, 1)});
    correction = corr_res + rho_last * D1_t;
  } else {
    correction = rho_last * D1_t + 0;  // corr_res = 0
  }
  const at::Tensor x_t = x_t_ - alpha_t * t.B_h * correction;
  return x_t.to(x.scalar_type());
}

at::Tensor UniPCMultistepScheduler::step(const at::Tensor& model_output, std::int64_t timestep,
                                         const at::Tensor& sample) {
  require_schedule("step");
  if (!model_output.defined() || !sample.defined()) bad_argument("step needs a model output and a sample");
  if (model_output.sizes() != sample.sizes()) bad_argument("model output and sample differ in shape");
  if (sample.dim() < 2) bad_argument("sample needs at least two dims [B, C, ...]");
  if (!at::isFloatingType(model_output.scalar_type()) || !at::isFloatingType(sample.scalar_type())) {
    bad_argument("model output and sample must be floating point");
  }
  if (!step_index_) step_index_ = begin_index_ ? *begin_index_ : index_for_timestep(timestep);
  const std::int64_t i = *step_index_;
  if (i >= num_inference_steps_) {
    bad_argument("step " + std::to_string(i) + " is past the end of the " + std::to_string(num_inference_steps_) +
                 "-step schedule");
  }

  const bool use_corrector =
      i > 0 && last_sample_.defined() &&
      std::find(config_.disable_corrector.begin(), config_.disable_corrector.end(), i - 1) ==
          config_.disable_corrector.end();

  // convert_model_output (flow_prediction, predict_x0): x0 = x - sigma * v,
  // with the CPU 0-dim sigma as the reference leaves it.
  const at::Tensor converted = sample - at::select(sigmas_, 0, i) * model_output;

  at::Tensor x = sample;
  if (use_corrector) x = corrector(converted, last_sample_, sample, this_order_);

  std::rotate(model_outputs_.begin(), model_outputs_.begin() + 1, model_outputs_.end());
  model_outputs_.back() = converted;

  std::int64_t order = config_.solver_order;
  if (config_.lower_order_final) order = std::min(order, num_inference_steps_ - i);
  this_order_ = std::min(order, lower_order_nums_ + 1);  // warm-up
  last_sample_ = x;
  at::Tensor prev = predictor(x, this_order_);

  if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
  step_index_ = i + 1;
  return prev;
}

at::Tensor UniPCMultistepScheduler::add_noise(const at::Tensor& original, const at::Tensor& noise,
                                              const std::vector<std::int64_t>& timesteps) const {
  require_schedule("add_noise");
  if (!original.defined() || !noise.defined()) bad_argument("add_noise needs a sample and a noise tensor");
  if (timesteps.empty()) bad_argument("add_noise needs at least one timestep");
  const at::Tensor sigmas = sigmas_.to(original.device(), original.scalar_type());
  std::vector<std::int64_t> idx;
  for (std::int64_t t : timesteps) {
    if (!begin_index_) {
      idx.push_back(index_for_timestep(t));
    } else {
      idx.push_back(step_index_ ? *step_index_ : *begin_index_);
    }
  }
  for (std::int64_t k : idx) {
    if (k >= sigmas.size(0)) bad_argument("add_noise: step index " + std::to_string(k) + " is past the schedule");
  }
  at::Tensor index = at::empty({static_cast<std::int64_t>(idx.size())}, at::TensorOptions().dtype(at::kLong));
  std::memcpy(index.data_ptr<std::int64_t>(), idx.data(), idx.size() * sizeof(std::int64_t));
  at::Tensor sigma = at::index_select(sigmas, 0, index.to(original.device())).flatten();
  while (sigma.dim() < original.dim()) sigma = sigma.unsqueeze(-1);
  const at::Tensor alpha_t = at::rsub(sigma, 1);
  return alpha_t * original + sigma * noise;
}

}  // namespace mmgen::diffusion
