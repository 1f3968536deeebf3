// See outputs.hpp.
#include "cli/outputs.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "mmgen/ids.hpp"

namespace mmgen::cli {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

struct MimeExt {
  std::string_view ext;
  std::string_view mime;
};
// The first row for a MIME type gives its preferred extension.
constexpr MimeExt kTable[] = {
    {".png", "image/png"},   {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"},
    {".webp", "image/webp"}, {".mp4", "video/mp4"},
};
// Types the CLI does not send but may receive.
constexpr MimeExt kOutputOnly[] = {
    {".txt", "text/plain"}, {".json", "application/json"}, {".gif", "image/gif"},
    {".webm", "video/webm"}, {".wav", "audio/wav"},
};

std::string_view ext_of_mime(std::string_view mime) {
  // Parameters ("text/plain; charset=utf-8") do not change the extension.
  mime = mime.substr(0, mime.find(';'));
  for (const auto& r : kTable) if (r.mime == mime) return r.ext;
  for (const auto& r : kOutputOnly) if (r.mime == mime) return r.ext;
  return "";
}

std::string pad(std::uint64_t n, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llu", width, static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace

std::string guess_mime(std::string_view path) {
  const std::string ext = lower(fs::path(std::string(path)).extension().string());
  for (const auto& r : kTable) {
    if (r.ext == ext) return std::string(r.mime);
  }
  return "application/octet-stream";
}

std::string extension_for(const proto::BlobMeta& blob) {
  const std::string ext = lower(fs::path(blob.name).extension().string());
  const bool plain = ext.size() >= 2 && ext.size() <= 6 &&
                     std::all_of(ext.begin() + 1, ext.end(),
                                 [](unsigned char c) { return std::isalnum(c) != 0; });
  if (plain) return ext;
  if (auto e = ext_of_mime(lower(blob.mime)); !e.empty()) return std::string(e);
  return ".bin";
}

std::vector<std::string> output_paths(std::string_view output, std::string_view job,
                                      const std::vector<proto::BlobMeta>& blobs) {
  std::vector<std::string> paths;
  const std::size_t n = blobs.size();
  if (!output.empty()) {
    if (n == 1) return {std::string(output)};
    const fs::path p{std::string(output)};
    for (std::size_t i = 0; i < n; ++i) {
      fs::path q = p.parent_path() / (p.stem().string() + "-" + std::to_string(i + 1) +
                                      p.extension().string());
      paths.push_back(q.string());
    }
    return paths;
  }
  // Job ids are checked before they name a file: they come from the broker.
  const std::string base = is_job_id(job) ? std::string(job) : std::string("output");
  for (std::size_t i = 0; i < n; ++i) {
    std::string name = base + (n > 1 ? "-" + std::to_string(i + 1) : "") + extension_for(blobs[i]);
    paths.push_back(name);
  }
  return paths;
}

std::string preview_path(std::string_view dir, std::string_view job, std::uint32_t step,
                         const proto::BlobMeta& blob) {
  const std::string base = is_job_id(job) ? std::string(job) : std::string("job");
  std::string ext = extension_for(blob);
  if (ext == ".bin") ext = ".png";  // previews are images unless told otherwise
  return (fs::path(std::string(dir)) / (base + "-step-" + pad(step, 4) + ext)).string();
}

std::string frame_path(std::string_view dir, std::size_t index, const proto::BlobMeta& blob) {
  return (fs::path(std::string(dir)) / ("frame-" + pad(index, 5) + extension_for(blob))).string();
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const fs::path target(path);
  fs::path tmp = target;
  tmp += ".part-" + random_hex(4);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + path + ": cannot create " + tmp.string());
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw std::runtime_error("cannot write " + path + ": write failed");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::runtime_error("cannot write " + path + ": " + ec.message());
  }
}

void ensure_directory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw std::runtime_error("cannot create directory " + dir + (ec ? ": " + ec.message() : ""));
  }
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw std::runtime_error("cannot read " + path + ": is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path + ": no such file or not readable");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error("cannot read " + path + ": read failed");
  return bytes;
}

std::vector<std::string> write_result(const OutputPlan& plan, const proto::Result& result,
                                      const proto::Frames& blobs) {
  std::vector<std::size_t> main_idx, frame_idx;
  for (std::size_t i = 0; i < result.outputs.size() && i < blobs.size(); ++i) {
    const bool image = result.outputs[i].mime.rfind("image/", 0) == 0;
    (image && !plan.frames_dir.empty() ? frame_idx : main_idx).push_back(i);
  }
  auto bytes = [&](std::size_t i) {
    return std::string_view(static_cast<const char*>(blobs[i].data()), blobs[i].size());
  };

  std::vector<std::string> written;
  std::vector<proto::BlobMeta> main_meta;
  for (auto i : main_idx) main_meta.push_back(result.outputs[i]);
  const auto paths = output_paths(plan.output, plan.job, main_meta);
  for (std::size_t k = 0; k < main_idx.size(); ++k) {
    write_file_atomic(paths[k], bytes(main_idx[k]));
    written.push_back(paths[k]);
  }
  if (!frame_idx.empty()) {
    ensure_directory(plan.frames_dir);
    for (std::size_t k = 0; k < frame_idx.size(); ++k) {
      const auto path = frame_path(plan.frames_dir, k + 1, result.outputs[frame_idx[k]]);
      write_file_atomic(path, bytes(frame_idx[k]));
      written.push_back(path);
    }
  }
  if (main_idx.empty() && !plan.output.empty()) {
    if (auto it = result.data.find("text"); it != result.data.end() && it->second.is_string()) {
      write_file_atomic(plan.output, it->second.as_string());
      written.push_back(plan.output);
    }
  }
  return written;
}

}  // namespace mmgen::cli
