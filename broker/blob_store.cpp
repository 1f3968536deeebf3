#include "blob_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mmgen::broker {
namespace {

std::string errno_text() { return std::strerror(errno); }


void write_file(const std::filesystem::path& path, const void* data, std::size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw BlobError("blob store: cannot create " + path.string() + ": " + errno_text());
  auto p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string why = errno_text();
      ::close(fd);
      throw BlobError("blob store: cannot write " + path.string() + ": " + why);
    }
    p += n;
    size -= std::size_t(n);
  }
  if (::close(fd) != 0) throw BlobError("blob store: cannot close " + path.string() + ": " + errno_text());
}

// Reads exactly `size` bytes straight into a message (one copy, from the page cache).
zmq::message_t read_file(const std::filesystem::path& path, std::uint64_t size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw BlobError("blob store: cannot open " + path.string() + ": " + errno_text());
  zmq::message_t msg(size);
  auto p = static_cast<char*>(msg.data());
  std::uint64_t left = size;
  while (left > 0) {
    ssize_t n = ::read(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      throw BlobError("blob store: " + path.string() + " is shorter than " + std::to_string(size) +
                      " bytes");
    }
    p += n;
    left -= std::uint64_t(n);
  }
  ::close(fd);
  return msg;
}

void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(char((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(std::string_view s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

}  // namespace

std::string pack_blobs(const std::vector<zmq::message_t>& frames, std::uint64_t inline_max) {
  std::string out;
  for (std::uint32_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    if (f.size() == 0 || f.size() > inline_max) continue;
    put_u32(out, i);
    put_u32(out, std::uint32_t(f.size()));
    out.append(static_cast<const char*>(f.data()), f.size());
  }
  return out;
}

bool unpack_blob(std::string_view packed, std::uint32_t index, std::string_view& out) {
  std::size_t at = 0;
  while (at < packed.size()) {
    if (packed.size() - at < 8) throw BlobError("blob store: truncated packed blobs");
    const std::uint32_t i = get_u32(packed, at), n = get_u32(packed, at + 4);
    at += 8;
    if (packed.size() - at < n) throw BlobError("blob store: truncated packed blob");
    if (i == index) {
      out = packed.substr(at, n);
      return true;
    }
    at += n;
  }
  return false;
}

BlobStore::BlobStore(std::filesystem::path root, Journal& journal, std::uint64_t inline_max)
    : root_(std::move(root)), journal_(journal), inline_max_(inline_max) {
  std::error_code ec;
  std::filesystem::create_directories(root_, ec);
  if (ec) throw BlobError("blob store: cannot create " + root_.string() + ": " + ec.message());
}

std::filesystem::path BlobStore::dir_path(const std::string& job, BlobDir dir) const {
  // Job ids become path components: accept only the broker's own id shape.
  if (job.empty() || job.find_first_of("/\\") != std::string::npos || job == "." || job == "..")
    throw BlobError("blob store: bad job id '" + job + "'");
  return root_ / job / (dir == BlobDir::in ? "in" : "out");
}

std::string BlobStore::put(const std::string& job, BlobDir dir,
                           const std::vector<zmq::message_t>& frames) {
  std::filesystem::path folder;
  for (std::uint32_t i = 0; i < frames.size(); ++i) {
    const zmq::message_t& f = frames[i];
    if (f.size() == 0 || is_inline(f.size())) continue;
    if (folder.empty()) {
      folder = dir_path(job, dir);
      std::error_code ec;
      std::filesystem::create_directories(folder, ec);
      if (ec) throw BlobError("blob store: cannot create " + folder.string() + ": " + ec.message());
    }
    write_file(folder / std::to_string(i), f.data(), f.size());
  }
  return pack_blobs(frames, inline_max_);
}

std::vector<zmq::message_t> BlobStore::get(const std::string& job, BlobDir dir,
                                           const std::vector<proto::BlobMeta>& meta) {
  std::vector<zmq::message_t> out;
  out.reserve(meta.size());
  std::string packed;
  bool loaded = false;
  for (std::uint32_t i = 0; i < meta.size(); ++i) {
    const std::uint64_t size = meta[i].size;
    if (size == 0) {
      out.emplace_back();
      continue;
    }
    if (is_inline(size)) {
      if (!loaded) {
        packed = journal_.load_inline(job, dir);
        loaded = true;
      }
      std::string_view bytes;
      if (!unpack_blob(packed, i, bytes))
        throw BlobError("blob store: blob " + std::to_string(i) + " of " + job + " is missing");
      if (bytes.size() != size)
        throw BlobError("blob store: blob " + std::to_string(i) + " of " + job + " has " +
                        std::to_string(bytes.size()) + " bytes, expected " + std::to_string(size));
      out.emplace_back(bytes.data(), bytes.size());
    } else {
      out.push_back(read_file(dir_path(job, dir) / std::to_string(i), size));
    }
  }
  return out;
}

bool BlobStore::has_files(const std::vector<proto::BlobMeta>& meta) const {
  for (const auto& b : meta)
    if (b.size && !is_inline(b.size)) return true;
  return false;
}

void BlobStore::remove_files(const std::string& job, BlobDir dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir_path(job, dir), ec);
  std::filesystem::remove(root_ / job, ec);  // only succeeds once the job folder is empty
}

void BlobStore::remove_files(const std::string& job) {
  dir_path(job, BlobDir::in);  // validates the id
  std::error_code ec;
  std::filesystem::remove_all(root_ / job, ec);
}

std::vector<std::string> BlobStore::job_folders() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root_, ec))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  return out;
}

}  // namespace mmgen::broker
