// Memory-mapped reader of one .safetensors file. Torch-free: it validates the
// header and hands out byte ranges; checkpoint.hpp turns them into tensors.
//
// Format: [u64 little-endian N][N bytes of JSON header][data buffer]. The
// header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data buffer) plus an optional "__metadata__" map of
// strings. Rules enforced here, each a LoadError naming the file (and tensor):
// N within the file and below kMaxHeaderBytes; known dtype; non-negative
// shape whose byte size (checked for overflow) equals end - begin; begin <=
// end; tensors neither overlap nor leave holes, and they cover the buffer
// exactly (as the format's reference implementation demands); a buffer that
// the file does not hold completely is `truncated`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mmgen::io {

// The format's dtype names, in the spelling of the header.
enum class StDType : std::uint8_t {
  BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2,
};
std::string_view to_string(StDType d);
std::optional<StDType> st_dtype_from_string(std::string_view s);
std::size_t element_size(StDType d);
bool is_floating(StDType d);

inline constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;  // as the reference library

struct TensorEntry {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;  // offset into the data buffer
  std::uint64_t end = 0;
  std::uint64_t numel() const;
  std::uint64_t nbytes() const { return end - begin; }
};

// Parses and validates a header (the JSON text) against a data buffer of
// data_size bytes. `source` names the file in errors. Exposed for tests and for
// in-memory use; open() calls it.
std::vector<TensorEntry> parse_safetensors_header(std::string_view header_json,
                                                  std::uint64_t data_size,
                                                  std::string_view source,
                                                  std::map<std::string, std::string>* metadata);

class SafetensorsFile {
 public:
  // Maps the file read-only (copy-on-write, so a stray write cannot touch the
  // file). Throws LoadError on any violation listed above.
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorEntry>& entries() const { return entries_; }  // header order (sorted by name)
  const TensorEntry* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // First byte of a tensor's data inside the mapping (valid while this lives).
  const std::byte* data(const TensorEntry& e) const { return data_ + e.begin; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
  const std::byte* data_ = nullptr;
  std::vector<TensorEntry> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace mmgen::io
