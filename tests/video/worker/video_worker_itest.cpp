// mmgen-video through a real broker (integration): the real mmgen-broker and
// mmgen-video processes on the tiny TI2V-5B-shaped fixture pipeline, driven
// by the client library. A text-to-video job returns an MP4 that decodes to
// the requested frames, size and fps, with PROGRESS per step (ETA, previews)
// and the PNG frames when asked; an image blob makes it image-to-video; a
// cancel stops a long job and the worker keeps serving; bad params are
// invalid_request naming the param.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mmgen/client.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/media/video.hpp"

using namespace mmgen;
using namespace mmgen::itest;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(MMGEN_VIDEO_FIXTURES) / "pipeline_ti2v";

proto::Submit video_job(ValueMap params) {
  proto::Submit s;
  s.service = "video";
  s.params = std::move(params);
  return s;
}

struct JobRun {
  std::vector<proto::Progress> progress;
  std::vector<std::string> previews;  // PNG bytes
  std::optional<client::Event> end;
};

// Submits and collects the job's events up to its terminal one.
JobRun run_job(client::Client& c, ValueMap params, std::chrono::seconds limit = 120s) {
  JobRun r;
  auto acc = c.submit_and_wait(video_job(std::move(params)), {}, 10s);
  EXPECT_TRUE(acc && acc->kind == proto::EventCmd::Accepted) << "submit not accepted";
  if (!acc || acc->kind != proto::EventCmd::Accepted) return r;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto ev = c.next(1s);
    if (!ev || ev->job != acc->job) continue;
    if (const auto* p = ev->get_if<proto::Progress>()) {
      r.progress.push_back(*p);
      if (p->preview && !ev->blobs.empty())
        r.previews.emplace_back(static_cast<const char*>(ev->blobs[0].data()), ev->blobs[0].size());
    } else if (ev->is_terminal()) {
      r.end = std::move(ev);
      break;
    }
  }
  return r;
}

std::vector<std::uint8_t> blob_bytes(const zmq::message_t& m) {
  const auto* p = static_cast<const std::uint8_t*>(m.data());
  return {p, p + m.size()};
}

class VideoWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>();
    stack_->start_broker();
    worker_ = std::make_unique<Process>(
        std::vector<std::string>{(bin_dir() / "mmgen-video").string(), "--broker", stack_->workers_ep(), "--model",
                                 kModel.string(), "--heartbeat-ms", "200", "--threads", "2"},
        stack_->dir() / "video.log");
    stack_->wait_workers("video", 1, 120s);
    client_ = stack_->client();
  }
  std::string logs() const { return stack_->logs() + "\n--- mmgen-video ---\n" + worker_->log_text(); }

  std::unique_ptr<Stack> stack_;
  std::unique_ptr<Process> worker_;
  std::unique_ptr<client::Client> client_;
};

}  // namespace

TEST_F(VideoWorker, TextToVideoReturnsAnMp4WithProgressPreviewsAndFrames) {
  const int steps = 4;
  JobRun r = run_job(*client_, {{"prompt", "a red fox running through snow"}, {"frames", 9}, {"width", 64},
                                {"height", 96}, {"steps", steps}, {"seed", 7}, {"fps", 24}, {"previews", true},
                                {"preview_every", 2}, {"save_frames", true}, {"preset", "veryfast"}});
  ASSERT_TRUE(r.end) << "no terminal event; logs:\n" << logs();
  ASSERT_EQ(r.end->kind, proto::EventCmd::Result)
      << (r.end->get_if<proto::Error>() ? r.end->as<proto::Error>().message : "") << "\n" << logs();
  const auto& res = r.end->as<proto::Result>();

  // One PROGRESS per denoising step, in order, with an ETA once a step's rate is known.
  std::vector<std::uint32_t> seen;
  bool eta = false;
  for (const auto& p : r.progress) {
    EXPECT_EQ(p.total, std::uint32_t(steps));
    if (p.step > 0 && (seen.empty() || seen.back() != p.step)) seen.push_back(p.step);
    if (p.step > 0 && p.step < std::uint32_t(steps) && p.eta_s >= 0) eta = true;
  }
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{1, 2, 3, 4}));
  EXPECT_TRUE(eta) << "no ETA reported";
  // Previews every 2 steps: steps 2 and 4; one latent cell per pixel (64x96 / 16).
  ASSERT_EQ(r.previews.size(), 2u);
  for (const auto& png : r.previews) {
    const auto img = media::decode_image(
        "preview", std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(png.data()), png.size()));
    EXPECT_EQ(img.width, 64 / 16);
    EXPECT_EQ(img.height, 96 / 16);
  }

  // The MP4 first, then the 9 PNG frames the CLI's --save-frames writes.
  ASSERT_EQ(res.outputs.size(), 10u);
  ASSERT_EQ(r.end->blobs.size(), 10u);
  EXPECT_EQ(res.outputs[0].mime, "video/mp4");
  media::VideoReader reader("result", blob_bytes(r.end->blobs[0]));
  EXPECT_EQ(reader.info().width, 64);
  EXPECT_EQ(reader.info().height, 96);
  EXPECT_EQ(reader.info().fps, (media::Rational{24, 1}));
  EXPECT_EQ(reader.info().codec, "h264");
  EXPECT_EQ(reader.info().pix_fmt, "yuv420p");
  std::vector<std::uint8_t> rgb;
  int n = 0;
  while (reader.next_rgb(rgb)) ++n;
  EXPECT_EQ(n, 9);
  for (std::size_t i = 1; i < res.outputs.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "frame-%05zu.png", i);
    EXPECT_EQ(res.outputs[i].name, name);
    EXPECT_EQ(res.outputs[i].mime, "image/png");
    const auto img = media::decode_image("frame", blob_bytes(r.end->blobs[i]));
    EXPECT_EQ(img.width, 64);
    EXPECT_EQ(img.height, 96);
  }
  EXPECT_EQ(res.data.at("seed").as_int(), 7);
  EXPECT_EQ(res.data.at("frames").as_int(), 9);
  EXPECT_EQ(res.data.at("fps").as_string(), "24");
  EXPECT_EQ(res.data.at("model_family").as_string(), "wan2.2-ti2v-5b");
  EXPECT_TRUE(res.data.at("default_negative_prompt").as_bool()) << "no negative_prompt: the official one";

  // Same seed, same settings: the same frames.
  JobRun again = run_job(*client_, {{"prompt", "a red fox running through snow"}, {"frames", 9}, {"width", 64},
                                    {"height", 96}, {"steps", steps}, {"seed", 7}, {"fps", 24}, {"save_frames", true},
                                    {"preset", "veryfast"}});
  ASSERT_TRUE(again.end && again.end->kind == proto::EventCmd::Result) << logs();
  ASSERT_EQ(again.end->blobs.size(), 10u);
  for (std::size_t i = 1; i < 10; ++i) {
    EXPECT_EQ(media::decode_image("a", blob_bytes(r.end->blobs[i])).pixels,
              media::decode_image("b", blob_bytes(again.end->blobs[i])).pixels)
        << "frame " << i;
  }
  // The MP4 holds these frames, in order. (Its bytes are not compared between
  // the two jobs: this libx264 gives slightly different bitstreams run to run
  // when it encodes with several threads.) The fixture's random weights make
  // per-pixel noise, which yuv420p's half-resolution chroma cannot carry, so
  // this compares luma (BT.601): about 31-34 dB for the right frame against
  // about 12 dB for any other. The 40 dB criterion at CRF 18 is checked on
  // smooth frames in video_encode_test.
  media::VideoReader mp4("result", blob_bytes(again.end->blobs[0]));
  std::vector<std::uint8_t> dec;
  double worst = 99;
  const auto luma = [](const std::uint8_t* p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; };
  for (std::size_t i = 1; i < 10; ++i) {
    ASSERT_TRUE(mp4.next_rgb(dec));
    const auto src = media::decode_image("frame", blob_bytes(again.end->blobs[i])).pixels;
    ASSERT_EQ(src.size(), dec.size());
    double se = 0;
    for (std::size_t k = 0; k < src.size(); k += 3) se += std::pow(luma(&src[k]) - luma(&dec[k]), 2);
    worst = std::min(worst, 10 * std::log10(255.0 * 255.0 * double(src.size() / 3) / std::max(se, 1e-9)));
  }
  EXPECT_FALSE(mp4.next_rgb(dec)) << "more frames in the MP4 than PNGs";
  std::printf("[ info ] fixture video: worst luma PSNR of the MP4 frames against the PNG frames %.2f dB\n", worst);
  EXPECT_GE(worst, 25.0);
}

TEST_F(VideoWorker, ImageToVideoTakesTheImageBlob) {
  media::Image img(80, 120, 3);
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>((i * 13) % 251);
  const auto png = media::encode_png(img);
  proto::Submit s = video_job({{"prompt", "the picture comes alive"}, {"frames", 5}, {"width", 64}, {"height", 96},
                               {"steps", 2}, {"seed", 3}, {"preset", "ultrafast"}});
  proto::Frames blobs;
  client::add_input(s, blobs, "image", "image/png",
                    std::string_view(reinterpret_cast<const char*>(png.data()), png.size()));
  auto acc = client_->submit_and_wait(s, std::move(blobs), 10s);
  ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
  auto end = client_->wait_terminal(acc->job, 120s);
  ASSERT_TRUE(end) << logs();
  ASSERT_EQ(end->kind, proto::EventCmd::Result)
      << (end->get_if<proto::Error>() ? end->as<proto::Error>().message : "") << "\n" << logs();
  ASSERT_EQ(end->blobs.size(), 1u);
  media::VideoReader reader("result", blob_bytes(end->blobs[0]));
  EXPECT_EQ(reader.info().width, 64);
  EXPECT_EQ(reader.info().height, 96);
  std::vector<std::uint8_t> rgb;
  int n = 0;
  while (reader.next_rgb(rgb)) ++n;
  EXPECT_EQ(n, 5);

  // A blob that is not an image is refused by name.
  proto::Submit bad = video_job({{"prompt", "x"}, {"frames", 5}, {"width", 64}, {"height", 64}});
  proto::Frames junk;
  client::add_input(bad, junk, "image", "image/png", "not a png at all");
  auto acc2 = client_->submit_and_wait(bad, std::move(junk), 10s);
  ASSERT_TRUE(acc2 && acc2->kind == proto::EventCmd::Accepted);
  auto end2 = client_->wait_terminal(acc2->job, 60s);
  ASSERT_TRUE(end2 && end2->kind == proto::EventCmd::Error) << logs();
  EXPECT_EQ(end2->as<proto::Error>().code, proto::ErrorCode::invalid_request);
  EXPECT_NE(end2->as<proto::Error>().message.find("image"), std::string::npos) << end2->as<proto::Error>().message;
}

TEST_F(VideoWorker, CancelStopsAJobAndTheWorkerKeepsServing) {
  auto acc = client_->submit_and_wait(
      video_job({{"prompt", "a long video"}, {"frames", 9}, {"width", 64}, {"height", 64}, {"steps", 1000}}), {}, 10s);
  ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
  auto first = client_->wait_for(
      [&](const client::Event& e) {
        const auto* p = e.get_if<proto::Progress>();
        return e.job == acc->job && p && p->step >= 1;
      },
      60s);
  ASSERT_TRUE(first) << "no step reported; logs:\n" << logs();
  client_->cancel(acc->job);
  auto end = client_->wait_terminal(acc->job, 30s);
  ASSERT_TRUE(end) << logs();
  EXPECT_EQ(end->kind, proto::EventCmd::Cancelled);

  JobRun r = run_job(*client_, {{"prompt", "a short one"}, {"frames", 5}, {"width", 64}, {"height", 64}, {"steps", 2},
                                {"preset", "ultrafast"}});
  ASSERT_TRUE(r.end) << logs();
  EXPECT_EQ(r.end->kind, proto::EventCmd::Result) << logs();
}

TEST_F(VideoWorker, BadParamsAreInvalidRequestNamingTheParam) {
  struct Case {
    ValueMap params;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{{"frames", 9}}, "prompt"},
      {{{"prompt", "x"}, {"frames", 8}}, "4n + 1"},
      {{{"prompt", "x"}, {"crf", 99}}, "'crf'"},
      {{{"prompt", "x"}, {"preset", "turbo"}}, "'preset'"},
      {{{"prompt", "x"}, {"frames", 5}, {"width", 48}, {"height", 64}}, "width"},  // not a multiple of 32
      {{{"prompt", "x"}, {"frames", 5}, {"width", 64}, {"height", 64}, {"cfg2", 3.0}}, "guidance_scale_2"},
      {{{"prompt", "x"}, {"frames", 1025}, {"save_frames", true}}, "'save_frames'"},
  };
  for (const auto& c : cases) {
    JobRun r = run_job(*client_, c.params, 60s);
    ASSERT_TRUE(r.end) << logs();
    ASSERT_EQ(r.end->kind, proto::EventCmd::Error) << Value(c.params).to_json();
    const auto& e = r.end->as<proto::Error>();
    EXPECT_EQ(e.code, proto::ErrorCode::invalid_request) << e.message;
    EXPECT_NE(e.message.find(c.needle), std::string::npos) << e.message;
  }
}
