// mmgen-image through a real broker (integration): a text-to-image job
// returns a PNG of the asked size with per-step PROGRESS and previews; img2img
// and edit take their input blobs; bad params and a corrupt image are
// invalid_request; cancel stops a job and the worker keeps serving.
#include <gtest/gtest.h>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mmgen/client.hpp"
#include "mmgen/media/image.hpp"

using namespace mmgen;
using namespace mmgen::itest;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = MMGEN_IMAGE_PIPELINE_FIXTURE;

proto::Submit image_job(ValueMap params, std::vector<proto::BlobMeta> inputs = {}) {
  proto::Submit s;
  s.service = "image";
  s.params = std::move(params);
  s.inputs = std::move(inputs);
  return s;
}

std::span<const std::uint8_t> bytes(const zmq::message_t& m) {
  return {static_cast<const std::uint8_t*>(m.data()), m.size()};
}

// A small RGB picture as PNG bytes.
std::vector<std::uint8_t> test_png(int w, int h) {
  media::Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = img.row(y) + 3 * x;
      p[0] = std::uint8_t(4 * x), p[1] = std::uint8_t(5 * y), p[2] = std::uint8_t(128);
    }
  return media::encode_png(img);
}

proto::Frames frames_of(const std::vector<std::vector<std::uint8_t>>& blobs) {
  proto::Frames f;
  for (const auto& b : blobs) f.emplace_back(b.data(), b.size());
  return f;
}

class ImageWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>();
    stack_->start_broker();
    worker_ = std::make_unique<Process>(
        std::vector<std::string>{(bin_dir() / "mmgen-image").string(), "--broker", stack_->workers_ep(), "--model",
                                 kModel.string(), "--heartbeat-ms", "200", "--threads", "1"},
        stack_->dir() / "image.log");
    stack_->wait_workers("image", 1, 120s);
    client_ = stack_->client();
  }
  std::string logs() const { return stack_->logs() + "\n--- mmgen-image ---\n" + worker_->log_text(); }

  // Submits and follows a job to its end; counts PROGRESS events and previews.
  struct Run {
    std::optional<client::Event> end;
    int progress = 0;
    int previews = 0;
  };
  Run run(proto::Submit s, proto::Frames inputs = {}) {
    Run r;
    auto acc = client_->submit_and_wait(std::move(s), std::move(inputs), 10s);
    EXPECT_TRUE(acc && acc->kind == proto::EventCmd::Accepted) << logs();
    if (!acc) return r;
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto ev = client_->next(1s);
      if (!ev || ev->job != acc->job) continue;
      if (const auto* p = ev->get_if<proto::Progress>()) {
        ++r.progress;
        if (p->preview) {
          ++r.previews;
          const auto img = media::decode_image("preview", bytes(ev->blobs.at(0)));
          EXPECT_GT(img.width, 0);
        }
      }
      if (ev->is_terminal()) {
        r.end = std::move(ev);
        break;
      }
    }
    EXPECT_TRUE(r.end) << "job did not finish; logs:\n" << logs();
    return r;
  }

  std::unique_ptr<Stack> stack_;
  std::unique_ptr<Process> worker_;
  std::unique_ptr<client::Client> client_;
};

}  // namespace

TEST_F(ImageWorker, TextToImageReturnsAPngOfTheAskedSizeWithProgressAndPreviews) {
  auto r = run(image_job(ValueMap{{"prompt", "a red fox"}, {"width", 64}, {"height", 48}, {"steps", 3},
                                  {"seed", 42}, {"previews", true}}));
  ASSERT_TRUE(r.end && r.end->kind == proto::EventCmd::Result) << logs();
  const auto& res = r.end->as<proto::Result>();
  ASSERT_EQ(res.outputs.size(), 1u);
  EXPECT_EQ(res.outputs[0].mime, "image/png");
  const auto img = media::decode_image("result", bytes(r.end->blobs.at(0)));
  EXPECT_EQ(img.width, 64);
  EXPECT_EQ(img.height, 48);
  EXPECT_EQ(res.data.at("seed").as_int(), 42);
  EXPECT_GE(r.progress, 4) << "the 0/3 report and one per step";
  EXPECT_EQ(r.previews, 3) << "a preview every step when previews are on";
}

TEST_F(ImageWorker, SameSeedGivesTheSameImageAndCountGivesSeveral) {
  const ValueMap p{{"prompt", "a fox"}, {"width", 32}, {"height", 32}, {"steps", 2}, {"seed", 7}};
  auto a = run(image_job(p));
  auto b = run(image_job(p));
  ASSERT_TRUE(a.end && b.end && a.end->kind == proto::EventCmd::Result && b.end->kind == proto::EventCmd::Result);
  EXPECT_EQ(a.end->blobs.at(0).to_string(), b.end->blobs.at(0).to_string());
  ValueMap two = p;
  two["count"] = 2;
  two["format"] = "jpeg";
  auto c = run(image_job(two));
  ASSERT_TRUE(c.end && c.end->kind == proto::EventCmd::Result) << logs();
  ASSERT_EQ(c.end->as<proto::Result>().outputs.size(), 2u);
  EXPECT_EQ(c.end->as<proto::Result>().outputs[1].mime, "image/jpeg");
}

TEST_F(ImageWorker, Img2ImgAndEditTakeTheirImages) {
  const auto png = test_png(64, 48);
  auto i2i = run(image_job(ValueMap{{"prompt", "x"}, {"width", 64}, {"height", 48}, {"steps", 2}},
                           {{"init", "image/png", png.size()}}),
                 frames_of({png}));
  ASSERT_TRUE(i2i.end && i2i.end->kind == proto::EventCmd::Result) << logs();
  auto edit = run(image_job(ValueMap{{"prompt", "make it blue"}, {"width", 32}, {"height", 32}, {"steps", 2}},
                            {{"image", "image/png", png.size()}}),
                  frames_of({png}));
  ASSERT_TRUE(edit.end && edit.end->kind == proto::EventCmd::Result) << logs();
  EXPECT_EQ(media::decode_image("edit", bytes(edit.end->blobs.at(0))).width, 32);
}

TEST_F(ImageWorker, BadInputIsInvalidRequestAndTheWorkerKeepsServing) {
  const std::string junk = "this is not a png";
  auto corrupt = run(image_job(ValueMap{{"prompt", "x"}, {"width", 32}, {"height", 32}, {"steps", 2}},
                               {{"init", "image/png", junk.size()}}),
                     [&] {
                       proto::Frames f;
                       f.emplace_back(junk.data(), junk.size());
                       return f;
                     }());
  ASSERT_TRUE(corrupt.end && corrupt.end->kind == proto::EventCmd::Error) << logs();
  EXPECT_EQ(corrupt.end->as<proto::Error>().code, proto::ErrorCode::invalid_request);
  for (ValueMap p : {ValueMap{{"width", 64}},                                           // no prompt
                     ValueMap{{"prompt", "x"}, {"width", 60}},                           // not a multiple of 16
                     ValueMap{{"prompt", "x"}, {"steps", 0}},                            // out of range
                     ValueMap{{"prompt", "x"}, {"format", "gif"}},                       // unknown format
                     ValueMap{{"prompt", "x"}, {"width", 32}, {"height", 32}, {"steps", 1}}}) {  // shift_terminal
    auto r = run(image_job(p));
    ASSERT_TRUE(r.end && r.end->kind == proto::EventCmd::Error) << Value(p).to_json() << logs();
    EXPECT_EQ(r.end->as<proto::Error>().code, proto::ErrorCode::invalid_request)
        << r.end->as<proto::Error>().message;
  }
  auto ok = run(image_job(ValueMap{{"prompt", "x"}, {"width", 32}, {"height", 32}, {"steps", 2}}));
  EXPECT_TRUE(ok.end && ok.end->kind == proto::EventCmd::Result) << logs();
}

TEST_F(ImageWorker, CancelStopsARunningJob) {
  auto acc = client_->submit_and_wait(
      image_job(ValueMap{{"prompt", "slow"}, {"width", 256}, {"height", 256}, {"steps", 200}}), {}, 10s);
  ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
  auto step = client_->wait_for(
      [&](const client::Event& e) {
        const auto* p = e.get_if<proto::Progress>();
        return e.job == acc->job && p && p->step >= 1;
      },
      120s);
  ASSERT_TRUE(step) << "no step reported; logs:\n" << logs();
  client_->cancel(acc->job);
  auto end = client_->wait_terminal(acc->job, 60s);
  ASSERT_TRUE(end) << logs();
  EXPECT_EQ(end->kind, proto::EventCmd::Cancelled);
}
