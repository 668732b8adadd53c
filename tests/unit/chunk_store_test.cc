#include "chunk/chunk_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/coding.h"
#include "common/crc32c.h"
#include "tests/unit/fault_env.h"

namespace gfs {
namespace {

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    ::gfs::Status _s = (expr);                              \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                     \
  do {                                                      \
    ::gfs::Status _s = (expr);                              \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

constexpr uint64_t kBS = ChunkStore::kBlockSize;

std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<uint8_t> Sub(const std::vector<uint8_t>& v, size_t off, size_t n) {
  return std::vector<uint8_t>(v.begin() + static_cast<ptrdiff_t>(off),
                              v.begin() + static_cast<ptrdiff_t>(off + n));
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gfs_chunk_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    OpenStore();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // (Re)opens the store on dir_ through the fault env.
  void OpenStore(size_t max_open = ChunkStore::kDefaultOpenChunks) {
    store_.reset();
    store_ = std::make_unique<ChunkStore>(&env_, dir_, max_open);
    ASSERT_OK(store_->Open());
  }
  // Crash: drop the store without syncing, revert unsynced data, reopen.
  void CrashAndReopen() {
    store_.reset();
    ASSERT_OK(env_.DropUnsyncedData());
    OpenStore();
  }
  std::vector<uint8_t> ReadAll(uint64_t h) {
    std::vector<uint8_t> out;
    Status s = store_->Read(h, 0, 1 << 30, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  // Overwrites a whole file through the real Env.
  void RewriteFile(const std::string& path, const std::string& content) {
    std::unique_ptr<RandomRWFile> f;
    ASSERT_OK(Env::Posix()->OpenRandomRW(path, true, &f));
    ASSERT_OK(f->Truncate(0));
    ASSERT_OK(f->Write(0, content.data(), content.size()));
  }

  FaultEnv env_{Env::Posix()};
  std::string dir_;
  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ChunkStoreTest, RoundTripAcrossBlocksAndSlices) {
  ASSERT_OK(store_->Create(1, 3));
  const std::vector<uint8_t> data = RandomBytes(3 * kBS + 4321, 1);
  // Slice boundaries deliberately off the block boundaries, plus an empty slice.
  std::vector<ConstSlice> slices;
  const size_t cuts[] = {0, 1, 1, kBS - 1, kBS + 7, 2 * kBS + 100, data.size()};
  for (size_t i = 0; i + 1 < std::size(cuts); ++i) {
    slices.push_back(ConstSlice{data.data() + cuts[i], cuts[i + 1] - cuts[i]});
  }
  ASSERT_OK(store_->Write(1, 0, slices));
  auto meta = store_->Meta(1);
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->length, data.size());
  EXPECT_EQ(meta->version, 3u);
  EXPECT_EQ(ReadAll(1), data);
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(1, kBS - 10, 20, &out));  // across a block boundary
  EXPECT_EQ(out, Sub(data, kBS - 10, 20));
  ASSERT_OK(store_->Read(1, data.size() - 5, 100, &out));  // short at the end
  EXPECT_EQ(out, Sub(data, data.size() - 5, 5));
  ASSERT_OK(store_->Read(1, data.size(), 100, &out));  // at the end: empty
  EXPECT_TRUE(out.empty());
  EXPECT_OK(store_->Verify(1));
  EXPECT_EQ(store_->UsedBytes(), data.size());

  // Large slices take the one-pwrite-per-slice path.
  ASSERT_OK(store_->Create(2, 1));
  const std::vector<uint8_t> big = RandomBytes(3 << 20, 2);
  std::vector<ConstSlice> big_slices = {{big.data(), 1 << 20},
                                        {big.data() + (1 << 20), (1 << 20) + 3},
                                        {big.data() + (2 << 20) + 3, (1 << 20) - 3}};
  ASSERT_OK(store_->Write(2, 5, big_slices));
  std::vector<uint8_t> expect(5, 0);
  expect.insert(expect.end(), big.begin(), big.end());
  EXPECT_EQ(ReadAll(2), expect);
  EXPECT_OK(store_->Verify(2));
}

TEST_F(ChunkStoreTest, RandomWritesAtOddOffsetsMatchModel) {
  ASSERT_OK(store_->Create(7, 1));
  std::mt19937_64 rng(42);
  std::vector<uint8_t> model;
  for (int op = 0; op < 300; ++op) {
    const uint64_t len = model.size();
    uint64_t off;
    switch (rng() % 4) {
      case 0:
        off = len;
        break;  // append
      case 1:
        off = len + rng() % (2 * kBS);
        break;  // gap
      default:
        off = len == 0 ? 0 : rng() % len;
        break;  // overwrite
    }
    if (off > 900 * 1024) off = rng() % (len + 1);
    const size_t n = 1 + rng() % (rng() % 3 == 0 ? 3 * kBS : 2000);
    const std::vector<uint8_t> data = RandomBytes(n, rng());
    std::vector<ConstSlice> slices;
    for (size_t pos = 0; pos < n;) {
      const size_t k = std::min<size_t>(n - pos, 1 + rng() % (kBS + 3));
      slices.push_back({data.data() + pos, k});
      pos += k;
    }
    ASSERT_OK(store_->Write(7, off, slices));
    if (model.size() < off + n) model.resize(off + n, 0);
    std::copy(data.begin(), data.end(), model.begin() + static_cast<ptrdiff_t>(off));
    ASSERT_EQ(store_->Meta(7)->length, model.size());
    // A random read.
    const uint64_t ro = rng() % model.size();
    const size_t rn = 1 + rng() % (2 * kBS);
    std::vector<uint8_t> out;
    ASSERT_OK(store_->Read(7, ro, rn, &out));
    ASSERT_EQ(out, Sub(model, ro, std::min<size_t>(rn, model.size() - ro))) << "op " << op;
  }
  EXPECT_EQ(ReadAll(7), model);
  EXPECT_OK(store_->Verify(7));
  ASSERT_OK(store_->SyncAll());
  OpenStore();
  EXPECT_EQ(store_->Meta(7)->length, model.size());
  EXPECT_EQ(ReadAll(7), model);
  EXPECT_OK(store_->Verify(7));
}

TEST_F(ChunkStoreTest, GapReadsAsZeros) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> a = RandomBytes(10, 1), b = RandomBytes(10, 2);
  ASSERT_OK(store_->Write(1, 0, a.data(), a.size()));
  ASSERT_OK(store_->Write(1, 3 * kBS + 5, b.data(), b.size()));
  EXPECT_EQ(store_->Meta(1)->length, 3 * kBS + 15);
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(1, 10, 3 * kBS - 5, &out));
  EXPECT_EQ(out, std::vector<uint8_t>(3 * kBS - 5, 0));
  ASSERT_OK(store_->Read(1, 0, 10, &out));
  EXPECT_EQ(out, a);
  ASSERT_OK(store_->Read(1, 3 * kBS + 5, 10, &out));
  EXPECT_EQ(out, b);
  EXPECT_OK(store_->Verify(1));
  // A gap starting exactly at a block boundary on a fresh chunk.
  ASSERT_OK(store_->Create(2, 1));
  ASSERT_OK(store_->Write(2, 2 * kBS, b.data(), b.size()));
  ASSERT_OK(store_->Read(2, 0, 2 * kBS + 10, &out));
  std::vector<uint8_t> expect(2 * kBS, 0);
  expect.insert(expect.end(), b.begin(), b.end());
  EXPECT_EQ(out, expect);
  EXPECT_OK(store_->Verify(2));
}

TEST_F(ChunkStoreTest, SmallChunkStaysSmall) {
  ASSERT_OK(store_->Create(0xabc, 1));
  EXPECT_FALSE(std::filesystem::exists(store_->DataPath(0xabc)));  // allocated lazily
  EXPECT_EQ(store_->MetaPath(0xabc), dir_ + "/chunks/0000000000000abc.meta");
  const std::vector<uint8_t> d = RandomBytes(100, 3);
  ASSERT_OK(store_->Write(0xabc, 0, d.data(), d.size()));
  EXPECT_EQ(std::filesystem::file_size(store_->DataPath(0xabc)), 100u);
  EXPECT_EQ(std::filesystem::file_size(store_->CrcPath(0xabc)), 16u + 4u);
  // The single CRC entry is the CRC32C of the 100 bytes.
  std::string crc;
  ASSERT_OK(Env::Posix()->ReadFile(store_->CrcPath(0xabc), &crc));
  uint32_t stored = 0;
  std::memcpy(&stored, crc.data() + 16, 4);
  EXPECT_EQ(stored, crc32c::Value(d.data(), d.size()));
}

TEST_F(ChunkStoreTest, FlippedDataByteDetected) {
  ASSERT_OK(store_->Create(5, 1));
  const std::vector<uint8_t> d = RandomBytes(3 * kBS, 4);
  ASSERT_OK(store_->Write(5, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(5));
  ASSERT_OK(env_.FlipByte(store_->DataPath(5), kBS + 100));

  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(5, 0, 1000, &out));  // block 0 is fine
  EXPECT_EQ(out, Sub(d, 0, 1000));
  Status s = store_->Read(5, kBS - 10, 20, &out);  // touches block 1
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("0000000000000005"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("block 1"), std::string::npos) << s.message();
  EXPECT_TRUE(out.empty());
  s = store_->Verify(5);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("block 1"), std::string::npos) << s.message();

  // A partial overwrite of the corrupt block is refused and writes nothing.
  const std::vector<uint8_t> p = RandomBytes(50, 5);
  s = store_->Write(5, kBS + 1000, p.data(), p.size());
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  std::string raw;
  ASSERT_OK(Env::Posix()->ReadFile(store_->DataPath(5), &raw));
  EXPECT_EQ(0, std::memcmp(raw.data() + kBS + 1000, d.data() + kBS + 1000, 50));
  // A truncate inside the corrupt block is refused too.
  EXPECT_EQ(store_->Truncate(5, kBS + 5).code(), Code::kCorruption);
  EXPECT_EQ(store_->Meta(5)->length, 3 * kBS);

  // A whole-block overwrite replaces the bad block.
  const std::vector<uint8_t> w = RandomBytes(kBS, 6);
  ASSERT_OK(store_->Write(5, kBS, w.data(), w.size()));
  EXPECT_OK(store_->Verify(5));
  ASSERT_OK(store_->Read(5, kBS, kBS, &out));
  EXPECT_EQ(out, w);
}

// A write never launders corruption: a partial overwrite of a bad block is
// refused as a whole, and an append into a bad partial last block (which
// extends the stored CRC without reading the block) leaves it failing.
TEST_F(ChunkStoreTest, CorruptEdgeBlocksAreNeverLaundered) {
  ASSERT_OK(store_->Create(5, 1));
  const std::vector<uint8_t> d = RandomBytes(3 * kBS + 700, 40);
  ASSERT_OK(store_->Write(5, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(5));
  ASSERT_OK(env_.FlipByte(store_->DataPath(5), 2 * kBS + 3));  // block 2
  ASSERT_OK(env_.FlipByte(store_->DataPath(5), 3 * kBS + 5));  // block 3, the partial last one

  // Spans blocks 0..2; only its last edge (block 2) is bad: nothing is written.
  const std::vector<uint8_t> w = RandomBytes(2 * kBS, 41);
  Status s = store_->Write(5, kBS - 10, w.data(), w.size());
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("block 2"), std::string::npos) << s.message();
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(5, 0, 2 * kBS, &out));
  EXPECT_EQ(out, Sub(d, 0, 2 * kBS));
  EXPECT_EQ(store_->Read(5, 2 * kBS, 1, &out).code(), Code::kCorruption);

  // Append into the bad partial block: accepted, but the block still fails,
  // before and after the checksums are reloaded from disk.
  const std::vector<uint8_t> a = RandomBytes(1000, 42);
  ASSERT_OK(store_->Write(5, d.size(), a.data(), a.size()));
  EXPECT_EQ(store_->Read(5, 3 * kBS, 10, &out).code(), Code::kCorruption);
  ASSERT_OK(store_->Sync(5));
  OpenStore();
  EXPECT_EQ(store_->Read(5, 3 * kBS, 10, &out).code(), Code::kCorruption);
  EXPECT_EQ(store_->Read(5, 2 * kBS, 10, &out).code(), Code::kCorruption);
  EXPECT_EQ(store_->Truncate(5, 3 * kBS + 1).code(), Code::kCorruption);
  ASSERT_OK(store_->Read(5, 0, 2 * kBS, &out));
  EXPECT_EQ(out, Sub(d, 0, 2 * kBS));
}

TEST_F(ChunkStoreTest, FlippedChecksumEntryDetected) {
  ASSERT_OK(store_->Create(5, 1));
  const std::vector<uint8_t> d = RandomBytes(2 * kBS, 4);
  ASSERT_OK(store_->Write(5, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(5));
  ASSERT_OK(env_.FlipByte(store_->CrcPath(5), 16 + 4 + 2));  // entry of block 1
  OpenStore();                                               // drop cached checksums
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(5, 0, kBS, &out));
  EXPECT_EQ(store_->Read(5, kBS, 1, &out).code(), Code::kCorruption);
}

TEST_F(ChunkStoreTest, ReopenSeesSameChunks) {
  std::vector<std::vector<uint8_t>> datas;
  for (uint64_t h = 1; h <= 5; ++h) {
    ASSERT_OK(store_->Create(h * 1000, h + 10));
    datas.push_back(RandomBytes(static_cast<size_t>(h * 40000 + h), h));
    if (h != 3)
      ASSERT_OK(store_->Write(h * 1000, 0, datas.back().data(), datas.back().size()));
    else
      datas.back().clear();  // an empty chunk
  }
  const uint64_t used = store_->UsedBytes();
  ASSERT_OK(store_->SyncAll());
  OpenStore();
  ASSERT_EQ(store_->NumChunks(), 5u);
  EXPECT_EQ(store_->UsedBytes(), used);
  std::vector<ChunkMeta> list = store_->List();
  ASSERT_EQ(list.size(), 5u);
  for (uint64_t h = 1; h <= 5; ++h) {
    const ChunkMeta& m = list[h - 1];
    EXPECT_EQ(m.handle, h * 1000);
    EXPECT_EQ(m.version, h + 10);
    EXPECT_EQ(m.length, datas[h - 1].size());
    EXPECT_EQ(ReadAll(h * 1000), datas[h - 1]);
    EXPECT_OK(store_->Verify(h * 1000));
  }
  EXPECT_FALSE(store_->Has(999));
  EXPECT_EQ(store_->Meta(999).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Create(2000, 1).code(), Code::kAlreadyExists);
}

TEST_F(ChunkStoreTest, SetVersionDurable) {
  ASSERT_OK(store_->Create(9, 1));
  ASSERT_OK(store_->SetVersion(9, 7));
  EXPECT_EQ(store_->Meta(9)->version, 7u);
  EXPECT_EQ(store_->SetVersion(10, 7).code(), Code::kNotFound);
  CrashAndReopen();  // no Sync call: SetVersion alone must be durable
  ASSERT_TRUE(store_->Has(9));
  EXPECT_EQ(store_->Meta(9)->version, 7u);
}

TEST_F(ChunkStoreTest, Truncate) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> d = RandomBytes(200000, 8);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Truncate(1, 100000));  // inside block 1
  EXPECT_EQ(store_->Meta(1)->length, 100000u);
  EXPECT_EQ(store_->UsedBytes(), 100000u);
  EXPECT_EQ(ReadAll(1), Sub(d, 0, 100000));
  EXPECT_OK(store_->Verify(1));
  ASSERT_OK(store_->Sync(1));
  OpenStore();
  EXPECT_EQ(store_->Meta(1)->length, 100000u);
  EXPECT_OK(store_->Verify(1));
  // Append after truncate extends the recomputed last-block CRC.
  const std::vector<uint8_t> e = RandomBytes(5000, 9);
  ASSERT_OK(store_->Write(1, 100000, e.data(), e.size()));
  EXPECT_OK(store_->Verify(1));
  // Grow: zeros.
  ASSERT_OK(store_->Truncate(1, 300000));
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(1, 105000, 195000, &out));
  EXPECT_EQ(out, std::vector<uint8_t>(195000, 0));
  EXPECT_OK(store_->Verify(1));
  // Block-aligned and to zero.
  ASSERT_OK(store_->Truncate(1, kBS));
  EXPECT_EQ(ReadAll(1), Sub(d, 0, kBS));
  EXPECT_EQ(std::filesystem::file_size(store_->CrcPath(1)), 16u + 4u);
  ASSERT_OK(store_->Truncate(1, 0));
  EXPECT_TRUE(ReadAll(1).empty());
  EXPECT_EQ(store_->UsedBytes(), 0u);
  EXPECT_EQ(store_->Truncate(2, 0).code(), Code::kNotFound);
}

TEST_F(ChunkStoreTest, Delete) {
  ASSERT_OK(store_->Create(1, 1));
  ASSERT_OK(store_->Create(2, 1));
  const std::vector<uint8_t> d = RandomBytes(1000, 10);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Delete(1));
  EXPECT_FALSE(store_->Has(1));
  EXPECT_EQ(store_->NumChunks(), 1u);
  EXPECT_EQ(store_->UsedBytes(), 0u);
  EXPECT_FALSE(std::filesystem::exists(store_->MetaPath(1)));
  EXPECT_FALSE(std::filesystem::exists(store_->DataPath(1)));
  EXPECT_FALSE(std::filesystem::exists(store_->CrcPath(1)));
  EXPECT_EQ(store_->Delete(1).code(), Code::kNotFound);
  std::vector<uint8_t> out;
  EXPECT_EQ(store_->Read(1, 0, 10, &out).code(), Code::kNotFound);
  EXPECT_EQ(store_->Write(1, 0, d.data(), d.size()).code(), Code::kNotFound);
  OpenStore();
  EXPECT_FALSE(store_->Has(1));
  EXPECT_TRUE(store_->Has(2));
  ASSERT_OK(store_->Create(1, 4));  // the handle can be reused
  EXPECT_TRUE(ReadAll(1).empty());
}

TEST_F(ChunkStoreTest, OpenRemovesTempAndOrphanFiles) {
  ASSERT_OK(store_->Create(1, 1));
  store_.reset();
  const std::string c = dir_ + "/chunks/";
  RewriteFile(c + "0000000000000001.meta.tmp", "junk");
  RewriteFile(c + "0000000000000002.chunk", "orphan");  // no meta: an interrupted delete
  RewriteFile(c + "0000000000000002.crc", "orphan");
  RewriteFile(c + "README", "foreign files are left alone");
  OpenStore();
  EXPECT_TRUE(store_->Has(1));
  EXPECT_FALSE(store_->Has(2));
  EXPECT_FALSE(std::filesystem::exists(c + "0000000000000001.meta.tmp"));
  EXPECT_FALSE(std::filesystem::exists(c + "0000000000000002.chunk"));
  EXPECT_FALSE(std::filesystem::exists(c + "0000000000000002.crc"));
  EXPECT_TRUE(std::filesystem::exists(c + "README"));
}

TEST_F(ChunkStoreTest, SecondStoreOnSameDirIsBusy) {
  ChunkStore other(&env_, dir_);
  EXPECT_EQ(other.Open().code(), Code::kBusy);
}

TEST_F(ChunkStoreTest, CorruptMetaDetectedAtOpen) {
  for (uint64_t h = 1; h <= 4; ++h) ASSERT_OK(store_->Create(h, 5));
  const std::string m1 = store_->MetaPath(1), m2 = store_->MetaPath(2), m3 = store_->MetaPath(3);
  store_.reset();
  // 1: a flipped byte in the version field (CRC mismatch).
  ASSERT_OK(env_.FlipByte(m1, 17));
  // 2: a torn meta file.
  std::string content;
  ASSERT_OK(Env::Posix()->ReadFile(m2, &content));
  RewriteFile(m2, content.substr(0, 12));
  // 3: a newer format version.
  ASSERT_OK(Env::Posix()->ReadFile(m3, &content));
  content[4] = 2;
  RewriteFile(m3, content);
  OpenStore();
  EXPECT_TRUE(store_->Has(4));
  EXPECT_FALSE(store_->Has(1));
  EXPECT_FALSE(store_->Has(2));
  EXPECT_FALSE(store_->Has(3));
  ASSERT_EQ(store_->BadChunks().size(), 3u);
  for (const BadChunk& b : store_->BadChunks()) {
    EXPECT_EQ(b.status.code(), Code::kCorruption);
    EXPECT_NE(b.status.message().find(ChunkStore::HandleName(b.handle) + ".meta"),
              std::string::npos)
        << b.status.message();
  }
  EXPECT_NE(store_->BadChunks()[0].status.message().find("checksum mismatch"), std::string::npos);
  EXPECT_NE(store_->BadChunks()[2].status.message().find("unknown chunk meta format version 2"),
            std::string::npos)
      << store_->BadChunks()[2].status.message();
  EXPECT_EQ(store_->Create(1, 6).code(), Code::kAlreadyExists);
  ASSERT_OK(store_->Delete(1));  // a bad chunk can be deleted, then recreated
  EXPECT_EQ(store_->BadChunks().size(), 2u);
  ASSERT_OK(store_->Create(1, 6));
  EXPECT_EQ(store_->Meta(1)->version, 6u);
}

TEST_F(ChunkStoreTest, CorruptChecksumHeaderDetectedOnFirstUse) {
  ASSERT_OK(store_->Create(1, 1));
  ASSERT_OK(store_->Create(2, 1));
  const std::vector<uint8_t> d = RandomBytes(1000, 11);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Write(2, 0, d.data(), d.size()));
  ASSERT_OK(store_->SyncAll());
  const std::string c1 = store_->CrcPath(1), c2 = store_->CrcPath(2);
  store_.reset();
  ASSERT_OK(env_.FlipByte(c1, 9));  // block size field: header CRC mismatch
  std::string content;
  ASSERT_OK(Env::Posix()->ReadFile(c2, &content));
  content[4] = 9;  // format version 9
  RewriteFile(c2, content);
  OpenStore();
  std::vector<uint8_t> out;
  Status s = store_->Read(1, 0, 10, &out);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("0000000000000001.crc"), std::string::npos) << s.message();
  EXPECT_EQ(store_->Write(1, 0, d.data(), 1).code(), Code::kCorruption);
  s = store_->Verify(2);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("0000000000000002.crc"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unknown checksum file format version 9"), std::string::npos)
      << s.message();
}

// An append writer outside the store (a short-circuit producer): writes
// `data` at `off` and returns the checksums of its pieces between block
// boundaries, the first from `off` (WriteOutside's, plus the piece before the
// first boundary).
std::vector<uint32_t> WriteOutside(const std::string& path, uint64_t off,
                                   const std::vector<uint8_t>& data);
std::vector<uint32_t> AppendOutside(const std::string& path, uint64_t off,
                                    const std::vector<uint8_t>& data) {
  std::vector<uint32_t> crcs = WriteOutside(path, off, data);
  if (off % kBS != 0 && !data.empty()) {
    const uint64_t head = std::min<uint64_t>((off / kBS + 1) * kBS - off, data.size());
    crcs.insert(crcs.begin(), crc32c::Value(data.data(), head));
  }
  return crcs;
}

// Blocks past the checksum file's end were written and never checksummed
// (a crash between the two): Open cuts them off rather than letting them
// read as corrupt.
TEST_F(ChunkStoreTest, DataPastItsChecksumsIsCutAtOpen) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> d = RandomBytes(3 * kBS, 12);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(1));
  store_.reset();
  std::filesystem::resize_file(dir_ + "/chunks/0000000000000001.crc", 16 + 4);  // one entry left
  OpenStore();
  EXPECT_EQ(store_->tail_bytes_cut(), 2 * kBS);
  EXPECT_EQ(store_->Meta(1)->length, kBS);
  EXPECT_EQ(store_->Meta(1)->version, 0u);  // one back: behind any replica not cut
  EXPECT_EQ(ReadAll(1), Sub(d, 0, kBS));
  EXPECT_OK(store_->Verify(1));
  // A flipped byte in the last block is corruption, not a shorter chunk.
  ASSERT_OK(store_->Write(1, kBS, d.data(), 5000));
  ASSERT_OK(store_->Sync(1));
  store_.reset();
  {
    std::unique_ptr<RandomRWFile> f;
    ASSERT_OK(Env::Posix()->OpenRandomRW(dir_ + "/chunks/0000000000000001.chunk", false, &f));
    const uint8_t x = static_cast<uint8_t>(d[100] ^ 0x40);
    ASSERT_OK(f->Write(kBS + 100, &x, 1));
  }
  OpenStore();
  EXPECT_EQ(store_->tail_bytes_cut(), 0u);
  EXPECT_EQ(store_->Meta(1)->length, kBS + 5000);
  EXPECT_EQ(store_->Meta(1)->version, 0u);
  EXPECT_EQ(store_->Verify(1).code(), Code::kCorruption);
}

// A server stopped while short-circuit appends were open: the writers'
// bytes past the length, in the last checksummed block and beyond, are cut
// at the next Open; what was under the length reads and verifies.
TEST_F(ChunkStoreTest, OpenAppendRangesOfAStoppedServerAreCut) {
  ASSERT_OK(store_->Create(2, 7));
  const auto head = RandomBytes(kBS + 3000, 20);
  uint64_t a = 0, b = 0;
  ASSERT_OK(store_->ReserveAppend(2, head.size(), &a));
  ASSERT_OK(store_->LandAppend(2, a, AppendOutside(store_->DataPath(2), a, head)));
  ASSERT_OK(store_->ReserveAppend(2, 200000, &b));
  AppendOutside(store_->DataPath(2), b, RandomBytes(200000, 21));  // never landed
  ASSERT_OK(store_->SyncAll());
  store_.reset();
  OpenStore();
  EXPECT_EQ(store_->tail_bytes_cut(), 200000u);
  EXPECT_EQ(store_->Meta(2)->version, 6u);
  EXPECT_EQ(ReadAll(2), head);
  EXPECT_OK(store_->Verify(2));
  EXPECT_OK(store_->Write(2, head.size(), head.data(), 10));  // and it takes writes again
}

// The checksums a short-circuit reader verifies against: those of the
// blocks covering the range, clipped to the length, each the CRC32C of the
// block's bytes; a missing one is Corruption, as for Read.
TEST_F(ChunkStoreTest, BlockChecksumsCoverTheRangeAndMatchTheBytes) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> d = RandomBytes(3 * kBS + 1000, 13);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  uint64_t base = 0, end = 0;
  std::vector<uint32_t> crcs;
  ASSERT_OK(store_->BlockChecksums(1, kBS + 5, 2 * kBS, &base, &end, &crcs));
  EXPECT_EQ(base, kBS);
  EXPECT_EQ(end, d.size());  // blocks 1..3, the last one partial
  ASSERT_EQ(crcs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const uint64_t bs = base + i * kBS;
    const size_t len = static_cast<size_t>(std::min<uint64_t>(kBS, end - bs));
    EXPECT_EQ(crcs[i], crc32c::Value(d.data() + bs, len)) << "block " << i + 1;
  }
  ASSERT_OK(store_->BlockChecksums(1, 100, 10, &base, &end, &crcs));
  EXPECT_EQ(base, 0u);
  EXPECT_EQ(end, kBS);
  EXPECT_EQ(crcs.size(), 1u);
  ASSERT_OK(store_->BlockChecksums(1, d.size(), 10, &base, &end, &crcs));  // at the end
  EXPECT_EQ(end, 0u);
  EXPECT_TRUE(crcs.empty());
  EXPECT_EQ(store_->BlockChecksums(2, 0, 10, &base, &end, &crcs).code(), Code::kNotFound);

  ASSERT_OK(store_->Sync(1));
  store_.reset();
  std::filesystem::resize_file(dir_ + "/chunks/0000000000000001.crc", 16 + 4);  // one entry left
  OpenStore();  // the blocks past the one checksum left are cut (DataPastItsChecksumsIsCutAtOpen)
  ASSERT_OK(store_->BlockChecksums(1, 0, kBS + 1, &base, &end, &crcs));
  EXPECT_EQ(end, kBS);
  ASSERT_EQ(crcs.size(), 1u);
  EXPECT_EQ(crcs[0], crc32c::Value(d.data(), kBS));
}

TEST_F(ChunkStoreTest, NoSpacePropagatesAndChunkStaysUsable) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> d = RandomBytes(100000, 13);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(1));

  env_.SetNoSpace(true);
  const std::vector<uint8_t> big = RandomBytes(1 << 20, 14);
  Status s = store_->Write(1, d.size(), big.data(), big.size());
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.ToString();
  EXPECT_EQ(store_->Meta(1)->length, d.size());
  EXPECT_EQ(store_->Create(2, 1).code(), Code::kNoSpace);
  EXPECT_FALSE(store_->Has(2));
  env_.SetNoSpace(false);
  EXPECT_EQ(ReadAll(1), d);
  EXPECT_OK(store_->Verify(1));

  // A torn write: it overwrites the tail of block 1 and runs out of space
  // while extending. The length is unchanged and every block still verifies.
  env_.SetSpaceBudget(1000);
  s = store_->Write(1, 90000, big.data(), 20000);
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.ToString();
  env_.SetNoSpace(false);
  EXPECT_EQ(store_->Meta(1)->length, d.size());
  EXPECT_EQ(std::filesystem::file_size(store_->DataPath(1)), d.size());
  EXPECT_OK(store_->Verify(1));
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(1, 0, 90000, &out));
  EXPECT_EQ(out, Sub(d, 0, 90000));

  // The retry succeeds.
  ASSERT_OK(store_->Write(1, 90000, big.data(), 20000));
  ASSERT_OK(store_->Read(1, 90000, 20000, &out));
  EXPECT_EQ(out, Sub(big, 0, 20000));
  EXPECT_OK(store_->Verify(1));
}

TEST_F(ChunkStoreTest, WriteErrorOnFreshChunkLeavesItEmpty) {
  ASSERT_OK(store_->Create(1, 1));
  env_.SetWriteError(true);
  const std::vector<uint8_t> d = RandomBytes(5000, 15);
  EXPECT_EQ(store_->Write(1, 0, d.data(), d.size()).code(), Code::kIOError);
  env_.SetWriteError(false);
  EXPECT_EQ(store_->Meta(1)->length, 0u);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  EXPECT_EQ(ReadAll(1), d);
}

TEST_F(ChunkStoreTest, UnsyncedWritesLostOnCrashSyncedSurvive) {
  ASSERT_OK(store_->Create(1, 1));
  ASSERT_OK(store_->Create(2, 1));
  const std::vector<uint8_t> a = RandomBytes(100000, 16), b = RandomBytes(50000, 17);
  ASSERT_OK(store_->Write(1, 0, a.data(), a.size()));
  ASSERT_OK(store_->Sync(1));
  ASSERT_OK(store_->Write(1, a.size(), b.data(), b.size()));  // never synced
  ASSERT_OK(store_->Write(1, 10, b.data(), 100));             // overwrite, never synced
  ASSERT_OK(store_->Write(2, 0, b.data(), b.size()));         // never synced
  CrashAndReopen();
  ASSERT_TRUE(store_->Has(1));
  ASSERT_TRUE(store_->Has(2));  // Create is durable on its own
  EXPECT_EQ(store_->Meta(1)->length, a.size());
  EXPECT_EQ(ReadAll(1), a);
  EXPECT_OK(store_->Verify(1));
  EXPECT_EQ(store_->Meta(2)->length, 0u);

  // After Sync the data survives a crash.
  ASSERT_OK(store_->Write(1, a.size(), b.data(), b.size()));
  ASSERT_OK(store_->Write(2, 0, b.data(), b.size()));
  ASSERT_OK(store_->SyncAll());
  CrashAndReopen();
  std::vector<uint8_t> ab = a;
  ab.insert(ab.end(), b.begin(), b.end());
  EXPECT_EQ(ReadAll(1), ab);
  EXPECT_EQ(ReadAll(2), b);
  EXPECT_OK(store_->Verify(1));
  EXPECT_OK(store_->Verify(2));
}

// Early writeback: started per `writeback_bytes` written and, for what is
// left, by StartWritebackAll; each range once; a hint that never stands in for
// Sync (the crash model drops what was started but not synced).
TEST_F(ChunkStoreTest, WritebackStartsEachRangeOnceAndIsNoSync) {
  store_->set_writeback_bytes(256 * 1024);
  ASSERT_OK(store_->Create(1, 1));
  ASSERT_OK(store_->Create(2, 1));
  const std::vector<uint8_t> d = RandomBytes(512 * 1024, 21);
  const std::string p1 = store_->DataPath(1), p2 = store_->DataPath(2);
  env_.RecordEvents(true);
  ASSERT_OK(store_->Write(1, 0, d.data(), 100 * 1024));
  EXPECT_TRUE(env_.TakeEvents().empty());  // below the threshold
  ASSERT_OK(store_->Write(1, 100 * 1024, d.data() + 100 * 1024, 200 * 1024));
  EXPECT_EQ(env_.TakeEvents(), std::vector<std::string>{"writeback " + p1 + " 0 307200"});
  ASSERT_OK(store_->Write(1, 300 * 1024, d.data() + 300 * 1024, 212 * 1024));
  ASSERT_OK(store_->Write(2, 0, d.data(), 1000));
  ASSERT_OK(store_->Write(2, 5000, d.data(), 1000));  // the range spans the gap
  EXPECT_TRUE(env_.TakeEvents().empty());
  store_->StartWritebackAll();
  std::vector<std::string> ev = env_.TakeEvents();
  std::sort(ev.begin(), ev.end());
  std::vector<std::string> want = {"writeback " + p1 + " 307200 217088",
                                   "writeback " + p2 + " 0 6000"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ev, want);
  store_->StartWritebackAll();  // nothing new written: nothing to start
  EXPECT_TRUE(env_.TakeEvents().empty());

  CrashAndReopen();  // started, never synced: gone
  EXPECT_EQ(store_->Meta(1)->length, 0u);
  EXPECT_EQ(store_->Meta(2)->length, 0u);

  // Off (the reopened store's default): nothing is started while writing;
  // Sync leaves nothing pending.
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  EXPECT_TRUE(env_.TakeEvents().empty());
  ASSERT_OK(store_->Sync(1));
  store_->StartWritebackAll();
  EXPECT_EQ(env_.TakeEvents(),
            (std::vector<std::string>{"sync " + p1, "sync " + store_->CrcPath(1)}));
  CrashAndReopen();
  EXPECT_EQ(ReadAll(1), d);
}

TEST_F(ChunkStoreTest, SyncAfterCacheEvictionStillSyncs) {
  OpenStore(/*max_open=*/2);
  std::vector<std::vector<uint8_t>> datas;
  for (uint64_t h = 1; h <= 5; ++h) {
    ASSERT_OK(store_->Create(h, 1));
    datas.push_back(RandomBytes(70000, h + 100));
  }
  for (int round = 0; round < 2; ++round) {  // interleaved: evicts every time
    for (uint64_t h = 1; h <= 5; ++h) {
      const auto& d = datas[h - 1];
      ASSERT_OK(store_->Write(h, round * 35000, d.data() + round * 35000, 35000));
    }
  }
  ASSERT_OK(store_->SyncAll());
  CrashAndReopen();
  for (uint64_t h = 1; h <= 5; ++h) {
    EXPECT_EQ(ReadAll(h), datas[h - 1]);
    EXPECT_OK(store_->Verify(h));
  }
}

TEST_F(ChunkStoreTest, FailedSyncPoisonsChunk) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> d = RandomBytes(1000, 18);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  env_.SetSyncError(true);
  EXPECT_EQ(store_->Sync(1).code(), Code::kIOError);
  env_.SetSyncError(false);
  std::vector<uint8_t> out;
  EXPECT_FALSE(store_->Read(1, 0, 10, &out).ok());
  EXPECT_FALSE(store_->Sync(1).ok());  // a retried fsync is not trusted
  EXPECT_TRUE(store_->Meta(1).ok());
  ASSERT_OK(store_->Delete(1));
}

TEST_F(ChunkStoreTest, IoPatternOfStreamingWrites) {
  ASSERT_OK(store_->Create(1, 1));
  const std::vector<uint8_t> d = RandomBytes(8 << 20, 19);
  ASSERT_OK(store_->Write(1, 0, d.data(), 1 << 20));  // opens the files
  env_.ResetCounters();
  for (size_t off = 1 << 20; off < d.size(); off += 1 << 20) {
    ASSERT_OK(store_->Write(1, off, d.data() + off, 1 << 20));
  }
  EXPECT_EQ(env_.opens(), 0u);       // cached handles
  EXPECT_EQ(env_.reads(), 0u);       // aligned: no read-modify-write
  EXPECT_EQ(env_.writes(), 7u * 2);  // one data pwrite + one CRC pwrite each

  // Appends into a partial last block extend its CRC without reading.
  ASSERT_OK(store_->Create(2, 1));
  std::vector<uint8_t> model;
  ASSERT_OK(store_->Write(2, 0, d.data(), 1000));
  env_.ResetCounters();
  for (size_t off = 1000; off < 300000; off += 7001) {
    ASSERT_OK(store_->Write(2, off, d.data() + off, 7001));
  }
  EXPECT_EQ(env_.reads(), 0u);
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(2, 0, 1 << 20, &out));
  EXPECT_EQ(out, Sub(d, 0, out.size()));
  EXPECT_OK(store_->Verify(2));

  // An unaligned overwrite reads (and verifies) only its two edge blocks.
  env_.ResetCounters();
  ASSERT_OK(store_->Write(1, 100, d.data(), 3 * kBS));
  EXPECT_EQ(env_.reads(), 2u);
  EXPECT_EQ(env_.writes(), 2u);
}

// A writer outside the store (a short-circuit client): writes `data` at
// `off` of the chunk's data file and returns its checksums, one per block
// boundary at or after `off` (to the next boundary or the end).
std::vector<uint32_t> WriteOutside(const std::string& path, uint64_t off,
                                   const std::vector<uint8_t>& data) {
  std::unique_ptr<RandomRWFile> f;
  EXPECT_TRUE(Env::Posix()->OpenRandomRW(path, false, &f).ok());
  if (f == nullptr) return {};
  EXPECT_TRUE(f->Write(off, data.data(), data.size()).ok());
  std::vector<uint32_t> crcs;
  const uint64_t end = off + data.size();
  for (uint64_t b = (off + kBS - 1) / kBS * kBS; b < end; b += kBS) {
    crcs.push_back(crc32c::Value(data.data() + (b - off), std::min(b + kBS, end) - b));
  }
  return crcs;
}

TEST_F(ChunkStoreTest, ExternalWritesKeepEveryBlockChecksummed) {
  ASSERT_OK(store_->Create(9, 1));
  std::vector<uint8_t> model;
  auto apply = [&](uint64_t off, const std::vector<uint8_t>& d) {
    if (model.size() < off + d.size()) model.resize(off + d.size(), 0);
    std::copy(d.begin(), d.end(), model.begin() + static_cast<ptrdiff_t>(off));
  };
  struct Case {
    uint64_t off;
    size_t n;
  };
  // Fresh chunk at 0; aligned; unaligned inside old data (both edges
  // partial); past the end leaving a gap; ending exactly at the end; a
  // short one inside one block.
  const std::vector<Case> cases = {{0, 3 * kBS + 100},       {kBS, 2 * kBS},
                                   {kBS / 2 + 7, kBS + 300}, {5 * kBS + 11, 1000},
                                   {4 * kBS, kBS + 11},      {200, 50}};
  uint64_t seed = 70;
  for (const Case& c : cases) {
    const std::vector<uint8_t> d = RandomBytes(c.n, seed++);
    ASSERT_OK(store_->BeginExternalWrite(9, c.off, c.n));
    EXPECT_TRUE(store_->ExternalWriteOpen(9));
    std::vector<uint8_t> out;
    // Everything but Sync waits for the writer.
    EXPECT_EQ(store_->Read(9, 0, 10, &out).code(), Code::kBusy);
    EXPECT_EQ(store_->Write(9, 0, d.data(), 1).code(), Code::kBusy);
    EXPECT_EQ(store_->Truncate(9, 1).code(), Code::kBusy);
    EXPECT_EQ(store_->Verify(9).code(), Code::kBusy);
    EXPECT_EQ(store_->BeginExternalWrite(9, 0, 1).code(), Code::kBusy);
    ASSERT_OK(store_->EndExternalWrite(9, WriteOutside(store_->DataPath(9), c.off, d)));
    apply(c.off, d);
    ASSERT_OK(store_->Verify(9));
    EXPECT_EQ(store_->Meta(9)->length, model.size());
    EXPECT_EQ(ReadAll(9), model);
  }
  // The checksums survive a sync and a reopen.
  ASSERT_OK(store_->Sync(9));
  OpenStore();
  ASSERT_OK(store_->Verify(9));
  EXPECT_EQ(ReadAll(9), model);
}

TEST_F(ChunkStoreTest, ExternalWriteRefusesCorruptEdgesAndWrongChecksums) {
  ASSERT_OK(store_->Create(3, 1));
  const std::vector<uint8_t> d = RandomBytes(3 * kBS + 500, 80);
  ASSERT_OK(store_->Write(3, 0, d.data(), d.size()));
  ASSERT_OK(env_.FlipByte(store_->DataPath(3), 3 * kBS + 2));  // the partial last block
  // Old bytes of a block the write covers in part are verified first, also
  // those of a last block a write past the end would leave beside a gap.
  Status s = store_->BeginExternalWrite(3, 3 * kBS + 400, 10);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  s = store_->BeginExternalWrite(3, 5 * kBS, 10);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_FALSE(store_->ExternalWriteOpen(3));
  // A whole-block overwrite needs no old bytes: allowed.
  ASSERT_OK(store_->BeginExternalWrite(3, kBS, kBS));
  const std::vector<uint8_t> w = RandomBytes(kBS, 81);
  std::vector<uint32_t> crcs = WriteOutside(store_->DataPath(3), kBS, w);
  crcs.push_back(0);  // one too many: the write is aborted, checksummed as the file is
  s = store_->EndExternalWrite(3, crcs);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(store_->ExternalWriteOpen(3));
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(3, kBS, kBS, &out));
  EXPECT_EQ(out, w);
  EXPECT_EQ(store_->EndExternalWrite(3, {}).code(), Code::kNotFound);
}

TEST_F(ChunkStoreTest, AbortedExternalWriteKeepsWhatLandedReadable) {
  ASSERT_OK(store_->Create(4, 1));
  const std::vector<uint8_t> d = RandomBytes(2 * kBS, 90);
  ASSERT_OK(store_->Write(4, 0, d.data(), d.size()));
  // The writer got through part of its range (over old data and past the
  // end) and vanished.
  ASSERT_OK(store_->BeginExternalWrite(4, kBS + 100, 3 * kBS));
  const std::vector<uint8_t> part = RandomBytes(kBS + 500, 91);
  WriteOutside(store_->DataPath(4), kBS + 100, part);
  ASSERT_OK(store_->AbortExternalWrite(4));
  EXPECT_FALSE(store_->ExternalWriteOpen(4));
  std::vector<uint8_t> model = d;
  model.resize(kBS + 100 + part.size());
  std::copy(part.begin(), part.end(), model.begin() + kBS + 100);
  EXPECT_EQ(store_->Meta(4)->length, model.size());
  ASSERT_OK(store_->Verify(4));
  EXPECT_EQ(ReadAll(4), model);
  // One that wrote nothing past the end leaves the length alone.
  ASSERT_OK(store_->BeginExternalWrite(4, model.size() + 10, 100));
  ASSERT_OK(store_->AbortExternalWrite(4));
  EXPECT_EQ(store_->Meta(4)->length, model.size());
  // End on a file shorter than the range claims: aborted, an error.
  ASSERT_OK(store_->BeginExternalWrite(4, model.size(), 2 * kBS));
  Status s = store_->EndExternalWrite(4, std::vector<uint32_t>(2, 0));
  EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
  ASSERT_OK(store_->Verify(4));
  EXPECT_EQ(ReadAll(4), model);
  // Deleting the chunk ends its write.
  ASSERT_OK(store_->BeginExternalWrite(4, 0, 10));
  ASSERT_OK(store_->Delete(4));
  EXPECT_FALSE(store_->ExternalWriteOpen(4));
}

// A held grant: a range that reaches the chunk's length may be granted up to
// a window's end, and the writer ends it wherever it stopped in between; a
// range inside the old bytes gets just itself. An end outside the grant is
// refused (aborted), and an aborted held grant keeps what landed up to the
// window.
TEST_F(ChunkStoreTest, HeldExternalWriteEndsWhereTheWriterStopped) {
  ASSERT_OK(store_->Create(5, 1));
  std::vector<uint8_t> model = RandomBytes(2 * kBS + 100, 90);
  ASSERT_OK(store_->Write(5, 0, model.data(), model.size()));
  uint64_t granted = 0;
  // Inside the old bytes: no window, whatever is asked.
  ASSERT_OK(store_->BeginExternalWrite(5, 10, 100, 8 * kBS, &granted));
  EXPECT_EQ(granted, 110u);
  ASSERT_OK(store_->AbortExternalWrite(5));
  ASSERT_OK(store_->Verify(5));
  // From inside the partial last block past the length: the window.
  const uint64_t off = 2 * kBS + 50;
  ASSERT_OK(store_->BeginExternalWrite(5, off, 100, 8 * kBS, &granted));
  EXPECT_EQ(granted, 8 * kBS);
  // Written to 5 blocks + 7.
  const std::vector<uint8_t> d = RandomBytes(3 * kBS - 43, 91);
  std::vector<uint32_t> crcs = WriteOutside(store_->DataPath(5), off, d);
  model.resize(off);
  model.insert(model.end(), d.begin(), d.end());
  ASSERT_OK(store_->EndExternalWrite(5, off + d.size(), crcs));
  ASSERT_OK(store_->Verify(5));
  EXPECT_EQ(store_->Meta(5)->length, model.size());
  EXPECT_EQ(ReadAll(5), model);
  // An end past the granted window: refused, and checksummed as the file is.
  ASSERT_OK(store_->BeginExternalWrite(5, model.size(), 10, model.size() + kBS, &granted));
  EXPECT_EQ(granted, model.size() + kBS);
  Status s = store_->EndExternalWrite(5, model.size() + 2 * kBS, {});
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_FALSE(store_->ExternalWriteOpen(5));
  ASSERT_OK(store_->Verify(5));
  EXPECT_EQ(ReadAll(5), model);
  // An end short of the range asked for: refused the same way.
  ASSERT_OK(store_->BeginExternalWrite(5, model.size(), 1000, model.size() + kBS, &granted));
  s = store_->EndExternalWrite(5, model.size() + 999, {});
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  ASSERT_OK(store_->Verify(5));
  // Aborted after the writer went past its first range: what landed stays,
  // readable, up to the window.
  const uint64_t at = model.size();
  ASSERT_OK(store_->BeginExternalWrite(5, at, 10, at + 4 * kBS, &granted));
  const std::vector<uint8_t> more = RandomBytes(2 * kBS + 5, 92);
  WriteOutside(store_->DataPath(5), at, more);
  ASSERT_OK(store_->AbortExternalWrite(5));
  model.insert(model.end(), more.begin(), more.end());
  EXPECT_EQ(store_->Meta(5)->length, model.size());
  ASSERT_OK(store_->Verify(5));
  EXPECT_EQ(ReadAll(5), model);
}

// Syncs run by another thread (SyncJob): the chunk is clean afterwards only
// if nothing changed it meanwhile; a failed one makes it unusable; one whose
// chunk was deleted meanwhile changes nothing; the job starts the batched
// writebacks first.
TEST_F(ChunkStoreTest, AppendRangesLandOutOfOrderAndTheLengthFollowsTheGaplessPrefix) {
  ASSERT_OK(store_->Create(5, 1));
  ASSERT_OK(store_->Write(5, 0, RandomBytes(1000, 1).data(), 1000));  // a partial first block
  std::vector<uint8_t> model = RandomBytes(1000, 1);
  // Four ranges reserved back to back, each sharing blocks with its
  // neighbours; they land in the order 2, 0, 3, 1.
  const std::vector<size_t> sizes = {kBS + 333, 70000, 5, 2 * kBS + 1};
  std::vector<uint64_t> offs;
  std::vector<std::vector<uint8_t>> data;
  for (size_t i = 0; i < sizes.size(); ++i) {
    uint64_t off = 0;
    ASSERT_OK(store_->ReserveAppend(5, sizes[i], &off));
    EXPECT_EQ(off,
              model.size() + std::accumulate(sizes.begin(),
                                             sizes.begin() + static_cast<ptrdiff_t>(i), size_t{0}));
    offs.push_back(off);
    data.push_back(RandomBytes(sizes[i], 10 + i));
  }
  EXPECT_TRUE(store_->AppendsOpen(5));
  EXPECT_EQ(store_->AppendEnd(5), 1000 + std::accumulate(sizes.begin(), sizes.end(), size_t{0}));
  // Other mutations wait for the ranges; reads go on below the length.
  EXPECT_EQ(store_->Write(5, 0, data[0].data(), 10).code(), Code::kBusy);
  EXPECT_EQ(store_->Truncate(5, 10).code(), Code::kBusy);
  EXPECT_EQ(store_->BeginExternalWrite(5, 0, 10).code(), Code::kBusy);
  const std::string path = store_->DataPath(5);
  for (size_t i : {2, 0, 3, 1}) {
    auto crcs = AppendOutside(path, offs[i], data[i]);
    ASSERT_OK(store_->LandAppend(5, offs[i], crcs));
    auto meta = store_->Meta(5);
    ASSERT_TRUE(meta.ok());
    if (i == 2) {
      EXPECT_EQ(meta->length, 1000u);  // range 0 is still open
      EXPECT_EQ(store_->LandedEnd(5), offs[2] + sizes[2]);
    }
    if (i == 0) {
      EXPECT_EQ(meta->length, offs[1]);  // range 1 is still open
    }
    if (i == 3) {
      EXPECT_EQ(meta->length, offs[1]);
      EXPECT_EQ(ReadAll(5).size(), offs[1]);  // readable up to the gap, verified
    }
  }
  EXPECT_FALSE(store_->AppendsOpen(5));
  for (const auto& d : data) model.insert(model.end(), d.begin(), d.end());
  EXPECT_EQ(ReadAll(5), model);
  EXPECT_OK(store_->Verify(5));
  // The checksums were combined, not read back: a fresh store agrees.
  ASSERT_OK(store_->SyncAll());
  OpenStore();
  EXPECT_EQ(ReadAll(5), model);
  EXPECT_OK(store_->Verify(5));
  // With nothing open, ordinary writes are back.
  EXPECT_OK(store_->Write(5, 3, data[0].data(), 10));
}

TEST_F(ChunkStoreTest, AbandonedAppendRangeIsChecksummedAsTheFileHoldsIt) {
  ASSERT_OK(store_->Create(6, 1));
  uint64_t a = 0, b = 0, c = 0;
  ASSERT_OK(store_->ReserveAppend(6, 100000, &a));
  ASSERT_OK(store_->ReserveAppend(6, 50000, &b));
  ASSERT_OK(store_->ReserveAppend(6, 3000, &c));
  const std::string path = store_->DataPath(6);
  auto db = RandomBytes(50000, 2), dc = RandomBytes(3000, 3);
  // c lands; a's writer wrote half and vanished; b's wrote nothing.
  ASSERT_OK(store_->LandAppend(6, c, AppendOutside(path, c, dc)));
  AppendOutside(path, a, RandomBytes(50000, 4));
  ASSERT_OK(store_->AbortAppend(6, a));
  EXPECT_EQ(store_->Meta(6)->length, b);
  ASSERT_OK(store_->AbortAppend(6, b));
  EXPECT_EQ(store_->Meta(6)->length, c + 3000);
  auto all = ReadAll(6);
  ASSERT_EQ(all.size(), c + 3000);
  EXPECT_EQ(Sub(all, 0, 50000), RandomBytes(50000, 4));
  EXPECT_TRUE(std::all_of(all.begin() + 50000, all.begin() + static_cast<ptrdiff_t>(c),
                          [](uint8_t x) { return x == 0; }));
  EXPECT_EQ(Sub(all, c, 3000), dc);
  EXPECT_OK(store_->Verify(6));
  // A range landed with the wrong number of checksums is taken from the file.
  uint64_t d = 0;
  ASSERT_OK(store_->ReserveAppend(6, 2 * kBS, &d));
  auto dd = RandomBytes(2 * kBS, 5);
  AppendOutside(path, d, dd);
  EXPECT_EQ(store_->LandAppend(6, d, {1, 2}).code(), Code::kInvalidArgument);
  EXPECT_EQ(Sub(ReadAll(6), d, 2 * kBS), dd);
  EXPECT_OK(store_->Verify(6));
  EXPECT_EQ(store_->LandAppend(6, d, {}).code(), Code::kNotFound);  // no longer open
}

TEST_F(ChunkStoreTest, WriteAppendAndPadJoinOpenRanges) {
  ASSERT_OK(store_->Create(7, 1));
  uint64_t a = 0, b = 0;
  ASSERT_OK(store_->ReserveAppend(7, 4000, &a));
  auto rec = RandomBytes(90000, 6);
  ASSERT_OK(store_->WriteAppend(7, {{rec.data(), 1000}, {rec.data() + 1000, 89000}}, &b));
  EXPECT_EQ(b, 4000u);
  ASSERT_OK(store_->PadAppend(7, 4 * kBS));
  EXPECT_EQ(store_->AppendEnd(7), 4 * kBS);
  EXPECT_EQ(store_->Meta(7)->length, 0u);
  auto da = RandomBytes(4000, 7);
  ASSERT_OK(store_->LandAppend(7, a, AppendOutside(store_->DataPath(7), a, da)));
  auto all = ReadAll(7);
  ASSERT_EQ(all.size(), 4 * kBS);
  EXPECT_EQ(Sub(all, 0, 4000), da);
  EXPECT_EQ(Sub(all, 4000, 90000), rec);
  EXPECT_TRUE(std::all_of(all.begin() + 94000, all.end(), [](uint8_t x) { return x == 0; }));
  EXPECT_OK(store_->Verify(7));
}

TEST_F(ChunkStoreTest, SyncJobsRecordTheirOutcome) {
  ASSERT_OK(store_->Create(1, 1));
  ASSERT_OK(store_->Create(2, 1));
  const std::vector<uint8_t> d = RandomBytes(2 * kBS, 100);
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Write(2, 0, d.data(), d.size()));
  auto job = store_->PrepareSync(1);
  ASSERT_OK(job.status());
  ASSERT_NE(*job, nullptr);
  (*job)->writebacks = store_->TakeWritebacks();
  EXPECT_EQ((*job)->writebacks.size(), 2u);  // both chunks' new bytes
  env_.ResetCounters();
  ASSERT_OK(store_->Write(1, d.size(), d.data(), 100));  // while the job runs
  ASSERT_OK((*job)->Run());
  EXPECT_EQ(env_.writebacks(), 2u);
  ASSERT_OK(store_->FinishSync(**job, Status::OK()));
  auto again = store_->PrepareSync(1);  // changed meanwhile: still to sync
  ASSERT_OK(again.status());
  ASSERT_NE(*again, nullptr);
  ASSERT_OK(store_->FinishSync(**again, (*again)->Run()));
  auto clean = store_->PrepareSync(1);
  ASSERT_OK(clean.status());
  EXPECT_EQ(*clean, nullptr);

  // Failed: unusable, as after a failed Sync.
  auto j2 = store_->PrepareSync(2);
  ASSERT_OK(j2.status());
  ASSERT_NE(*j2, nullptr);
  env_.SetSyncError(true);
  Status ran = (*j2)->Run();
  env_.SetSyncError(false);
  EXPECT_EQ(ran.code(), Code::kIOError);
  EXPECT_EQ(store_->FinishSync(**j2, ran).code(), Code::kIOError);
  std::vector<uint8_t> out;
  EXPECT_FALSE(store_->Read(2, 0, 10, &out).ok());

  // Deleted before its sync ran: nothing to sync, nothing recorded.
  ASSERT_OK(store_->Write(1, 0, d.data(), 10));
  auto j3 = store_->PrepareSync(1);
  ASSERT_OK(j3.status());
  ASSERT_NE(*j3, nullptr);
  ASSERT_OK(store_->Delete(1));
  Status gone = (*j3)->Run();
  EXPECT_EQ(gone.code(), Code::kNotFound);
  ASSERT_OK(store_->FinishSync(**j3, gone));
  EXPECT_FALSE(store_->Has(1));
}

// Sync jobs name their files and open them only while they run: a thousand
// queued jobs (many clients fsyncing many-chunk files at once) hold no
// descriptors, where holding them ran a chunkserver out of descriptors and
// the failed syncs made acknowledged chunks unusable. A job that cannot open
// its files fails without making the chunk unusable: it stays dirty.
TEST_F(ChunkStoreTest, QueuedSyncJobsHoldNoFilesAndAFailedOpenLosesNothing) {
  OpenStore(4);
  const std::vector<uint8_t> d = RandomBytes(1000, 7);
  std::vector<std::unique_ptr<ChunkStore::SyncJob>> queued;
  for (uint64_t h = 1; h <= 1000; ++h) {
    ASSERT_OK(store_->Create(h, 1));
    ASSERT_OK(store_->Write(h, 0, d.data(), d.size()));
    auto job = store_->PrepareSync(h);
    ASSERT_OK(job.status());
    ASSERT_NE(*job, nullptr);
    queued.push_back(std::move(*job));
  }
  EXPECT_LE(env_.live_files(), 2u * 4);  // the store's own open chunks only
  env_.SetOpenError(true);
  Status failed = queued[0]->Run();
  env_.SetOpenError(false);
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(store_->FinishSync(*queued[0], failed).ok());
  std::vector<uint8_t> out;
  ASSERT_OK(store_->Read(1, 0, d.size(), &out));  // still usable
  EXPECT_EQ(out, d);
  auto again = store_->PrepareSync(1);  // still dirty
  ASSERT_OK(again.status());
  ASSERT_NE(*again, nullptr);
  const uint64_t syncs = env_.syncs();
  for (auto& job : queued) ASSERT_OK(store_->FinishSync(*job, job->Run()));
  ASSERT_OK(store_->FinishSync(**again, (*again)->Run()));
  EXPECT_GE(env_.syncs() - syncs, 2u * 1000);
  EXPECT_LE(env_.live_files(), 2u * 4);
  for (uint64_t h = 1; h <= 1000; h += 111) {
    auto clean = store_->PrepareSync(h);
    ASSERT_OK(clean.status());
    EXPECT_EQ(*clean, nullptr) << h;
  }
}

TEST_F(ChunkStoreTest, FaultEnvClockOffset) {
  const uint64_t before = env_.NowMicros();
  env_.SetClockOffset(3600LL * 1000 * 1000);
  EXPECT_GE(env_.NowMicros(), before + 3600ULL * 1000 * 1000);
}

}  // namespace
}  // namespace gfs
