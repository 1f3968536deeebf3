// A hand-written msgpack writer for the protocol tests. It is independent of
// the codec (and of msgpack-c) on purpose: bodies built with it check that the
// decoders read the wire format of common/PROTOCOL.md, not merely whatever the
// encoders happen to write, and hostile bodies can say anything they like.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mp {

// Big-endian bytes of v, `n` bytes wide.
inline std::string be(std::uint64_t v, int n) {
  std::string out(static_cast<std::size_t>(n), '\0');
  for (int i = n - 1; i >= 0; --i, v >>= 8) out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

inline std::string byte(unsigned b) { return std::string(1, static_cast<char>(b)); }

inline std::string nil() { return byte(0xc0); }
inline std::string boolean(bool b) { return byte(b ? 0xc3 : 0xc2); }

// Smallest encoding, as msgpack writers do.
inline std::string uint(std::uint64_t v) {
  if (v <= 0x7f) return byte(static_cast<unsigned>(v));
  if (v <= 0xff) return byte(0xcc) + be(v, 1);
  if (v <= 0xffff) return byte(0xcd) + be(v, 2);
  if (v <= 0xffffffffULL) return byte(0xce) + be(v, 4);
  return byte(0xcf) + be(v, 8);
}

inline std::string sint(std::int64_t v) {
  if (v >= 0) return uint(static_cast<std::uint64_t>(v));
  if (v >= -32) return byte(static_cast<unsigned>(v & 0xff));
  if (v >= INT8_MIN) return byte(0xd0) + be(static_cast<std::uint64_t>(v), 1);
  if (v >= INT16_MIN) return byte(0xd1) + be(static_cast<std::uint64_t>(v), 2);
  if (v >= INT32_MIN) return byte(0xd2) + be(static_cast<std::uint64_t>(v), 4);
  return byte(0xd3) + be(static_cast<std::uint64_t>(v), 8);
}

inline std::string f64(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, 8);
  return byte(0xcb) + be(bits, 8);
}

inline std::string f32(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return byte(0xca) + be(bits, 4);
}

inline std::string str_header(std::uint64_t n) {
  if (n <= 31) return byte(0xa0 | static_cast<unsigned>(n));
  if (n <= 0xff) return byte(0xd9) + be(n, 1);
  if (n <= 0xffff) return byte(0xda) + be(n, 2);
  return byte(0xdb) + be(n, 4);
}
inline std::string str(std::string_view s) { return str_header(s.size()) + std::string(s); }

inline std::string bin_header(std::uint64_t n) {
  if (n <= 0xff) return byte(0xc4) + be(n, 1);
  if (n <= 0xffff) return byte(0xc5) + be(n, 2);
  return byte(0xc6) + be(n, 4);
}
inline std::string bin(std::string_view s) { return bin_header(s.size()) + std::string(s); }

inline std::string array_header(std::uint64_t n) {
  if (n <= 15) return byte(0x90 | static_cast<unsigned>(n));
  if (n <= 0xffff) return byte(0xdc) + be(n, 2);
  return byte(0xdd) + be(n, 4);
}
inline std::string array(const std::vector<std::string>& items) {
  std::string out = array_header(items.size());
  for (const auto& i : items) out += i;
  return out;
}

inline std::string map_header(std::uint64_t n) {
  if (n <= 15) return byte(0x80 | static_cast<unsigned>(n));
  if (n <= 0xffff) return byte(0xde) + be(n, 2);
  return byte(0xdf) + be(n, 4);
}

// A map with string keys; values are already-encoded msgpack.
using Fields = std::vector<std::pair<std::string, std::string>>;
inline std::string map(const Fields& fields) {
  std::string out = map_header(fields.size());
  for (const auto& [k, v] : fields) out += str(k) + v;
  return out;
}

// Fields with one entry's value replaced (or added when absent).
inline Fields with(Fields f, const std::string& key, std::string value) {
  for (auto& [k, v] : f)
    if (k == key) {
      v = std::move(value);
      return f;
    }
  f.emplace_back(key, std::move(value));
  return f;
}

inline Fields without(Fields f, const std::string& key) {
  std::erase_if(f, [&](const auto& kv) { return kv.first == key; });
  return f;
}

}  // namespace mp
