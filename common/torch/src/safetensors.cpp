// Header validation and mmap for .safetensors files (see safetensors.hpp).
#include "mmgen/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::io {

namespace {

struct DTypeInfo {
  StDType dtype;
  std::string_view name;
  std::size_t size;
  bool floating;
};

constexpr std::array<DTypeInfo, 15> kDTypes{{
    {StDType::BOOL, "BOOL", 1, false},
    {StDType::U8, "U8", 1, false},
    {StDType::I8, "I8", 1, false},
    {StDType::I16, "I16", 2, false},
    {StDType::U16, "U16", 2, false},
    {StDType::I32, "I32", 4, false},
    {StDType::U32, "U32", 4, false},
    {StDType::I64, "I64", 8, false},
    {StDType::U64, "U64", 8, false},
    {StDType::F16, "F16", 2, true},
    {StDType::BF16, "BF16", 2, true},
    {StDType::F32, "F32", 4, true},
    {StDType::F64, "F64", 8, true},
    {StDType::F8_E4M3, "F8_E4M3", 1, true},
    {StDType::F8_E5M2, "F8_E5M2", 1, true},
}};

const DTypeInfo& info(StDType d) { return kDTypes[static_cast<std::size_t>(d)]; }

[[noreturn]] void header_error(std::string_view source, const std::string& what) {
  throw LoadError(LoadErrorKind::bad_header,
                  std::string(source) + ": bad safetensors header: " + what);
}

std::string tensor_ref(std::string_view name) { return "tensor '" + std::string(name) + "'"; }

// Non-negative integer of a JSON value, or nullopt.
std::optional<std::uint64_t> as_u64(const Value& v) {
  if (!v.is_int() || v.as_int() < 0) return std::nullopt;
  return static_cast<std::uint64_t>(v.as_int());
}

TensorEntry parse_entry(const std::string& name, const Value& v, std::string_view source) {
  if (!v.is_map()) header_error(source, tensor_ref(name) + " is not an object");
  const auto& m = v.as_map();
  TensorEntry e;
  e.name = name;

  auto dt = m.find("dtype");
  if (dt == m.end() || !dt->second.is_string()) {
    header_error(source, tensor_ref(name) + " has no string \"dtype\"");
  }
  auto parsed = st_dtype_from_string(dt->second.as_string());
  if (!parsed) {
    throw LoadError(LoadErrorKind::unsupported, std::string(source) + ": " + tensor_ref(name) +
                                                    " has dtype " + dt->second.as_string() +
                                                    ", which this reader does not support");
  }
  e.dtype = *parsed;

  auto sh = m.find("shape");
  if (sh == m.end() || !sh->second.is_array()) {
    header_error(source, tensor_ref(name) + " has no \"shape\" array");
  }
  if (sh->second.as_array().size() > 16) header_error(source, tensor_ref(name) + " has more than 16 dims");
  std::uint64_t numel = 1;
  bool overflow = false;
  for (const Value& d : sh->second.as_array()) {
    auto n = as_u64(d);
    if (!n) header_error(source, tensor_ref(name) + " has a shape entry that is not a non-negative integer");
    e.shape.push_back(static_cast<std::int64_t>(*n));
    if (*n != 0 && numel > UINT64_MAX / *n) overflow = true;
    numel *= *n;
  }
  if (!overflow && numel > UINT64_MAX / element_size(e.dtype)) overflow = true;
  // A zero dimension makes the size 0 even if earlier ones overflowed.
  bool has_zero = std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end();
  if (overflow && !has_zero) header_error(source, tensor_ref(name) + " declares a size that overflows");

  auto off = m.find("data_offsets");
  if (off == m.end() || !off->second.is_array() || off->second.as_array().size() != 2) {
    header_error(source, tensor_ref(name) + " has no \"data_offsets\" [begin, end]");
  }
  auto b = as_u64(off->second.as_array()[0]);
  auto en = as_u64(off->second.as_array()[1]);
  if (!b || !en) header_error(source, tensor_ref(name) + " has data_offsets that are not non-negative integers");
  if (*b > *en) header_error(source, tensor_ref(name) + " has data_offsets with begin > end");
  e.begin = *b;
  e.end = *en;
  std::uint64_t want = has_zero ? 0 : numel * element_size(e.dtype);
  if (e.nbytes() != want) {
    header_error(source, tensor_ref(name) + " spans " + std::to_string(e.nbytes()) +
                             " bytes but its dtype and shape need " + std::to_string(want));
  }
  return e;
}

}  // namespace

std::string_view to_string(StDType d) { return info(d).name; }

std::optional<StDType> st_dtype_from_string(std::string_view s) {
  for (const auto& i : kDTypes) {
    if (i.name == s) return i.dtype;
  }
  return std::nullopt;
}

std::size_t element_size(StDType d) { return info(d).size; }
bool is_floating(StDType d) { return info(d).floating; }

std::uint64_t TensorEntry::numel() const {
  std::uint64_t n = 1;
  for (auto d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

std::vector<TensorEntry> parse_safetensors_header(std::string_view header_json,
                                                  std::uint64_t data_size,
                                                  std::string_view source,
                                                  std::map<std::string, std::string>* metadata) {
  Value root = parse_json(header_json, std::string(source) + " (safetensors header)");
  if (!root.is_map()) header_error(source, "the header is not a JSON object");

  std::vector<TensorEntry> entries;
  for (const auto& [name, v] : root.as_map()) {
    if (name == "__metadata__") {
      if (!v.is_map()) header_error(source, "__metadata__ is not an object");
      for (const auto& [k, mv] : v.as_map()) {
        if (!mv.is_string()) header_error(source, "__metadata__ value '" + k + "' is not a string");
        if (metadata) (*metadata)[k] = mv.as_string();
      }
      continue;
    }
    entries.push_back(parse_entry(name, v, source));
  }

  // Sorted by offset, the tensors must tile [0, data_size) exactly.
  std::vector<const TensorEntry*> by_offset;
  by_offset.reserve(entries.size());
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t cursor = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry* e : by_offset) {
    if (e->begin < cursor) {
      header_error(source, tensor_ref(e->name) + " overlaps " + tensor_ref(prev->name));
    }
    if (e->begin > cursor) {
      header_error(source, "bytes [" + std::to_string(cursor) + ", " + std::to_string(e->begin) +
                               ") of the data buffer belong to no tensor (before " +
                               tensor_ref(e->name) + ")");
    }
    if (e->end > data_size) {
      throw LoadError(LoadErrorKind::truncated,
                      std::string(source) + ": truncated file: " + tensor_ref(e->name) +
                          " ends at byte " + std::to_string(e->end) + " of the data buffer, which has " +
                          std::to_string(data_size) + " bytes");
    }
    cursor = e->end;
    prev = e;
  }
  if (cursor != data_size) {
    header_error(source, "the data buffer has " + std::to_string(data_size) +
                             " bytes but the tensors cover " + std::to_string(cursor));
  }
  return entries;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string source = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw LoadError(LoadErrorKind::io, source + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw LoadError(LoadErrorKind::io, source + ": not a regular file");
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw LoadError(LoadErrorKind::truncated,
                    source + ": truncated file: " + std::to_string(file_size) +
                        " bytes, shorter than the 8-byte header length");
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file referenced
  if (map == MAP_FAILED) {
    throw LoadError(LoadErrorKind::io, source + ": cannot map: " + std::strerror(errno));
  }
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = map;
  f->map_size_ = file_size;

  const auto* bytes = static_cast<const unsigned char*>(map);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian
  if (n > kMaxHeaderBytes) {
    header_error(source, "declared header length " + std::to_string(n) + " exceeds the " +
                             std::to_string(kMaxHeaderBytes) + "-byte limit");
  }
  if (n > file_size - 8) {
    throw LoadError(LoadErrorKind::truncated,
                    source + ": truncated file: the header declares " + std::to_string(n) +
                        " bytes but only " + std::to_string(file_size - 8) + " follow");
  }
  if (n < 2 || bytes[8] != '{') header_error(source, "the header does not start with '{'");
  std::string_view header(reinterpret_cast<const char*>(bytes + 8), n);
  f->entries_ = parse_safetensors_header(header, file_size - 8 - n, source, &f->metadata_);
  std::sort(f->entries_.begin(), f->entries_.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.name < b.name; });
  for (std::size_t i = 0; i < f->entries_.size(); ++i) f->index_.emplace(f->entries_[i].name, i);
  f->data_ = reinterpret_cast<const std::byte*>(bytes + 8 + n);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorEntry* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

}  // namespace mmgen::io
