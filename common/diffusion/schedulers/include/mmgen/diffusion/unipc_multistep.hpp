// UniPCMultistepScheduler in its flow-matching form, ported from diffusers'
// schedulers/scheduling_unipc_multistep.py as the Wan 2.2 pipelines configure
// it (prediction_type flow_prediction, use_flow_sigmas, flow_shift, order 2,
// bh2, predict_x0, lower_order_final, final sigma zero).
//
// A plain model-free object holding the multistep state of one job: the last
// `solver_order` converted model outputs (x0 predictions), the sample before
// the last predictor step (for the corrector), and how many warm-up steps
// have run. set_timesteps() or reset() starts a new job.
//
//   Wan T2V / TI2V:
//     UniPCMultistepScheduler s = UniPCMultistepScheduler::load(folder / "scheduler");
//     s.set_flow_shift(job.flow_shift);          // optional per-job override
//     s.set_timesteps(steps);
//     s.set_begin_index(0);
//     for (std::int64_t t : s.timesteps_vector()) {
//       bool high = s.is_high_noise(t, boundary_ratio);  // A14B expert switch
//       latents = s.step(model(latents, t), t, latents);
//     }
//
// Other UniPC configurations (the DDPM-beta sigma schedule, epsilon / v /
// sample prediction, Karras / exponential / beta spacings, thresholding, a
// solver_p) are rejected with an io::LoadError naming the key.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mmgen/diffusion/schedule_math.hpp"

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::diffusion {

enum class UniPCSolverType { bh1, bh2 };
enum class FinalSigmasType { zero, sigma_min };

// scheduler_config.json of a UniPCMultistepScheduler. Field names are the
// config keys; defaults are the reference constructor's. Keys that only matter
// outside the flow-sigma path (beta_*, trained_betas, steps_offset,
// rescale_betas_zero_snr, sigma_min/max, the thresholding values) are
// validated where the reference validates them and otherwise do not change
// the math here.
struct UniPCConfig {
  std::int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";
  std::int64_t solver_order = 2;
  std::string prediction_type = "epsilon";  // only flow_prediction is implemented
  bool thresholding = false;                // not implemented
  bool predict_x0 = true;
  UniPCSolverType solver_type = UniPCSolverType::bh2;  // midpoint / heun / logrho read as bh2, as the reference
  bool lower_order_final = true;
  std::vector<std::int64_t> disable_corrector;  // step indices whose corrector is skipped
  bool use_karras_sigmas = false;               // not implemented
  bool use_exponential_sigmas = false;          // not implemented
  bool use_beta_sigmas = false;                 // not implemented
  bool use_flow_sigmas = false;                 // must be true
  double flow_shift = 1.0;
  std::string timestep_spacing = "linspace";  // no effect with flow sigmas (the reference overwrites them)
  std::int64_t steps_offset = 0;
  FinalSigmasType final_sigmas_type = FinalSigmasType::zero;
  bool use_dynamic_shifting = false;
  TimeShiftType time_shift_type = TimeShiftType::exponential;
  std::optional<double> shift_terminal;

  std::string source = "UniPCMultistepScheduler config";  // what errors call it

  static UniPCConfig from_json(const io::HfConfig& cfg);
  // <folder>/scheduler_config.json, or the file itself.
  static UniPCConfig load(const std::filesystem::path& path);
  // Throws io::LoadError (bad_config / unsupported) naming `source`.
  void validate() const;
};

class UniPCMultistepScheduler {
 public:
  explicit UniPCMultistepScheduler(UniPCConfig config);
  static UniPCMultistepScheduler load(const std::filesystem::path& path) {
    return UniPCMultistepScheduler(UniPCConfig::load(path));
  }

  const UniPCConfig& config() const { return config_; }

  // Per-job flow shift (diffusers: UniPCMultistepScheduler.from_config(config,
  // flow_shift=s)); takes effect at the next set_timesteps.
  void set_flow_shift(double flow_shift);

  // ---- schedule -------------------------------------------------------------
  // Flow sigmas linspace(1, 1/num_train_timesteps, N + 1)[:-1], shifted
  // (flow_shift, or mu with use_dynamic_shifting), optionally stretched to
  // shift_terminal, the first nudged below 1 by 1e-6; timesteps =
  // int64(sigma * num_train_timesteps); a final sigma appended. Resets the
  // multistep state.
  void set_timesteps(std::int64_t num_inference_steps, std::optional<double> mu = std::nullopt);
  // Custom float64 sigmas (length N) instead of the linspace.
  void set_timesteps(const std::vector<double>& sigmas, std::optional<double> mu = std::nullopt);

  bool has_schedule() const { return num_inference_steps_ > 0; }
  std::int64_t num_inference_steps() const { return num_inference_steps_; }
  const at::Tensor& timesteps() const { return timesteps_; }  // [N] int64, CPU
  const at::Tensor& sigmas() const { return sigmas_; }        // [N + 1] float32, CPU
  const std::vector<std::int64_t>& timesteps_vector() const { return timesteps_v_; }

  // Wan 2.2 A14B: the high-noise expert (`transformer`) runs while
  // t >= boundary_ratio * num_train_timesteps, compared as the pipeline's
  // torch comparison does (in float32).
  double boundary_timestep(double boundary_ratio) const;
  bool is_high_noise(std::int64_t timestep, double boundary_ratio) const;

  // ---- stepping -------------------------------------------------------------
  std::optional<std::int64_t> step_index() const { return step_index_; }
  std::optional<std::int64_t> begin_index() const { return begin_index_; }
  void set_begin_index(std::int64_t begin_index);
  // Clears the multistep state and the step position, keeping the schedule.
  void reset();
  // Index of `timestep`: the second match when repeated, the last index when absent.
  std::int64_t index_for_timestep(std::int64_t timestep) const;

  // One UniPC step: converts model_output (flow velocity) to an x0
  // prediction, runs the corrector on `sample` when a previous step exists,
  // then the predictor towards the next sigma. model_output and sample: the
  // same shape [B, C, ...] (at least 2 dims); the result has sample's dtype.
  at::Tensor step(const at::Tensor& model_output, std::int64_t timestep, const at::Tensor& sample);

  // Forward process (1 - sigma) * x0 + sigma * noise in original's dtype, one
  // sigma per timestep ([B] or [1]): at the step index once stepping began,
  // else the begin index, else looked up per timestep.
  at::Tensor add_noise(const at::Tensor& original, const at::Tensor& noise,
                       const std::vector<std::int64_t>& timesteps) const;

  // Multistep state, for inspection and tests.
  const std::vector<at::Tensor>& model_outputs() const { return model_outputs_; }  // oldest first; undefined = none yet
  const at::Tensor& last_sample() const { return last_sample_; }
  std::int64_t lower_order_nums() const { return lower_order_nums_; }
  std::int64_t this_order() const { return this_order_; }

 private:
  void build_schedule(std::vector<double> sigmas, std::optional<double> mu);
  void require_schedule(const char* what) const;
  at::Tensor sigma_at(std::int64_t i, const at::Device& device) const;  // 0-dim float32
  at::Tensor predictor(const at::Tensor& sample, std::int64_t order) const;
  at::Tensor corrector(const at::Tensor& this_model_output, const at::Tensor& last_sample,
                       const at::Tensor& this_sample, std::int64_t order) const;

  UniPCConfig config_;
  std::int64_t num_inference_steps_ = 0;
  at::Tensor timesteps_;  // [N] int64
  at::Tensor sigmas_;     // [N + 1] float32
  std::vector<std::int64_t> timesteps_v_;

  std::vector<at::Tensor> model_outputs_;  // [solver_order], oldest first
  at::Tensor last_sample_;
  std::int64_t lower_order_nums_ = 0;
  std::int64_t this_order_ = 0;
  std::optional<std::int64_t> step_index_;
  std::optional<std::int64_t> begin_index_;
};

}  // namespace mmgen::diffusion
