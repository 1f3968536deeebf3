// Files in and out: MIME types of input files, the names outputs are written
// under, and writing them without leaving partial files behind.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/codec.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::cli {

// From the extension, case-insensitively: png, jpg/jpeg, webp, mp4; anything
// else is application/octet-stream.
std::string guess_mime(std::string_view path);

// ".png" etc. for an output: the extension of its blob name when that is a
// plain short one, else one implied by the MIME type, else ".bin".
std::string extension_for(const proto::BlobMeta& blob);

// Where `count` outputs go. With `output` set: one output -> `output`; several
// -> the index inserted before the extension (out.png -> out-1.png, out-2.png).
// Without: JOB.ext (several: JOB-1.ext, ...) in the current directory, the
// extension from extension_for(). Blob names never become paths, so a
// worker cannot direct a write outside the chosen place.
std::vector<std::string> output_paths(std::string_view output, std::string_view job,
                                      const std::vector<proto::BlobMeta>& blobs);

// DIR/JOB-step-0007.png
std::string preview_path(std::string_view dir, std::string_view job, std::uint32_t step,
                         const proto::BlobMeta& blob);

// DIR/frame-00001.png (index from 1)
std::string frame_path(std::string_view dir, std::size_t index, const proto::BlobMeta& blob);

// Writes through a temporary file in the same directory and renames it into
// place. Throws std::runtime_error naming the path.
void write_file_atomic(const std::string& path, std::string_view bytes);
// Creates `dir` (and parents) if missing. Throws std::runtime_error.
void ensure_directory(const std::string& dir);
// Throws std::runtime_error naming the path.
std::string read_file(const std::string& path);

// Writes a RESULT's outputs. Image blobs go to `frames_dir` when it is set;
// the others to output_paths(output, ...). When there are no blobs to write
// but `output` is set and the data has a "text" string, the text is written
// to `output`. Returns the paths written, in order.
struct OutputPlan {
  std::string job;
  std::string output;
  std::string frames_dir;
};
std::vector<std::string> write_result(const OutputPlan& plan, const proto::Result& result,
                                      const proto::Frames& blobs);

}  // namespace mmgen::cli
