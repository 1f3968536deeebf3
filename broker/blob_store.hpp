// Job payloads at rest: the input blobs of a SUBMIT and the output blobs of a
// RESULT. Each is written as its message arrives, then the frames are dropped
// (or moved on to a socket); it is read back only to send it again (a JOB
// after a requeue or restart, FETCH, ATTACH).
//
// Blobs up to `inline_max` bytes are packed into one string that the caller
// journals in the job's own row (no file-system work and no extra database
// pages for small jobs); larger ones are files under ROOT/<job>/{in,out}/<index>.
// Empty blobs are stored nowhere: their size in the metadata says everything.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "journal.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::broker {

class BlobError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BlobStore {
 public:
  static constexpr std::uint64_t kDefaultInlineMax = 64 * 1024;

  // root: the blob folder (DIR/blobs); packed small blobs are read back from `journal`.
  BlobStore(std::filesystem::path root, Journal& journal,
            std::uint64_t inline_max = kDefaultInlineMax);

  // Writes frames[i] (blob i of the job) as a file if it is large, and
  // returns the small ones packed: pass that to Journal::insert (inputs) or
  // Journal::store_result (outputs). Throws BlobError.
  std::string put(const std::string& job, BlobDir dir, const std::vector<zmq::message_t>& frames);
  // Reads the blobs described by `meta` back as frames. Throws BlobError if
  // one is missing or its size differs.
  std::vector<zmq::message_t> get(const std::string& job, BlobDir dir,
                                  const std::vector<proto::BlobMeta>& meta);
  // Whether put() wrote files for blobs like these.
  bool has_files(const std::vector<proto::BlobMeta>& meta) const;
  void remove_files(const std::string& job, BlobDir dir);
  void remove_files(const std::string& job);  // both directions (TTL collection)
  // Job folders under the root (to find orphans after a crash).
  std::vector<std::string> job_folders() const;

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path dir_path(const std::string& job, BlobDir dir) const;
  bool is_inline(std::uint64_t size) const { return size <= inline_max_; }

  std::filesystem::path root_;
  Journal& journal_;
  std::uint64_t inline_max_;
};

// The packing of small blobs: repeated [u32 index][u32 size][bytes], little endian.
std::string pack_blobs(const std::vector<zmq::message_t>& frames, std::uint64_t inline_max);
// Finds blob `index` in a packed string; false if absent. Throws BlobError if malformed.
bool unpack_blob(std::string_view packed, std::uint32_t index, std::string_view& out);

}  // namespace mmgen::broker
