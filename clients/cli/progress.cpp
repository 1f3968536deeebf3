// See progress.hpp.
#include "cli/progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mmgen::cli {

void RateMeter::observe(std::uint32_t step, std::int64_t now_ms) {
  if (!have_ || step < last_step_) {
    have_ = true;
    first_step_ = last_step_ = step;
    first_ms_ = last_ms_ = now_ms;
    return;
  }
  last_step_ = step;
  last_ms_ = now_ms;
}

std::optional<double> RateMeter::rate() const {
  if (!have_ || last_ms_ <= first_ms_ || last_step_ <= first_step_) return std::nullopt;
  return (last_step_ - first_step_) * 1000.0 / static_cast<double>(last_ms_ - first_ms_);
}

std::optional<double> eta_seconds(const proto::Progress& p, std::optional<double> rate) {
  if (p.eta_s >= 0) return p.eta_s;
  if (rate && *rate > 0 && p.total > p.step) return (p.total - p.step) / *rate;
  return std::nullopt;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<long long>(std::llround(seconds));
  char buf[48];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  }
  return buf;
}

namespace {

// "8/20  40%" in the bar (fixed width percent), "8/20 (40%)" in lines.
std::string counts(const proto::Progress& p, bool bar) {
  char buf[64];
  if (p.total > 0) {
    const unsigned pct = static_cast<unsigned>(std::min<std::uint64_t>(100, p.step * 100ull / p.total));
    std::snprintf(buf, sizeof buf, bar ? "%u/%u %3u%%" : "%u/%u (%u%%)", p.step, p.total, pct);
  } else {
    std::snprintf(buf, sizeof buf, "%u", p.step);
  }
  return buf;
}

std::string rate_text(std::optional<double> rate) {
  if (!rate) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f it/s", *rate);
  return buf;
}

}  // namespace

std::string progress_bar(const proto::Progress& p, std::optional<double> rate, int width) {
  constexpr int kBar = 24;
  std::string line = "[";
  const int filled = p.total > 0 ? static_cast<int>(std::min<std::uint64_t>(kBar, p.step * std::uint64_t{kBar} / p.total)) : 0;
  line.append(static_cast<std::size_t>(filled), '#');
  line.append(static_cast<std::size_t>(kBar - filled), '-');
  line += "] " + counts(p, true);
  if (auto r = rate_text(rate); !r.empty()) line += "  " + r;
  if (auto eta = eta_seconds(p, rate)) line += "  ETA " + format_duration(*eta);
  if (!p.message.empty()) line += "  " + p.message;
  if (width > 0 && line.size() > static_cast<std::size_t>(width)) line.resize(static_cast<std::size_t>(width));
  return line;
}

std::string progress_line(const proto::Progress& p, std::optional<double> rate) {
  std::string line = "progress " + counts(p, false);
  if (auto eta = eta_seconds(p, rate)) line += " eta " + format_duration(*eta);
  if (rate) {
    char buf[40];
    std::snprintf(buf, sizeof buf, " rate %.2f/s", *rate);
    line += buf;
  }
  if (!p.message.empty()) line += " " + p.message;
  return line;
}

}  // namespace mmgen::cli
