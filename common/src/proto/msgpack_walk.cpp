// The structural walk that runs before msgpack-c builds a body: see
// check_structure in msgpack_body.hpp.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "msgpack_body.hpp"

namespace mmgen::proto::detail {

namespace {
[[noreturn]] void over_limit(const std::string& msg) { throw ProtocolError(ErrorCode::too_large, msg); }
}  // namespace

// An explicit stack instead of recursion: nesting is bounded by max_depth,
// but the walk must not depend on that for its own safety.
void check_structure(std::string_view body, const Limits& limits) {
  const auto* p = reinterpret_cast<const unsigned char*>(body.data());
  const auto* const end = p + body.size();
  const auto left = [&] { return static_cast<std::uint64_t>(end - p); };
  const auto need = [&](std::uint64_t n) {
    if (left() < n) invalid("truncated body");
  };
  const auto be = [&](int bytes) {  // big-endian length field after the type byte
    need(1 + static_cast<std::uint64_t>(bytes));
    std::uint64_t v = 0;
    for (int i = 1; i <= bytes; ++i) v = (v << 8) | p[i];
    return v;
  };

  if (body.empty()) invalid("empty body: expected a msgpack map");
  const std::uint8_t first = p[0];
  if (!((first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf))
    invalid("body is not a msgpack map");

  // values still expected by each open container; the bottom entry is the root
  std::vector<std::uint64_t> open;
  open.reserve(std::min<std::uint32_t>(limits.max_depth, 64) + 1);
  open.push_back(1);
  while (!open.empty()) {
    if (open.back() == 0) {
      open.pop_back();
      continue;
    }
    --open.back();
    need(1);
    const std::uint8_t t = *p;
    std::uint64_t skip = 1;     // bytes of this value (header + payload) for scalars
    std::uint64_t items = 0;    // elements of a container
    bool is_map = false, is_container = false;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
      skip = 1;  // fixint, nil, bool
    } else if (t <= 0x8f) {
      is_container = is_map = true;  // fixmap
      items = t & 0x0f;
    } else if (t <= 0x9f) {
      is_container = true;  // fixarray
      items = t & 0x0f;
    } else if (t <= 0xbf) {
      skip = 1 + (t & 0x1f);  // fixstr
    } else {
      switch (t) {
        case 0xc4: skip = 2 + be(1); break;  // bin 8/16/32
        case 0xc5: skip = 3 + be(2); break;
        case 0xc6: skip = 5 + be(4); break;
        case 0xca: skip = 5; break;  // float32
        case 0xcb: skip = 9; break;  // float64
        case 0xcc: case 0xd0: skip = 2; break;
        case 0xcd: case 0xd1: skip = 3; break;
        case 0xce: case 0xd2: skip = 5; break;
        case 0xcf: case 0xd3: skip = 9; break;
        case 0xd9: skip = 2 + be(1); break;  // str 8/16/32
        case 0xda: skip = 3 + be(2); break;
        case 0xdb: skip = 5 + be(4); break;
        case 0xdc: case 0xdd:  // array 16/32
        case 0xde: case 0xdf:  // map 16/32
          is_container = true;
          is_map = t >= 0xde;
          skip = (t & 1) ? 5 : 3;
          items = be((t & 1) ? 4 : 2);
          break;
        case 0xc7: case 0xc8: case 0xc9:
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
          invalid("msgpack ext types are not supported");
        default:  // 0xc1, never used by msgpack
          invalid("malformed msgpack body: reserved type byte 0xc1");
      }
    }
    need(skip);
    p += skip;
    if (!is_container) continue;
    if (items > limits.max_container)
      over_limit(std::string(is_map ? "map of " : "array of ") + std::to_string(items) +
                 " elements exceeds the limit of " + std::to_string(limits.max_container));
    if (open.size() > limits.max_depth)  // `open` holds the root slot plus the enclosing containers
      over_limit("nesting deeper than the limit of " + std::to_string(limits.max_depth));
    const std::uint64_t values = is_map ? 2 * items : items;
    if (values > left()) invalid("truncated body");  // every value takes at least one byte
    open.push_back(values);
  }
  if (p != end) invalid("trailing bytes after the body map");
}


}  // namespace mmgen::proto::detail
