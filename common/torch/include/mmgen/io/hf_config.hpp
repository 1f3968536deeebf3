// Typed reading of a Hugging Face config.json (or a nested sub-config such as
// "text_config"). Torch-free. Every error is LoadError(bad_config) naming the
// file, the key path and what was wrong, e.g.
//   ".../config.json: 'text_config.hidden_size' must be an integer, got string".
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/value.hpp"

namespace mmgen::io {

class HfConfig {
 public:
  // Reads and parses <folder>/config.json, or the file itself if a file is given.
  static HfConfig load(const std::filesystem::path& path);
  // From parsed JSON; `source` is what errors call it.
  HfConfig(Value root, std::string source, std::string key_prefix = "");

  const std::string& source() const { return source_; }
  bool has(std::string_view key) const;  // present and not null
  bool empty() const { return root_.as_map().empty(); }
  const Value* find(std::string_view key) const;  // nullptr when absent or null

  // Required values: throw when absent or of the wrong type.
  std::int64_t get_int(std::string_view key) const;
  double get_double(std::string_view key) const;  // ints are accepted
  bool get_bool(std::string_view key) const;
  std::string get_string(std::string_view key) const;

  // Optional values: the default when absent or null, an error on a wrong type.
  std::int64_t get_int(std::string_view key, std::int64_t def) const;
  double get_double(std::string_view key, double def) const;
  bool get_bool(std::string_view key, bool def) const;
  std::string get_string(std::string_view key, std::string def) const;
  std::optional<std::int64_t> opt_int(std::string_view key) const;
  std::optional<double> opt_double(std::string_view key) const;
  std::vector<std::int64_t> get_int_list(std::string_view key, std::vector<std::int64_t> def) const;
  std::vector<std::string> get_string_list(std::string_view key, std::vector<std::string> def) const;

  // A nested object (e.g. "rope_scaling", "text_config"); nullopt when absent/null.
  std::optional<HfConfig> sub(std::string_view key) const;

  // Throws bad_config naming the key, with `why` appended.
  [[noreturn]] void fail(std::string_view key, std::string_view why) const;

 private:
  Value root_;
  std::string source_;
  std::string prefix_;
};

}  // namespace mmgen::io
