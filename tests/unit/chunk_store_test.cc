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
constexpr size_t kCrcHeader = 48;  // format 2 (doc/disk-format-chunk.md)

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

// The caller's checksums of the data's 64 KiB pieces stand for the pass over
// the bytes wherever a block's new bytes are exactly one piece (aligned
// writes, a gap of zeros before, a short last piece); other blocks are
// checksummed from the bytes. Wrong piece checksums show up as damage, so
// the test also proves they were used.
TEST_F(ChunkStoreTest, PieceChecksumsStandForThePass) {
  auto pieces = [](const std::vector<uint8_t>& d) {
    std::vector<uint32_t> v;
    for (size_t o = 0; o < d.size(); o += kBS) {
      v.push_back(crc32c::Value(d.data() + o, std::min<size_t>(kBS, d.size() - o)));
    }
    return v;
  };
  const std::vector<uint8_t> d = RandomBytes(3 * kBS + 777, 11);
  std::vector<uint32_t> crcs = pieces(d);
  std::vector<ConstSlice> slices = {{d.data(), kBS + 5}, {d.data() + kBS + 5, d.size() - kBS - 5}};
  // Aligned, on a fresh chunk, and after a gap of whole blocks.
  ASSERT_OK(store_->Create(1, 1));
  ASSERT_OK(store_->Write(1, 0, slices, &crcs));
  EXPECT_EQ(ReadAll(1), d);
  EXPECT_OK(store_->Verify(1));
  ASSERT_OK(store_->Create(2, 1));
  ASSERT_OK(store_->Write(2, 2 * kBS, slices, &crcs));
  std::vector<uint8_t> expect(2 * kBS, 0);
  expect.insert(expect.end(), d.begin(), d.end());
  EXPECT_EQ(ReadAll(2), expect);
  EXPECT_OK(store_->Verify(2));
  // One short piece after a gap inside its block (zeros, then the piece).
  const std::vector<uint8_t> small = RandomBytes(10, 12);
  const std::vector<uint32_t> small_crc = pieces(small);
  ASSERT_OK(store_->Create(5, 1));
  ASSERT_OK(store_->Write(5, kBS + 5, {{small.data(), small.size()}}, &small_crc));
  EXPECT_OK(store_->Verify(5));
  // Not aligned: the pieces do not match blocks, the bytes are checksummed.
  std::vector<uint32_t> wrong(crcs.size(), 0x12345678);
  ASSERT_OK(store_->Create(3, 1));
  ASSERT_OK(store_->Write(3, 100, slices, &wrong));
  EXPECT_OK(store_->Verify(3));
  // Aligned with wrong piece checksums: they were taken as given.
  ASSERT_OK(store_->Create(4, 1));
  ASSERT_OK(store_->Write(4, 0, slices, &wrong));
  EXPECT_EQ(store_->Verify(4).code(), Code::kCorruption);
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
  EXPECT_EQ(std::filesystem::file_size(store_->CrcPath(0xabc)), kCrcHeader + 4u);
  // The single CRC entry is the CRC32C of the 100 bytes.
  std::string crc;
  ASSERT_OK(Env::Posix()->ReadFile(store_->CrcPath(0xabc), &crc));
  uint32_t stored = 0;
  std::memcpy(&stored, crc.data() + kCrcHeader, 4);
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
  EXPECT_NE(s.message().find("bytes 65536..131072"), std::string::npos) << s.message();

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
  ASSERT_OK(env_.FlipByte(store_->CrcPath(5), kCrcHeader + 4 + 2));  // entry of block 1
  OpenStore();                                                       // drop cached checksums
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
  EXPECT_EQ(std::filesystem::file_size(store_->CrcPath(1)), kCrcHeader + 4u);
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
  std::filesystem::resize_file(dir_ + "/chunks/0000000000000001.crc", kCrcHeader + 4);
  OpenStore();  // one entry left: blocks 1..3 have no checksum (damaged, not cut)
  EXPECT_EQ(store_->Meta(1)->length, d.size());
  EXPECT_EQ(store_->StartupDamage(1), (std::vector<Range>{{kBS, d.size() - kBS}}));
  ASSERT_OK(store_->BlockChecksums(1, 0, kBS, &base, &end, &crcs));
  EXPECT_EQ(end, kBS);
  ASSERT_EQ(crcs.size(), 1u);
  EXPECT_EQ(crcs[0], crc32c::Value(d.data(), kBS));
  EXPECT_EQ(store_->BlockChecksums(1, 0, kBS + 1, &base, &end, &crcs).code(), Code::kCorruption);
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
  EXPECT_EQ(env_.opens(), 0u);  // cached handles
  EXPECT_EQ(env_.reads(), 0u);  // aligned: no read-modify-write
  // One data pwrite and one CRC pwrite each, and the checksum header twice
  // (the mutation's intent, then the new length).
  EXPECT_EQ(env_.writes(), 7u * 4);

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
  EXPECT_EQ(env_.writes(), 4u);
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

  // Deleted before its sync ran: the job still syncs the descriptors it
  // holds, and nothing is recorded.
  ASSERT_OK(store_->Write(1, 0, d.data(), 10));
  auto j3 = store_->PrepareSync(1);
  ASSERT_OK(j3.status());
  ASSERT_NE(*j3, nullptr);
  ASSERT_OK(store_->Delete(1));
  Status gone = (*j3)->Run();
  EXPECT_OK(gone);
  ASSERT_OK(store_->FinishSync(**j3, gone));
  EXPECT_FALSE(store_->Has(1));
}

// A sync goes through the very descriptors that wrote the chunk (an error
// the kernel reports to them is not missed by a descriptor opened later), and
// a dirty chunk is synced before the open-file cache closes its files. Queued
// jobs hold descriptors, so their number is bounded: past four times the
// cache, a chunk is synced at once instead. A thousand chunks written and
// queued for sync (many clients fsyncing many-chunk files at once) keep the
// open files bounded, and every one ends synced.
TEST_F(ChunkStoreTest, SyncsGoThroughTheWritingDescriptorsAndStayBounded) {
  OpenStore(4);
  const std::vector<uint8_t> d = RandomBytes(1000, 7);
  std::vector<std::unique_ptr<ChunkStore::SyncJob>> queued;
  for (uint64_t h = 1; h <= 1000; ++h) {
    ASSERT_OK(store_->Create(h, 1));
    ASSERT_OK(store_->Write(h, 0, d.data(), d.size()));
    auto job = store_->PrepareSync(h);
    ASSERT_OK(job.status());
    if (*job != nullptr) queued.push_back(std::move(*job));
  }
  EXPECT_EQ(queued.size(), 16u);
  EXPECT_LE(env_.live_files(), 2u * (4 + 16));
  EXPECT_GE(store_->evictions_synced(), 1u);  // written chunks left the cache synced
  env_.ResetCounters();
  for (auto& job : queued) ASSERT_OK(store_->FinishSync(*job, job->Run()));
  EXPECT_EQ(env_.opens(), 0u);       // no file opened anew to sync it
  EXPECT_EQ(env_.syncs(), 3u * 16);  // data, checksums, and the directory of the new files
  queued.clear();
  EXPECT_LE(env_.live_files(), 2u * 4);
  for (uint64_t h = 1; h <= 1000; ++h) {
    auto clean = store_->PrepareSync(h);
    ASSERT_OK(clean.status());
    EXPECT_EQ(*clean, nullptr) << h;
  }
  // A failed sync (through those descriptors) makes the chunk unusable until
  // a repair rewrites it: a retry through another descriptor could pass
  // without the lost pages.
  ASSERT_OK(store_->Write(7, 0, d.data(), 10));
  auto job = store_->PrepareSync(7);
  ASSERT_OK(job.status());
  ASSERT_NE(*job, nullptr);
  env_.SetSyncError(true);
  Status failed = (*job)->Run();
  env_.SetSyncError(false);
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(store_->FinishSync(**job, failed).ok());
  std::vector<uint8_t> out;
  EXPECT_FALSE(store_->Read(7, 0, 10, &out).ok());
  EXPECT_EQ(store_->StartupDamage(7), (std::vector<Range>{{0, 1000}}));
  ASSERT_OK(store_->RepairBlocks(7, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(7));
  ASSERT_OK(store_->Read(7, 0, d.size(), &out));
  EXPECT_EQ(out, d);
}

// A process killed in the middle of a mutation (its page cache, with what it
// wrote, surviving) costs at most that mutation's range: at the next Open
// the length is the old or the new one (or, for a growth, what landed in
// between), every block verifies, every byte outside the range is as it
// was, and every byte inside is old or new; the version does not move. The
// kill comes after each of the mutation's writes in turn (the checksum
// header's intent, the data, its slices, the checksums, the new length).
TEST_F(ChunkStoreTest, AKillDuringAMutationCostsAtMostItsRange) {
  const std::vector<uint8_t> base = RandomBytes(4 * kBS + 1000, 60);
  const std::vector<uint8_t> fresh = RandomBytes(3 * kBS, 61);
  struct Case {
    const char* name;
    uint64_t off;   // where new bytes go (or the new length, for a truncate)
    size_t n;       // new bytes (0: a truncate)
    size_t slices;  // the new bytes in this many slices (pwrites)
  };
  const Case cases[] = {
      {"unaligned overwrite", kBS - 100, 2 * kBS, 1},
      {"overwrite in 3 slices", kBS / 2, 3 * kBS, 3},
      {"append", base.size(), 2 * kBS + 17, 1},
      {"write past the end", base.size() + kBS + 5, 5000, 1},
      {"shrinking truncate", 2 * kBS + 300, 0, 0},
      {"growing truncate", base.size() + 3 * kBS, 0, 0},
  };
  uint64_t finished = 0;
  for (const Case& c : cases) {
    for (int kill = 0; kill <= 7; ++kill) {
      SCOPED_TRACE(std::string(c.name) + ", killed after write " + std::to_string(kill));
      store_.reset();
      std::filesystem::remove_all(dir_ + "/chunks");
      OpenStore();
      ASSERT_OK(store_->Create(1, 3));
      ASSERT_OK(store_->Write(1, 0, base.data(), base.size()));
      ASSERT_OK(store_->Sync(1));
      env_.StopWritesAfter(kill);
      uint64_t new_len = base.size();
      if (c.n > 0) {
        std::vector<ConstSlice> sl;
        const size_t per = c.n / c.slices;
        for (size_t i = 0; i < c.slices; ++i) {
          sl.push_back({fresh.data() + i * per, i + 1 == c.slices ? c.n - i * per : per});
        }
        (void)store_->Write(1, c.off, sl);  // may fail: the process "died"
        new_len = std::max<uint64_t>(base.size(), c.off + c.n);
      } else {
        (void)store_->Truncate(1, c.off);
        new_len = c.off;
      }
      env_.StopWritesAfter(-1);
      store_.reset();  // no sync, no clean-up: killed
      OpenStore();
      finished += store_->intents_finished();
      auto meta = store_->Meta(1);
      ASSERT_OK(meta.status());
      EXPECT_EQ(meta->version, 3u);
      const uint64_t lo = std::min<uint64_t>(base.size(), new_len);
      const uint64_t hi = std::max<uint64_t>(base.size(), new_len);
      EXPECT_GE(meta->length, lo);
      EXPECT_LE(meta->length, hi);
      EXPECT_TRUE(store_->StartupDamage(1).empty());
      EXPECT_OK(store_->Verify(1));
      std::vector<uint8_t> got;
      ASSERT_OK(store_->Read(1, 0, 1 << 30, &got));
      ASSERT_EQ(got.size(), meta->length);
      // The mutation's range: the bytes it writes, and for a growth the gap
      // before them (zeros in the new version).
      const uint64_t ms = c.n > 0 ? std::min<uint64_t>(c.off, base.size()) : c.off;
      const uint64_t me = c.n > 0 ? c.off + c.n : hi;
      for (uint64_t i = 0; i < got.size(); ++i) {
        const uint8_t oldb = i < base.size() ? base[i] : 0;
        uint8_t newb = 0;
        if (c.n > 0 && i >= c.off && i < c.off + c.n) newb = fresh[i - c.off];
        if (c.n == 0 && i < base.size()) newb = base[i];
        const bool inside = i >= ms && i < me;
        if (!inside) {
          ASSERT_EQ(got[i], oldb) << "byte " << i << " outside the mutation changed";
        } else {
          ASSERT_TRUE(got[i] == oldb || got[i] == newb)
              << "byte " << i << " is neither old nor new";
        }
      }
      if (kill == 7) {
        EXPECT_EQ(meta->length, new_len);  // the mutation was complete
      }
    }
  }
  EXPECT_GE(finished, 15u);  // many kills left a mutation to finish
}

// Damage found at Open is reported, never cut and never read as zeros: a
// data file cut on a block boundary, a checksum file cut to 4 bytes or gone.
// The length stays the recorded one, the data file keeps its size, reads of
// the damaged blocks fail (Corruption), the others succeed, and rewriting the
// damaged blocks from a good copy (RepairBlocks) makes the replica whole.
TEST_F(ChunkStoreTest, DamageFoundAtOpenIsReportedNeverCutOrZeroed) {
  const std::vector<uint8_t> d = RandomBytes(5 * kBS + 333, 62);
  for (int kind = 0; kind < 3; ++kind) {
    SCOPED_TRACE(kind == 0 ? "data file cut" : kind == 1 ? "checksum file cut" : "no checksums");
    store_.reset();
    std::filesystem::remove_all(dir_ + "/chunks");
    OpenStore();
    ASSERT_OK(store_->Create(1, 2));
    ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
    ASSERT_OK(store_->Sync(1));
    const std::string data = store_->DataPath(1), crc = store_->CrcPath(1);
    store_.reset();
    uint64_t first_bad = 0;
    if (kind == 0) {
      std::filesystem::resize_file(data, 3 * kBS);
      first_bad = 3 * kBS;
    } else if (kind == 1) {
      std::filesystem::resize_file(crc, 4);
    } else {
      std::filesystem::remove(crc);
    }
    const uint64_t data_size = std::filesystem::file_size(data);
    OpenStore();
    auto meta = store_->Meta(1);
    ASSERT_OK(meta.status());
    EXPECT_EQ(meta->length, kind == 0 ? d.size() : data_size);
    EXPECT_EQ(meta->version, 2u);
    EXPECT_EQ(store_->StartupDamage(1),
              (std::vector<Range>{{first_bad, meta->length - first_bad}}));
    EXPECT_EQ(std::filesystem::file_size(data), data_size);  // not shortened
    std::vector<uint8_t> out;
    Status s = store_->Read(1, d.size() - 10, 10, &out);
    EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
    EXPECT_TRUE(out.empty());
    if (kind == 0) {
      ASSERT_OK(store_->Read(1, 0, 3 * kBS, &out));
      EXPECT_EQ(out, Sub(d, 0, 3 * kBS));
    }
    std::vector<Range> damaged;
    ASSERT_OK(store_->Scan(1, &damaged));
    EXPECT_EQ(damaged, (std::vector<Range>{{first_bad, d.size() - first_bad}}));
    EXPECT_EQ(store_->Verify(1).code(), Code::kCorruption);
    // Repair, block run by block run, from a good copy.
    for (const Range& r : damaged) {
      ASSERT_OK(store_->RepairBlocks(1, r.offset, d.data() + r.offset, r.length));
    }
    ASSERT_OK(store_->Sync(1));
    EXPECT_TRUE(store_->StartupDamage(1).empty());
    EXPECT_OK(store_->Verify(1));
    OpenStore();
    EXPECT_EQ(ReadAll(1), d);
  }
}

// Versions only go up: a lower one is refused, an equal one is a no-op.
TEST_F(ChunkStoreTest, VersionsNeverGoBack) {
  ASSERT_OK(store_->Create(1, 5));
  EXPECT_EQ(store_->SetVersion(1, 4).code(), Code::kInvalidArgument);
  ASSERT_OK(store_->SetVersion(1, 5));
  ASSERT_OK(store_->SetVersion(1, 6));
  OpenStore();
  EXPECT_EQ(store_->Meta(1)->version, 6u);
}

// A directory of chunk store format 1 (no FORMAT file, checksum headers
// without a length) is upgraded at Open; one of an unknown format is refused
// with a message naming both formats, and no chunk file in it is touched.
TEST_F(ChunkStoreTest, Format1IsUpgradedAndAnUnknownFormatRefused) {
  const std::vector<uint8_t> d = RandomBytes(2 * kBS + 10, 63);
  ASSERT_OK(store_->Create(1, 4));
  ASSERT_OK(store_->Write(1, 0, d.data(), d.size()));
  ASSERT_OK(store_->Sync(1));
  store_.reset();
  // Rewrite it as format 1 wrote it.
  std::string crc;
  ASSERT_OK(Env::Posix()->ReadFile(dir_ + "/chunks/0000000000000001.crc", &crc));
  std::vector<uint8_t> v1;
  Writer w(&v1);
  w.U32(0x43534647);
  w.U32(1);
  w.U32(kBS);
  w.U32(crc32c::Value(v1.data(), v1.size()));
  std::string out(v1.begin(), v1.end());
  out += crc.substr(kCrcHeader);
  RewriteFile(dir_ + "/chunks/0000000000000001.crc", out);
  std::filesystem::remove(dir_ + "/chunks/FORMAT");
  OpenStore();
  EXPECT_EQ(store_->upgraded_from(), 1u);
  EXPECT_EQ(store_->Meta(1)->length, d.size());
  EXPECT_EQ(ReadAll(1), d);
  EXPECT_OK(store_->Verify(1));
  OpenStore();
  EXPECT_EQ(store_->upgraded_from(), 0u);  // upgraded once
  store_.reset();
  RewriteFile(dir_ + "/chunks/FORMAT", "gfs chunk store format 9\n");
  ChunkStore other(&env_, dir_);
  Status s = other.Open();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("format 9"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("format 2"), std::string::npos) << s.message();
}

TEST_F(ChunkStoreTest, FaultEnvClockOffset) {
  const uint64_t before = env_.NowMicros();
  env_.SetClockOffset(3600LL * 1000 * 1000);
  EXPECT_GE(env_.NowMicros(), before + 3600ULL * 1000 * 1000);
}

}  // namespace
}  // namespace gfs
