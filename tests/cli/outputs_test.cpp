// Output naming, MIME guessing, atomic writes, and how a RESULT is written.
#include <filesystem>

#include <gtest/gtest.h>

#include "cli/outputs.hpp"
#include "fake_broker.hpp"

namespace mmgen::cli {
namespace {

using testing::kJob;
using testing::TempDir;

proto::BlobMeta blob(std::string name, std::string mime, std::uint64_t size = 0) {
  return proto::BlobMeta{std::move(name), std::move(mime), size};
}

TEST(Outputs, GuessMime) {
  EXPECT_EQ(guess_mime("a.png"), "image/png");
  EXPECT_EQ(guess_mime("dir.x/A.PNG"), "image/png");
  EXPECT_EQ(guess_mime("a.jpg"), "image/jpeg");
  EXPECT_EQ(guess_mime("a.jpeg"), "image/jpeg");
  EXPECT_EQ(guess_mime("a.webp"), "image/webp");
  EXPECT_EQ(guess_mime("clip.mp4"), "video/mp4");
  EXPECT_EQ(guess_mime("a.tiff"), "application/octet-stream");
  EXPECT_EQ(guess_mime("noext"), "application/octet-stream");
}

TEST(Outputs, ExtensionFromNameOrMime) {
  EXPECT_EQ(extension_for(blob("image-0.png", "application/octet-stream")), ".png");
  EXPECT_EQ(extension_for(blob("video", "video/mp4")), ".mp4");
  EXPECT_EQ(extension_for(blob("x", "image/jpeg")), ".jpg");
  EXPECT_EQ(extension_for(blob("x", "text/plain; charset=utf-8")), ".txt");
  EXPECT_EQ(extension_for(blob("x", "application/x-unknown")), ".bin");
  EXPECT_EQ(extension_for(blob("weird.p/ng", "image/png")), ".png");  // no odd extensions from names
}

TEST(Outputs, PathsWithOutputFlag) {
  const std::vector<proto::BlobMeta> one{blob("a", "image/png")};
  const std::vector<proto::BlobMeta> three(3, blob("a", "image/png"));
  EXPECT_EQ(output_paths("out.png", kJob, one), std::vector<std::string>{"out.png"});
  EXPECT_EQ(output_paths("out.png", kJob, three),
            (std::vector<std::string>{"out-1.png", "out-2.png", "out-3.png"}));
  EXPECT_EQ(output_paths("dir.d/shot", kJob, {blob("a", "image/png"), blob("b", "image/png")}),
            (std::vector<std::string>{"dir.d/shot-1", "dir.d/shot-2"}));
}

TEST(Outputs, DefaultPathsAreJobIdAndNeverBlobNames) {
  const std::string job = kJob;
  EXPECT_EQ(output_paths("", job, {blob("../../etc/passwd.png", "image/png")}),
            std::vector<std::string>{job + ".png"});
  EXPECT_EQ(output_paths("", job, {blob("v", "video/mp4"), blob("f", "image/png")}),
            (std::vector<std::string>{job + "-1.mp4", job + "-2.png"}));
  // A job id that is not one (from a confused broker) never becomes a path.
  EXPECT_EQ(output_paths("", "../x", {blob("a", "image/png")}), std::vector<std::string>{"output.png"});
  EXPECT_EQ(preview_path("prev", job, 7, blob("p", "image/png")), "prev/" + job + "-step-0007.png");
  EXPECT_EQ(frame_path("fr", 12, blob("f", "image/png")), "fr/frame-00012.png");
}

TEST(Outputs, AtomicWriteLeavesOnlyTheFile) {
  TempDir dir;
  const auto path = dir.file("a.bin");
  write_file_atomic(path, "abc");
  write_file_atomic(path, "replaced");
  EXPECT_EQ(testing::read_all(path), "replaced");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 1);
  EXPECT_THROW(write_file_atomic(dir.file("missing/a.bin"), "x"), std::runtime_error);
}

TEST(Outputs, WriteResultBlobsFramesAndText) {
  TempDir dir;
  proto::Result r;
  r.job = kJob;
  r.outputs = {blob("video.mp4", "video/mp4", 4), blob("frame0.png", "image/png", 2), blob("frame1.png", "image/png", 2)};
  const auto blobs = testing::frames_of({"MP4!", "f0", "f1"});

  // Without --save-frames all three are outputs.
  auto all = write_result(OutputPlan{kJob, dir.file("v.mp4"), ""}, r, blobs);
  EXPECT_EQ(all, (std::vector<std::string>{dir.file("v-1.mp4"), dir.file("v-2.mp4"), dir.file("v-3.mp4")}));

  // With it, images go to the frames folder (created) and the video to -o.
  auto split = write_result(OutputPlan{kJob, dir.file("clip.mp4"), dir.file("frames")}, r, blobs);
  ASSERT_EQ(split.size(), 3u);
  EXPECT_EQ(split[0], dir.file("clip.mp4"));
  EXPECT_EQ(testing::read_all(split[0]), "MP4!");
  EXPECT_EQ(testing::read_all(dir.file("frames/frame-00001.png")), "f0");
  EXPECT_EQ(testing::read_all(dir.file("frames/frame-00002.png")), "f1");

  // A text result with -o writes the text.
  proto::Result t;
  t.job = kJob;
  t.data["text"] = "generated";
  auto txt = write_result(OutputPlan{kJob, dir.file("t.txt"), ""}, t, {});
  EXPECT_EQ(txt, std::vector<std::string>{dir.file("t.txt")});
  EXPECT_EQ(testing::read_all(dir.file("t.txt")), "generated");
  EXPECT_TRUE(write_result(OutputPlan{kJob, "", ""}, t, {}).empty());
}

}  // namespace
}  // namespace mmgen::cli
