// A checkpoint as published: one `<stem>.safetensors` or shards listed in
// `<stem>.safetensors.index.json` (stem "model" for transformers,
// "diffusion_pytorch_model" for diffusers). Tensors come out as at::Tensor
// views over the mmap (the view keeps the mapping alive), and WeightLoader
// takes them one by one for a model, converting to the model dtype and
// checking shape, then reports what the model never asked for.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/io/safetensors.hpp"

namespace mmgen::io {

// "float32" | "bfloat16" | "float16" (also "fp32", "bf16", "fp16", "half",
// "float"), as --dtype and config.json's torch_dtype spell them. Throws
// LoadError(unsupported) naming the string otherwise.
c10::ScalarType parse_dtype(std::string_view name);
std::string_view dtype_name(c10::ScalarType t);
c10::ScalarType to_scalar_type(StDType d);

// A zero-copy tensor over a file's bytes (its deleter holds `file`). Data
// whose address is not aligned to the element size is copied instead, so
// kernels never see misaligned pointers.
at::Tensor tensor_from_file(const std::shared_ptr<const SafetensorsFile>& file, const TensorEntry& e);

// Drops the resident pages of a tensor's bytes in the file mapping (whole
// pages inside its range only, so neighbours keep theirs) and returns how many
// bytes that was. The bytes stay readable: a later read faults them back in
// from the file. For data already copied out (converted or stacked weights).
std::size_t release_file_pages(const SafetensorsFile& file, const TensorEntry& e);

class Checkpoint {
 public:
  // `path` is a folder (looks for <stem>.safetensors.index.json, then
  // <stem>.safetensors) or a single .safetensors file.
  static Checkpoint open(const std::filesystem::path& path, std::string_view stem = "model");

  // Names in sorted order.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const { return where_.find(name) != where_.end(); }
  // The entry and its file; throws LoadError(missing) naming the checkpoint.
  const TensorEntry& entry(std::string_view name) const;
  const std::filesystem::path& file_of(std::string_view name) const;
  const std::shared_ptr<const SafetensorsFile>& file(std::string_view name) const;
  // Raw tensor in the stored dtype (zero-copy view, CPU).
  at::Tensor tensor(std::string_view name) const;
  // What errors call the checkpoint: the folder or the file.
  const std::string& source() const { return source_; }

 private:
  struct Location {
    std::shared_ptr<const SafetensorsFile> file;
    const TensorEntry* entry;
  };
  std::string source_;
  std::map<std::string, Location, std::less<>> where_;
};

struct LoadOptions {
  c10::ScalarType dtype = c10::ScalarType::Float;  // floating tensors are converted to this
  c10::Device device = c10::Device(c10::DeviceType::CPU);
};

// Hands tensors to a model by checkpoint name and remembers which were taken.
class WeightLoader {
 public:
  WeightLoader(const Checkpoint& ckpt, LoadOptions opts) : ckpt_(ckpt), opts_(opts) {}

  // A floating-point tensor with exactly `shape`, converted to opts.dtype on
  // opts.device. Throws missing / wrong_shape / wrong_dtype naming file and tensor.
  // In the file's dtype on the CPU it is a zero-copy view of the mapping;
  // otherwise it is a copy and the tensor's file pages are released at once
  // (release), so loading never holds the whole source file resident.
  at::Tensor take(std::string_view name, std::vector<std::int64_t> shape);
  // Same, but returns an undefined tensor when the checkpoint lacks it.
  at::Tensor take_if_present(std::string_view name, std::vector<std::int64_t> shape);
  // For a model that copies a taken tensor into a weight of its own (e.g.
  // stacks q, k, v into one matrix): drops the tensor's file pages from
  // memory. Views of it stay valid (pages are re-read from the file on access).
  void release(std::string_view name);
  // Bytes of file pages released so far (take's conversions and release()).
  std::size_t released_bytes() const { return released_bytes_; }
  // Marks names as deliberately unused (e.g. a tied lm_head stored anyway, or
  // the vision tower when only the language model is wanted).
  void skip(std::string_view name);
  void skip_prefix(std::string_view prefix);
  bool contains(std::string_view name) const { return ckpt_.contains(name); }
  // Throws LoadError(unexpected) listing (up to 8 of) the names never taken or skipped.
  void finish() const;

  const LoadOptions& options() const { return opts_; }

 private:
  const Checkpoint& ckpt_;
  LoadOptions opts_;
  std::set<std::string, std::less<>> used_;
  std::vector<std::string> skipped_prefixes_;
  std::size_t released_bytes_ = 0;
};

}  // namespace mmgen::io
