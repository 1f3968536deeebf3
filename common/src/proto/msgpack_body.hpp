// Internal: reading and writing msgpack bodies field by field, with errors that
// name the field. Only codec.cpp includes this (msgpack is a heavy header).
#pragma once

#include <msgpack.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "mmgen/protocol.hpp"

namespace mmgen::proto::detail {

[[noreturn]] inline void invalid(const std::string& msg) {
  throw ProtocolError(ErrorCode::invalid_request, msg);
}

// Walks `body` (one msgpack map, nothing after it) without building it and
// throws ProtocolError unless it is well formed and within the limits:
// container counts <= max_container and nesting <= max_depth (too_large), no
// truncation, no ext types, no trailing bytes (invalid_request). Why it
// exists: msgpack-c reserves n x 24 bytes (48 per map pair) as soon as it reads
// a container header, before the elements exist, so a short truncated body of
// nested 65535-element headers would make it reserve tens of MiB; after this
// walk every reserved element is backed by at least one byte of body.
void check_structure(std::string_view body, const Limits& limits);

// Decodes `body` (one msgpack map, nothing after it) within the limits.
msgpack::object_handle unpack_map(std::string_view body, const Limits& limits);

// A view of one msgpack map; getters look a key up and check its type.
class MapReader {
 public:
  MapReader(const msgpack::object& o, std::string where);

  const msgpack::object* find(std::string_view key) const;

  std::string str(std::string_view key, std::string def = {}) const;
  std::uint64_t u64(std::string_view key, std::uint64_t def = 0) const;
  std::int64_t i64(std::string_view key, std::int64_t def = 0) const;
  double f64(std::string_view key, double def = 0) const;
  bool boolean(std::string_view key, bool def = false) const;
  std::vector<std::string> strings(std::string_view key) const;
  ValueMap value_map(std::string_view key) const;
  std::vector<BlobMeta> blobs(std::string_view key) const;
  // Nested map; nullopt when absent or nil.
  std::optional<MapReader> map(std::string_view key) const;
  // Array of maps.
  std::vector<MapReader> maps(std::string_view key) const;

  std::string field(std::string_view key) const;  // "where.key" for messages

 private:
  const msgpack::object* o_;
  std::string where_;
};

Value to_value(const msgpack::object& o, const std::string& where);
BlobMeta to_blob(const MapReader& r);

// A double always as msgpack float64. msgpack-c's pack_double writes a double
// with an integral value as an integer (4.0 arrives as 4, -0.0 as 0), and its
// range check lets 2^64 through to an undefined double -> uint64 cast.
void pack_float64(msgpack::packer<msgpack::sbuffer>& pk, double d);

// Writing: a map whose size is known only at the end is built from pairs.
class MapWriter {
 public:
  explicit MapWriter(msgpack::packer<msgpack::sbuffer>& pk) : pk_(pk) {}
  msgpack::packer<msgpack::sbuffer>& pk() { return pk_; }
  void key(std::string_view k) { pk_.pack_str(static_cast<std::uint32_t>(k.size())); pk_.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size())); }
  void str(std::string_view k, std::string_view v) { key(k); key(v); }
  void u64(std::string_view k, std::uint64_t v) { key(k); pk_.pack_uint64(v); }
  void i64(std::string_view k, std::int64_t v) { key(k); pk_.pack_int64(v); }
  void f64(std::string_view k, double v) { key(k); pack_float64(pk_, v); }
  void boolean(std::string_view k, bool v) { key(k); v ? pk_.pack_true() : pk_.pack_false(); }

 private:
  msgpack::packer<msgpack::sbuffer>& pk_;
};

void pack_value(msgpack::packer<msgpack::sbuffer>& pk, const Value& v);
void pack_value_map(msgpack::packer<msgpack::sbuffer>& pk, const ValueMap& m);
void pack_blob(msgpack::packer<msgpack::sbuffer>& pk, const BlobMeta& b);
void pack_blobs(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<BlobMeta>& bs);
void pack_strings(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<std::string>& ss);

}  // namespace mmgen::proto::detail
