// FFmpeg glue shared by the writer and the reader: error strings and a log
// hook that keeps FFmpeg's last complaint so our exceptions can quote it
// (libx264 and the muxers explain failures only through av_log).
#pragma once

extern "C" {
#include <libavutil/error.h>
}

#include <string>
#include <string_view>

#include "mmgen/protocol.hpp"

namespace mmgen::media::detail {

// Installs the log callback (once per process: FFmpeg errors go to mmgen's log
// as warn, warnings as debug, the rest is dropped) and forgets this thread's
// last FFmpeg error. Call at the start of each open so a message from an
// earlier job is never quoted for a new failure.
void install_ffmpeg_log();

// The last error-level FFmpeg message logged on this thread (then cleared).
std::string take_ffmpeg_message();

std::string av_error_text(int err);

// ProtocolError(code, "<what>: <av error>[ (<ffmpeg's last message>)]").
[[noreturn]] void throw_av(proto::ErrorCode code, std::string_view what, int err);

}  // namespace mmgen::media::detail
