// Progress rendering: a one-line bar for terminals and plain lines for logs.
// Pure functions of the PROGRESS fields, the measured rate and the width, so
// they are tested without a terminal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::cli {

// Steps per second as seen by the client, from the first PROGRESS to the
// latest. A step count that goes backwards (a retried attempt) starts over.
class RateMeter {
 public:
  void observe(std::uint32_t step, std::int64_t now_ms);
  std::optional<double> rate() const;  // none until two distinct points
  void reset() { have_ = false; }

 private:
  bool have_ = false;
  std::uint32_t first_step_ = 0, last_step_ = 0;
  std::int64_t first_ms_ = 0, last_ms_ = 0;
};

// The job's own ETA when it gives one, else remaining steps / rate.
std::optional<double> eta_seconds(const proto::Progress& p, std::optional<double> rate);
// 7 -> "0:07", 125 -> "2:05", 3725 -> "1:02:05".
std::string format_duration(double seconds);
// "[########------------]  8/20  40%  2.50 it/s  ETA 0:05  denoising", cut to `width` columns.
std::string progress_bar(const proto::Progress& p, std::optional<double> rate, int width);
// "progress 8/20 (40%) eta 0:05 rate 2.50/s denoising"
std::string progress_line(const proto::Progress& p, std::optional<double> rate);

}  // namespace mmgen::cli
