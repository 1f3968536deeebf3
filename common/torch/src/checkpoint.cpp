// Checkpoint folders, sharded indexes, and the tensor hand-out (checkpoint.hpp).
#include "mmgen/io/checkpoint.hpp"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "mmgen/io/json.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::io {

namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

std::string where(const std::filesystem::path& file, std::string_view name) {
  return file.string() + ": tensor '" + std::string(name) + "'";
}

}  // namespace

c10::ScalarType parse_dtype(std::string_view name) {
  if (name == "float32" || name == "fp32" || name == "float") return c10::ScalarType::Float;
  if (name == "bfloat16" || name == "bf16") return c10::ScalarType::BFloat16;
  if (name == "float16" || name == "fp16" || name == "half") return c10::ScalarType::Half;
  throw LoadError(LoadErrorKind::unsupported,
                  "dtype '" + std::string(name) + "' is not one of float32, bfloat16, float16");
}

std::string_view dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::BFloat16: return "bfloat16";
    case c10::ScalarType::Half: return "float16";
    default: return c10::toString(t);
  }
}

c10::ScalarType to_scalar_type(StDType d) {
  switch (d) {
    case StDType::BOOL: return c10::ScalarType::Bool;
    case StDType::U8: return c10::ScalarType::Byte;
    case StDType::I8: return c10::ScalarType::Char;
    case StDType::I16: return c10::ScalarType::Short;
    case StDType::U16: return c10::ScalarType::UInt16;
    case StDType::I32: return c10::ScalarType::Int;
    case StDType::U32: return c10::ScalarType::UInt32;
    case StDType::I64: return c10::ScalarType::Long;
    case StDType::U64: return c10::ScalarType::UInt64;
    case StDType::F16: return c10::ScalarType::Half;
    case StDType::BF16: return c10::ScalarType::BFloat16;
    case StDType::F32: return c10::ScalarType::Float;
    case StDType::F64: return c10::ScalarType::Double;
    case StDType::F8_E4M3: return c10::ScalarType::Float8_e4m3fn;
    case StDType::F8_E5M2: return c10::ScalarType::Float8_e5m2;
  }
  return c10::ScalarType::Undefined;
}

at::Tensor tensor_from_file(const std::shared_ptr<const SafetensorsFile>& file, const TensorEntry& e) {
  auto opts = at::TensorOptions().dtype(to_scalar_type(e.dtype));
  const std::byte* src = file->data(e);
  if (reinterpret_cast<std::uintptr_t>(src) % element_size(e.dtype) != 0) {
    at::Tensor t = at::empty(e.shape, opts);
    std::memcpy(t.data_ptr(), src, e.nbytes());
    return t;
  }
  // The mapping is private copy-on-write, so handing out a non-const pointer
  // cannot change the file.
  void* p = const_cast<std::byte*>(src);
  return at::from_blob(p, e.shape, [keep = file](void*) {}, opts);
}

Checkpoint Checkpoint::open(const std::filesystem::path& path, std::string_view stem) {
  namespace fs = std::filesystem;
  Checkpoint c;
  c.source_ = path.string();
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    auto f = SafetensorsFile::open(path);
    for (const auto& e : f->entries()) c.where_.emplace(e.name, Location{f, &e});
    return c;
  }
  if (!fs::is_directory(path, ec)) {
    throw LoadError(LoadErrorKind::io, c.source_ + ": no such checkpoint file or folder");
  }
  const fs::path index = path / (std::string(stem) + ".safetensors.index.json");
  const fs::path single = path / (std::string(stem) + ".safetensors");
  if (!fs::exists(index, ec)) {
    if (!fs::exists(single, ec)) {
      throw LoadError(LoadErrorKind::missing, c.source_ + ": neither " + single.filename().string() +
                                                  " nor " + index.filename().string() + " found");
    }
    auto f = SafetensorsFile::open(single);
    for (const auto& e : f->entries()) c.where_.emplace(e.name, Location{f, &e});
    return c;
  }

  const Value root = read_json_file(index);
  const std::string isrc = index.string();
  if (!root.is_map()) throw LoadError(LoadErrorKind::bad_header, isrc + ": not a JSON object");
  auto wm = root.as_map().find("weight_map");
  if (wm == root.as_map().end() || !wm->second.is_map()) {
    throw LoadError(LoadErrorKind::bad_header, isrc + ": no \"weight_map\" object");
  }
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
  for (const auto& [name, v] : wm->second.as_map()) {
    if (!v.is_string()) {
      throw LoadError(LoadErrorKind::bad_header, isrc + ": weight_map['" + name + "'] is not a string");
    }
    const std::string& shard = v.as_string();
    // Shards live beside the index; a path that leaves the folder is refused.
    fs::path rel(shard);
    if (shard.empty() || rel.has_parent_path() || rel.is_absolute() || shard == "." || shard == "..") {
      throw LoadError(LoadErrorKind::bad_header,
                      isrc + ": weight_map['" + name + "'] names '" + shard + "', not a file in the folder");
    }
    auto it = shards.find(shard);
    if (it == shards.end()) it = shards.emplace(shard, SafetensorsFile::open(path / rel)).first;
    const TensorEntry* e = it->second->find(name);
    if (!e) {
      throw LoadError(LoadErrorKind::missing, where(it->second->path(), name) +
                                                  " is listed in " + index.filename().string() +
                                                  " but the shard does not hold it");
    }
    c.where_.emplace(name, Location{it->second, e});
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [n, loc] : where_) out.push_back(n);
  return out;
}

const TensorEntry& Checkpoint::entry(std::string_view name) const {
  auto it = where_.find(name);
  if (it == where_.end()) {
    throw LoadError(LoadErrorKind::missing,
                    source_ + ": tensor '" + std::string(name) + "' is missing from the checkpoint");
  }
  return *it->second.entry;
}

const std::filesystem::path& Checkpoint::file_of(std::string_view name) const {
  entry(name);  // throws if missing
  return where_.find(name)->second.file->path();
}

const std::shared_ptr<const SafetensorsFile>& Checkpoint::file(std::string_view name) const {
  entry(name);  // throws if missing
  return where_.find(name)->second.file;
}

at::Tensor Checkpoint::tensor(std::string_view name) const {
  const TensorEntry& e = entry(name);
  return tensor_from_file(where_.find(name)->second.file, e);
}

at::Tensor WeightLoader::take(std::string_view name, std::vector<std::int64_t> shape) {
  const TensorEntry& e = ckpt_.entry(name);
  const auto& file = ckpt_.file_of(name);
  if (!is_floating(e.dtype)) {
    throw LoadError(LoadErrorKind::wrong_dtype, where(file, name) + " has dtype " +
                                                    std::string(to_string(e.dtype)) +
                                                    ", expected a floating-point weight");
  }
  if (c10::IntArrayRef(e.shape) != c10::IntArrayRef(shape)) {
    throw LoadError(LoadErrorKind::wrong_shape, where(file, name) + " has shape " + shape_str(e.shape) +
                                                    ", expected " + shape_str(shape));
  }
  used_.emplace(name);
  at::Tensor out = ckpt_.tensor(name).to(opts_.device, opts_.dtype);
  // A converted, moved or realigned tensor no longer reads the file: its pages
  // would otherwise stay resident until the mapping goes, on top of the copy.
  const auto* src = ckpt_.file(name)->data(e);
  const auto* got = static_cast<const std::byte*>(out.data_ptr());
  const bool view = out.is_cpu() && got >= src && got < src + std::max<std::uint64_t>(e.nbytes(), 1);
  if (!view) release(name);
  return out;
}

std::size_t release_file_pages(const SafetensorsFile& file, const TensorEntry& e) {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(file.data(e));
  // Whole pages inside the tensor only: a page it shares with a neighbour may
  // back that neighbour's zero-copy view, and stays.
  const std::uintptr_t first = (begin + page - 1) / page * page;
  const std::uintptr_t last = (begin + e.nbytes()) / page * page;
  if (last <= first) return 0;
  // MADV_DONTNEED on a private file mapping drops the pages; a later read
  // faults them back in from the file (page cache), so any view still reading
  // these bytes sees the same values. Weights are never written through a
  // view, so no copy-on-write page is lost. A failure only costs memory.
  if (::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) != 0) return 0;
  return last - first;
}

void WeightLoader::release(std::string_view name) {
  const TensorEntry& e = ckpt_.entry(name);
  released_bytes_ += release_file_pages(*ckpt_.file(name), e);
}

at::Tensor WeightLoader::take_if_present(std::string_view name, std::vector<std::int64_t> shape) {
  if (!ckpt_.contains(name)) return at::Tensor();
  return take(name, std::move(shape));
}

void WeightLoader::skip(std::string_view name) { used_.emplace(name); }

void WeightLoader::skip_prefix(std::string_view prefix) { skipped_prefixes_.emplace_back(prefix); }

void WeightLoader::finish() const {
  std::vector<std::string> extra;
  for (const auto& n : ckpt_.names()) {
    if (used_.count(n)) continue;
    bool skipped = false;
    for (const auto& p : skipped_prefixes_) skipped = skipped || n.compare(0, p.size(), p) == 0;
    if (!skipped) extra.push_back(n);
  }
  if (extra.empty()) return;
  std::string list;
  for (std::size_t i = 0; i < extra.size() && i < 8; ++i) list += (i ? ", '" : "'") + extra[i] + "'";
  if (extra.size() > 8) list += ", ... (" + std::to_string(extra.size()) + " in all)";
  throw LoadError(LoadErrorKind::unexpected,
                  ckpt_.source() + ": the checkpoint has tensors the model does not use: " + list);
}

}  // namespace mmgen::io
