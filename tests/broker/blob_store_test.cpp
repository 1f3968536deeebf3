// Blob store: small blobs packed into the job's journal row, large ones as
// files under blobs/<job>/{in,out}/<index>, empty ones nowhere; read back byte
// for byte.
#include <gtest/gtest.h>

#include "blob_store.hpp"
#include "temp_dir.hpp"

namespace mmgen::broker::testing {
namespace {

namespace fs = std::filesystem;

zmq::message_t bytes(std::size_t n, char seed) {
  zmq::message_t m(n);
  auto p = static_cast<char*>(m.data());
  for (std::size_t i = 0; i < n; ++i) p[i] = char(seed + i * 31);
  return m;
}

std::vector<proto::BlobMeta> meta_of(const std::vector<zmq::message_t>& frames) {
  std::vector<proto::BlobMeta> out;
  for (std::size_t i = 0; i < frames.size(); ++i)
    out.push_back({"b" + std::to_string(i), "application/octet-stream", frames[i].size()});
  return out;
}

struct Fixture {
  TempDir dir;
  Journal journal{dir.path()};
  BlobStore store{dir.path() / "blobs", journal, /*inline_max=*/1024};
};

std::shared_ptr<JobSpec> spec_for(const std::string& id, std::vector<proto::BlobMeta> inputs) {
  auto s = std::make_shared<JobSpec>();
  s->id = id;
  s->service = "echo";
  s->inputs = std::move(inputs);
  return s;
}

TEST(BrokerBlobStore, SmallLargeAndEmptyBlobsRoundTrip) {
  Fixture f;
  std::vector<zmq::message_t> frames;
  frames.push_back(bytes(100, 'a'));      // inline
  frames.push_back(zmq::message_t());     // empty
  frames.push_back(bytes(300000, 'z'));   // file
  frames.push_back(bytes(1024, 'q'));     // inline (at the limit)
  const auto meta = meta_of(frames);
  const std::string packed = f.store.put("j_1", BlobDir::in, frames);
  EXPECT_EQ(packed.size(), 2 * 8 + 100 + 1024u) << "only the small non-empty blobs are packed";
  f.journal.insert(*spec_for("j_1", meta), JobStatus{}, packed);
  f.journal.commit();

  const fs::path in = f.dir.path() / "blobs" / "j_1" / "in";
  EXPECT_TRUE(fs::exists(in / "2"));
  EXPECT_EQ(fs::file_size(in / "2"), 300000u);
  EXPECT_FALSE(fs::exists(in / "0")) << "small blobs live in the journal row";
  EXPECT_FALSE(fs::exists(in / "1")) << "empty blobs are not stored";
  EXPECT_TRUE(f.store.has_files(meta));

  auto back = f.store.get("j_1", BlobDir::in, meta);
  ASSERT_EQ(back.size(), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(back[i], frames[i]) << "blob " << i;
}

TEST(BrokerBlobStore, NothingOnDiskForSmallJobs) {
  Fixture f;
  std::vector<zmq::message_t> frames;
  frames.push_back(bytes(10, 'x'));
  const auto meta = meta_of(frames);
  f.journal.insert(*spec_for("j_small", {}), JobStatus{});
  f.journal.store_result("j_small", "body", f.store.put("j_small", BlobDir::out, frames));
  EXPECT_FALSE(fs::exists(f.dir.path() / "blobs" / "j_small"));
  EXPECT_FALSE(f.store.has_files(meta));
  EXPECT_EQ(f.store.get("j_small", BlobDir::out, meta)[0], frames[0]);
}

TEST(BrokerBlobStore, RemoveFilesPerDirectionOrAll) {
  Fixture f;
  std::vector<zmq::message_t> frames;
  frames.push_back(bytes(5000, 'y'));
  f.store.put("j_1", BlobDir::in, frames);
  f.store.put("j_1", BlobDir::out, frames);
  f.store.remove_files("j_1", BlobDir::in);
  EXPECT_FALSE(fs::exists(f.dir.path() / "blobs" / "j_1" / "in"));
  EXPECT_TRUE(fs::exists(f.dir.path() / "blobs" / "j_1" / "out" / "0")) << "outputs untouched";

  EXPECT_EQ(f.store.job_folders(), std::vector<std::string>{"j_1"});
  f.store.remove_files("j_1");
  EXPECT_FALSE(fs::exists(f.dir.path() / "blobs" / "j_1"));
  EXPECT_TRUE(f.store.job_folders().empty());
}

TEST(BrokerBlobStore, MissingOrTruncatedBlobsAreErrors) {
  Fixture f;
  std::vector<zmq::message_t> frames;
  frames.push_back(bytes(5000, 'y'));
  frames.push_back(bytes(10, 's'));
  f.journal.insert(*spec_for("j_1", {}), JobStatus{});
  f.journal.store_result("j_1", "body", f.store.put("j_1", BlobDir::out, frames));
  auto meta = meta_of(frames);
  EXPECT_EQ(f.store.get("j_1", BlobDir::out, meta).size(), 2u);
  EXPECT_THROW(f.store.get("j_2", BlobDir::out, meta), BlobError) << "no such job";
  auto longer = meta;
  longer[0].size = 6000;
  EXPECT_THROW(f.store.get("j_1", BlobDir::out, longer), BlobError);
  auto other = meta;
  other[1].size = 11;
  EXPECT_THROW(f.store.get("j_1", BlobDir::out, other), BlobError);
}

TEST(BrokerBlobStore, PackedBlobsAreParsedWithBoundsChecks) {
  std::vector<zmq::message_t> frames;
  frames.push_back(bytes(3, 'a'));
  frames.push_back(bytes(4, 'b'));
  const std::string packed = pack_blobs(frames, 1024);
  std::string_view out;
  ASSERT_TRUE(unpack_blob(packed, 1, out));
  EXPECT_EQ(out, std::string_view(static_cast<const char*>(frames[1].data()), 4));
  EXPECT_FALSE(unpack_blob(packed, 2, out));
  EXPECT_THROW(unpack_blob(std::string_view(packed).substr(0, packed.size() - 1), 1, out), BlobError);
  EXPECT_THROW(unpack_blob(std::string_view(packed).substr(0, 5), 0, out), BlobError);
}

TEST(BrokerBlobStore, JobIdsCannotEscapeTheRoot) {
  Fixture f;
  std::vector<zmq::message_t> frames;
  frames.push_back(bytes(5000, 'y'));
  EXPECT_THROW(f.store.put("../evil", BlobDir::in, frames), BlobError);
  EXPECT_THROW(f.store.put("..", BlobDir::in, frames), BlobError);
  EXPECT_FALSE(fs::exists(f.dir.path() / "evil"));
}

}  // namespace
}  // namespace mmgen::broker::testing
