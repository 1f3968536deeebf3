// Video decoding: libavformat demux (file or in-memory AVIOContext), the
// stream's decoder, swscale to packed RGB24.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cstring>
#include <string>

#include "ffmpeg_util.hpp"
#include "mmgen/media/video.hpp"

namespace mmgen::media {
namespace fs = std::filesystem;
using proto::ErrorCode;
using proto::ProtocolError;

struct VideoReader::Impl {
  std::string name;  // for messages
  VideoReadLimits limits;
  VideoInfo info;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  int stream = -1;
  bool flushing = false;
  bool done = false;
  // In-memory source.
  std::vector<std::uint8_t> data;
  std::int64_t pos = 0;
  AVIOContext* avio = nullptr;

  ~Impl() {
    avformat_close_input(&fmt);
    if (avio) {
      av_freep(&avio->buffer);
      avio_context_free(&avio);
    }
    avcodec_free_context(&dec);
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_packet_free(&pkt);
  }

  [[noreturn]] void fail(ErrorCode code, const std::string& what, int err) {
    detail::throw_av(code, "video '" + name + "': " + what, err);
  }

  static int read_cb(void* opaque, std::uint8_t* buf, int size) {
    auto* m = static_cast<Impl*>(opaque);
    const std::int64_t left = std::int64_t(m->data.size()) - m->pos;
    if (left <= 0) return AVERROR_EOF;
    const int n = int(std::min<std::int64_t>(left, size));
    std::memcpy(buf, m->data.data() + m->pos, std::size_t(n));
    m->pos += n;
    return n;
  }

  static std::int64_t seek_cb(void* opaque, std::int64_t offset, int whence) {
    auto* m = static_cast<Impl*>(opaque);
    const auto size = std::int64_t(m->data.size());
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return size;
    std::int64_t target = offset;
    if (whence == SEEK_CUR) target += m->pos;
    else if (whence == SEEK_END) target += size;
    else if (whence != SEEK_SET) return AVERROR(EINVAL);
    if (target < 0 || target > size) return AVERROR(EINVAL);
    return m->pos = target;
  }

  void open(const char* url) {
    detail::install_ffmpeg_log();
    int r = avformat_open_input(&fmt, url, nullptr, nullptr);
    if (r < 0) fail(ErrorCode::invalid_request, "cannot open", r);
    if ((r = avformat_find_stream_info(fmt, nullptr)) < 0)
      fail(ErrorCode::invalid_request, "cannot read stream info", r);
    const AVCodec* codec = nullptr;
    stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream < 0 || !codec) fail(ErrorCode::invalid_request, "no decodable video stream", stream);
    const AVStream* st = fmt->streams[stream];
    const AVCodecParameters* par = st->codecpar;
    if (par->width <= 0 || par->height <= 0)
      throw ProtocolError(ErrorCode::invalid_request, "video '" + name + "': no frame size");
    if (par->width > limits.max_width || par->height > limits.max_height)
      throw ProtocolError(ErrorCode::too_large,
                          "video '" + name + "': " + std::to_string(par->width) + "x" +
                              std::to_string(par->height) + " exceeds the limit of " +
                              std::to_string(limits.max_width) + "x" +
                              std::to_string(limits.max_height));
    dec = avcodec_alloc_context3(codec);
    frame = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!dec || !frame || !pkt) throw ProtocolError(ErrorCode::internal, "out of memory");
    if ((r = avcodec_parameters_to_context(dec, par)) < 0) fail(ErrorCode::internal, "decoder setup", r);
    if ((r = avcodec_open2(dec, codec, nullptr)) < 0) fail(ErrorCode::invalid_request, "cannot open decoder", r);
    info.width = par->width;
    info.height = par->height;
    info.fps = Rational{st->avg_frame_rate.num, st->avg_frame_rate.den ? st->avg_frame_rate.den : 1};
    info.frame_count = st->nb_frames;
    if (st->duration != AV_NOPTS_VALUE) info.duration_s = double(st->duration) * av_q2d(st->time_base);
    else if (fmt->duration != AV_NOPTS_VALUE) info.duration_s = double(fmt->duration) / AV_TIME_BASE;
    info.codec = avcodec_get_name(par->codec_id);
    const char* pf = av_get_pix_fmt_name(AVPixelFormat(par->format));
    info.pix_fmt = pf ? pf : "";
  }

  void to_rgb(std::vector<std::uint8_t>& rgb) {
    if (frame->width != info.width || frame->height != info.height)
      throw ProtocolError(ErrorCode::invalid_request,
                          "video '" + name + "': frame size changes mid-stream");
    sws = sws_getCachedContext(sws, frame->width, frame->height, AVPixelFormat(frame->format),
                               frame->width, frame->height, AV_PIX_FMT_RGB24,
                               SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr,
                               nullptr, nullptr);
    if (!sws) throw ProtocolError(ErrorCode::unsupported, "video '" + name + "': no converter to RGB");
    // Honour the stream's matrix and range (untagged streams get BT.601 limited).
    const int* in = sws_getCoefficients(frame->colorspace == AVCOL_SPC_UNSPECIFIED
                                            ? SWS_CS_ITU601 : int(frame->colorspace));
    sws_setColorspaceDetails(sws, in, frame->color_range == AVCOL_RANGE_JPEG ? 1 : 0,
                             sws_getCoefficients(SWS_CS_ITU601), 1, 0, 1 << 16, 1 << 16);
    rgb.resize(std::size_t(info.width) * info.height * 3);
    std::uint8_t* dst[1] = {rgb.data()};
    const int dst_stride[1] = {info.width * 3};
    sws_scale(sws, frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
  }

  bool next(std::vector<std::uint8_t>& rgb) {
    while (!done) {
      int r = avcodec_receive_frame(dec, frame);
      if (r == 0) {
        to_rgb(rgb);
        av_frame_unref(frame);
        return true;
      }
      if (r == AVERROR_EOF) break;
      if (r != AVERROR(EAGAIN)) fail(ErrorCode::invalid_request, "corrupt video data", r);
      if (flushing) break;
      r = av_read_frame(fmt, pkt);
      if (r == AVERROR_EOF) {
        flushing = true;
        avcodec_send_packet(dec, nullptr);
        continue;
      }
      if (r < 0) fail(ErrorCode::invalid_request, "read error", r);
      if (pkt->stream_index == stream) {
        r = avcodec_send_packet(dec, pkt);
        av_packet_unref(pkt);
        if (r < 0 && r != AVERROR(EAGAIN)) fail(ErrorCode::invalid_request, "corrupt video data", r);
      } else {
        av_packet_unref(pkt);
      }
    }
    done = true;
    return false;
  }
};

VideoReader::VideoReader(const fs::path& path, const VideoReadLimits& limits)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = path.string();
  impl_->limits = limits;
  impl_->open(path.c_str());
}

VideoReader::VideoReader(std::string_view name, std::vector<std::uint8_t> bytes,
                         const VideoReadLimits& limits)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.name = std::string(name);
  m.limits = limits;
  m.data = std::move(bytes);
  constexpr int kBuf = 1 << 16;
  auto* buf = static_cast<std::uint8_t*>(av_malloc(kBuf));
  m.avio = buf ? avio_alloc_context(buf, kBuf, 0, &m, &Impl::read_cb, nullptr, &Impl::seek_cb) : nullptr;
  m.fmt = avformat_alloc_context();
  if (!m.avio || !m.fmt) {
    if (!m.avio) av_free(buf);
    throw ProtocolError(ErrorCode::internal, "out of memory");
  }
  m.fmt->pb = m.avio;
  m.fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  m.open(nullptr);
}

VideoReader::~VideoReader() = default;

const VideoInfo& VideoReader::info() const { return impl_->info; }

bool VideoReader::next_rgb(std::vector<std::uint8_t>& rgb) { return impl_->next(rgb); }

DecodedVideo read_video(const fs::path& path, std::int64_t max_frames) {
  VideoReader reader(path);
  DecodedVideo out;
  out.info = reader.info();
  std::vector<std::uint8_t> rgb;
  while (reader.next_rgb(rgb)) {
    if (std::int64_t(out.frames.size()) >= max_frames)
      throw ProtocolError(ErrorCode::too_large, "video '" + path.string() + "': more than " +
                                                    std::to_string(max_frames) + " frames");
    out.frames.push_back(rgb);
  }
  return out;
}

}  // namespace mmgen::media
