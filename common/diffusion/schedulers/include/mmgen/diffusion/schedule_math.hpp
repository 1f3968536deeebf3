// Sigma-schedule arithmetic shared by the flow-matching schedulers, written so
// that every value equals what diffusers computes with numpy. Torch-free.
//
// The reference builds its schedules in numpy, sometimes in float64 (the
// default path, UniPC's flow sigmas) and sometimes in float32 (when a pipeline
// passes `sigmas`, set_timesteps converts them with astype(np.float32) first).
// numpy 2 treats Python scalars as "weak": a Python float meeting a float32
// array is rounded to float32 and the operation runs in float32. The templates
// below take T = float or double and round every Python-side constant to T in
// the same place numpy does, so one source serves both precisions.
//
// Compile with -ffp-contract=off (the CMake target does): a fused multiply-add
// would round once where numpy rounds twice.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace mmgen::diffusion {

// How the resolution-dependent shift maps sigma (diffusers' time_shift_type).
enum class TimeShiftType { exponential, linear };
std::string_view to_string(TimeShiftType t);

namespace schedule {

// numpy.linspace(start, stop, num) (endpoint=True) in float64, value for value:
// y[i] = i * ((stop - start) / (num - 1)) + start, the last forced to stop.
std::vector<double> linspace(double start, double stop, std::int64_t num);

// The Qwen-Image / Flux pipelines' calculate_shift: mu interpolated linearly
// in the image token count between (base_seq_len, base_shift) and
// (max_seq_len, max_shift). Throws std::invalid_argument when the two
// lengths are equal (the reference divides by zero).
double calculate_shift(std::int64_t image_seq_len, std::int64_t base_seq_len, std::int64_t max_seq_len,
                       double base_shift, double max_shift);

// sigma' = shift * sigma / (1 + (shift - 1) * sigma), elementwise in T.
template <class T>
void apply_static_shift(std::vector<T>& sigmas, double shift);

// The dynamic (mu) shift with the exponent fixed at 1 as both schedulers call
// it: exponential  sigma' = e^mu / (e^mu + (1/sigma - 1)),
//       linear       sigma' = mu / (mu + (1/sigma - 1)).
template <class T>
void apply_time_shift(std::vector<T>& sigmas, TimeShiftType type, double mu);

// Stretches the schedule so its last value becomes shift_terminal:
// 1 - (1 - sigma) / ((1 - sigma_last) / (1 - shift_terminal)).
// Throws std::invalid_argument when the last sigma is 1 (a one-step schedule):
// the reference divides 0 by 0 there and carries NaN into every later value.
template <class T>
void stretch_to_terminal(std::vector<T>& sigmas, double shift_terminal);

// Karras et al. (rho = 7) and log-linear re-spacings between the first and
// last sigma, as diffusers' _convert_to_karras / _convert_to_exponential when
// the config has no sigma_min / sigma_max (FlowMatchEulerDiscrete's case).
std::vector<double> karras_sigmas(double sigma_max, double sigma_min, std::int64_t num);
std::vector<double> exponential_sigmas(double sigma_max, double sigma_min, std::int64_t num);

}  // namespace schedule
}  // namespace mmgen::diffusion
