#include "msgpack_body.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

namespace mmgen::proto::detail {

msgpack::object_handle unpack_map(std::string_view body, const Limits& limits) {
  if (body.size() > limits.max_body_bytes)
    throw ProtocolError(ErrorCode::too_large, "body of " + std::to_string(body.size()) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(limits.max_body_bytes));
  if (body.empty()) invalid("empty body: expected a msgpack map");
  check_structure(body, limits);
  // Every count is bounded, so a header that declares 4 billion elements is
  // refused before anything is allocated for it.
  const auto str_limit = static_cast<std::size_t>(limits.max_body_bytes);
  msgpack::unpack_limit lim(limits.max_container, limits.max_container, str_limit, str_limit, 0,
                            limits.max_depth);
  std::size_t off = 0;
  msgpack::object_handle oh;
  try {
    oh = msgpack::unpack(body.data(), body.size(), off, nullptr, nullptr, lim);
  } catch (const msgpack::ext_size_overflow&) {
    invalid("msgpack ext types are not supported");
  } catch (const msgpack::size_overflow& e) {
    throw ProtocolError(ErrorCode::too_large, std::string("body exceeds a decoding limit: ") + e.what());
  } catch (const msgpack::insufficient_bytes&) {
    invalid("truncated body");
  } catch (const msgpack::parse_error& e) {
    invalid(std::string("malformed msgpack body: ") + e.what());
  } catch (const msgpack::unpack_error& e) {
    invalid(std::string("malformed msgpack body: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw ProtocolError(ErrorCode::too_large, "body too large to decode");
  } catch (const std::exception& e) {
    invalid(std::string("malformed msgpack body: ") + e.what());
  }
  if (off != body.size()) invalid("trailing bytes after the body map");
  if (oh.get().type != msgpack::type::MAP) invalid("body is not a msgpack map");
  return oh;
}

namespace {
// "params" + "x" -> "params.x"; at the top level just "x".
std::string member(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}
// How an error names a place: "'params.x'", or "the body" at the top level.
std::string place(const std::string& where) { return where.empty() ? "the body" : "'" + where + "'"; }
}  // namespace

MapReader::MapReader(const msgpack::object& o, std::string where) : o_(&o), where_(std::move(where)) {
  if (o.type != msgpack::type::MAP) invalid(place(where_) + ": expected a map");
  const auto& m = o.via.map;
  for (std::uint32_t i = 0; i < m.size; ++i)
    if (m.ptr[i].key.type != msgpack::type::STR) invalid(place(where_) + ": map keys must be strings");
}

std::string MapReader::field(std::string_view key) const {
  return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
}

const msgpack::object* MapReader::find(std::string_view key) const {
  const auto& m = o_->via.map;
  for (std::uint32_t i = 0; i < m.size; ++i) {
    const auto& k = m.ptr[i].key.via.str;
    if (std::string_view(k.ptr, k.size) == key) {
      const auto* v = &m.ptr[i].val;
      return v->type == msgpack::type::NIL ? nullptr : v;
    }
  }
  return nullptr;
}

namespace {
[[noreturn]] void wrong(const std::string& field, std::string_view want) {
  invalid("field '" + field + "': expected " + std::string(want));
}
}  // namespace

std::string MapReader::str(std::string_view key, std::string def) const {
  const auto* v = find(key);
  if (!v) return def;
  if (v->type != msgpack::type::STR) wrong(field(key), "a string");
  return {v->via.str.ptr, v->via.str.size};
}

std::uint64_t MapReader::u64(std::string_view key, std::uint64_t def) const {
  const auto* v = find(key);
  if (!v) return def;
  if (v->type != msgpack::type::POSITIVE_INTEGER) wrong(field(key), "a non-negative integer");
  return v->via.u64;
}

std::int64_t MapReader::i64(std::string_view key, std::int64_t def) const {
  const auto* v = find(key);
  if (!v) return def;
  if (v->type == msgpack::type::NEGATIVE_INTEGER) return v->via.i64;
  if (v->type == msgpack::type::POSITIVE_INTEGER &&
      v->via.u64 <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return static_cast<std::int64_t>(v->via.u64);
  wrong(field(key), "an integer");
}

double MapReader::f64(std::string_view key, double def) const {
  const auto* v = find(key);
  if (!v) return def;
  switch (v->type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return v->via.f64;
    case msgpack::type::POSITIVE_INTEGER: return static_cast<double>(v->via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return static_cast<double>(v->via.i64);
    default: wrong(field(key), "a number");
  }
}

bool MapReader::boolean(std::string_view key, bool def) const {
  const auto* v = find(key);
  if (!v) return def;
  if (v->type != msgpack::type::BOOLEAN) wrong(field(key), "a boolean");
  return v->via.boolean;
}

std::vector<std::string> MapReader::strings(std::string_view key) const {
  std::vector<std::string> out;
  const auto* v = find(key);
  if (!v) return out;
  if (v->type != msgpack::type::ARRAY) wrong(field(key), "an array of strings");
  out.reserve(v->via.array.size);
  for (std::uint32_t i = 0; i < v->via.array.size; ++i) {
    const auto& e = v->via.array.ptr[i];
    if (e.type != msgpack::type::STR) wrong(field(key), "an array of strings");
    out.emplace_back(e.via.str.ptr, e.via.str.size);
  }
  return out;
}

Value to_value(const msgpack::object& o, const std::string& where) {
  switch (o.type) {
    case msgpack::type::NIL: return Value();
    case msgpack::type::BOOLEAN: return Value(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        invalid(place(where) + ": integer out of range");
      return Value(static_cast<std::int64_t>(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER: return Value(static_cast<std::int64_t>(o.via.i64));
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return Value(o.via.f64);
    case msgpack::type::STR: return Value(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return Value(Value::Binary{std::string(o.via.bin.ptr, o.via.bin.size)});
    case msgpack::type::ARRAY: {
      ValueArray a;
      a.reserve(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i)
        a.push_back(to_value(o.via.array.ptr[i], where + "[" + std::to_string(i) + "]"));
      return Value(std::move(a));
    }
    case msgpack::type::MAP: {
      ValueMap m;
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) invalid(place(where) + ": map keys must be strings");
        std::string k(kv.key.via.str.ptr, kv.key.via.str.size);
        auto v = to_value(kv.val, member(where, k));
        m.emplace(std::move(k), std::move(v));  // a repeated key: the first one counts, as in MapReader
      }
      return Value(std::move(m));
    }
    default: invalid(place(where) + ": unsupported msgpack type (ext)");
  }
}

ValueMap MapReader::value_map(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return {};
  if (v->type != msgpack::type::MAP) wrong(field(key), "a map");
  return std::move(to_value(*v, field(key)).as_map());
}

std::optional<MapReader> MapReader::map(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != msgpack::type::MAP) wrong(field(key), "a map");
  return MapReader(*v, field(key));
}

std::vector<MapReader> MapReader::maps(std::string_view key) const {
  std::vector<MapReader> out;
  const auto* v = find(key);
  if (!v) return out;
  if (v->type != msgpack::type::ARRAY) wrong(field(key), "an array of maps");
  out.reserve(v->via.array.size);
  for (std::uint32_t i = 0; i < v->via.array.size; ++i)
    out.emplace_back(v->via.array.ptr[i], field(key) + "[" + std::to_string(i) + "]");
  return out;
}

BlobMeta to_blob(const MapReader& r) {
  BlobMeta b;
  b.name = r.str("name");
  b.mime = r.str("mime", "application/octet-stream");
  b.size = r.u64("size");
  return b;
}

std::vector<BlobMeta> MapReader::blobs(std::string_view key) const {
  std::vector<BlobMeta> out;
  for (const auto& r : maps(key)) out.push_back(to_blob(r));
  return out;
}

void pack_float64(msgpack::packer<msgpack::sbuffer>& pk, double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 8; i >= 1; --i, bits >>= 8) buf[i] = static_cast<char>(bits & 0xff);
  pk.pack_bin_body(buf, sizeof buf);  // appends the bytes as they are (no header)
}

void pack_value(msgpack::packer<msgpack::sbuffer>& pk, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) pk.pack_nil();
        else if constexpr (std::is_same_v<T, bool>) x ? pk.pack_true() : pk.pack_false();
        else if constexpr (std::is_same_v<T, std::int64_t>) pk.pack_int64(x);
        else if constexpr (std::is_same_v<T, double>) pack_float64(pk, x);
        else if constexpr (std::is_same_v<T, std::string>) {
          pk.pack_str(static_cast<std::uint32_t>(x.size()));
          pk.pack_str_body(x.data(), static_cast<std::uint32_t>(x.size()));
        } else if constexpr (std::is_same_v<T, Value::Binary>) {
          pk.pack_bin(static_cast<std::uint32_t>(x.bytes.size()));
          pk.pack_bin_body(x.bytes.data(), static_cast<std::uint32_t>(x.bytes.size()));
        } else if constexpr (std::is_same_v<T, ValueArray>) {
          pk.pack_array(static_cast<std::uint32_t>(x.size()));
          for (const auto& e : x) pack_value(pk, e);
        } else {
          pack_value_map(pk, x);
        }
      },
      v.storage());
}

void pack_value_map(msgpack::packer<msgpack::sbuffer>& pk, const ValueMap& m) {
  pk.pack_map(static_cast<std::uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    pk.pack_str(static_cast<std::uint32_t>(k.size()));
    pk.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
    pack_value(pk, v);
  }
}

void pack_blob(msgpack::packer<msgpack::sbuffer>& pk, const BlobMeta& b) {
  pk.pack_map(3);
  MapWriter w(pk);
  w.str("name", b.name);
  w.str("mime", b.mime);
  w.u64("size", b.size);
}

void pack_blobs(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<BlobMeta>& bs) {
  pk.pack_array(static_cast<std::uint32_t>(bs.size()));
  for (const auto& b : bs) pack_blob(pk, b);
}

void pack_strings(msgpack::packer<msgpack::sbuffer>& pk, const std::vector<std::string>& ss) {
  pk.pack_array(static_cast<std::uint32_t>(ss.size()));
  for (const auto& s : ss) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
  }
}

}  // namespace mmgen::proto::detail
