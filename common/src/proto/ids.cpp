#include "mmgen/ids.hpp"

#include <chrono>
#include <random>

namespace mmgen {

namespace {
std::mt19937_64& rng() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }()};
  return engine;
}

void append_hex(std::string& out, std::uint64_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(v >> (4 * i)) & 0xf]);
}
}  // namespace

std::string new_job_id() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::string id = "j_";
  id.reserve(26);
  append_hex(id, static_cast<std::uint64_t>(ms) & 0xffffffffffffULL, 12);
  append_hex(id, rng()() & 0xffffffffffffULL, 12);
  return id;
}

bool is_job_id(std::string_view s) {
  if (s.size() != 26 || s.substr(0, 2) != "j_") return false;
  for (char c : s.substr(2))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string random_hex(std::size_t n_bytes) {
  std::string out;
  out.reserve(2 * n_bytes);
  for (std::size_t i = 0; i < n_bytes; ++i) append_hex(out, rng()() & 0xff, 2);
  return out;
}

}  // namespace mmgen
