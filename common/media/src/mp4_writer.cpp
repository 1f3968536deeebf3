// H.264/MP4 writer: RGB24 -> swscale -> yuv420p -> libx264 -> mp4 muxer,
// one frame at a time, into a temp file renamed into place by finish().
#include <fcntl.h>
#include <unistd.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <system_error>

#include "ffmpeg_util.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/media/video.hpp"

namespace mmgen::media {
namespace fs = std::filesystem;
using proto::ErrorCode;
using proto::ProtocolError;

namespace {

constexpr std::array<std::string_view, 10> kPresets = {
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow", "placebo"};

[[noreturn]] void bad(const std::string& msg) { throw ProtocolError(ErrorCode::invalid_request, msg); }

void validate(int w, int h, const VideoEncodeOptions& o) {
  const std::string size = std::to_string(w) + "x" + std::to_string(h);
  if (w <= 0 || h <= 0 || w > 16384 || h > 16384) bad("video size " + size + " is out of range");
  if (w % 2 || h % 2) bad("video size " + size + ": yuv420p needs even width and height");
  if (o.crf < 0 || o.crf > 51) bad("crf " + std::to_string(o.crf) + " is outside 0..51");
  bool known = false;
  for (auto p : kPresets) known = known || p == o.preset;
  if (!known) bad("x264 preset '" + o.preset + "' is not one of ultrafast..placebo");
  if (o.fps.num <= 0 || o.fps.den <= 0 || o.fps.value() > 240)
    bad("fps " + std::to_string(o.fps.num) + "/" + std::to_string(o.fps.den) + " is out of range");
  if (o.threads < 0 || o.threads > 64) bad("threads " + std::to_string(o.threads) + " is out of range");
  if (o.png_compression < 0 || o.png_compression > 9) bad("png compression is outside 0..9");
}

[[noreturn]] void io_error(const std::string& what, const fs::path& p, int err) {
  throw ProtocolError(ErrorCode::internal, what + " '" + p.string() + "': " + std::strerror(err));
}

}  // namespace

struct Mp4Writer::Impl {
  fs::path final_path, temp_path;
  int width = 0, height = 0;
  VideoEncodeOptions opts;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* stream = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  std::int64_t frames = 0;
  bool finished = false;
  bool failed = false;

  ~Impl() {
    release();
    if (!finished && !temp_path.empty()) {
      std::error_code ec;
      fs::remove(temp_path, ec);
    }
  }

  void release() {
    if (fmt && fmt->pb) avio_closep(&fmt->pb);
    avformat_free_context(fmt);
    fmt = nullptr;
    avcodec_free_context(&enc);
    sws_freeContext(sws);
    sws = nullptr;
    av_frame_free(&frame);
    av_packet_free(&pkt);
  }

  // A temp file beside the destination, so the final rename stays on one file system.
  void make_temp() {
    fs::path dir = final_path.parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw ProtocolError(ErrorCode::internal,
                          "video output '" + final_path.string() + "': directory '" + dir.string() +
                              "' does not exist");
    // O_EXCL with a random suffix rather than mkstemp: mkstemp's 0600 mode would
    // survive the rename, while 0666 here is narrowed by the umask as usual.
    std::random_device rd;
    for (int attempt = 0;; ++attempt) {
      char suffix[16];
      std::snprintf(suffix, sizeof(suffix), "%08x", unsigned(rd()));
      const fs::path p = dir / ("." + final_path.filename().string() + ".part-" + suffix);
      const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) {
        ::close(fd);
        temp_path = p;
        return;
      }
      if (errno != EEXIST || attempt > 16)
        io_error("cannot create a temp file for video output", final_path, errno);
    }
  }

  void open(const AVCodec* codec) {
    const std::string where = "video output '" + final_path.string() + "'";
    int r = avformat_alloc_output_context2(&fmt, nullptr, "mp4", temp_path.c_str());
    if (r < 0 || !fmt) detail::throw_av(ErrorCode::internal, where + ": mp4 muxer", r);
    enc = avcodec_alloc_context3(codec);
    pkt = av_packet_alloc();
    frame = av_frame_alloc();
    if (!enc || !pkt || !frame) throw ProtocolError(ErrorCode::internal, where + ": out of memory");
    enc->width = width;
    enc->height = height;
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->time_base = AVRational{opts.fps.den, opts.fps.num};  // one tick per frame
    enc->framerate = AVRational{opts.fps.num, opts.fps.den};
    enc->thread_count = opts.threads;
    // What the RGB -> YUV conversion below produces.
    enc->colorspace = AVCOL_SPC_SMPTE170M;
    enc->color_range = AVCOL_RANGE_MPEG;
    if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(enc->priv_data, "preset", opts.preset.c_str(), 0);
    av_opt_set(enc->priv_data, "crf", std::to_string(opts.crf).c_str(), 0);
    if ((r = avcodec_open2(enc, codec, nullptr)) < 0)
      detail::throw_av(ErrorCode::internal, where + ": cannot open libx264", r);

    stream = avformat_new_stream(fmt, nullptr);
    if (!stream) throw ProtocolError(ErrorCode::internal, where + ": cannot add a stream");
    if ((r = avcodec_parameters_from_context(stream->codecpar, enc)) < 0)
      detail::throw_av(ErrorCode::internal, where + ": stream parameters", r);
    stream->time_base = enc->time_base;
    stream->avg_frame_rate = enc->framerate;

    if ((r = avio_open(&fmt->pb, temp_path.c_str(), AVIO_FLAG_WRITE)) < 0)
      detail::throw_av(ErrorCode::internal, where + ": cannot open " + temp_path.string(), r);
    AVDictionary* mux_opts = nullptr;
    av_dict_set(&mux_opts, "movflags", "+faststart", 0);  // moov atom first: playable while downloading
    r = avformat_write_header(fmt, &mux_opts);
    av_dict_free(&mux_opts);
    if (r < 0) detail::throw_av(ErrorCode::internal, where + ": cannot write the mp4 header", r);

    frame->format = AV_PIX_FMT_YUV420P;
    frame->width = width;
    frame->height = height;
    if ((r = av_frame_get_buffer(frame, 0)) < 0)
      detail::throw_av(ErrorCode::internal, where + ": frame buffer", r);
    // ffmpeg's own defaults for this conversion: bicubic chroma, BT.601, limited range.
    sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P,
                         SWS_BICUBIC, nullptr, nullptr, nullptr);
    if (!sws) throw ProtocolError(ErrorCode::internal, where + ": no RGB -> yuv420p converter");
    const int* coeffs = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(sws, coeffs, 1, coeffs, 0, 0, 1 << 16, 1 << 16);
  }

  // Moves every packet the encoder has ready into the file.
  void drain() {
    for (;;) {
      int r = avcodec_receive_packet(enc, pkt);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) detail::throw_av(ErrorCode::internal, "libx264 encode failed", r);
      pkt->stream_index = stream->index;
      if (pkt->duration == 0) pkt->duration = 1;  // one frame, so the last frame keeps its length
      av_packet_rescale_ts(pkt, enc->time_base, stream->time_base);
      r = av_interleaved_write_frame(fmt, pkt);  // takes the packet's reference
      if (r < 0)
        detail::throw_av(ErrorCode::internal, "writing video '" + final_path.string() + "'", r);
    }
  }

  void write_png(const std::uint8_t* rgb, std::size_t stride) {
    char name[32];
    std::snprintf(name, sizeof(name), "frame_%05lld.png", static_cast<long long>(frames));
    const fs::path p = opts.frames_dir / name;
    const auto png = encode_png(ImageView(rgb, width, height, 3, stride), opts.png_compression);
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
    f.close();
    if (!f) io_error("cannot write frame", p, errno ? errno : EIO);
  }
};

Mp4Writer::Mp4Writer(const fs::path& path, int width, int height, const VideoEncodeOptions& opts)
    : impl_(std::make_unique<Impl>()) {
  validate(width, height, opts);
  detail::install_ffmpeg_log();
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec)
    throw ProtocolError(ErrorCode::unsupported,
                        "this FFmpeg has no libx264 encoder (Debian's libavcodec59 has it)");
  impl_->final_path = path;
  impl_->width = width;
  impl_->height = height;
  impl_->opts = opts;
  if (!opts.frames_dir.empty()) {
    std::error_code ec;
    fs::create_directories(opts.frames_dir, ec);
    if (!fs::is_directory(opts.frames_dir))
      io_error("cannot create the frames directory", opts.frames_dir, ec ? ec.value() : ENOTDIR);
  }
  impl_->make_temp();
  impl_->open(codec);
}

Mp4Writer::~Mp4Writer() = default;

void Mp4Writer::write_rgb(std::span<const std::uint8_t> rgb) {
  const std::size_t want = std::size_t(impl_->width) * impl_->height * 3;
  if (rgb.size() != want)
    throw ProtocolError(ErrorCode::invalid_request, "video frame has " + std::to_string(rgb.size()) +
                                                        " bytes, expected " + std::to_string(want) +
                                                        " (RGB " + std::to_string(impl_->width) +
                                                        "x" + std::to_string(impl_->height) + ")");
  write_rgb(rgb.data(), 0);
}

void Mp4Writer::write_rgb(const std::uint8_t* rgb, std::size_t stride) {
  Impl& m = *impl_;
  if (m.finished || m.failed)
    throw ProtocolError(ErrorCode::internal, "video writer is closed");
  if (!stride) stride = std::size_t(m.width) * 3;
  try {
    int r = av_frame_make_writable(m.frame);  // the encoder may still hold the last one
    if (r < 0) detail::throw_av(ErrorCode::internal, "video frame buffer", r);
    const std::uint8_t* src[1] = {rgb};
    const int src_stride[1] = {int(stride)};
    sws_scale(m.sws, src, src_stride, 0, m.height, m.frame->data, m.frame->linesize);
    m.frame->pts = m.frames;
    if ((r = avcodec_send_frame(m.enc, m.frame)) < 0)
      detail::throw_av(ErrorCode::internal, "libx264 rejected a frame", r);
    m.drain();
    if (!m.opts.frames_dir.empty()) m.write_png(rgb, stride);
    ++m.frames;
  } catch (...) {
    m.failed = true;
    throw;
  }
}

void Mp4Writer::finish() {
  Impl& m = *impl_;
  if (m.finished || m.failed) throw ProtocolError(ErrorCode::internal, "video writer is closed");
  if (m.frames == 0) throw ProtocolError(ErrorCode::invalid_request, "video has no frames");
  m.failed = true;  // until the rename below succeeds
  int r = avcodec_send_frame(m.enc, nullptr);  // flush: B-frames and lookahead
  if (r < 0) detail::throw_av(ErrorCode::internal, "libx264 flush failed", r);
  m.drain();
  const std::string where = "writing video '" + m.final_path.string() + "'";
  if ((r = av_write_trailer(m.fmt)) < 0) detail::throw_av(ErrorCode::internal, where, r);
  if ((r = avio_closep(&m.fmt->pb)) < 0) detail::throw_av(ErrorCode::internal, where, r);
  std::error_code ec;
  fs::rename(m.temp_path, m.final_path, ec);
  if (ec)
    throw ProtocolError(ErrorCode::internal, "cannot move the finished video to '" +
                                                 m.final_path.string() + "': " + ec.message());
  m.finished = true;
  m.failed = false;
  m.release();
}

std::int64_t Mp4Writer::frames_written() const { return impl_->frames; }
int Mp4Writer::width() const { return impl_->width; }
int Mp4Writer::height() const { return impl_->height; }

}  // namespace mmgen::media
