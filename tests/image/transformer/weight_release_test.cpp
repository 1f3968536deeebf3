// WeightLoader gives back the file pages of what it copies: a converted
// tensor's pages leave the process's resident set at once, a zero-copy view's
// never do, release() of a stacked weight's sources drops them, and a page
// shared with a neighbour is kept. Released bytes still read back the same.
#include <ATen/core/Tensor.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/sum.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"

namespace fs = std::filesystem;
using mmgen::io::Checkpoint;
using mmgen::io::LoadOptions;
using mmgen::io::WeightLoader;

namespace {

struct Blob {
  std::string name;
  std::vector<float> values;
};

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[std::size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return s;
}

// One-dimensional float32 tensors back to back, in the given (sorted) order.
void write_safetensors(const fs::path& p, const std::vector<Blob>& blobs) {
  std::string header = "{", data;
  for (std::size_t i = 0; i < blobs.size(); ++i) {
    const std::string bytes(reinterpret_cast<const char*>(blobs[i].values.data()), blobs[i].values.size() * 4);
    header += (i ? "," : "") + std::string("\"") + blobs[i].name + "\":{\"dtype\":\"F32\",\"shape\":[" +
              std::to_string(blobs[i].values.size()) + "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + bytes.size()) + "]}";
    data += bytes;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';
  std::ofstream f(p, std::ios::binary);
  const std::string all = le64(header.size()) + header + data;
  f.write(all.data(), std::streamsize(all.size()));
}

// Resident file-backed memory of this process (the mapped checkpoint), MB.
double rss_file_mb() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("RssFile:", 0) == 0) return std::stod(line.substr(8)) / 1024.0;
  }
  return -1;
}

std::vector<float> ramp(std::size_t n, float scale) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * float(i % 1000) - 3.0f;
  return v;
}

at::Tensor as_tensor(std::vector<float>& v) {
  return at::from_blob(v.data(), {std::int64_t(v.size())}, at::TensorOptions().dtype(at::kFloat));
}

class WeightReleaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mmgen_weight_release_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    // "a" and "c" are small and odd-sized, so they share pages with "big".
    a_ = ramp(3, 0.5f);
    big_ = ramp(kBig, 0.25f);
    c_ = ramp(5, 2.0f);
    write_safetensors(dir_ / "model.safetensors", {{"a", a_}, {"big", big_}, {"c", c_}});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static constexpr std::size_t kBig = 6 * 1024 * 1024 + 7;  // 24 MB of float32
  fs::path dir_;
  std::vector<float> a_, big_, c_;
};

TEST_F(WeightReleaseTest, ConvertedTensorLeavesNoFilePagesResident) {
  if (rss_file_mb() < 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  const Checkpoint ckpt = Checkpoint::open(dir_);
  WeightLoader w(ckpt, LoadOptions{at::kBFloat16, c10::Device(c10::kCPU)});
  const double before = rss_file_mb();
  const at::Tensor big = w.take("big", {std::int64_t(kBig)});
  const double after = rss_file_mb();
  EXPECT_EQ(big.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(big, as_tensor(big_).to(at::kBFloat16)));
  // 24 MB were read to convert; all but the two edge pages went back.
  EXPECT_LT(after - before, 4.0) << "RssFile " << before << " -> " << after << " MB";
  const std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
  EXPECT_GE(w.released_bytes(), kBig * 4 - 2 * page);
  EXPECT_LE(w.released_bytes(), kBig * 4);
}

TEST_F(WeightReleaseTest, ZeroCopyViewIsNeverReleased) {
  if (rss_file_mb() < 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  const Checkpoint ckpt = Checkpoint::open(dir_);
  WeightLoader w(ckpt, LoadOptions{at::kFloat, c10::Device(c10::kCPU)});
  const double before = rss_file_mb();
  const at::Tensor big = w.take("big", {std::int64_t(kBig)});
  EXPECT_EQ(w.released_bytes(), 0u);
  EXPECT_TRUE(at::equal(big, as_tensor(big_)));  // reads every page of the view
  EXPECT_GT(rss_file_mb() - before, 20.0);       // and they stay: the model uses them
}

TEST_F(WeightReleaseTest, ReleaseKeepsSharedPagesAndViewsReadTheSameValues) {
  if (rss_file_mb() < 0) GTEST_SKIP() << "no RssFile in /proc/self/status";
  const Checkpoint ckpt = Checkpoint::open(dir_);
  WeightLoader w(ckpt, LoadOptions{at::kFloat, c10::Device(c10::kCPU)});
  const at::Tensor a = w.take("a", {3});
  const at::Tensor big = w.take("big", {std::int64_t(kBig)});
  const at::Tensor c = w.take("c", {5});
  // A model that copies "big" (as a stacked projection does) releases it.
  const at::Tensor copy = big.clone();
  const double before = rss_file_mb();
  w.release("big");
  EXPECT_LT(rss_file_mb() - before, -20.0) << "the 24 MB of 'big' should have left the resident set";
  // Neighbours on the shared edge pages, the copy and the old view all still read right.
  EXPECT_TRUE(at::equal(a, as_tensor(a_)));
  EXPECT_TRUE(at::equal(c, as_tensor(c_)));
  EXPECT_TRUE(at::equal(copy, as_tensor(big_)));
  EXPECT_TRUE(at::equal(big, as_tensor(big_)));
  // Tiny tensors cover no whole page: nothing to release, nothing touched.
  const std::size_t released = w.released_bytes();
  w.release("a");
  w.release("c");
  EXPECT_EQ(w.released_bytes(), released);
  EXPECT_TRUE(at::equal(a, as_tensor(a_)));
}

}  // namespace
