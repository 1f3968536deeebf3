// The safetensors reader, the sharded checkpoint and the weight hand-out:
// every dtype read back exactly, hostile headers rejected with typed errors
// that name the file and tensor, dtype conversion at load.
#include <ATen/core/Tensor.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/io/safetensors.hpp"

namespace fs = std::filesystem;
using mmgen::io::Checkpoint;
using mmgen::io::LoadError;
using mmgen::io::LoadErrorKind;
using mmgen::io::LoadOptions;
using mmgen::io::SafetensorsFile;
using mmgen::io::WeightLoader;

namespace {

struct Blob {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::string bytes;
};

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[std::size_t(i)] = char((n >> (8 * i)) & 0xFF);
  return s;
}

void write_raw(const fs::path& p, const std::string& header, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  std::string all = le64(header.size()) + header + data;
  f.write(all.data(), std::streamsize(all.size()));
}

// Writes a well-formed file: tensors back to back in the given order.
void write_safetensors(const fs::path& p, const std::vector<Blob>& blobs, const std::string& metadata = "") {
  std::string header = "{";
  std::string data;
  bool first = true;
  if (!metadata.empty()) {
    header += "\"__metadata__\":" + metadata;
    first = false;
  }
  for (const auto& b : blobs) {
    if (!first) header += ",";
    first = false;
    header += "\"" + b.name + "\":{\"dtype\":\"" + b.dtype + "\",\"shape\":[";
    for (std::size_t i = 0; i < b.shape.size(); ++i) header += (i ? "," : "") + std::to_string(b.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + b.bytes.size()) + "]}";
    data += b.bytes;
  }
  header += "}";
  while ((8 + header.size()) % 8 != 0) header += ' ';  // padded as the reference writer does
  write_raw(p, header, data);
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mmgen_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Expects LoadError of `kind` whose message contains each of `needles`.
  template <typename F>
  void expect_error(F&& f, LoadErrorKind kind, std::vector<std::string> needles) {
    try {
      f();
      FAIL() << "no error; expected " << mmgen::io::to_string(kind);
    } catch (const LoadError& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, EveryDtypeReadsBackExactly) {
  const fs::path p = dir_ / "all.safetensors";
  std::vector<Blob> blobs = {
      {"f32", "F32", {2, 3}, bytes_of(std::vector<float>{1.5f, -2.f, 3.25f, 0.f, 1e-8f, -7.f})},
      {"f64", "F64", {2}, bytes_of(std::vector<double>{3.141592653589793, -1e300})},
      {"f16", "F16", {3}, bytes_of(std::vector<std::uint16_t>{0x3C00, 0xC000, 0x3555})},   // 1, -2, ~0.333
      {"bf16", "BF16", {3}, bytes_of(std::vector<std::uint16_t>{0x3F80, 0xC040, 0x4049})},  // 1, -3, ~3.14
      {"i64", "I64", {2}, bytes_of(std::vector<std::int64_t>{-(1LL << 40), 7})},
      {"i32", "I32", {2}, bytes_of(std::vector<std::int32_t>{-5, 1 << 30})},
      {"i16", "I16", {2}, bytes_of(std::vector<std::int16_t>{-300, 300})},
      {"i8", "I8", {3}, bytes_of(std::vector<std::int8_t>{-128, 0, 127})},
      {"u8", "U8", {3}, bytes_of(std::vector<std::uint8_t>{0, 128, 255})},
      {"bool", "BOOL", {3}, bytes_of(std::vector<std::uint8_t>{1, 0, 1})},
      {"e4m3", "F8_E4M3", {2}, bytes_of(std::vector<std::uint8_t>{0x38, 0xC0})},  // 1.0, -2.0
      {"e5m2", "F8_E5M2", {2}, bytes_of(std::vector<std::uint8_t>{0x3C, 0xC4})},  // 1.0, -4.0
      {"scalar", "F32", {}, bytes_of(std::vector<float>{42.f})},
      {"empty", "F32", {0, 4}, ""},
  };
  write_safetensors(p, blobs, R"({"format":"pt"})");
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->entries().size(), blobs.size());
  const Checkpoint c = Checkpoint::open(p);

  auto f32 = c.tensor("f32");
  EXPECT_EQ(f32.scalar_type(), at::kFloat);
  EXPECT_EQ(f32.sizes(), (c10::IntArrayRef{2, 3}));
  EXPECT_FLOAT_EQ(f32[0][2].item<float>(), 3.25f);
  EXPECT_FLOAT_EQ(f32[1][1].item<float>(), 1e-8f);
  EXPECT_DOUBLE_EQ(c.tensor("f64")[0].item<double>(), 3.141592653589793);
  EXPECT_DOUBLE_EQ(c.tensor("f64")[1].item<double>(), -1e300);
  auto f16 = c.tensor("f16");
  EXPECT_EQ(f16.scalar_type(), at::kHalf);
  EXPECT_FLOAT_EQ(f16[1].item<float>(), -2.f);
  EXPECT_NEAR(f16[2].item<float>(), 1.f / 3, 1e-3);
  auto bf16 = c.tensor("bf16");
  EXPECT_EQ(bf16.scalar_type(), at::kBFloat16);
  EXPECT_FLOAT_EQ(bf16[1].item<float>(), -3.f);
  EXPECT_NEAR(bf16[2].item<float>(), 3.14, 0.01);
  EXPECT_EQ(c.tensor("i64")[0].item<std::int64_t>(), -(1LL << 40));
  EXPECT_EQ(c.tensor("i32")[1].item<std::int32_t>(), 1 << 30);
  EXPECT_EQ(c.tensor("i16")[0].item<std::int16_t>(), -300);
  EXPECT_EQ(c.tensor("i8")[0].item<std::int8_t>(), -128);
  EXPECT_EQ(c.tensor("u8")[2].item<std::uint8_t>(), 255);
  auto b = c.tensor("bool");
  EXPECT_EQ(b.scalar_type(), at::kBool);
  EXPECT_TRUE(b[0].item<bool>());
  EXPECT_FALSE(b[1].item<bool>());
  auto e4 = c.tensor("e4m3");
  EXPECT_EQ(e4.scalar_type(), at::kFloat8_e4m3fn);
  EXPECT_FLOAT_EQ(e4.to(at::kFloat)[1].item<float>(), -2.f);
  auto e5 = c.tensor("e5m2");
  EXPECT_EQ(e5.scalar_type(), at::kFloat8_e5m2);
  EXPECT_FLOAT_EQ(e5.to(at::kFloat)[1].item<float>(), -4.f);
  EXPECT_EQ(c.tensor("scalar").dim(), 0);
  EXPECT_FLOAT_EQ(c.tensor("scalar").item<float>(), 42.f);
  EXPECT_EQ(c.tensor("empty").numel(), 0);
}

TEST_F(SafetensorsTest, TensorsOutliveTheCheckpointAndNeverWriteTheFile) {
  const fs::path p = dir_ / "a.safetensors";
  write_safetensors(p, {{"w", "F32", {4}, bytes_of(std::vector<float>{1, 2, 3, 4})}});
  at::Tensor t;
  {
    const Checkpoint c = Checkpoint::open(p);
    t = c.tensor("w");
  }
  // The view keeps the mapping alive; writing goes to private copy-on-write pages.
  t.mul_(10);
  EXPECT_FLOAT_EQ(t[3].item<float>(), 40.f);
  EXPECT_FLOAT_EQ(Checkpoint::open(p).tensor("w")[3].item<float>(), 4.f);
}

TEST_F(SafetensorsTest, MisalignedDataIsCopiedNotViewed) {
  const fs::path p = dir_ / "mis.safetensors";
  // One byte of U8 first puts the F32 tensor at an odd address.
  write_safetensors(p, {{"a", "U8", {1}, std::string(1, '\x07')},
                        {"b", "F32", {2}, bytes_of(std::vector<float>{0.5f, -0.25f})}});
  auto f = SafetensorsFile::open(p);
  ASSERT_NE(reinterpret_cast<std::uintptr_t>(f->data(*f->find("b"))) % 4, 0u);
  at::Tensor t = Checkpoint::open(p).tensor("b");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 4, 0u);
  EXPECT_FLOAT_EQ(t[1].item<float>(), -0.25f);
}

TEST_F(SafetensorsTest, HostileHeadersBecomeTypedErrors) {
  const fs::path p = dir_ / "bad.safetensors";
  const std::string four = bytes_of(std::vector<float>{1});
  auto open = [&] { SafetensorsFile::open(p); };

  write_raw(p, "", "");  // only the length
  expect_error(open, LoadErrorKind::bad_header, {p.string()});

  { std::ofstream(p, std::ios::binary) << "abc"; }  // shorter than the length field
  expect_error(open, LoadErrorKind::truncated, {p.string(), "8-byte"});

  { std::ofstream f(p, std::ios::binary); std::string s = le64(1000) + "{}"; f << s; }
  expect_error(open, LoadErrorKind::truncated, {"header declares 1000"});

  { std::ofstream f(p, std::ios::binary); std::string s = le64(~0ull) + "{}"; f << s; }
  expect_error(open, LoadErrorKind::bad_header, {"exceeds"});

  write_raw(p, "[1,2]", "");
  expect_error(open, LoadErrorKind::bad_header, {"start with '{'"});

  write_raw(p, "{\"a\":", "");
  expect_error(open, LoadErrorKind::bad_json, {p.string()});

  write_raw(p, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", four + four);
  expect_error(open, LoadErrorKind::bad_header, {"'w'", "spans 8 bytes", "need 4"});

  write_raw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", four);
  expect_error(open, LoadErrorKind::truncated, {"'w'", "ends at byte 8", "has 4 bytes"});

  write_raw(p, R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four);
  expect_error(open, LoadErrorKind::bad_header, {"'w'", "begin > end"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
            four);
  expect_error(open, LoadErrorKind::bad_header, {"overlaps"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", four + four);
  expect_error(open, LoadErrorKind::bad_header, {"belong to no tensor"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four + four);
  expect_error(open, LoadErrorKind::bad_header, {"cover 4"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", four);
  expect_error(open, LoadErrorKind::bad_header, {"'a'", "overflows"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four);
  expect_error(open, LoadErrorKind::bad_header, {"'a'", "shape"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", four);
  expect_error(open, LoadErrorKind::bad_header, {"'a'"});

  write_raw(p, R"({"a":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,4]}})", four);
  expect_error(open, LoadErrorKind::unsupported, {"'a'", "Q4_K"});

  write_raw(p, R"({"a":{"shape":[1],"data_offsets":[0,4]}})", four);
  expect_error(open, LoadErrorKind::bad_header, {"'a'", "dtype"});

  write_raw(p, R"({"a":{"dtype":"F32","shape":[1]}})", four);
  expect_error(open, LoadErrorKind::bad_header, {"'a'", "data_offsets"});

  write_raw(p, R"({"__metadata__":{"k":1}})", "");
  expect_error(open, LoadErrorKind::bad_header, {"__metadata__"});

  write_raw(p, R"({"a":[1,2]})", "");
  expect_error(open, LoadErrorKind::bad_header, {"'a'"});

  expect_error([&] { SafetensorsFile::open(dir_ / "nope.safetensors"); }, LoadErrorKind::io, {"nope.safetensors"});
  expect_error([&] { SafetensorsFile::open(dir_); }, LoadErrorKind::io, {"not a regular file"});
}

TEST_F(SafetensorsTest, RandomCorruptionNeverCrashes) {
  // Flip bytes of a valid file's first 200 bytes (length field and header);
  // every outcome must be a clean open or a LoadError.
  const fs::path good = dir_ / "good.safetensors";
  write_safetensors(good, {{"a", "F32", {2, 2}, bytes_of(std::vector<float>{1, 2, 3, 4})},
                           {"b", "BF16", {3}, bytes_of(std::vector<std::uint16_t>{1, 2, 3})}});
  std::string original;
  {
    std::ifstream f(good, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::mt19937 rng(1234);
  const fs::path p = dir_ / "mutant.safetensors";
  int opened = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string m = original;
    const int flips = 1 + int(rng() % 3);
    for (int j = 0; j < flips; ++j) {
      m[rng() % std::min<std::size_t>(m.size(), 200)] = char(rng() & 0xFF);
    }
    if (rng() % 10 == 0) m.resize(rng() % m.size());  // sometimes truncate too
    {
      std::ofstream f(p, std::ios::binary | std::ios::trunc);
      f.write(m.data(), std::streamsize(m.size()));
    }
    try {
      auto f = SafetensorsFile::open(p);
      for (const auto& e : f->entries()) {
        ASSERT_LE(e.end, fs::file_size(p));  // every tensor inside the file
        (void)Checkpoint::open(p).tensor(e.name).clone();
      }
      ++opened;
    } catch (const LoadError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(opened + rejected, 2999);
}

TEST_F(SafetensorsTest, ShardedIndexLoadsAndChecks) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors",
                    {{"a.weight", "F32", {2}, bytes_of(std::vector<float>{1, 2})}});
  write_safetensors(dir_ / "model-00002-of-00002.safetensors",
                    {{"b.weight", "BF16", {2}, bytes_of(std::vector<std::uint16_t>{0x3F80, 0x4000})}});
  auto write_index = [&](const std::string& map) {
    std::ofstream(dir_ / "model.safetensors.index.json")
        << R"({"metadata":{"total_size":12},"weight_map":)" << map << "}";
  };
  write_index(R"({"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors"})");
  const Checkpoint c = Checkpoint::open(dir_);
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a.weight", "b.weight"}));
  EXPECT_EQ(c.file_of("b.weight").filename(), "model-00002-of-00002.safetensors");
  EXPECT_FLOAT_EQ(c.tensor("b.weight").to(at::kFloat)[1].item<float>(), 2.f);

  write_index(R"({"a.weight":"model-00002-of-00002.safetensors"})");
  expect_error([&] { Checkpoint::open(dir_); }, LoadErrorKind::missing,
               {"model-00002-of-00002.safetensors", "'a.weight'", "does not hold it"});
  write_index(R"({"a.weight":"../model-00001-of-00002.safetensors"})");
  expect_error([&] { Checkpoint::open(dir_); }, LoadErrorKind::bad_header, {"not a file in the folder"});
  write_index(R"({"a.weight":"model-00009-of-00009.safetensors"})");
  expect_error([&] { Checkpoint::open(dir_); }, LoadErrorKind::io, {"model-00009-of-00009.safetensors"});
  write_index(R"({"a.weight":3})");
  expect_error([&] { Checkpoint::open(dir_); }, LoadErrorKind::bad_header, {"'a.weight'"});
  write_index(R"([])");
  expect_error([&] { Checkpoint::open(dir_); }, LoadErrorKind::bad_header, {"weight_map"});

  fs::remove(dir_ / "model.safetensors.index.json");
  expect_error([&] { Checkpoint::open(dir_); }, LoadErrorKind::missing, {"model.safetensors"});
}

TEST_F(SafetensorsTest, WeightLoaderConvertsAndNamesProblems) {
  const fs::path p = dir_ / "model.safetensors";
  write_safetensors(p, {{"w", "BF16", {2, 2}, bytes_of(std::vector<std::uint16_t>{0x3F80, 0x4000, 0x4040, 0x4080})},
                        {"ids", "I64", {2}, bytes_of(std::vector<std::int64_t>{1, 2})},
                        {"extra.one", "F32", {1}, bytes_of(std::vector<float>{1})},
                        {"extra.two", "F32", {1}, bytes_of(std::vector<float>{2})}});
  const Checkpoint c = Checkpoint::open(dir_);
  {
    WeightLoader w(c, LoadOptions{at::kFloat});
    at::Tensor t = w.take("w", {2, 2});
    EXPECT_EQ(t.scalar_type(), at::kFloat);
    EXPECT_FLOAT_EQ(t[1][1].item<float>(), 4.f);
    expect_error([&] { w.take("w", {4}); }, LoadErrorKind::wrong_shape,
                 {p.string(), "'w'", "[2, 2]", "expected [4]"});
    expect_error([&] { w.take("ids", {2}); }, LoadErrorKind::wrong_dtype, {"'ids'", "I64"});
    expect_error([&] { w.take("missing.weight", {1}); }, LoadErrorKind::missing, {"'missing.weight'"});
    EXPECT_FALSE(w.take_if_present("missing.weight", {1}).defined());
    w.skip("ids");
    expect_error([&] { w.finish(); }, LoadErrorKind::unexpected, {"'extra.one'", "'extra.two'"});
    w.skip_prefix("extra.");
    EXPECT_NO_THROW(w.finish());
  }
  for (auto [name, type] : {std::pair{"bfloat16", at::kBFloat16}, {"float16", at::kHalf}, {"float32", at::kFloat}}) {
    WeightLoader w(c, LoadOptions{mmgen::io::parse_dtype(name)});
    at::Tensor t = w.take("w", {2, 2});
    EXPECT_EQ(t.scalar_type(), type) << name;
    EXPECT_FLOAT_EQ(t.to(at::kFloat)[1][0].item<float>(), 3.f) << name;
  }
  expect_error([] { mmgen::io::parse_dtype("int4"); }, LoadErrorKind::unsupported, {"int4"});
}

}  // namespace
