// Config checks shared by the schedulers' from_json (private to this folder):
// errors that name the file and the key, the class-name check and the
// time_shift_type values diffusers accepts.
#pragma once

#include <string>

#include "mmgen/diffusion/schedule_math.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::diffusion::scheduler_config {

[[noreturn]] inline void error(io::LoadErrorKind kind, const std::string& source, const std::string& key,
                               const std::string& why) {
  throw io::LoadError(kind, source + ": '" + key + "' " + why);
}

// A scheduler folder written for another class is refused, not misread.
inline void expect_class(const io::HfConfig& cfg, const char* class_name) {
  const std::string cls = cfg.get_string("_class_name", class_name);
  if (cls != class_name)
    error(io::LoadErrorKind::unsupported, cfg.source(), "_class_name", "is '" + cls + "', expected " + class_name);
}

inline TimeShiftType time_shift_type(const std::string& s, const std::string& source) {
  if (s == "exponential") return TimeShiftType::exponential;
  if (s == "linear") return TimeShiftType::linear;
  error(io::LoadErrorKind::bad_config, source, "time_shift_type",
        "must be 'exponential' or 'linear', got '" + s + "'");
}

}  // namespace mmgen::diffusion::scheduler_config
