#include "ffmpeg_util.hpp"

extern "C" {
#include <libavutil/log.h>
}

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "mmgen/log.hpp"

namespace mmgen::media::detail {
namespace {

thread_local std::string g_last_error;
// FFmpeg may print one line in several calls; pieces collect here until '\n'.
thread_local std::string g_pending;
thread_local int g_pending_level = AV_LOG_QUIET;
thread_local int g_print_prefix = 1;

void log_callback(void* avcl, int level, const char* fmt, va_list args) {
  if (level > AV_LOG_WARNING) return;
  char piece[1024];
  av_log_format_line2(avcl, level, fmt, args, piece, sizeof(piece), &g_print_prefix);
  if (g_pending.empty() || level < g_pending_level) g_pending_level = level;
  g_pending += piece;
  if (g_pending.empty() || g_pending.back() != '\n') return;
  while (!g_pending.empty() && (g_pending.back() == '\n' || g_pending.back() == '\r')) g_pending.pop_back();
  std::string text;
  text.swap(g_pending);
  if (text.empty()) return;
  // Errors explain a failure we are about to report: keep them for the message.
  // Warnings (e.g. about damaged input) are only interesting when debugging.
  if (g_pending_level <= AV_LOG_ERROR) {
    g_last_error = text;
    log::warn("ffmpeg", {{"text", text}});
  } else {
    log::debug("ffmpeg", {{"text", text}});
  }
}

}  // namespace

void install_ffmpeg_log() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(log_callback); });
  g_last_error.clear();
}

std::string take_ffmpeg_message() {
  std::string s;
  s.swap(g_last_error);
  return s;
}

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

void throw_av(proto::ErrorCode code, std::string_view what, int err) {
  std::string msg(what);
  msg += ": " + av_error_text(err);
  const std::string detail = take_ffmpeg_message();
  if (!detail.empty()) msg += " (" + detail + ")";
  throw proto::ProtocolError(code, msg);
}

}  // namespace mmgen::media::detail
