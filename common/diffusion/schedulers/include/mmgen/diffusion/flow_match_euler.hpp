// FlowMatchEulerDiscreteScheduler, ported from diffusers'
// schedulers/scheduling_flow_match_euler_discrete.py, plus the schedule glue
// the Qwen-Image pipelines wrap around it (calculate_shift, sigmas =
// linspace(1, 1/N, N), the img2img/inpaint strength slicing).
//
// A plain model-free object: set_timesteps() builds the schedule, the
// pipeline loops over timesteps() and calls step() with each model output.
// The schedule is computed with the reference's dtypes (numpy float64 or
// float32, then torch float32) so timesteps and sigmas equal diffusers' value
// for value; step() and scale_noise() use the same ATen ops in the same order
// and dtypes.
//
//   Qwen-Image, text-to-image:
//     FlowMatchEulerDiscreteScheduler s = FlowMatchEulerDiscreteScheduler::load(folder / "scheduler");
//     s.set_timesteps_qwen_image(steps, image_seq_len);  // (h/16) * (w/16) tokens
//     s.set_begin_index(0);
//     for (float t : s.timesteps_vector()) latents = s.step(model(latents, t / 1000), t, latents);
#pragma once

#include <ATen/core/Generator.h>
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

// scheduler_config.json of a FlowMatchEulerDiscreteScheduler. Field names are
// the config keys; defaults are the reference constructor's.
struct FlowMatchEulerConfig {
  std::int64_t num_train_timesteps = 1000;
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5;  // a JSON null reads as the default
  double max_shift = 1.15;
  std::int64_t base_image_seq_len = 256;
  std::int64_t max_image_seq_len = 4096;
  bool invert_sigmas = false;
  std::optional<double> shift_terminal;  // null / absent / 0: no stretching
  bool use_karras_sigmas = false;
  bool use_exponential_sigmas = false;
  bool use_beta_sigmas = false;  // not implemented (scipy's beta ppf): rejected
  TimeShiftType time_shift_type = TimeShiftType::exponential;
  bool stochastic_sampling = false;

  std::string source = "FlowMatchEulerDiscreteScheduler config";  // what errors call it

  // Reads the keys above; unknown keys are ignored as diffusers ignores them.
  // A `_class_name` other than FlowMatchEulerDiscreteScheduler, a value of the
  // wrong type and a setting this port does not implement are LoadErrors
  // naming the file and key.
  static FlowMatchEulerConfig from_json(const io::HfConfig& cfg);
  // <folder>/scheduler_config.json, or the file itself.
  static FlowMatchEulerConfig load(const std::filesystem::path& path);

  // Throws io::LoadError (bad_config / unsupported) naming `source`.
  void validate() const;

  // The pipelines' mu for an image of `image_seq_len` latent tokens, from this
  // config's base/max image seq len and shift.
  double mu_for(std::int64_t image_seq_len) const;
};

// What the img2img / inpaint pipelines' get_timesteps() leaves.
struct StrengthSchedule {
  std::int64_t t_start = 0;              // first index of the full schedule that runs
  std::int64_t num_inference_steps = 0;  // steps left
  std::vector<float> timesteps;          // timesteps[t_start:]
};

class FlowMatchEulerDiscreteScheduler {
 public:
  explicit FlowMatchEulerDiscreteScheduler(FlowMatchEulerConfig config);
  static FlowMatchEulerDiscreteScheduler load(const std::filesystem::path& path) {
    return FlowMatchEulerDiscreteScheduler(FlowMatchEulerConfig::load(path));
  }

  const FlowMatchEulerConfig& config() const { return config_; }

  // ---- schedule -------------------------------------------------------------
  // set_timesteps(num_inference_steps, sigmas=None, mu=mu, timesteps=None):
  // num_inference_steps points spaced over the training range.
  void set_timesteps(std::int64_t num_inference_steps, std::optional<double> mu = std::nullopt);
  // Custom sigmas and/or timesteps, as a pipeline passes them (the reference
  // converts both to float32 before shifting). num_inference_steps, when
  // given, must equal their length. mu is required with use_dynamic_shifting.
  void set_timesteps(std::optional<std::int64_t> num_inference_steps, const std::vector<double>* sigmas,
                     std::optional<double> mu, const std::vector<double>* timesteps = nullptr);
  // What QwenImagePipeline (and its img2img / inpaint / edit siblings) do:
  // sigmas = linspace(1, 1/N, N), mu = calculate_shift(image_seq_len, config).
  void set_timesteps_qwen_image(std::int64_t num_inference_steps, std::int64_t image_seq_len);
  // The img2img / inpaint get_timesteps(num_inference_steps, strength) on the
  // current schedule of N steps: keeps the last min(N * strength, N) steps
  // (t_start = int(max(N - N * strength, 0))) and sets the begin index there.
  // strength must be in [0, 1]; fewer than one remaining step is an error, as
  // in those pipelines.
  StrengthSchedule apply_strength(double strength);

  // Value for set_shift(); used by later set_timesteps calls without dynamic shifting.
  void set_shift(double shift);
  double shift() const { return shift_; }

  bool has_schedule() const { return num_inference_steps_ > 0; }
  std::int64_t num_inference_steps() const { return num_inference_steps_; }
  const at::Tensor& timesteps() const { return timesteps_; }  // [N] float32, CPU
  const at::Tensor& sigmas() const { return sigmas_; }        // [N + 1] float32, CPU (final 0, or 1 if inverted)
  const std::vector<float>& timesteps_vector() const { return timesteps_v_; }
  const std::vector<float>& sigmas_vector() const { return sigmas_v_; }
  // The training-range ends the default spacing runs between (constructor values).
  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }

  // ---- stepping -------------------------------------------------------------
  std::optional<std::int64_t> step_index() const { return step_index_; }
  std::optional<std::int64_t> begin_index() const { return begin_index_; }
  void set_begin_index(std::int64_t begin_index);
  // Forgets the step position (a new job on the same schedule).
  void reset() {
    step_index_.reset();
    begin_index_.reset();
  }
  // Index of `timestep` in the schedule: the second match when it occurs more
  // than once (so an img2img start does not skip a sigma). Throws when absent.
  std::int64_t index_for_timestep(float timestep) const;

  // One Euler step x_{t_next} = x_t + (sigma_next - sigma) * v, computed in
  // float32 and cast back to model_output's dtype. model_output and sample:
  // the same shape (any), sample of any floating dtype. The first call takes
  // its index from the begin index, or from `timestep` when none is set.
  // With stochastic_sampling the re-noising draws from `generator`
  // (required then).
  at::Tensor step(const at::Tensor& model_output, float timestep, const at::Tensor& sample,
                  at::Generator* generator = nullptr);

  // Forward process sigma * noise + (1 - sigma) * sample in sample's dtype,
  // one sigma per entry of `timesteps` ([B] or [1], broadcast over dim 0):
  // the sigma at the current step index when stepping has begun (inpaint),
  // else at the begin index (img2img), else looked up per timestep.
  at::Tensor scale_noise(const at::Tensor& sample, const std::vector<float>& timesteps,
                         const at::Tensor& noise) const;

 private:
  void require_schedule(const char* what) const;

  FlowMatchEulerConfig config_;
  double shift_ = 1.0;
  double sigma_min_ = 0.0;
  double sigma_max_ = 1.0;
  std::int64_t num_inference_steps_ = 0;
  at::Tensor timesteps_;  // [N] float32
  at::Tensor sigmas_;     // [N + 1] float32
  std::vector<float> timesteps_v_;
  std::vector<float> sigmas_v_;
  std::optional<std::int64_t> step_index_;
  std::optional<std::int64_t> begin_index_;
};

}  // namespace mmgen::diffusion
