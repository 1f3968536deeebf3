// Sigma-schedule arithmetic (schedule_math.hpp). Each formula keeps numpy's
// evaluation order and rounds the Python-side constants to T exactly where
// numpy's weak-scalar rule does; comments name the Python expression.
#include "mmgen/diffusion/schedule_math.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace mmgen::diffusion {

std::string_view to_string(TimeShiftType t) {
  switch (t) {
    case TimeShiftType::exponential: return "exponential";
    case TimeShiftType::linear: return "linear";
  }
  return "?";
}

namespace schedule {

std::vector<double> linspace(double start, double stop, std::int64_t num) {
  if (num < 0) throw std::invalid_argument("linspace: negative number of samples " + std::to_string(num));
  std::vector<double> y(static_cast<std::size_t>(num));
  const std::int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / static_cast<double>(div);
    for (std::int64_t i = 0; i < num; ++i) {
      double v = static_cast<double>(i);
      if (step == 0) {  // numpy's denormal guard: (i / div) * delta
        v = v / static_cast<double>(div) * delta;
      } else {
        v = v * step;
      }
      y[static_cast<std::size_t>(i)] = v + start;
    }
    y.back() = stop;
  } else if (num == 1) {
    y[0] = 0.0 * delta + start;
  }
  return y;
}

double calculate_shift(std::int64_t image_seq_len, std::int64_t base_seq_len, std::int64_t max_seq_len,
                       double base_shift, double max_shift) {
  if (max_seq_len == base_seq_len) {
    throw std::invalid_argument("calculate_shift: max_image_seq_len equals base_image_seq_len (" +
                                std::to_string(base_seq_len) + "), the shift slope is undefined");
  }
  // m = (max_shift - base_shift) / (max_seq_len - base_seq_len); b = base_shift - m * base_seq_len
  const double m = (max_shift - base_shift) / static_cast<double>(max_seq_len - base_seq_len);
  const double b = base_shift - m * static_cast<double>(base_seq_len);
  return static_cast<double>(image_seq_len) * m + b;
}

template <class T>
void apply_static_shift(std::vector<T>& sigmas, double shift) {
  // shift * sigmas / (1 + (shift - 1) * sigmas); (shift - 1) is a Python float.
  const T s = static_cast<T>(shift);
  const T s1 = static_cast<T>(shift - 1.0);
  for (T& v : sigmas) v = s * v / (T(1) + s1 * v);
}

template <class T>
void apply_time_shift(std::vector<T>& sigmas, TimeShiftType type, double mu) {
  // exponential: math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** 1.0)
  // linear:      mu / (mu + (1 / t - 1) ** 1.0)
  // x ** 1.0 is x exactly, so the power is left out.
  const T num = static_cast<T>(type == TimeShiftType::exponential ? std::exp(mu) : mu);
  for (T& t : sigmas) t = num / (num + (T(1) / t - T(1)));
}

template <class T>
void stretch_to_terminal(std::vector<T>& sigmas, double shift_terminal) {
  if (sigmas.empty()) return;
  // one_minus_z = 1 - t; scale_factor = one_minus_z[-1] / (1 - shift_terminal)
  const T last = T(1) - sigmas.back();
  if (last == T(0)) {
    throw std::invalid_argument(
        "shift_terminal stretching needs a last sigma below 1, got exactly 1 (a one-step schedule?); "
        "the reference computes 0/0 here and yields NaN sigmas");
  }
  const T scale_factor = last / static_cast<T>(1.0 - shift_terminal);
  // stretched_t = 1 - (one_minus_z / scale_factor)
  for (T& t : sigmas) t = T(1) - ((T(1) - t) / scale_factor);
}

std::vector<double> karras_sigmas(double sigma_max, double sigma_min, std::int64_t num) {
  constexpr double rho = 7.0;
  const std::vector<double> ramp = linspace(0.0, 1.0, num);
  const double min_inv_rho = std::pow(sigma_min, 1.0 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1.0 / rho);
  std::vector<double> out(ramp.size());
  for (std::size_t i = 0; i < ramp.size(); ++i) {
    out[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
  }
  return out;
}

std::vector<double> exponential_sigmas(double sigma_max, double sigma_min, std::int64_t num) {
  std::vector<double> out = linspace(std::log(sigma_max), std::log(sigma_min), num);
  for (double& v : out) v = std::exp(v);
  return out;
}

template void apply_static_shift<float>(std::vector<float>&, double);
template void apply_static_shift<double>(std::vector<double>&, double);
template void apply_time_shift<float>(std::vector<float>&, TimeShiftType, double);
template void apply_time_shift<double>(std::vector<double>&, TimeShiftType, double);
template void stretch_to_terminal<float>(std::vector<float>&, double);
template void stretch_to_terminal<double>(std::vector<double>&, double);

}  // namespace schedule
}  // namespace mmgen::diffusion
