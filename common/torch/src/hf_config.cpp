// Typed config.json access (hf_config.hpp).
#include "mmgen/io/hf_config.hpp"

#include <cmath>

#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::io {

namespace {

std::string_view type_name(const Value& v) {
  if (v.is_null()) return "null";
  if (v.is_bool()) return "boolean";
  if (v.is_int()) return "integer";
  if (v.is_double()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  if (v.is_map()) return "object";
  return "binary";
}

}  // namespace

HfConfig HfConfig::load(const std::filesystem::path& path) {
  std::error_code ec;
  // A file is read as given; anything else is taken as a model folder.
  std::filesystem::path file =
      std::filesystem::is_regular_file(path, ec) ? path : path / "config.json";
  Value root = read_json_file(file);
  if (!root.is_map()) {
    throw LoadError(LoadErrorKind::bad_config, file.string() + ": not a JSON object");
  }
  return HfConfig(std::move(root), file.string());
}

HfConfig::HfConfig(Value root, std::string source, std::string key_prefix)
    : root_(std::move(root)), source_(std::move(source)), prefix_(std::move(key_prefix)) {
  if (!root_.is_map()) fail("", "is not an object");
}

void HfConfig::fail(std::string_view key, std::string_view why) const {
  std::string path = prefix_ + std::string(key);
  if (!path.empty() && path.back() == '.') path.pop_back();
  throw LoadError(LoadErrorKind::bad_config,
                  source_ + ": '" + (path.empty() ? std::string("(root)") : path) + "' " + std::string(why));
}

const Value* HfConfig::find(std::string_view key) const {
  const auto& m = root_.as_map();
  auto it = m.find(key);
  if (it == m.end() || it->second.is_null()) return nullptr;
  return &it->second;
}

bool HfConfig::has(std::string_view key) const { return find(key) != nullptr; }

std::int64_t HfConfig::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) fail(key, "is required");
  if (v->is_int()) return v->as_int();
  // transformers writes some integer fields as 1.0-style floats; accept exact ones.
  if (v->is_double() && std::isfinite(v->as_double()) && v->as_double() == std::floor(v->as_double()) &&
      std::fabs(v->as_double()) < 9.0e15) {
    return static_cast<std::int64_t>(v->as_double());
  }
  fail(key, "must be an integer, got " + std::string(type_name(*v)));
}

double HfConfig::get_double(std::string_view key) const {
  const Value* v = find(key);
  if (!v) fail(key, "is required");
  if (!v->is_number()) fail(key, "must be a number, got " + std::string(type_name(*v)));
  return v->as_double();
}

bool HfConfig::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) fail(key, "is required");
  if (!v->is_bool()) fail(key, "must be a boolean, got " + std::string(type_name(*v)));
  return v->as_bool();
}

std::string HfConfig::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) fail(key, "is required");
  if (!v->is_string()) fail(key, "must be a string, got " + std::string(type_name(*v)));
  return v->as_string();
}

std::int64_t HfConfig::get_int(std::string_view key, std::int64_t def) const {
  return has(key) ? get_int(key) : def;
}
double HfConfig::get_double(std::string_view key, double def) const {
  return has(key) ? get_double(key) : def;
}
bool HfConfig::get_bool(std::string_view key, bool def) const { return has(key) ? get_bool(key) : def; }
std::string HfConfig::get_string(std::string_view key, std::string def) const {
  return has(key) ? get_string(key) : std::move(def);
}
std::optional<std::int64_t> HfConfig::opt_int(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}
std::optional<double> HfConfig::opt_double(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_double(key);
}

std::vector<std::int64_t> HfConfig::get_int_list(std::string_view key, std::vector<std::int64_t> def) const {
  const Value* v = find(key);
  if (!v) return def;
  if (!v->is_array()) fail(key, "must be an array of integers, got " + std::string(type_name(*v)));
  std::vector<std::int64_t> out;
  for (const Value& x : v->as_array()) {
    if (!x.is_int()) fail(key, "must be an array of integers, has a " + std::string(type_name(x)));
    out.push_back(x.as_int());
  }
  return out;
}

std::vector<std::string> HfConfig::get_string_list(std::string_view key, std::vector<std::string> def) const {
  const Value* v = find(key);
  if (!v) return def;
  if (!v->is_array()) fail(key, "must be an array of strings, got " + std::string(type_name(*v)));
  std::vector<std::string> out;
  for (const Value& x : v->as_array()) {
    if (!x.is_string()) fail(key, "must be an array of strings, has a " + std::string(type_name(x)));
    out.push_back(x.as_string());
  }
  return out;
}

std::optional<HfConfig> HfConfig::sub(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_map()) fail(key, "must be an object, got " + std::string(type_name(*v)));
  return HfConfig(*v, source_, prefix_ + std::string(key) + ".");
}

}  // namespace mmgen::io
