// FlowMatchEulerDiscreteScheduler (flow_match_euler.hpp). Read beside
// diffusers' scheduling_flow_match_euler_discrete.py and
// pipelines/qwenimage/pipeline_qwenimage{,_img2img}.py: the numpy stages run
// in the precision the reference runs them in (float64 for the default
// spacing, float32 once custom sigmas or timesteps are given), the torch
// stages are the same ATen ops on float32 tensors.
#include "mmgen/diffusion/flow_match_euler.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rsub.h>
#include <ATen/ops/select.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "mmgen/diffusion/noise.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "scheduler_config.hpp"

namespace mmgen::diffusion {

namespace {

constexpr const char* kClassName = "FlowMatchEulerDiscreteScheduler";

using io::LoadError;
using io::LoadErrorKind;

using scheduler_config::error;

[[noreturn]] void bad_argument(const std::string& what) {
  throw std::invalid_argument(std::string(kClassName) + ": " + what);
}

at::Tensor float_tensor(const std::vector<float>& v) {
  at::Tensor t = at::empty({static_cast<std::int64_t>(v.size())}, at::TensorOptions().dtype(at::kFloat));
  if (!v.empty()) std::memcpy(t.data_ptr<float>(), v.data(), v.size() * sizeof(float));
  return t;
}

std::vector<float> to_vector(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  const float* p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

// The numpy stage of set_timesteps after the sigmas exist: shift, stretch.
template <class T>
void shift_and_stretch(std::vector<T>& sigmas, const FlowMatchEulerConfig& cfg, double shift,
                       std::optional<double> mu) {
  if (cfg.use_dynamic_shifting) {
    schedule::apply_time_shift(sigmas, cfg.time_shift_type, *mu);
  } else {
    schedule::apply_static_shift(sigmas, shift);
  }
  // `if self.config.shift_terminal:` — None and 0.0 both skip.
  if (cfg.shift_terminal && *cfg.shift_terminal != 0.0) schedule::stretch_to_terminal(sigmas, *cfg.shift_terminal);
}

}  // namespace

// =============================== config ===============================

FlowMatchEulerConfig FlowMatchEulerConfig::from_json(const io::HfConfig& cfg) {
  scheduler_config::expect_class(cfg, kClassName);
  FlowMatchEulerConfig c;
  c.source = cfg.source();
  c.num_train_timesteps = cfg.get_int("num_train_timesteps", c.num_train_timesteps);
  c.shift = cfg.get_double("shift", c.shift);
  c.use_dynamic_shifting = cfg.get_bool("use_dynamic_shifting", c.use_dynamic_shifting);
  c.base_shift = cfg.get_double("base_shift", c.base_shift);
  c.max_shift = cfg.get_double("max_shift", c.max_shift);
  c.base_image_seq_len = cfg.get_int("base_image_seq_len", c.base_image_seq_len);
  c.max_image_seq_len = cfg.get_int("max_image_seq_len", c.max_image_seq_len);
  c.invert_sigmas = cfg.get_bool("invert_sigmas", c.invert_sigmas);
  c.shift_terminal = cfg.opt_double("shift_terminal");
  c.use_karras_sigmas = cfg.get_bool("use_karras_sigmas", c.use_karras_sigmas);
  c.use_exponential_sigmas = cfg.get_bool("use_exponential_sigmas", c.use_exponential_sigmas);
  c.use_beta_sigmas = cfg.get_bool("use_beta_sigmas", c.use_beta_sigmas);
  c.time_shift_type = scheduler_config::time_shift_type(cfg.get_string("time_shift_type", "exponential"), c.source);
  c.stochastic_sampling = cfg.get_bool("stochastic_sampling", c.stochastic_sampling);
  c.validate();
  return c;
}

FlowMatchEulerConfig FlowMatchEulerConfig::load(const std::filesystem::path& path) {
  std::error_code ec;
  const bool dir = std::filesystem::is_directory(path, ec);
  return from_json(io::HfConfig::load(dir ? path / "scheduler_config.json" : path));
}

void FlowMatchEulerConfig::validate() const {
  if (num_train_timesteps < 1) {
    error(LoadErrorKind::bad_config, source, "num_train_timesteps",
          "must be at least 1, got " + std::to_string(num_train_timesteps));
  }
  if (!(shift > 0.0) || !std::isfinite(shift)) {
    error(LoadErrorKind::bad_config, source, "shift", "must be a positive number, got " + std::to_string(shift));
  }
  if (int(use_karras_sigmas) + int(use_exponential_sigmas) + int(use_beta_sigmas) > 1) {
    error(LoadErrorKind::bad_config, source, "use_karras_sigmas",
          "only one of use_beta_sigmas, use_exponential_sigmas, use_karras_sigmas can be set");
  }
  if (use_beta_sigmas) {
    error(LoadErrorKind::unsupported, source, "use_beta_sigmas",
          "is true: beta sigma spacing (scipy.stats.beta.ppf) is not implemented in this port");
  }
  if (shift_terminal && !(*shift_terminal < 1.0)) {
    error(LoadErrorKind::bad_config, source, "shift_terminal",
          "must be below 1, got " + std::to_string(*shift_terminal));
  }
  if (use_dynamic_shifting && max_image_seq_len == base_image_seq_len) {
    error(LoadErrorKind::bad_config, source, "max_image_seq_len",
          "equals base_image_seq_len; the dynamic shift needs two distinct lengths");
  }
}

double FlowMatchEulerConfig::mu_for(std::int64_t image_seq_len) const {
  if (image_seq_len < 1) bad_argument("image_seq_len must be positive, got " + std::to_string(image_seq_len));
  return schedule::calculate_shift(image_seq_len, base_image_seq_len, max_image_seq_len, base_shift, max_shift);
}

// ============================== scheduler ==============================

FlowMatchEulerDiscreteScheduler::FlowMatchEulerDiscreteScheduler(FlowMatchEulerConfig config)
    : config_(std::move(config)), shift_(config_.shift) {
  config_.validate();
  // The constructor's training schedule; only its ends survive set_timesteps,
  // as sigma_min / sigma_max for the default spacing.
  //   timesteps = np.linspace(1, N, N, dtype=float32)[::-1]; sigmas = timesteps / N
  const std::int64_t n = config_.num_train_timesteps;
  const std::vector<double> lin = schedule::linspace(1.0, static_cast<double>(n), n);
  std::vector<float> ts(lin.rbegin(), lin.rend());  // the cast to float32 happens here
  at::Tensor sigmas = float_tensor(ts) / n;
  if (!config_.use_dynamic_shifting) {
    sigmas = shift_ * sigmas / (1 + (shift_ - 1) * sigmas);
  }
  sigma_min_ = static_cast<double>(sigmas[n - 1].item<float>());
  sigma_max_ = static_cast<double>(sigmas[0].item<float>());
}

void FlowMatchEulerDiscreteScheduler::set_shift(double shift) {
  if (!(shift > 0.0) || !std::isfinite(shift)) bad_argument("shift must be a positive number");
  shift_ = shift;
}

void FlowMatchEulerDiscreteScheduler::set_begin_index(std::int64_t begin_index) {
  if (begin_index < 0) bad_argument("begin index must not be negative");
  begin_index_ = begin_index;
}

void FlowMatchEulerDiscreteScheduler::set_timesteps(std::int64_t num_inference_steps, std::optional<double> mu) {
  set_timesteps(num_inference_steps, nullptr, mu, nullptr);
}

void FlowMatchEulerDiscreteScheduler::set_timesteps(std::optional<std::int64_t> num_inference_steps,
                                                    const std::vector<double>* sigmas, std::optional<double> mu,
                                                    const std::vector<double>* timesteps) {
  if (config_.use_dynamic_shifting && !mu) bad_argument("mu must be given when use_dynamic_shifting is set");
  if (mu && !std::isfinite(*mu)) bad_argument("mu must be finite");
  if (sigmas && timesteps && sigmas->size() != timesteps->size()) {
    bad_argument("sigmas and timesteps must have the same length");
  }
  std::int64_t n = 0;
  if (num_inference_steps) {
    n = *num_inference_steps;
    if ((sigmas && static_cast<std::int64_t>(sigmas->size()) != n) ||
        (timesteps && static_cast<std::int64_t>(timesteps->size()) != n)) {
      bad_argument("sigmas and timesteps must have num_inference_steps (" + std::to_string(n) + ") entries");
    }
  } else if (sigmas || timesteps) {
    n = static_cast<std::int64_t>(sigmas ? sigmas->size() : timesteps->size());
  }
  if (n < 1) bad_argument("num_inference_steps must be at least 1, got " + std::to_string(n));

  // 1-3: the numpy stage. Custom sigmas or timesteps are float32 arrays from
  // here on; the default spacing stays float64.
  std::vector<float> given_timesteps;
  if (timesteps) given_timesteps.assign(timesteps->begin(), timesteps->end());
  std::vector<double> shaped;  // the schedule after shifting, widened exactly when it was float32
  if (sigmas || timesteps) {
    std::vector<float> s32;
    if (sigmas) {
      s32.assign(sigmas->begin(), sigmas->end());
    } else {  // sigmas = timesteps / num_train_timesteps, float32
      const float nt = static_cast<float>(config_.num_train_timesteps);
      for (float t : given_timesteps) s32.push_back(t / nt);
    }
    shift_and_stretch(s32, config_, shift_, mu);
    shaped.assign(s32.begin(), s32.end());
  } else {
    const double nt = static_cast<double>(config_.num_train_timesteps);
    shaped = schedule::linspace(sigma_max_ * nt, sigma_min_ * nt, n);
    for (double& v : shaped) v = v / nt;
    shift_and_stretch(shaped, config_, shift_, mu);
  }
  // 4: optional re-spacing between the shifted ends (float64 results).
  if (config_.use_karras_sigmas) {
    shaped = schedule::karras_sigmas(shaped.front(), shaped.back(), n);
  } else if (config_.use_exponential_sigmas) {
    shaped = schedule::exponential_sigmas(shaped.front(), shaped.back(), n);
  }

  // 5-6: the torch stage, float32.
  std::vector<float> s32(shaped.begin(), shaped.end());
  at::Tensor sig = float_tensor(s32);
  at::Tensor ts = timesteps ? float_tensor(given_timesteps) : sig * config_.num_train_timesteps;
  if (config_.invert_sigmas) {
    sig = at::rsub(sig, 1.0);
    ts = sig * config_.num_train_timesteps;
    sig = at::cat({sig, at::ones({1}, at::kFloat)});
  } else {
    sig = at::cat({sig, at::zeros({1}, at::kFloat)});
  }

  num_inference_steps_ = n;
  timesteps_ = ts;
  sigmas_ = sig;
  timesteps_v_ = to_vector(ts);
  sigmas_v_ = to_vector(sig);
  step_index_.reset();
  begin_index_.reset();
}

void FlowMatchEulerDiscreteScheduler::set_timesteps_qwen_image(std::int64_t num_inference_steps,
                                                               std::int64_t image_seq_len) {
  if (num_inference_steps < 1) bad_argument("num_inference_steps must be at least 1");
  // sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
  const std::vector<double> sigmas =
      schedule::linspace(1.0, 1.0 / static_cast<double>(num_inference_steps), num_inference_steps);
  set_timesteps(num_inference_steps, &sigmas, config_.mu_for(image_seq_len), nullptr);
}

StrengthSchedule FlowMatchEulerDiscreteScheduler::apply_strength(double strength) {
  require_schedule("apply_strength");
  if (!(strength >= 0.0 && strength <= 1.0)) bad_argument("strength must be in [0, 1], got " + std::to_string(strength));
  const std::int64_t n = num_inference_steps_;
  // init_timestep = min(N * strength, N); t_start = int(max(N - init_timestep, 0))
  const double init_timestep = std::min(static_cast<double>(n) * strength, static_cast<double>(n));
  const auto t_start = static_cast<std::int64_t>(std::max(static_cast<double>(n) - init_timestep, 0.0));
  StrengthSchedule out;
  out.t_start = t_start;
  out.num_inference_steps = n - t_start;
  if (out.num_inference_steps < 1) {
    bad_argument("strength " + std::to_string(strength) + " leaves " + std::to_string(out.num_inference_steps) +
                 " of " + std::to_string(n) + " steps; at least one is needed");
  }
  out.timesteps.assign(timesteps_v_.begin() + t_start, timesteps_v_.end());
  begin_index_ = t_start;  // order 1
  return out;
}

void FlowMatchEulerDiscreteScheduler::require_schedule(const char* what) const {
  if (!has_schedule()) bad_argument(std::string(what) + " called before set_timesteps");
}

std::int64_t FlowMatchEulerDiscreteScheduler::index_for_timestep(float timestep) const {
  require_schedule("index_for_timestep");
  std::vector<std::int64_t> hits;
  for (std::size_t i = 0; i < timesteps_v_.size(); ++i) {
    if (timesteps_v_[i] == timestep) hits.push_back(static_cast<std::int64_t>(i));
  }
  if (hits.empty()) bad_argument("timestep " + std::to_string(timestep) + " is not in the schedule");
  return hits.size() > 1 ? hits[1] : hits[0];
}

at::Tensor FlowMatchEulerDiscreteScheduler::step(const at::Tensor& model_output, float timestep,
                                                 const at::Tensor& sample, at::Generator* generator) {
  require_schedule("step");
  if (!model_output.defined() || !sample.defined()) bad_argument("step needs a model output and a sample");
  if (model_output.sizes() != sample.sizes()) bad_argument("model output and sample differ in shape");
  if (!at::isFloatingType(model_output.scalar_type()) || !at::isFloatingType(sample.scalar_type())) {
    bad_argument("model output and sample must be floating point");
  }
  if (config_.stochastic_sampling && generator == nullptr) {
    bad_argument("stochastic_sampling is set: step needs a generator for the re-noising");
  }
  if (!step_index_) step_index_ = begin_index_ ? *begin_index_ : index_for_timestep(timestep);
  const std::int64_t i = *step_index_;
  if (i + 1 >= sigmas_.size(0)) {
    bad_argument("step " + std::to_string(i) + " is past the end of the " + std::to_string(num_inference_steps_) +
                 "-step schedule");
  }

  // Upcast, as the reference does, so the update runs in float32.
  const at::Tensor x = sample.to(at::kFloat);
  const at::Tensor sigma = at::select(sigmas_, 0, i);          // 0-dim float32
  const at::Tensor sigma_next = at::select(sigmas_, 0, i + 1);  // 0-dim float32
  at::Tensor prev;
  if (config_.stochastic_sampling) {
    const at::Tensor x0 = x - sigma * model_output;
    const at::Tensor noise = randn_tensor(x.sizes(), *generator, x.scalar_type(), x.device());
    prev = at::rsub(sigma_next, 1.0) * x0 + sigma_next * noise;
  } else {
    const at::Tensor dt = sigma_next - sigma;
    prev = x + dt * model_output;
  }
  step_index_ = i + 1;
  return prev.to(model_output.scalar_type());
}

at::Tensor FlowMatchEulerDiscreteScheduler::scale_noise(const at::Tensor& sample, const std::vector<float>& timesteps,
                                                        const at::Tensor& noise) const {
  require_schedule("scale_noise");
  if (!sample.defined() || !noise.defined()) bad_argument("scale_noise needs a sample and a noise tensor");
  if (timesteps.empty()) bad_argument("scale_noise needs at least one timestep");
  const at::Tensor sigmas = sigmas_.to(sample.device(), sample.scalar_type());
  std::vector<std::int64_t> idx;
  for (float t : timesteps) {
    if (!begin_index_) {
      idx.push_back(index_for_timestep(t));
    } else {
      idx.push_back(step_index_ ? *step_index_ : *begin_index_);  // inpaint after a step / img2img start
    }
  }
  for (std::int64_t k : idx) {
    if (k >= sigmas.size(0)) bad_argument("scale_noise: step index " + std::to_string(k) + " is past the schedule");
  }
  at::Tensor index = at::empty({static_cast<std::int64_t>(idx.size())}, at::TensorOptions().dtype(at::kLong));
  std::memcpy(index.data_ptr<std::int64_t>(), idx.data(), idx.size() * sizeof(std::int64_t));
  at::Tensor sigma = at::index_select(sigmas, 0, index.to(sample.device())).flatten();
  while (sigma.dim() < sample.dim()) sigma = sigma.unsqueeze(-1);
  return sigma * noise + at::rsub(sigma, 1.0) * sample;
}

}  // namespace mmgen::diffusion
