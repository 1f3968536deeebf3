// Structured one-line logs on stderr: `ts=... level=info msg=job_started job=j_.. worker=w3`.
// Values with spaces or quotes are quoted. Thread-safe (one write per line).
#pragma once

#include <initializer_list>
#include <type_traits>
#include <string>
#include <string_view>
#include <utility>

namespace mmgen::log {

enum class Level { debug, info, warn, error };

struct Field {
  std::string_view key;
  std::string value;
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  template <class N, class = std::enable_if_t<std::is_arithmetic_v<N>>>
  Field(std::string_view k, N n) : key(k), value(std::to_string(n)) {}
};

void set_level(Level l);          // default info; env MMGEN_LOG_LEVEL=debug|info|warn|error
void set_component(std::string_view name);  // printed as comp=...
void write(Level l, std::string_view msg, std::initializer_list<Field> fields = {});

inline void debug(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::debug, m, f); }
inline void info(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::info, m, f); }
inline void warn(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::warn, m, f); }
inline void error(std::string_view m, std::initializer_list<Field> f = {}) { write(Level::error, m, f); }

}  // namespace mmgen::log
